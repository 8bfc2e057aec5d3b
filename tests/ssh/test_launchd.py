"""macOS hosts over real SSH: the launchd path against STAND-INS as strict as macOS.

A fleet host gets root-owned stand-ins for launchctl, plutil, pmset, sysctl, sw_vers, uname,
stat, xcode-select and fdesetup first in its PATH (tests/support/macos.py), and Debian's real
sudo: the root helper is installed by the same installer the tool gives the admin, which
grants exactly one sudoers line. The stand-in launchctl refuses what launchd refuses (a
loaded label, a label still draining after bootout, a daemon plist not owned by root, the
system domain to a non-root caller, gui/UID with nobody at the console) and runs the
stand-in server as launchd would, as the plist's UserName.
"""

from __future__ import annotations

import json
import os
import plistlib
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from localai_provision import roothelper
from tests.conftest import CAN_SSH
from tests.support.lab import Lab
from tests.support.macos import (
    daemons_dir,
    have_sudo,
    install_root_helper,
    job,
    remove_root_helper,
    set_flag,
    set_mac,
    uid_of,
)
from tests.support.sshfleet import TestHost

pytestmark = [
    pytest.mark.ssh,
    pytest.mark.skipif(not CAN_SSH, reason="needs root and openssh-server"),
    pytest.mark.skipif(not have_sudo(), reason="needs Debian's sudo (apt-get install sudo)"),
]

DAEMONS = "~/fake-root/Library/LaunchDaemons"
SECRET = "hf_s3cr3t-token-never-shown"


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


def plist_file(lab: Lab, host: TestHost) -> Path:
    return daemons_dir(host) / f"{label(lab, host)}.plist"


def everything_printed(lab: Lab, site: Path, tmp_path: Path) -> str:
    """All a user can see of a host: plan, drift (JSON and JUnit), status, in text and JSON."""
    junit = tmp_path / "drift.xml"
    texts = []
    for argv in (
        ("plan", str(site)),
        ("plan", str(site), "--json"),
        ("drift", str(site), "--json", "--junit", str(junit)),
        ("status", str(site)),
        ("status", str(site), "--json"),
    ):
        _code, out, err = lab.cli(*argv)
        texts += [out, err]
    texts.append(junit.read_text() if junit.exists() else "")
    return "\n".join(texts)


def wait_for(predicate: Any, seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.3)
    raise AssertionError("timed out")


def test_a_mac_is_seen_as_a_mac(lab: Lab, mac: TestHost, model_source: Path) -> None:
    site = mac_site(lab, mac, model_source)
    _code, out, err = lab.cli("plan", str(site), "--json")
    assert out, err
    [host] = json.loads(out)["hosts"]
    resources = {c["resource"]: c["action"] for c in host["changes"]}
    assert resources["service-definition"] == "create"
    assert "package torch" not in resources  # Linux additions are for Linux hosts only


