"""Generate the Ansible inventory for bench/drift.py from its targets file.

Run: python bench/ansible/inventory.py TARGETS.json > inventory.yml
TARGETS.json is the list of hosts that bench/drift.py also writes the localai site from
(name, address, ssh_port, user, identity_file, known_hosts_file, python, prefix,
server_port, packages, model). Paths are absolute: Ansible's command module and the controller
cannot expand a remote `~`.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any


def inventory(targets: list[dict[str, Any]]) -> dict[str, Any]:
    hosts: dict[str, Any] = {}
    for t in targets:
        hosts[t["name"]] = {
            "ansible_host": t["address"],
            "ansible_port": t["ssh_port"],
            "ansible_user": t["user"],
            "ansible_ssh_private_key_file": t["identity_file"],
            # The same known_hosts file localai uses, and refuse unknown keys.
            "ansible_ssh_extra_args": (
                f"-o UserKnownHostsFile={t['known_hosts_file']} -o StrictHostKeyChecking=yes"
            ),
            "ansible_python_interpreter": t["python"],
            "localai_prefix": t["prefix"],
            "localai_server_port": t["server_port"],
            "localai_packages": t["packages"],
            "localai_model": t["model"],
        }
    return {"all": {"children": {"fleet": {"hosts": hosts}}}}


def write_inventory(targets: list[dict[str, Any]], path: Path) -> Path:
    # JSON is YAML: Ansible's YAML inventory plugin reads it as is.
    path.write_text(json.dumps(inventory(targets), indent=1) + "\n")
    return path


if __name__ == "__main__":
    print(json.dumps(inventory(json.loads(Path(sys.argv[1]).read_text())), indent=1))
