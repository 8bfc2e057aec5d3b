"""macOS hosts over real SSH: the launchd path, with STAND-INS for Apple's tools.

A fleet host gets stand-ins for launchctl, plutil, pmset, sysctl, sw_vers, uname and sudo
(tests/support/macos.py) first in its PATH, so the tool sees a Mac and drives launchd; the
stand-in launchctl runs the stand-in server as launchd would run the real one.
"""

from __future__ import annotations

import json
import os
import plistlib
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import CAN_SSH
from tests.support import hostprep
from tests.support.lab import Lab
from tests.support.macos import make_mac, unmake_mac
from tests.support.sshfleet import TestHost

pytestmark = [
    pytest.mark.ssh,
    pytest.mark.skipif(not CAN_SSH, reason="needs root and openssh-server"),
]

DAEMONS = "~/fake-root/Library/LaunchDaemons"


@pytest.fixture
def mac(lab: Lab) -> Iterator[TestHost]:
    host = lab.fleet.hosts[6]
    hostprep.reset_host(host)
    make_mac(host)
    yield host
    unmake_mac(host)
    hostprep.reset_host(host)


def mac_site(lab: Lab, host: TestHost, model_source: Path, **extra: Any) -> Path:
    return lab.site(
        [host],
        models=[{"id": "org/tiny-a", "source": str(model_source)}],
        launchd={"plist_dir": DAEMONS, **extra.pop("launchd", {})},
        **extra,
    )


@pytest.fixture(scope="module")
def model_source(shared_dir: Path) -> Path:
    folder = shared_dir / "models" / "mac-tiny"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps({"model_type": "llama"}))
    (folder / "model.safetensors").write_bytes(b"\1" * 4096)
    return folder


def label(lab: Lab, host: TestHost) -> str:
    return f"com.localai-provision.server.{lab.ports[host.name]}"


def jobs(host: TestHost) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((host.home / ".macstandin" / "launchd.json").read_text())
    return data


def test_a_mac_is_seen_as_a_mac(lab: Lab, mac: TestHost, model_source: Path) -> None:
    site = mac_site(lab, mac, model_source)
    _code, out, err = lab.cli("plan", str(site), "--json")
    assert out, err
    [host] = json.loads(out)["hosts"]
    resources = {c["resource"]: c["action"] for c in host["changes"]}
    assert resources["service-definition"] == "create"
    assert "package torch" not in resources  # Linux additions are for Linux hosts only


def test_fresh_install_runs_as_a_launch_daemon(lab: Lab, mac: TestHost, model_source: Path) -> None:
    site = mac_site(lab, mac, model_source)
    code, result = lab.json("apply", site)
    assert code == 0, result
    entry = result[mac.name]
    assert {"service-definition", "service"} <= {c["resource"] for c in entry["changes"]}
    plist_path = mac.home / "fake-root/Library/LaunchDaemons" / f"{label(lab, mac)}.plist"
    job = plistlib.loads(plist_path.read_bytes())
    assert job["Label"] == label(lab, mac)
    assert job["UserName"] == mac.user  # a daemon: runs at boot as this user, no login
    assert job["RunAtLoad"] and job["KeepAlive"] and job["ProcessType"] == "Interactive"
    assert all(a.startswith("/") for a in job["ProgramArguments"][:1])  # launchd expands no ~
    assert job["EnvironmentVariables"]["HOME"] == str(mac.home)
    assert job["EnvironmentVariables"]["HF_HOME"] == str(mac.home / "hf")
    assert job["WorkingDirectory"].startswith(str(mac.home))
    assert oct(plist_path.stat().st_mode & 0o777) == "0o644"
    assert jobs(mac)[label(lab, mac)]["domain"] == "system"

    code, drift = lab.drift_json(site)
    assert code == 0, drift
    code, again = lab.json("apply", site)
    assert code == 0 and again[mac.name]["status"] == "ok"


def test_a_config_change_reloads_the_job_through_the_bootout_race(
    lab: Lab, mac: TestHost, model_source: Path
) -> None:
    site = mac_site(lab, mac, model_source)
    assert lab.cli("apply", str(site), "--quiet")[0] == 0
    before = jobs(mac)[label(lab, mac)]["pid"]
    changed = lab.site(
        [mac],
        models=[{"id": "org/tiny-a", "source": str(model_source)}],
        launchd={"plist_dir": DAEMONS},
        per_host={mac.name: {"server": {"port": lab.ports[mac.name], "log_level": "debug"}}},
    )
    code, result = lab.json("apply", changed)
    assert code == 0, result
    actions = {c["resource"]: c["action"] for c in result[mac.name]["changes"]}
    assert actions == {
        "server-config": "update",
        "service-definition": "update",
        "service": "restart",
    }
    after = jobs(mac)[label(lab, mac)]
    assert after["pid"] != before
    assert lab.drift_json(changed)[0] == 0


