"""pyinfra inventory for bench/drift.py: the hosts of the targets file named by $BENCH_TARGETS.

Run: BENCH_TARGETS=targets.json pyinfra bench/pyinfra/inventory.py bench/pyinfra/deploy.py --dry
The same targets file bench/drift.py writes the localai site and the Ansible inventory from.
"""

import json
import os

with open(os.environ["BENCH_TARGETS"], encoding="utf-8") as _f:
    _targets = json.load(_f)

fleet = [
    (
        t["name"],
        {
            "ssh_hostname": t["address"],
            "ssh_port": t["ssh_port"],
            "ssh_user": t["user"],
            "ssh_key": t["identity_file"],
            # The same known_hosts file localai uses, and refuse unknown keys.
            "ssh_known_hosts_file": t["known_hosts_file"],
            "ssh_strict_host_key_checking": "yes",
            "localai_prefix": t["prefix"],
            "localai_server_port": t["server_port"],
            "localai_packages": t["packages"],
            "localai_model": t["model"],
        },
    )
    for t in _targets
]
