"""`localai doctor` over real SSH: a Linux host, and a stand-in Mac whose blockers it names."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from localai_provision import roothelper
from tests.conftest import CAN_SSH
from tests.support.lab import Lab
from tests.support.macos import set_flag
from tests.support.sshfleet import TestHost

pytestmark = [
    pytest.mark.ssh,
    pytest.mark.skipif(not CAN_SSH, reason="needs root and openssh-server"),
]


def checks(out: str) -> dict[str, dict[str, object]]:
    [host] = json.loads(out)["hosts"]
    return {c["name"]: c for c in host["checks"]}


def test_a_fresh_linux_host_is_ready(lab: Lab) -> None:
    host = lab.fleet.hosts[0]
    code, out, err = lab.cli("doctor", str(lab.site([host])), "--json")
    assert code == 0, out + err
    found = checks(out)
    assert found["sftp"]["ok"] and found["disk"]["ok"] and found["clock"]["ok"]
    assert found["os"]["detail"].startswith("linux")


def test_doctor_names_each_thing_that_blocks_a_mac_with_its_fix(
    lab: Lab, mac: TestHost, tmp_path: Path
) -> None:
    site = lab.site(
        [mac],
        launchd={"plist_dir": "~/fake-root/Library/LaunchDaemons"},
        macos={"restart_after_power_failure": True},
    )
    code, out, _err = lab.cli("doctor", str(site), "--json")
    assert code == 0, out
    assert checks(out)["sudo"]["ok"]

    Path(roothelper.sudoers_path(mac.user)).unlink()  # the admin's line is gone
    set_flag(mac, "filevault-on")
    set_flag(mac, "no-clt")
    code, out, _err = lab.cli("doctor", str(site), "--json")
    assert code == 1
    found = checks(out)
    assert found["sudo"]["blocking"] and not found["sudo"]["ok"]
    assert roothelper.sudoers_line(mac.user) in str(found["sudo"]["fix"])
    assert not found["filevault"]["ok"] and not found["filevault"]["blocking"]
    assert "unlock screen" in str(found["filevault"]["fix"])
    assert found["system xcode-clt"]["blocking"]
    code, text, _err = lab.cli("doctor", str(site))
    assert code == 1 and "BLOCKS" in text and "fix:" in text