def test_a_crashing_job_is_reported_with_its_log(
    lab: Lab, mac: TestHost, model_source: Path
) -> None:
    site = lab.site(
        [mac],
        models=[{"id": "org/tiny-a", "source": str(model_source)}],
        launchd={"plist_dir": DAEMONS},
        verify={"timeout_s": 3},
        per_host={
            mac.name: {
                "server": {"port": lab.ports[mac.name], "env": {"STANDIN_FAIL_AT_START": "1"}}
            }
        },
    )
    code, result = lab.json("apply", site)
    assert code == 1
    entry = result[mac.name]
    assert entry["failed_step"] == "verify"
    assert "STANDIN_FAIL_AT_START" in entry["error"]["output_tail"]
    time.sleep(0.5)
    code, drift = lab.drift_json(site)
    assert code == 2
    [service] = [d for d in drift[mac.name]["differences"] if d["resource"] == "service"]
    assert "exited with code 3" in service["reason"]


def test_a_killed_server_is_restarted_by_launchd_itself(
    lab: Lab, mac: TestHost, model_source: Path
) -> None:
    site = mac_site(lab, mac, model_source)
    assert lab.cli("apply", str(site), "--quiet")[0] == 0
    job = jobs(mac)[label(lab, mac)]
    os.killpg(job["pid"], signal.SIGKILL)
    # KeepAlive: launchd starts a new process, no sooner than ThrottleInterval (10 s).
    for _ in range(30):
        _, status = lab.json("status", site)
        if status[mac.name]["status"] == "running":
            break
        time.sleep(1)
    assert status[mac.name]["status"] == "running"
    assert status[mac.name]["pid"] != job["pid"]


def test_sudo_without_a_password_line_fails_with_the_line_to_add(
    lab: Lab, mac: TestHost, model_source: Path
) -> None:
    state = mac.home / ".macstandin"
    state.mkdir(exist_ok=True)
    (state / "sudo-needs-password").write_text("")
    hostprep.chown_tree(state, mac.user)
    code, result = lab.json("apply", mac_site(lab, mac, model_source))
    assert code == 1
    error = result[mac.name]["error"]
    assert "sudo asks" in error["message"] and "password" in error["message"]
    assert f"{mac.user} ALL=(root) NOPASSWD: /bin/launchctl" in error["hint"]
    assert "docs/macos.md" in error["hint"]


def test_a_launch_agent_in_the_user_domain(lab: Lab, mac: TestHost, model_source: Path) -> None:
    site = lab.site(
        [mac],
        models=[{"id": "org/tiny-a", "source": str(model_source)}],
        launchd={"domain": "user"},
    )
    code, result = lab.json("apply", site)
    assert code == 0, result
    plist = mac.home / "Library/LaunchAgents" / f"{label(lab, mac)}.plist"
    assert "UserName" not in plistlib.loads(plist.read_bytes())
    uid = plist.stat().st_uid
    assert jobs(mac)[label(lab, mac)]["domain"] == f"gui/{uid}"
    code, out, _ = lab.cli("stop", str(site))
    assert code == 0 and "stopped" in out
    assert label(lab, mac) not in jobs(mac) or jobs(mac)[label(lab, mac)].get("gone_at")


def test_mac_settings_for_a_headless_host(lab: Lab, mac: TestHost, model_source: Path) -> None:
    site = mac_site(
        lab,
        mac,
        model_source,
        macos={
            "never_sleep": True,
            "restart_after_power_failure": True,
            "gpu_wired_limit_mb": 12288,
        },
    )
    code, out, _ = lab.cli("plan", str(site), "--json")
    [host] = json.loads(out)["hosts"]
    settings = {
        c["resource"]: c["after"] for c in host["changes"] if c["resource"].startswith("macos")
    }
    assert settings == {
        "macos never_sleep": "0",
        "macos restart_after_power_failure": "1",
        "macos gpu_wired_limit_mb": "12288",
        "macos gpu_wired_limit_at_boot": "12288",
    }
    code, result = lab.json("apply", site)
    assert code == 0, result
    state = json.loads((mac.home / ".macstandin" / "settings.json").read_text())
    assert (state["sleep"], state["disksleep"], state["autorestart"]) == ("0", "0", "1")
    assert state["iogpu.wired_limit_mb"] == "12288"
    boot = mac.home / "fake-root/Library/LaunchDaemons/com.localai-provision.wired-limit.plist"
    assert plistlib.loads(boot.read_bytes())["ProgramArguments"] == [
        "/usr/sbin/sysctl",
        "iogpu.wired_limit_mb=12288",
    ]
    assert lab.drift_json(site)[0] == 0

    # A reboot resets the sysctl (the boot daemon would set it again): drift names it alone.
    state["iogpu.wired_limit_mb"] = "0"
    (mac.home / ".macstandin" / "settings.json").write_text(json.dumps(state))
    code, drift = lab.drift_json(site)
    assert code == 2
    assert [d["resource"] for d in drift[mac.name]["differences"]] == ["macos gpu_wired_limit_mb"]
