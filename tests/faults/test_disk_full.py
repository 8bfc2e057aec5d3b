"""A disk that fills during a model copy: a 20 MB tmpfs as the host's `hf_home`, a 48 MB
model. The error says so, with the free space; no partial file is left; once the disk is
larger, the next apply converges."""

from __future__ import annotations

import contextlib
import json
import pwd
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import CAN_SSH
from tests.faults.conftest import Faults, converge, models
from tests.support import hostprep
from tests.support.lab import Lab
from tests.support.sshfleet import TestHost

pytestmark = [
    pytest.mark.faults,
    pytest.mark.ssh,
    pytest.mark.skipif(not CAN_SSH, reason="needs root and openssh-server"),
]


@contextlib.contextmanager
def small_disk(host: TestHost, size: str) -> Iterator[Path]:
    _, hf_home = hostprep.host_paths(host)
    hf_home.mkdir(exist_ok=True)
    account = pwd.getpwnam(host.user)
    options = f"size={size},mode=0755,uid={account.pw_uid},gid={account.pw_gid}"
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "localai-fault-disk", str(hf_home)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield hf_home
    finally:
        hostprep.kill_servers(host)
        subprocess.run(["umount", "-l", str(hf_home)], check=False)


def test_a_disk_that_fills_during_a_copy(lab: Lab, big_model: Path, faults: Faults) -> None:
    faults.inject("disk fills during a model copy (20 MB tmpfs as hf_home)")
    host = lab.fleet.hosts[6]
    hostprep.reset_host(host)
    site = lab.site([host], models=models(big_model, "org/big"))
    with small_disk(host, "20m") as hf_home:
        code, result = lab.json("apply", site)
        assert code == 1
        entry = result[host.name]
        assert entry["status"] == "failed", entry
        error = entry["error"]
        assert error["step"] == "models", error
        assert f"disk full on {host.name}" in error["message"], error
        assert "MB free" in error["message"] and "partial file was removed" in error["message"]
        assert "hf_home" in error["hint"]
        blobs = hf_home / "hub" / "models--org--big" / "blobs"
        assert not [p for p in blobs.iterdir() if p.name.endswith(".incomplete")]
        assert json.loads((hf_home / ".." / ".localai" / "server.json").read_text())
        faults.check(host)
        # The disk made larger: the next apply finishes the job.
        subprocess.run(["mount", "-o", "remount,size=200m", str(hf_home)], check=True)
        converge(lab, site)
        faults.check(host, sources={"org/big": big_model}, settled=True)
        assert lab.drift_json(site)[0] == 0
