"""How the copy of a large file to one host is going: what transfer.py tells a display.

The library only reports (typed events, from the host threads); the CLI draws them
(cli/progress.py), on a terminal only.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

# At most this often per copy: a redraw of 30 host lines costs a few kB of terminal output.
EVERY_S = 0.25


@dataclass(frozen=True)
class FileProgress:
    """One copy of one file to one host, as far as the controller knows."""

    host: str
    name: str  # the file's name on the host (its digest, for a model blob)
    source: str  # "controller", or the host passing it on
    total: int  # the file's size
    start: int  # bytes the host had before this copy (resumed), counted in ``done``
    done: int  # bytes on the host now; a copy between hosts is known only when it ends
    elapsed_s: float  # since this copy started
    finished: bool = False

    @property
    def counted(self) -> bool:
        """Are ``done`` bytes known while it runs (a copy from the controller), or only
        at the end (one host to another, over the hosts' own link)?"""
        return self.source == "controller" or self.finished


TransferProgress = Callable[[FileProgress], None]


class Reporter:
    """Counts one copy's bytes and tells ``report`` at most every EVERY_S, and at the end."""

    def __init__(
        self,
        report: TransferProgress,
        host: str,
        name: str,
        source: str,
        total: int,
        start: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._report = report
        self._clock = clock
        self._lock = threading.Lock()
        self._began = clock()
        self._last = float("-inf")
        self._event = FileProgress(host, name, source, total, start, start, 0.0)
        self._emit(force=True)

    def sent(self, n: int) -> None:
        with self._lock:
            elapsed = self._clock() - self._began
            self._event = replace(self._event, done=self._event.done + n, elapsed_s=elapsed)
        self._emit()

    def finish(self, elapsed_s: float | None = None) -> None:
        """The whole file is on the host; ``elapsed_s`` as the receiver measured it."""
        with self._lock:
            seconds = self._clock() - self._began if elapsed_s is None else elapsed_s
            self._event = replace(
                self._event, done=self._event.total, elapsed_s=seconds, finished=True
            )
        self._emit(force=True)

    def _emit(self, force: bool = False) -> None:
        now = self._clock()
        with self._lock:
            if not force and now - self._last < EVERY_S:
                return
            self._last = now
            event = self._event
        self._report(event)
