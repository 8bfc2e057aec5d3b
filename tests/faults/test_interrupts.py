"""Cut in the middle of a step, over real SSH: the host's sshd session killed, the controller
interrupted (SIGINT, SIGTERM, SIGKILL). The host is left as it was or as wanted, never
half-written, and the next apply finishes the job."""

from __future__ import annotations

import json
import os
import pwd
import signal
from pathlib import Path

import pytest

from tests.conftest import CAN_SSH
from tests.faults.conftest import Faults, converge, copying, models, start_apply, wait_for
from tests.support import hostprep, sshfleet
from tests.support.lab import Lab
from tests.support.sshfleet import TestHost

pytestmark = [
    pytest.mark.faults,
    pytest.mark.ssh,
    pytest.mark.skipif(not CAN_SSH, reason="needs root and openssh-server"),
]


def installing(host: TestHost) -> bool:
    """The installer (pip or uv) runs on the host, installing the server's packages."""
    uid = pwd.getpwnam(host.user).pw_uid
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if os.stat(f"/proc/{pid}").st_uid != uid:
                continue
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"install" in argv and any(b"mlx-omni-server==" in a for a in argv):
            return True
    return False


WAIT_FOR = {"packages": installing, "models": copying}


def site_for(lab: Lab, host: TestHost, big_model: Path) -> Path:
    return lab.site([host], models=models(big_model, "org/big"))


@pytest.mark.parametrize("step", ["packages", "models"])
def test_the_host_sshd_session_killed_mid_step(
    lab: Lab, big_model: Path, faults: Faults, step: str
) -> None:
    faults.inject(f"host's sshd session killed during {step}")
    host = lab.fleet.hosts[4]
    hostprep.reset_host(host)
    site = site_for(lab, host, big_model)
    proc = start_apply(site)
    try:
        wait_for(lambda: WAIT_FOR[step](host), what=f"{step} to start")
        # What a dropped connection is on the host: its sshd session process dies (with
        # every process of the host's user: the remote command too).
        sshfleet._kill_uid_processes([pwd.getpwnam(host.user).pw_uid])
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 1, err
    entry = json.loads(out)["hosts"][0]
    assert entry["status"] in ("unreachable", "failed"), entry
    error = entry["error"]
    assert error["host"] == host.name
    assert error["step"] == step, error["message"]
    assert "connection was lost" in error["message"], error
    if step == "packages":
        assert "install" in error["command"]
    else:  # the upload, or the check of what arrived if the kill came just after it
        assert "sftp put" in error["command"] or " commit " in error["command"], error
    assert error["hint"]
    faults.check(host)
    result = converge(lab, site)
    warnings = result[host.name]["warnings"]  # type: ignore[index]
    assert any("stale lock" in w for w in warnings), warnings
    faults.check(host, sources={"org/big": big_model}, settled=True)


@pytest.mark.parametrize("step", ["packages", "models"])
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL], ids=str)
def test_the_controller_signalled_mid_step(
    lab: Lab, big_model: Path, faults: Faults, signum: signal.Signals, step: str
) -> None:
    faults.inject(f"controller {signum.name} during {step}")
    host = lab.fleet.hosts[5]
    hostprep.reset_host(host)
    site = site_for(lab, host, big_model)
    proc = start_apply(site)
    try:
        wait_for(lambda: WAIT_FOR[step](host), what=f"{step} to start")
        os.kill(proc.pid, signum)
        _out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    expected = {signal.SIGINT: 130, signal.SIGTERM: 143, signal.SIGKILL: -signal.SIGKILL}
    assert proc.returncode == expected[signum], err
    if signum != signal.SIGKILL:
        assert "Traceback" not in err
        assert ("terminated" if signum == signal.SIGTERM else "interrupted") in err
    faults.check(host)
    converge(lab, site)
    faults.check(host, sources={"org/big": big_model}, settled=True)


def switched(host: TestHost, old: str) -> bool:
    """The `current` link names another generation than ``old``: the restart comes next."""
    try:
        return os.readlink(host.home / ".localai" / "current") != old
    except OSError:
        return False


@pytest.mark.parametrize(
    ("step", "sig"),
    [("packages", signal.SIGINT), ("switch", signal.SIGINT), ("switch", signal.SIGKILL)],
)
def test_an_upgrade_cut_at_any_step_leaves_the_host_serving_the_old_or_the_new_generation(
    lab: Lab, faults: Faults, step: str, sig: signal.Signals
) -> None:
    faults.inject(f"package upgrade cut by {sig.name} during {step}")
    host = lab.fleet.hosts[5]
    hostprep.reset_host(host)
    converge(lab, lab.site([host], models=[]))
    old = os.readlink(host.home / ".localai" / "current")
    site = lab.site([host], models=[], packages={"mlx-omni-server": "0.5.2", "mlx-lm": "0.28.2"})
    proc = start_apply(site)
    try:
        condition = (
            (lambda: installing(host)) if step == "packages" else lambda: switched(host, old)
        )
        wait_for(condition, what=f"{step} to start")
        proc.send_signal(sig)
        proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    # Whatever the host was doing when the controller went, it ends up serving: the old
    # generation (cut before the switch) or the new one (the restart is one host command
    # that outlives the connection).
    wait_for(lambda: lab.serves(host, timeout=2), timeout=30, what="the host to serve again")
    target = os.readlink(host.home / ".localai" / "current")
    assert target == old or target.startswith("generations/"), target
    result = converge(lab, site)
    assert result[host.name]["status"] in ("ok", "changed")  # type: ignore[index]
    assert lab.serves(host, timeout=2)
    faults.check(host, settled=True)
