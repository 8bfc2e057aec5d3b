"""apply's progress: one line per host with its current step, and how a large file's copy
to it goes (bytes, rate, time left) while it arrives."""

from __future__ import annotations

import threading

from localai_provision.cli.render import Output
from localai_provision.transfer_progress import FileProgress

# A model blob is named by its 64-hex digest: this much of it tells files apart on a line.
NAME_CHARS = 12


class Progress:
    """One live line per host with its current step: redrawn in place on a terminal, plain
    `host: step` lines otherwise (CI logs keep every step). File copies show on a terminal
    only: in a log they would be a line every quarter second per host."""

    def __init__(self, io: Output, hosts: list[str], live: bool) -> None:
        self.io = io
        self.hosts = hosts
        self.live = live
        self.state = {h: "waiting" for h in hosts}
        self.lock = threading.Lock()
        self.drawn = False
        self.width = max((len(h) for h in hosts), default=0)

    def __call__(self, host: str, step: str) -> None:
        with self.lock:
            self.state[host] = step
            if not self.live:
                self.io.error(f"{host}: {step}")
                return
            self._draw()

    def transfer(self, event: FileProgress) -> None:
        if not self.live:
            return
        with self.lock:
            self.state[event.host] = transfer_line(event)
            self._draw()

    def _draw(self) -> None:
        if self.drawn:
            self.io.err.write(f"\x1b[{len(self.hosts)}F")
        for name in self.hosts:
            self.io.err.write(f"\x1b[2K{name.ljust(self.width)}  {self.state[name]}\n")
        self.io.err.flush()
        self.drawn = True


def transfer_line(event: FileProgress) -> str:
    """What a host's line says about a copy: from the controller, bytes, share, rate and
    time left; between hosts (counted only at the end), where from, then time and rate."""
    name = event.name[:NAME_CHARS] + ("…" if len(event.name) > NAME_CHARS else "")
    rate = transfer_rate(event)
    if event.finished:
        speed = f", {human_bytes(round(rate))}/s" if rate else ""
        source = f" from {event.source}" if event.source != "controller" else ""
        took = human_duration(event.elapsed_s)
        return f"received {name}{source}: {human_bytes(event.total)} in {took}{speed}"
    if not event.counted:  # told once, at its start: no bytes, no time to show until the end
        return f"receiving {name} from {event.source}: {human_bytes(event.total)}"
    share = 100 * event.done // event.total if event.total else 100
    line = f"sending {name}: {human_bytes(event.done)} / {human_bytes(event.total)} ({share}%)"
    if not rate:
        return line
    left = (event.total - event.done) / rate
    return f"{line}, {human_bytes(round(rate))}/s, {human_duration(left)} left"


def transfer_rate(event: FileProgress) -> float:
    """Bytes/s of this copy so far (resumed bytes were not sent: they do not count); 0 before
    a rate can be told (under a tenth of a second)."""
    if event.elapsed_s < 0.1:
        return 0.0
    return (event.done - event.start) / event.elapsed_s


def human_bytes(n: int) -> str:
    """Decimal units, as disks and links are sold: 999 B, 1.5 kB, 12 MB, 4.0 GB."""
    value = float(n)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 999.5 or unit == "GB":
            if unit == "B":
                return f"{n} B"
            return f"{value:.1f} {unit}" if value < 9.95 else f"{value:.0f} {unit}"
        value /= 1000
    raise AssertionError("unreachable")


def human_duration(seconds: float) -> str:
    """M:SS, or H:MM:SS from an hour on."""
    whole = max(0, round(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"
