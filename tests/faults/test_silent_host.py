"""A host that stops answering mid-run: its sshd runs in a network namespace reached over a
veth pair, and the namespace's end of the link is taken down while apply waits on the host.
The run reports that host unreachable within a few connect timeouts (not after TCP's 15
minutes or the step's own timeout), and the other host converges.

`tc qdisc ... netem` is not used: this machine's kernel (a Firecracker VM, 6.18) has no
sch_netem and no modules to load ("Specified qdisc kind is unknown"); taking the link down
drops every packet just the same.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.conftest import CAN_SSH
from tests.faults.conftest import Faults, converge, models, start_apply, wait_for
from tests.support import hostprep
from tests.support.lab import Lab
from tests.support.sshfleet import SSHD, TestHost

pytestmark = [
    pytest.mark.faults,
    pytest.mark.ssh,
    pytest.mark.skipif(not CAN_SSH, reason="needs root and openssh-server"),
]


def _ip(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=False)


class Namespace:
    def __init__(self, name: str, inside: str, subnet: int) -> None:
        self.name = name
        self.inside = inside  # the veth end in the namespace
        self.address = f"10.231.{subnet}.2"

    def link(self, state: str, port: int | None = None) -> None:
        result = _ip("netns", "exec", self.name, "ip", "link", "set", self.inside, state)
        assert result.returncode == 0, result.stderr
        if state == "up" and port is not None:
            # The link's routes come back a moment after it does (longer on a busy machine):
            # wait until the sshd inside answers again.
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                with contextlib.suppress(OSError):
                    socket.create_connection((self.address, port), timeout=1).close()
                    return
                time.sleep(0.1)


@contextlib.contextmanager
def namespaced_sshd(host: TestHost, workdir: Path) -> Iterator[Namespace]:
    """The host's sshd (same user, key and port) started again inside a new namespace."""
    tag = secrets.token_hex(3)
    subnet = int(tag[:2], 16)
    ns = Namespace(f"lf{tag}", f"lfb{tag}", subnet)
    outside = f"lfa{tag}"
    if shutil.which("ip") is None:
        pytest.skip("needs iproute2 (`ip`)")
    made = _ip("netns", "add", ns.name)
    if made.returncode != 0:
        pytest.skip(f"cannot create a network namespace here: {made.stderr.strip()}")
    sshd = None
    try:
        for args in (
            ("link", "add", outside, "type", "veth", "peer", "name", ns.inside),
            ("link", "set", ns.inside, "netns", ns.name),
            ("addr", "add", f"10.231.{subnet}.1/30", "dev", outside),
            ("link", "set", outside, "up"),
            ("netns", "exec", ns.name, "ip", "addr", "add", f"{ns.address}/30", "dev", ns.inside),
            ("netns", "exec", ns.name, "ip", "link", "set", ns.inside, "up"),
            ("netns", "exec", ns.name, "ip", "link", "set", "lo", "up"),
        ):
            result = _ip(*args)
            assert result.returncode == 0, (args, result.stderr)
        config = workdir / "sshd_config.netns"
        text = host.config_path.read_text()
        text = text.replace(f"ListenAddress {host.address}", f"ListenAddress {ns.address}")
        text = "\n".join(
            line if not line.startswith("PidFile") else "PidFile none" for line in text.splitlines()
        )
        config.write_text(text + "\n")
        sshd = subprocess.Popen(
            ["ip", "netns", "exec", ns.name, SSHD, "-D", "-f", str(config), "-E", "/dev/null"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            probe = _ip("netns", "exec", ns.name, "ss", "-ltn", f"sport = :{host.port}")
            if ns.address in probe.stdout:
                break
            time.sleep(0.05)
        yield ns
    finally:
        if sshd is not None:
            sshd.kill()
            sshd.wait()
        _ip("link", "del", outside)
        _ip("netns", "del", ns.name)


def verifying(host: TestHost) -> bool:
    """apply's verify script runs on the host (it waits for the slow server)."""
    uid = pwd.getpwnam(host.user).pw_uid
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if os.stat(f"/proc/{pid}").st_uid != uid:
                continue
            if b"prewarm_timeout_s" in Path(f"/proc/{pid}/cmdline").read_bytes():
                return True
        except OSError:
            continue
    return False


def test_a_host_that_stops_answering(
    lab: Lab, small_model: Path, faults: Faults, tmp_path: Path
) -> None:
    faults.inject("host stops answering mid-run (network namespace link down)")
    silent, other = lab.fleet.hosts[6], lab.fleet.hosts[7]
    for host in (silent, other):
        hostprep.reset_host(host)
    with namespaced_sshd(silent, tmp_path) as ns:
        site = lab.site(
            [silent, other],
            models=models(small_model),
            connect_timeout_s=2,
            verify={"timeout_s": 120},
            per_host={
                # Its server takes a minute to answer: apply sits in verify, on the host.
                silent.name: {
                    "server": {
                        "port": lab.ports[silent.name],
                        "env": {"STANDIN_START_DELAY_S": "60"},
                    }
                }
            },
        )
        data = yaml.safe_load(site.read_text())
        data["hosts"][silent.name]["address"] = ns.address
        site.write_text(yaml.safe_dump(data, sort_keys=False))
        proc = start_apply(site)
        try:
            wait_for(lambda: verifying(silent), timeout=90, what="verify on the silent host")
            ns.link("down")
            cut = time.monotonic()
            out, err = proc.communicate(timeout=90)
            noticed_s = time.monotonic() - cut
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        assert proc.returncode == 1, err
        hosts = {h["name"]: h for h in json.loads(out)["hosts"]}
        entry = hosts[silent.name]
        assert entry["status"] == "unreachable", entry
        error = entry["error"]
        assert error["step"] == "verify", error
        assert "connection was lost" in error["message"], error
        assert "stopped answering" in error["message"] or "timed out" in error["message"]
        # connect_timeout_s is 2: a keepalive every 2 s, given up after 4 s without an
        # answer. The verify step's own timeout is minutes.
        assert noticed_s < 20, noticed_s
        assert hosts[other.name]["status"] == "changed", hosts[other.name]
        faults.check(silent)
        faults.check(other, sources={"org/fault-a": small_model}, settled=True)
        # The link back up and the server's delay gone: the next apply converges.
        hostprep.kill_servers(silent)
        ns.link("up", port=silent.port)
        data["hosts"][silent.name]["server"]["env"] = {}
        site.write_text(yaml.safe_dump(data, sort_keys=False))
        converge(lab, site)
        faults.check(silent, sources={"org/fault-a": small_model}, settled=True)
