"""Slow links on this machine: each bench host in its own network namespace behind a
rate-limited link, all on one bridge with the controller (this machine's own namespace).

    controller (root namespace, BRIDGE_ADDR) --[tbf on the bridge: its upload]--+
    host i (namespace NS_i, 10.X.Y.(10+i)) --[tbf on its end of the veth: its upload]--+ bridge
    bridge --[tbf on the bridge's end of host i's veth: host i's download]--> host i

So every sender, the controller included, has one link of N Mbit/s up and one down, as a
Mac on a switch port would; host-to-host traffic crosses the bridge without touching the
controller's link. `tc ... tbf` shapes (this kernel has no netem). Nothing leaves the
machine: the subnet is a private /24 that only the bridge routes, chosen free at start.
Names carry this process's id, so a run that died is cleaned up by the next one.
"""

from __future__ import annotations

import os
import random
import re
import subprocess
from dataclasses import dataclass, field

PREFIX = "bfl"  # bench fan-out link
FIRST_HOST = 10  # host i gets .FIRST_HOST+i


def _ip(*argv: str) -> str:
    result = subprocess.run(["ip", *argv], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"ip {' '.join(argv)}: {result.stderr.strip()}")
    return result.stdout


def _tbf(device: str, mbit: int, netns: str | None = None) -> None:
    # burst: at least one rate/HZ worth (HZ may be 100) and a few full-size packets; the
    # queue holds 50 ms at most, as a switch port's buffer would.
    burst = max(32 << 10, mbit * 1_000_000 // 8 // 100)
    inside = ["ip", "netns", "exec", netns] if netns else []
    argv = [*inside, "tc", "qdisc", "replace", "dev", device, "root", "tbf",
            "rate", f"{mbit}mbit", "burst", str(burst), "latency", "50ms"]  # fmt: skip
    result = subprocess.run(argv, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: {result.stderr.strip()}")


def cleanup_stale() -> list[str]:
    """Delete namespaces and bridges a dead bench process left."""
    gone = []
    names = re.findall(rf"^({PREFIX}(\d+)\S*)", _ip("netns", "list"), re.M)
    links = re.findall(rf"^\d+: ({PREFIX}(\d+)br)[:@]", _ip("-o", "link", "show"), re.M)
    for name, pid in [*names, *links]:
        if os.path.exists(f"/proc/{pid}"):
            continue
        kind = ("netns", "del", name) if not name.endswith("br") else ("link", "del", name)
        try:
            _ip(*kind)
            gone.append(name)
        except RuntimeError:
            pass
    return gone


@dataclass
class Links:
    """``count`` namespaces behind ``mbit`` Mbit/s links; ``places`` is what SSHFleet takes."""

    count: int
    mbit: int
    tag: str = field(default_factory=lambda: f"{PREFIX}{os.getpid()}")
    subnet: str = ""
    places: list[tuple[str, str]] = field(default_factory=list)

    @property
    def bridge(self) -> str:
        return f"{self.tag}br"

    @property
    def controller_address(self) -> str:
        return f"{self.subnet}.1"

    def __enter__(self) -> Links:
        try:
            self._make()
        except BaseException:
            self.remove()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()

    def _make(self) -> None:
        used = _ip("-4", "-o", "addr", "show") + _ip("-4", "route", "show")
        while True:
            self.subnet = f"10.{random.randint(200, 250)}.{random.randint(0, 255)}"
            if f" {self.subnet}." not in used:
                break
        _ip("link", "add", self.bridge, "type", "bridge")
        _ip("addr", "add", f"{self.controller_address}/24", "dev", self.bridge)
        _ip("link", "set", self.bridge, "up")
        _tbf(self.bridge, self.mbit)  # what the controller sends into the bridge
        for i in range(self.count):
            ns, outer, inner = f"{self.tag}n{i}", f"{self.tag}v{i}", f"{self.tag}p{i}"
            address = f"{self.subnet}.{FIRST_HOST + i}"
            _ip("netns", "add", ns)
            self.places.append((ns, address))
            _ip("link", "add", outer, "type", "veth", "peer", "name", inner)
            _ip("link", "set", inner, "netns", ns)
            _ip("link", "set", outer, "master", self.bridge)
            _ip("link", "set", outer, "up")
            _ip("-n", ns, "addr", "add", f"{address}/24", "dev", inner)
            _ip("-n", ns, "link", "set", inner, "up")
            _ip("-n", ns, "link", "set", "lo", "up")
            _tbf(outer, self.mbit)  # the host's download
            _tbf(inner, self.mbit, ns)  # the host's upload

    def controller_bytes_sent(self) -> int:
        """Bytes the controller put on its link (headers and SSH included), from the
        bridge's qdisc counter."""
        out = subprocess.run(
            ["tc", "-s", "qdisc", "show", "dev", self.bridge],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        found = re.search(r"Sent (\d+) bytes", out)
        return int(found.group(1)) if found else 0

    def remove(self) -> None:
        for ns, _ in self.places:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False)
        subprocess.run(["ip", "link", "del", self.bridge], capture_output=True, check=False)
        self.places = []
