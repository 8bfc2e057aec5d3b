"""Progress of large files per host: the lines drawn (pure functions), how often a copy
reports, and that nothing of it is printed when stderr is not a terminal (or with --json,
where apply passes no live progress at all)."""

from __future__ import annotations

import io
import itertools

import pytest

from localai_provision.cli.progress import (
    Progress,
    human_bytes,
    human_duration,
    transfer_line,
    transfer_rate,
)
from localai_provision.cli.render import Output
from localai_provision.transfer_progress import EVERY_S, FileProgress, Reporter

DIGEST = "3f2a9c81d0e4b7a65c1d2e3f4a5b6c7d8e9f0a1b2c3d4e5f6a7b8c9d0e1f2a3b"


def event(**changes: object) -> FileProgress:
    base: dict[str, object] = {
        "host": "mini-01",
        "name": DIGEST,
        "source": "controller",
        "total": 4_000_000_000,
        "start": 0,
        "done": 1_200_000_000,
        "elapsed_s": 25.0,
    }
    base.update(changes)
    return FileProgress(**base)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("given", "line"),
    [
        (
            event(),
            "sending 3f2a9c81d0e4…: 1.2 GB / 4.0 GB (30%), 48 MB/s, 0:58 left",
        ),
        # Resumed bytes were not sent now: the rate counts only this copy's.
        (
            event(start=1_000_000_000, done=1_200_000_000, elapsed_s=4.0),
            "sending 3f2a9c81d0e4…: 1.2 GB / 4.0 GB (30%), 50 MB/s, 0:56 left",
        ),
        # Too early for a rate: bytes only.
        (event(done=0, elapsed_s=0.0), "sending 3f2a9c81d0e4…: 0 B / 4.0 GB (0%)"),
        (
            event(source="mini-02", done=0, elapsed_s=12.4),
            "receiving 3f2a9c81d0e4… from mini-02: 4.0 GB",
        ),
        (
            event(source="mini-02", done=4_000_000_000, elapsed_s=80.0, finished=True),
            "received 3f2a9c81d0e4… from mini-02: 4.0 GB in 1:20, 50 MB/s",
        ),
        (
            event(
                name="mlx-0.29.3.whl",
                total=30_000_000,
                done=30_000_000,
                elapsed_s=2.0,
                finished=True,
            ),
            "received mlx-0.29.3.w…: 30 MB in 0:02, 15 MB/s",
        ),
        (
            event(done=1_000_000, elapsed_s=0.5, total=40_000_000_000),
            "sending 3f2a9c81d0e4…: 1.0 MB / 40 GB (0%), 2.0 MB/s, 5:33:20 left",
        ),
    ],
)
def test_a_copy_is_one_line_with_bytes_rate_and_time_left(given: FileProgress, line: str) -> None:
    assert transfer_line(given) == line


@pytest.mark.parametrize(
    ("n", "text"),
    [(0, "0 B"), (999, "999 B"), (1_000, "1.0 kB"), (1_500_000, "1.5 MB"),
     (12_345_678, "12 MB"), (999_600_000, "1.0 GB"), (4_000_000_000_000, "4000 GB")],
)  # fmt: skip
def test_sizes_are_in_decimal_units_as_links_and_disks_are_sold(n: int, text: str) -> None:
    assert human_bytes(n) == text


@pytest.mark.parametrize(
    ("seconds", "text"), [(0, "0:00"), (59.6, "1:00"), (754, "12:34"), (3723, "1:02:03")]
)
def test_durations_are_minutes_and_seconds_then_hours(seconds: float, text: str) -> None:
    assert human_duration(seconds) == text


def test_a_copy_between_hosts_has_no_rate_until_it_ends() -> None:
    assert not event(source="mini-02").counted
    assert event(source="mini-02", finished=True).counted
    assert transfer_rate(event(elapsed_s=0.05)) == 0.0


def test_a_copy_reports_at_its_start_every_quarter_second_and_at_its_end() -> None:
    now = [0.0]
    seen: list[FileProgress] = []
    reporter = Reporter(seen.append, "mini-01", "blob", "controller", 1000, 100, lambda: now[0])
    for _ in range(9):  # 9 pieces of 100 bytes, 0.1 s apart
        now[0] += 0.1
        reporter.sent(100)
    reporter.finish()
    assert [e.done for e in seen] == [100, 400, 700, 1000, 1000]
    gaps = [b.elapsed_s - a.elapsed_s for a, b in itertools.pairwise(seen[:-1])]
    assert all(gap >= EVERY_S - 1e-9 for gap in gaps)
    assert seen[-1].finished and seen[-1].elapsed_s == pytest.approx(0.9)
    assert seen[0].start == 100  # what the host had already counts as done, not as sent


def test_the_receiver_s_own_duration_is_the_one_reported_at_the_end() -> None:
    seen: list[FileProgress] = []
    reporter = Reporter(seen.append, "mini-01", "blob", "mini-02", 1000, 0, lambda: 5.0)
    reporter.finish(2.5)
    assert seen[-1].elapsed_s == 2.5 and seen[-1].done == 1000


def test_on_a_terminal_each_host_line_shows_its_copy() -> None:
    err = io.StringIO()
    progress = Progress(Output(io.StringIO(), err), ["mini-01", "mini-02"], live=True)
    progress("mini-02", "models")
    progress.transfer(event())
    screen = err.getvalue()
    assert "mini-01  sending 3f2a9c81d0e4…: 1.2 GB / 4.0 GB (30%)" in screen
    assert "mini-02  models" in screen
    assert "\x1b[2F" in screen  # the second draw went back up over the two lines


def test_in_a_log_a_copy_prints_nothing_only_the_steps_do() -> None:
    err = io.StringIO()
    progress = Progress(Output(io.StringIO(), err), ["mini-01"], live=False)
    progress("mini-01", "models")
    for _ in range(5):
        progress.transfer(event())
    assert err.getvalue() == "mini-01: models\n"
