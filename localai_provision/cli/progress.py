"""apply's progress: one line per host with its current step."""

from __future__ import annotations

import threading

from localai_provision.cli.render import Output


class Progress:
    """One live line per host with its current step: redrawn in place on a terminal, plain
    `host: step` lines otherwise (CI logs keep every step)."""

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
            if self.drawn:
                self.io.err.write(f"\x1b[{len(self.hosts)}F")
            for name in self.hosts:
                self.io.err.write(f"\x1b[2K{name.ljust(self.width)}  {self.state[name]}\n")
            self.io.err.flush()
            self.drawn = True
