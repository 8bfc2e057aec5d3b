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
