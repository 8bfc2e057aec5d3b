"""`ssh_config`: hosts reached as ~/.ssh/config says (HostName, User, Port, IdentityFile,
ProxyJump), over the real sshd fleet; one fleet host is the jump host, and the target is
reached through it over a direct-tcpip channel, as `ssh -J` does."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.conftest import CAN_SSH
from tests.support import hostprep
from tests.support.lab import Lab
from tests.support.sshfleet import TestHost

pytestmark = [
    pytest.mark.ssh,
    pytest.mark.skipif(not CAN_SSH, reason="needs root and openssh-server"),
]


def ssh_config(lab: Lab, jump: TestHost, target: TestHost, proxyjump: str = "jumpbox") -> str:
    key = lab.fleet.client_key_path
    return f"""\
Host jumpbox
  HostName 127.0.0.1
  Port {jump.port}
  User {jump.user}
  IdentityFile {key}

Host mac-b
  HostName 127.0.0.1
  Port {target.port}
  User {target.user}
  IdentityFile {key}
  ProxyJump {proxyjump}

Host direct-b
  HostName 127.0.0.1
  Port {target.port}
  User {target.user}
  IdentityFile {key}
"""


def site(lab: Lab, config: Path, hosts: dict[str, dict[str, object]]) -> Path:
    doc = {
        "version": 1,
        "defaults": {
            "ssh_config": str(config),
            "known_hosts_file": str(lab.known_hosts),
            "python": "/usr/bin/python3",
            "prefix": "~/.localai",
            "connect_timeout_s": 5,
            "packages": {"mlx-omni-server": "0.5.1"},
        },
        "hosts": hosts,
    }
    path = lab.tmp_path / "site.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def accepted(host: TestHost) -> int:
    return host.log_path.read_text(errors="replace").count(f"Accepted publickey for {host.user}")


def test_an_alias_of_ssh_config_is_reached_through_its_proxyjump(lab: Lab) -> None:
    jump, target = lab.fleet.hosts[0], lab.fleet.hosts[1]
    hostprep.reset_host(target)  # no server left by an earlier test (the status asserted)
    config = lab.tmp_path / "ssh_config"
    config.write_text(ssh_config(lab, jump, target))
    path = site(lab, config, {"mac-b": {"server": {"port": lab.ports[target.name]}}})
    before_jump, before_target = accepted(jump), accepted(target)
    code, hosts = lab.json("status", path)
    assert code == 0, hosts
    assert hosts["mac-b"]["status"] == "stopped" and hosts["mac-b"]["error"] is None
    assert accepted(jump) == before_jump + 1  # the jump host was logged in to, once
    assert accepted(target) == before_target + 1


def test_the_site_wins_over_ssh_config_and_a_direct_alias_needs_no_jump(lab: Lab) -> None:
    jump, target, other = lab.fleet.hosts[0], lab.fleet.hosts[1], lab.fleet.hosts[2]
    config = lab.tmp_path / "ssh_config"
    config.write_text(ssh_config(lab, jump, target))
    # direct-b's config names target; the site's own port and user send it to `other`.
    hosts = {"direct-b": {"ssh_port": other.port, "user": other.user}}
    path = site(lab, config, hosts)
    before_jump, before_other = accepted(jump), accepted(other)
    code, result = lab.json("status", path)
    assert code == 0, result
    assert accepted(other) == before_other + 1 and accepted(jump) == before_jump


def test_a_jump_host_that_does_not_answer_is_named_in_the_error(lab: Lab) -> None:
    jump, target = lab.fleet.hosts[0], lab.fleet.hosts[1]
    config = lab.tmp_path / "ssh_config"
    config.write_text(ssh_config(lab, jump, target, proxyjump="127.0.0.1:1"))
    path = site(lab, config, {"mac-b": {}})
    code, hosts = lab.json("status", path)
    assert code == 1
    error = hosts["mac-b"]["error"]
    assert hosts["mac-b"]["status"] == "unreachable"
    assert "through jump host 127.0.0.1:1" in error["message"], error


def test_drift_over_openssh_reads_the_same_config_and_jump(lab: Lab) -> None:
    """plan and drift go over the system's `ssh` (ssh_client: auto): it is given the file
    with -F and only the site's own values, and makes the same trip through the jump."""
    jump, target = lab.fleet.hosts[0], lab.fleet.hosts[1]
    config = lab.tmp_path / "ssh_config"
    text = ssh_config(lab, jump, target)
    # The jump's own ssh (ProxyJump runs `ssh -W` with this file) checks its key too.
    text += f"\nHost *\n  UserKnownHostsFile {lab.known_hosts}\n"
    text += "  StrictHostKeyChecking accept-new\n"
    config.write_text(text)
    path = site(lab, config, {"mac-b": {"server": {"port": lab.ports[target.name]}}})
    before_jump = accepted(jump)
    code, hosts = lab.json("drift", path, "--limit", "mac-b")
    assert code == 2, hosts  # reached, and never applied: drift
    assert hosts["mac-b"]["status"] == "drift"
    assert accepted(jump) == before_jump + 1