def test_a_launch_daemon_with_a_secret_converges_drifts_zero_and_never_shows_the_secret(
    lab: Lab, mac: TestHost, model_source: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LAB_HF_TOKEN", SECRET)
    site = mac_site(
        lab,
        mac,
        model_source,
        per_host={
            mac.name: {
                "server": {
                    "port": lab.ports[mac.name],
                    "env": {"HF_TOKEN": {"from_env": "LAB_HF_TOKEN"}},
                }
            }
        },
    )
    code, result = lab.json("apply", site)
    assert code == 0, json.dumps(result[mac.name].get("error"))
    entry = result[mac.name]
    assert {"service-definition", "service"} <= {c["resource"] for c in entry["changes"]}

    # A LaunchDaemon: given to root by the root helper, readable by all, no secret in it.
    path = plist_file(lab, mac)
    info = path.stat()
    assert (info.st_uid, oct(info.st_mode & 0o777)) == (0, "0o644")
    plist = plistlib.loads(path.read_bytes())
    assert plist["Label"] == label(lab, mac)
    assert plist["UserName"] == mac.user  # runs at boot as this user, no login needed
    assert plist["RunAtLoad"] and plist["KeepAlive"] and plist["ProcessType"] == "Interactive"
    assert SECRET not in path.read_text()
    assert set(plist["EnvironmentVariables"]) == {"HOME", "PATH"}
    assert plist["EnvironmentVariables"]["PATH"].startswith("/opt/homebrew/bin:/usr/local/bin:")
    assert all(a.startswith("/") for a in plist["ProgramArguments"][:1])  # launchd expands no ~
    assert job(mac, label(lab, mac))["domain"] == "system"

    # The server runs as the user, with the secret (from the 0600 server.json), as launchd's pid.
    pid = int(str(job(mac, label(lab, mac))["pid"]))
    environ = Path(f"/proc/{pid}/environ").read_bytes()
    assert f"HF_TOKEN={SECRET}".encode() in environ
    assert os.stat(f"/proc/{pid}").st_uid == uid_of(mac)
    assert "mlx-omni-server" in Path(f"/proc/{pid}/cmdline").read_bytes().decode()

    code, drift = lab.drift_json(site)
    assert code == 0, drift
    assert SECRET not in everything_printed(lab, site, tmp_path)
    code, again = lab.json("apply", site)
    assert code == 0 and again[mac.name]["status"] == "ok", again


def test_the_root_helper_missing_stops_the_host_with_the_one_setup_step_that_then_works(
    lab: Lab, mac: TestHost, model_source: Path
) -> None:
    remove_root_helper(mac)
    site = mac_site(lab, mac, model_source)
    _code, out, _err = lab.cli("plan", str(site), "--json")
    [host] = json.loads(out)["hosts"]
    [fail] = [c for c in host["changes"] if c["resource"] == "root-helper"]
    assert fail["action"] == "fail"
    assert "sudo sh" in fail["reason"] and roothelper.INSTALLER_NAME in fail["reason"]

    code, result = lab.json("apply", site)
    assert code == 1
    error = result[mac.name]["error"]
    assert result[mac.name]["failed_step"] == "root-helper"
    assert f"ssh -t {mac.user}@127.0.0.1 sudo sh" in error["message"]
    assert not (mac.home / ".localai" / "generations").exists()  # nothing moved before the step
    installer = mac.home / ".localai" / "libexec" / roothelper.INSTALLER_NAME
    assert roothelper.sudoers_line(mac.user) in installer.read_text()

    # The admin runs what apply left, as root; the sudoers drop-in holds exactly one line.
    install_root_helper(mac, installer)
    sudoers = Path(roothelper.sudoers_path(mac.user)).read_text()
    assert sudoers == roothelper.sudoers_line(mac.user) + "\n"
    code, result = lab.json("apply", site)
    assert code == 0, result
    assert lab.drift_json(site)[0] == 0


def test_without_the_sudoers_line_the_error_names_the_setup_step(
    lab: Lab, mac: TestHost, model_source: Path
) -> None:
    Path(roothelper.sudoers_path(mac.user)).unlink()  # the helper is there, sudo refuses it
    code, result = lab.json("apply", mac_site(lab, mac, model_source))
    assert code == 1
    error = result[mac.name]["error"]
    assert "sudo does not let" in error["message"]
    assert "sudo: a password is required" in error["output_tail"]  # the real sudo's words
    assert roothelper.sudoers_line(mac.user) in error["hint"]
    assert "docs/macos.md" in error["hint"]


def test_the_root_helper_refuses_what_would_make_a_user_root(lab: Lab, mac: TestHost) -> None:
    """The helper is the whole grant: a job without UserName (it would run as root), a key the
    tool never writes, a label not the tool's, or a plist path are refused."""

    def helper(*args: str, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
        command = roothelper.command(*args)
        return subprocess.run(
            ["runuser", "-u", mac.user, "--", "sh", "-c", command],
            input=stdin,
            capture_output=True,
            env={"PATH": "/usr/bin:/bin:/usr/sbin:/sbin"},
        )

    good = {
        "Label": "com.localai-provision.x",
        "ProgramArguments": ["/bin/true"],
        "UserName": mac.user,
    }
    assert (
        helper("install-plist", "com.localai-provision.x", stdin=plistlib.dumps(good)).returncode
        == 0
    )
    assert (daemons_dir(mac) / "com.localai-provision.x.plist").stat().st_uid == 0
    no_user = {k: v for k, v in good.items() if k != "UserName"}
    as_root = {**good, "UserName": "root"}
    extra_key = {**good, "RootDirectory": "/tmp"}
    for plist, why in (
        (no_user, "no UserName"),
        (as_root, "not allowed"),
        (extra_key, "RootDirectory"),
    ):
        refused = helper("install-plist", "com.localai-provision.x", stdin=plistlib.dumps(plist))
        assert refused.returncode == 64 and why.encode() in refused.stderr, refused
    other = {**good, "Label": "com.apple.x"}
    assert helper("install-plist", "com.apple.x", stdin=plistlib.dumps(other)).returncode == 64
    assert helper("bootstrap", "../../etc/x").returncode == 64
    assert helper("wired-limit", "12288; id").returncode == 64
    assert helper("sh").returncode == 64
    # The user's own tools cannot stand in for root's: sudo resets PATH, the helper sets its own.
    assert b"a password is required" in helper_without_rule(mac)


def helper_without_rule(host: TestHost) -> bytes:
    """sudo for anything but the helper asks a password (exactly one command is granted)."""
    done = subprocess.run(
        ["runuser", "-u", host.user, "--", "sudo", "-n", "/bin/cp", "/etc/hosts", "/tmp/x"],
        capture_output=True,
    )
    return done.stderr


def test_a_config_change_restarts_the_job_with_the_same_definition(
    lab: Lab, mac: TestHost, model_source: Path
) -> None:
    site = mac_site(lab, mac, model_source)
    assert lab.cli("apply", str(site), "--quiet")[0] == 0
    before = job(mac, label(lab, mac))["pid"]
    changed = mac_site(
        lab,
        mac,
        model_source,
        per_host={mac.name: {"server": {"port": lab.ports[mac.name], "log_level": "debug"}}},
    )
    code, result = lab.json("apply", changed)
    assert code == 0, result
    actions = {c["resource"]: c["action"] for c in result[mac.name]["changes"]}
    assert actions == {"server-config": "update", "service": "restart"}  # kickstart -k
    assert job(mac, label(lab, mac))["pid"] != before
    assert lab.drift_json(changed)[0] == 0


def test_a_set_whose_server_crashes_is_rolled_back_under_launchd_and_the_job_serves_again(
    lab: Lab, mac: TestHost, model_source: Path
) -> None:
    """Generations under launchd: the job's plist runs PREFIX/current's Python, so the switch
    and the rollback are a link and a kickstart -k, never a new definition."""
    site = mac_site(lab, mac, model_source)
    assert lab.cli("apply", str(site), "--quiet")[0] == 0
    plist = plist_file(lab, mac).read_bytes()
    broken = mac_site(
        lab, mac, model_source, packages={"mlx-omni-server": "0.5.9", "mlx-lm": "0.28.2"}
    )
    code, result = lab.json("apply", broken)
    assert code == 1
    entry = result[mac.name]
    assert entry["status"] == "rolled-back", entry
    wait_for(lambda: job(mac, label(lab, mac)).get("pid"))
    assert plist_file(lab, mac).read_bytes() == plist  # the same definition throughout
    site = mac_site(lab, mac, model_source)  # the set that serves (one site file, rewritten)
    code, status = lab.json("status", site)
    assert (
        status[mac.name]["running"] and status[mac.name]["packages"]["mlx-omni-server"] == "0.5.1"
    )
    code, drift = lab.drift_json(site)
    assert code == 0, drift[mac.name]["differences"]


def test_a_crash_looping_job_is_shown_with_its_exit_code_and_repaired_by_the_next_apply(
    lab: Lab, mac: TestHost, model_source: Path
) -> None:
    failing = mac_site(
        lab,
        mac,
        model_source,
        verify={"timeout_s": 3},
        per_host={
            mac.name: {
                "server": {"port": lab.ports[mac.name], "env": {"STANDIN_FAIL_AT_START": "1"}}
            }
        },
    )
    code, result = lab.json("apply", failing)
    assert code == 1
    assert result[mac.name]["failed_step"] == "verify"
    assert "STANDIN_FAIL_AT_START" in result[mac.name]["error"]["output_tail"]
    wait_for(lambda: job(mac, label(lab, mac)).get("last_exit") == 3)
    code, drift = lab.drift_json(failing)
    assert code == 2
    [service] = [d for d in drift[mac.name]["differences"] if d["resource"] == "service"]
    assert "exited with 3" in service["reason"]

    # Loaded, not running (KeepAlive between tries), and now a changed definition as well:
    # apply must boot it out, wait, and bootstrap through launchd's refusals (5).
    path = plist_file(lab, mac)
    tampered = plistlib.loads(path.read_bytes())
    tampered["ThrottleInterval"] = 11
    path.write_bytes(plistlib.dumps(tampered))
    good = mac_site(lab, mac, model_source)
    _code, out, _err = lab.cli("plan", str(good), "--json")
    [host] = json.loads(out)["hosts"]
    assert {"service-definition", "service"} <= {c["resource"] for c in host["changes"]}
    code, result = lab.json("apply", good)
    assert code == 0, result
    assert job(mac, label(lab, mac))["state"] == "running"
    assert lab.drift_json(good)[0] == 0


def test_a_crash_loop_with_an_unchanged_definition_is_kickstarted(
    lab: Lab, mac: TestHost, model_source: Path
) -> None:
    site = mac_site(lab, mac, model_source)
    assert lab.cli("apply", str(site), "--quiet")[0] == 0
    # The server dies and launchd has not brought it back yet: it waits ThrottleInterval
    # (10 s) after the last start. On a loaded machine that window can close before drift
    # has read the host (launchd restarted the server: drift 0); then kill it again, right
    # after that new start, at most three times.
    for _attempt in range(3):
        wait_for(lambda: job(mac, label(lab, mac))["state"] == "running")
        os.killpg(int(str(job(mac, label(lab, mac))["pid"])), signal.SIGKILL)
        wait_for(lambda: job(mac, label(lab, mac))["state"] != "running")
        code, drift = lab.drift_json(site)
        if code == 2:
            break
    assert code == 2
    assert job(mac, label(lab, mac)).get("last_signal") == 9
    [service] = [d for d in drift[mac.name]["differences"] if d["resource"] == "service"]
    assert "killed by signal 9 (Killed: 9)" in service["reason"]
    code, result = lab.json("apply", site)
    assert code == 0, result
    assert lab.drift_json(site)[0] == 0


def test_a_killed_server_is_restarted_by_launchd_itself(
    lab: Lab, mac: TestHost, model_source: Path
) -> None:
    site = mac_site(lab, mac, model_source)
    assert lab.cli("apply", str(site), "--quiet")[0] == 0
    pid = int(str(job(mac, label(lab, mac))["pid"]))
    os.killpg(pid, signal.SIGKILL)
    # KeepAlive: launchd starts a new process, no sooner than ThrottleInterval (10 s).
    for _ in range(30):
        _, status = lab.json("status", site)
        if status[mac.name]["status"] == "running":
            break
        time.sleep(1)
    assert status[mac.name]["status"] == "running"
    assert status[mac.name]["pid"] != pid


def test_a_launch_agent_needs_the_user_at_the_console(
    lab: Lab, mac: TestHost, model_source: Path
) -> None:
    site = lab.site(
        [mac],
        models=[{"id": "org/tiny-a", "source": str(model_source)}],
        launchd={"domain": "user"},
    )
    # Nobody logged in at the console (a headless mini at the login window): gui/UID is absent.
    code, result = lab.json("apply", site)
    assert code == 1
    assert "logged in at the Mac's console" in result[mac.name]["error"]["message"]
    assert "domain: system" in result[mac.name]["error"]["message"]

    set_mac(mac, console_uid=uid_of(mac))
    code, result = lab.json("apply", site)
    assert code == 0, result
    plist = mac.home / "Library/LaunchAgents" / f"{label(lab, mac)}.plist"
    assert "UserName" not in plistlib.loads(plist.read_bytes())
    assert job(mac, label(lab, mac))["domain"] == f"gui/{uid_of(mac)}"
    code, out, _ = lab.cli("stop", str(site))
    assert code == 0 and "stopped" in out


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
    boot = daemons_dir(mac) / "com.localai-provision.wired-limit.plist"
    assert boot.stat().st_uid == 0
    assert plistlib.loads(boot.read_bytes())["ProgramArguments"] == [
        "/usr/sbin/sysctl",
        "iogpu.wired_limit_mb=12288",
    ]
    assert lab.drift_json(site)[0] == 0
    server_json = json.loads((mac.home / ".localai" / "server.json").read_text())
    assert server_json["wired_limit_mb"] == 12288  # the launcher waits for it at boot

    # A reboot resets the sysctl (the boot daemon would set it again): drift names it alone.
    set_mac(mac, **{"iogpu.wired_limit_mb": 0})
    code, drift = lab.drift_json(site)
    assert code == 2
    assert [d["resource"] for d in drift[mac.name]["differences"]] == ["macos gpu_wired_limit_mb"]
    set_mac(mac, **{"iogpu.wired_limit_mb": 12288})

    # A new limit restarts the server: MLX reads the limit once per process.
    before = job(mac, label(lab, mac))["pid"]
    site = mac_site(lab, mac, model_source, macos={"gpu_wired_limit_mb": 10240})
    code, result = lab.json("apply", site)
    assert code == 0, result
    assert "service" in {c["resource"] for c in result[mac.name]["changes"]}
    assert job(mac, label(lab, mac))["pid"] != before


def test_what_blocks_a_mac_is_a_failure_in_plan_before_anything_moves(
    lab: Lab, mac: TestHost, model_source: Path
) -> None:
    set_mac(mac, ProductVersion="13.6", **{"hw.memsize": 8 * 1024**3})
    set_flag(mac, "no-clt")
    site = mac_site(lab, mac, model_source, macos={"gpu_wired_limit_mb": 12288})
    _code, out, _err = lab.cli("plan", str(site), "--json")
    [host] = json.loads(out)["hosts"]
    fails = {c["resource"]: c["reason"] for c in host["changes"] if c["action"] == "fail"}
    assert "macOS 13.6 is too old" in fails["system macos"]
    assert "xcode-select --install" in fails["system xcode-clt"]
    assert "8192 MB" in fails["macos gpu_wired_limit_mb"]
    code, _result = lab.json("apply", site)
    assert code == 1
    assert not (mac.home / ".localai" / "generations").exists()
