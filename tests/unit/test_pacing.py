"""The token bucket that paces uploads and peer copies (scripts/pacing.py), on a made-up
clock, and `transfer.max_rate` as the site file gives it. The rate over real sshd is measured
in tests/ssh/test_transfer_rate.py."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from localai_provision.connectors.base import metered, upload_timeout
from localai_provision.scripts.pacing import BURST_S, MIN_RATE, Pace
from localai_provision.site.resolve import parse_rate

REPO = Path(__file__).resolve().parents[2]


class Clock:
    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_bytes_go_no_faster_than_the_rate_counted_from_the_first() -> None:
    clock = Clock()
    pace = Pace(1000.0, clock, clock.sleep)
    for _ in range(10):
        pace.take(100)
    assert clock.now - 100.0 == pytest.approx(1.0)
    assert max(clock.slept) == pytest.approx(0.1)  # each wait is one piece's worth: bounded


def test_without_a_rate_nothing_waits() -> None:
    clock = Clock()
    pace = Pace(None, clock, clock.sleep)
    assert pace.take(10**9) == 0.0
    assert clock.slept == []


def test_an_idle_sender_catches_up_a_short_burst_only() -> None:
    clock = Clock()
    pace = Pace(1000.0, clock, clock.sleep)
    pace.take(100)
    clock.now += 60.0  # a minute without sending (the file was still arriving)
    start = clock.now
    pace.take(1000)
    assert clock.now - start == pytest.approx(1.0 - BURST_S)


def test_the_controller_pays_each_piece_at_the_rate_of_the_host_it_goes_to() -> None:
    clock = Clock()
    pace = Pace(None, clock, clock.sleep)
    pace.take(1000, 1000.0)  # one second at 1000 B/s
    pace.take(1000, 500.0)  # two at 500 B/s
    pace.take(10**6, None)  # a host without a cap: not paced, costs no time
    assert clock.now - 100.0 == pytest.approx(3.0)


def test_a_time_that_went_past_while_sleeping_is_not_counted_twice() -> None:
    clock = Clock()

    def oversleep(seconds: float) -> None:  # a loaded machine wakes late
        clock.now += seconds + 0.01

    pace = Pace(1000.0, clock, oversleep)
    for _ in range(100):
        pace.take(10)
    # 100 late wake-ups of 10 ms, yet the rate stays within the burst of the cap.
    assert clock.now - 100.0 == pytest.approx(1.0, abs=BURST_S + 0.011)


def test_a_metered_file_is_read_in_pieces_each_told_first(tmp_path: object) -> None:
    import io

    told: list[int] = []
    reader = metered(io.BytesIO(b"x" * 250), told.append, piece=100)
    assert b"".join(iter(lambda: reader.read(1 << 20), b"")) == b"x" * 250
    assert told == [100, 100, 50]


@pytest.mark.parametrize(
    ("given", "bytes_per_s"),
    [
        (2_000_000, 2_000_000),
        ("50MB", 50_000_000),
        ("400Mbit", 50_000_000),
        ("1.5GiB/s", 1_610_612_736),
        ("8 MiB", 8 << 20),
        ("1Gbit", 125_000_000),
    ],
)
def test_a_rate_is_bytes_per_second_or_a_number_with_a_unit(
    given: int | str, bytes_per_s: int
) -> None:
    assert parse_rate(given) == bytes_per_s


def test_a_paced_upload_may_take_as_long_as_the_lowest_rate_a_site_may_set() -> None:
    assert upload_timeout(8 << 20, paced=False) == 60.0  # 1 MB/s, at least a minute
    assert upload_timeout(8 << 20, paced=True) == 128.0  # 8 MiB at 64 KiB/s
    schema = json.loads((REPO / "schemas" / "site.schema.json").read_text())
    rate = schema["$defs"]["transfer"]["properties"]["max_rate"]["oneOf"][0]
    assert rate["minimum"] == MIN_RATE
