# Pacing a sender to `transfer.max_rate` bytes per second: a token bucket kept as a virtual
# clock. Written once, used twice: the controller imports it (transfer.py paces its uploads)
# and its text goes to hosts ahead of blobs.py, whose `serve` paces what a host passes on.
# Stdlib only, Python 3.8+ (it runs on the hosts' Python).
from __future__ import annotations

import threading
import time
from collections.abc import Callable

# A sender that was idle may catch up at most this much (a burst of rate x 50 ms), so a
# measured rate stays within a few percent of the cap even over a transfer of a second.
BURST_S = 0.05
# The lowest rate a site may set (schemas/site.schema.json, transfer.max_rate's minimum).
MIN_RATE = 65536
# The most a paced sender hands over at once: at 64 KiB/s (the lowest rate a site may set)
# one piece waits one second, at 100 MB/s it costs 1500 waits a second, each one lock.
PIECE = 64 << 10


class Pace:
    """Paces one sending host: ``take(n)`` before sending n bytes sleeps until they fit the
    rate. Threads sending from the same host share one Pace, so together they keep to it.
    ``rate`` None (or 0) sends at once. ``take(n, rate)`` paces n bytes at another rate: the
    controller sends to hosts with different caps, each byte costing 1/rate of its time."""

    def __init__(
        self,
        rate: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.rate = rate
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._free_at: float | None = None  # when the bytes taken so far have all gone

    def take(self, n: int, rate: float | None = None) -> float:
        """Wait until n more bytes fit the rate; returns the seconds slept."""
        rate = rate if rate is not None else self.rate
        if not rate or n <= 0:
            return 0.0
        with self._lock:
            now = self._clock()
            start = now if self._free_at is None else max(self._free_at, now - BURST_S)
            self._free_at = start + n / rate
            wait = self._free_at - now
        if wait > 0:
            self._sleep(wait)
            return wait
        return 0.0
