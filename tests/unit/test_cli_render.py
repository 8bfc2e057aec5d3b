"""The CLI's one host-to-JSON function and its renderers, as tables: a result in, the exact
object or line out. No host is reached; the results are built by hand."""

from __future__ import annotations

import io
from types import SimpleNamespace
from typing import Any

import pytest

from localai_provision.cli.apply import apply_row
from localai_provision.cli.hostjson import VIEWS, host_json
from localai_provision.cli.plan import change_table, drift_line
from localai_provision.cli.render import Output, clean, duration, table_lines, warning_lines
from localai_provision.cli.status import doctor_lines, print_crash_tails, status_row, stop_line
from localai_provision.errors import ConnectError, HostError
from localai_provision.facts.model import PullReport
from localai_provision.fleet import HostResult
from localai_provision.plan import Action, Change, Kind
from localai_provision.results import (
    ApplyReport,
    Check,
    DoctorReport,
    HostStatus,
    PullTimer,
    ServerLog,
    ServerStatus,
    StopReport,
)

S = HostStatus
VENV = Change("m1", Kind.VENV, "", Action.CREATE, None, "/p/venv", "there is no venv yet")
PKG = Change("m1", Kind.PACKAGE, "mlx-lm", Action.UPDATE, "0.1", "0.2", "0.2 wanted")
UNREACHABLE = ConnectError(host="m1", step="connect", message="refused")
PULL = PullReport(finished_at="2026-12-01T20:00:00Z", finished_epoch=0.0, result="failed")
COST = {"connections": 1, "commands": 2, "bytes_sent": 3}
ERROR_JSON = UNREACHABLE.as_dict()

SERVER = ServerStatus(
    running=True,
    pid=4242,
    uptime_s=3725.0,
    port=10240,
    port_open=True,
    packages={"mlx-omni-server": "0.5.1", "mlx-lm": None},
    models_listed=("org/a", "org/b"),
    models_loaded=None,
    latency_ms={"/v1/models": 12.34},
    os="macos 15.5",
    last_apply="2026-12-01T19:00:00Z",
    last_pull=PULL,
    pull_timer=PullTimer("cron", None, "*/15 * * * * localai"),
    warnings=("stale pull",),
    generation="4ba1fd2a4828",
    memory_total_bytes=16 * 1024**3,
    memory_available_bytes=7 * 1024**3,
)
SERVER_JSON = {
    "running": True,
    "pid": 4242,
    "uptime_s": 3725.0,
    "port": 10240,
    "port_open": True,
    "packages": {"mlx-omni-server": "0.5.1", "mlx-lm": None},
    "models_listed": ["org/a", "org/b"],
    "models_loaded": None,
    "latency_ms": {"/v1/models": 12.34},
    "os": "macos 15.5",
    "last_apply": "2026-12-01T19:00:00Z",
    "last_pull": PULL.as_dict(),
    "pull_timer": {"kind": "cron", "path": None, "definition": "*/15 * * * * localai"},
    "warnings": ["stale pull"],
    "generation": "4ba1fd2a4828",
    "memory": {"total_bytes": 16 * 1024**3, "available_bytes": 7 * 1024**3},
    "bench": None,
    "bench_previous": None,
    "models_loading": [],
    "log": None,
}
APPLIED = ApplyReport.from_log(
    {"/v1/models": 8.5, "ready_after_s": 1.25},
    [{"model": "org/tiny", "ms": 950.0}],
    [{"step": "venv", "path": "/p/venv"}, {"step": "shim"}],
)
CHECKS = DoctorReport(
    (
        Check("python", False, True, "python3 is 3.9", "install 3.11"),
        Check("clock", False, False, "+90 s from this machine", "turn on automatic time"),
        Check("os", True, False, "macos 15.5 (arm64)"),
    )
)


def result(status: HostStatus, **kw: Any) -> HostResult:
    r = HostResult(name="m1", status=status, elapsed_ms=1234.56, **kw)
    r.connections, r.commands, r.bytes_sent = 1, 2, 3
    return r


# --- host_json -------------------------------------------------------------------------------

HOST_JSON_CASES = [
    (
        "plan, changes",
        result(S.DRIFT, changes=[VENV], warnings=["w"]),
        "plan",
        {
            "name": "m1",
            "status": "drift",
            "changes": [VENV.as_dict()],
            "warnings": ["w"],
            "error": None,
            "elapsed_ms": 1234.6,
            "cost": COST,
        },
    ),
    (
        "plan, unreachable",
        result(S.UNREACHABLE, error=UNREACHABLE),
        "plan",
        {
            "name": "m1",
            "status": "unreachable",
            "changes": [],
            "warnings": [],
            "error": ERROR_JSON,
            "elapsed_ms": 1234.6,
            "cost": COST,
        },
    ),
    (
        "drift, with a pull report",
        result(S.DRIFT, changes=[PKG], facts=SimpleNamespace(pull_report=PULL)),
        "drift",
        {
            "name": "m1",
            "status": "drift",
            "differences": [
                {
                    "resource": "package mlx-lm",
                    "expected": "0.2",
                    "actual": "0.1",
                    "reason": "0.2 wanted",
                }
            ],
            "warnings": [],
            "last_pull": PULL.as_dict(),
            "error": None,
            "elapsed_ms": 1234.6,
            "cost": COST,
        },
    ),
    (
        "apply, changed",
        result(S.CHANGED, changes=[VENV], details=APPLIED),
        "apply",
        {
            "name": "m1",
            "status": "changed",
            "changes": [VENV.as_dict()],
            "failed_step": None,
            "error": None,
            "elapsed_ms": 1234.6,
            "cost": COST,
            "verify": {"/v1/models": 8.5, "ready_after_s": 1.25},
            "prewarm": [{"model": "org/tiny", "ms": 950.0}],
            "steps": [{"step": "venv", "path": "/p/venv"}, {"step": "shim"}],
            "warnings": [],
        },
    ),
    (
        "apply, skipped: no report",
        result(S.SKIPPED, error=HostError(host="m1", message="not started")),
        "apply",
        {
            "name": "m1",
            "status": "skipped",
            "changes": [],
            "failed_step": "",
            "error": HostError(host="m1", message="not started").as_dict(),
            "elapsed_ms": 1234.6,
            "cost": COST,
            "verify": {},
            "prewarm": [],
            "steps": [],
            "warnings": [],
        },
    ),
    (
        "status, running",
        result(S.RUNNING, details=SERVER),
        "details",
        {"name": "m1", "status": "running", **SERVER_JSON, "error": None},
    ),
    (
        "status, unreachable: no details",
        result(S.UNREACHABLE, error=UNREACHABLE),
        "details",
        {"name": "m1", "status": "unreachable", "error": ERROR_JSON},
    ),
    (
        "stop, was running",
        result(S.STOPPED, details=StopReport(True, True, {"stopped": True})),
        "details",
        {"name": "m1", "status": "stopped", "was_running": True, "stopped": True, "error": None},
    ),
    (
        "stop, not installed",
        result(S.STOPPED, details=StopReport(installed=False)),
        "details",
        {"name": "m1", "status": "stopped", "note": "not installed", "error": None},
    ),
    (
        "doctor",
        result(S.BLOCKED, details=CHECKS),
        "details",
        {
            "name": "m1",
            "status": "blocked",
            "checks": [
                {
                    "name": "python",
                    "ok": False,
                    "blocking": True,
                    "detail": "python3 is 3.9",
                    "fix": "install 3.11",
                },
                {
                    "name": "clock",
                    "ok": False,
                    "blocking": False,
                    "detail": "+90 s from this machine",
                    "fix": "turn on automatic time",
                },
                {
                    "name": "os",
                    "ok": True,
                    "blocking": False,
                    "detail": "macos 15.5 (arm64)",
                    "fix": "",
                },
            ],
            "error": None,
        },
    ),
]


@pytest.mark.parametrize(
    ("r", "view", "expected"), [c[1:] for c in HOST_JSON_CASES], ids=[c[0] for c in HOST_JSON_CASES]
)
def test_host_json(r: HostResult, view: Any, expected: dict[str, object]) -> None:
    got = host_json(r, view)
    assert got == expected
    assert list(got) == list(expected)  # the order of the keys is part of the output


def test_every_view_lists_name_and_status_first() -> None:
    assert all(fields[:2] == ("name", "status") for fields in VIEWS.values())


# --- renderers -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "one_line", "expected"),
    [
        ("plain", False, "plain"),
        ("a\tb\nc", False, "a\tb\nc"),
        ("a\nb", True, "a\\nb"),
        ("\x1b[2J\rx", False, "\\x1b[2J\\x0dx"),
        ("\x00\x7f\x9b", False, "\\x00\\x7f\\x9b"),
        ("\u202eevil\u2028", True, "\\u202eevil\\u2028"),
    ],
)
def test_clean(text: str, one_line: bool, expected: str) -> None:
    assert clean(text, one_line) == expected


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [(None, "-"), (0, "0m00s"), (59.9, "0m59s"), (61, "1m01s"), (3725, "1h02m")],
)
def test_duration(seconds: float | None, expected: str) -> None:
    assert duration(seconds) == expected


def test_table_pads_columns_and_keeps_each_cell_on_one_line() -> None:
    assert table_lines([("HOST", "STATE"), ("mini-01", "a\nb"), ("m", "-")]) == [
        "HOST     STATE",
        "mini-01  a\\nb",
        "m        -",
    ]


def test_warnings_are_said_once_with_their_hosts() -> None:
    results = [
        HostResult(name=f"m{i}", status=S.IN_SYNC, warnings=["old pull", f"own {i}"])
        for i in range(7)
    ]
    lines = warning_lines(results)
    assert lines[0] == "warning: 7 hosts (m0, m1, m2, m3, m4, ...): old pull"
    assert lines[1:3] == ["warning: m0: own 0", "warning: m1: own 1"]
    assert warning_lines([HostResult(name="m", status=S.DRIFT, warnings=["\x1b[2J\n"])]) == [
        "warning: m: \\x1b[2J\\n"
    ]


def test_change_table_cuts_a_long_run_of_packages() -> None:
    packages = [
        Change("m", Kind.PACKAGE, f"p{i:02}", Action.CREATE, None, "1", "wanted") for i in range(14)
    ]
    lines = change_table([VENV, *packages], most_packages=12).splitlines()
    assert lines[0] == "+ venv         create   there is no venv yet"
    assert lines[1] == "+ package p00  create   wanted"
    assert lines[-1] == "  ... and 2 more packages (--json lists all)"
    assert len(lines) == 1 + 12 + 1


@pytest.mark.parametrize(
    ("r", "expected"),
    [
        (result(S.IN_SYNC), "m1    in-sync        1235 ms  "),
        (
            result(S.DRIFT, changes=[VENV, PKG, VENV, PKG]),
            "m1    drift          1235 ms  venv: there is no venv yet; package mlx-lm: 0.2 "
            "wanted; venv: there is no venv yet; and 1 more",
        ),
        (result(S.UNREACHABLE, error=UNREACHABLE), "m1    unreachable    1235 ms  refused"),
    ],
)
def test_drift_line(r: HostResult, expected: str) -> None:
    assert drift_line(r, width=4) == expected


@pytest.mark.parametrize(
    ("r", "expected"),
    [
        (
            result(S.RUNNING, details=SERVER),
            (
                "m1",
                "running",
                "4242",
                "1h02m",
                "10240",
                "mlx-omni-server 0.5.1",
                "org/a, org/b",
                "n/a",
                "12 ms",
                "failed 2026-12-01T20:00:00Z",
                "4ba1fd2a4828",
                "7.0 of 16.0 GB",
                "-",
            ),
        ),
        (
            result(S.UNREACHABLE, error=UNREACHABLE),
            ("m1", "unreachable", *("-",) * 11),
        ),
    ],
)
def test_status_row(r: HostResult, expected: tuple[str, ...]) -> None:
    assert status_row(r) == expected


def test_status_row_of_a_stopped_server_without_packages() -> None:
    stopped = ServerStatus(
        **{
            **SERVER.__dict__,
            "running": False,
            "pid": None,
            "uptime_s": None,
            "packages": {"mlx-omni-server": None},
            "models_listed": (),
            "models_loaded": (),
            "latency_ms": {},
            "last_pull": None,
            "generation": None,
            "memory_available_bytes": None,
        }
    )
    row = status_row(result(S.STOPPED, details=stopped))
    assert row[2:] == ("-", "-", "10240", "not installed", "-", "none", "-", "-", "-", "-", "-")


def test_status_shows_loaded_and_loading_models_and_the_log_size_with_its_rotated_files() -> None:
    log = ServerLog("/p/logs/server.log", 3 * 1024 * 1024, 2, 100 * 1024 * 1024)
    serving = ServerStatus(
        **{**SERVER.__dict__, "models_loaded": ("org/a",), "models_loading": ("org/b",), "log": log}
    )
    row = status_row(result(S.RUNNING, details=serving))
    assert row[7] == "org/a (loading: org/b)"
    assert row[-1] == "/p/logs/server.log 3.0 MiB (+2 rotated, 100.0 MiB)"
    assert host_json(result(S.RUNNING, details=serving), "details")["log"] == {
        "path": "/p/logs/server.log",
        "size_bytes": 3 * 1024 * 1024,
        "rotated_files": 2,
        "rotated_bytes": 100 * 1024 * 1024,
        "crash_tail": [],
    }


def test_status_prints_the_tail_of_a_crashed_servers_log_under_the_table() -> None:
    log = ServerLog("/p/logs/server.log", 120, 0, 0, ("Traceback ...", "ImportError: mlx\x1b[2J"))
    crashed = ServerStatus(**{**SERVER.__dict__, "running": False, "log": log})
    out = io.StringIO()
    print_crash_tails(Output(out, io.StringIO()), [result(S.STOPPED, details=crashed)])
    assert out.getvalue().splitlines() == [
        "m1: the server has crashed; the last lines of /p/logs/server.log:",
        "  Traceback ...",
        "  ImportError: mlx\\x1b[2J",
    ]


def test_doctor_lines() -> None:
    assert doctor_lines(result(S.BLOCKED, details=CHECKS)) == [
        "m1: blocked",
        "  BLOCKS python: python3 is 3.9",
        "         fix: install 3.11",
        "  warn   clock: +90 s from this machine",
        "         fix: turn on automatic time",
        "  ok     os: macos 15.5 (arm64)",
    ]
    assert doctor_lines(result(S.UNREACHABLE, error=UNREACHABLE)) == [str(UNREACHABLE)]


@pytest.mark.parametrize(
    ("r", "expected"),
    [
        (result(S.STOPPED, details=StopReport(True, True)), "m1: stopped (was running)"),
        (result(S.STOPPED, details=StopReport(True, False)), "m1: stopped (was not running)"),
        (result(S.STOPPED, details=StopReport(False)), "m1: stopped (was not running)"),
        (result(S.RUNNING, details=StopReport(True, True)), "m1: running (was running)"),
    ],
)
def test_stop_line(r: HostResult, expected: str) -> None:
    assert stop_line(r) == expected


@pytest.mark.parametrize(
    ("r", "expected"),
    [
        (
            result(S.CHANGED, changes=[VENV], details=APPLIED),
            ("m1", "changed", "1", "1.2 s", "/v1/models 8 ms", "tiny 950 ms"),
        ),
        (result(S.OK, details=ApplyReport()), ("m1", "ok", "0", "1.2 s", "-", "-")),
        (result(S.FAILED, error=UNREACHABLE), ("m1", "failed", "0", "1.2 s", "-", "-")),
    ],
)
def test_apply_row(r: HostResult, expected: tuple[str, ...]) -> None:
    assert apply_row(r) == expected


def test_host_status_values_are_the_printed_words() -> None:
    assert f"{S.IN_SYNC}" == "in-sync" and S.FAILED.upper() == "FAILED"
    assert {s for s in S if HostResult(name="m", status=s).failed} == {
        S.UNREACHABLE,
        S.ERROR,
        S.FAILED,
        S.ROLLED_BACK,
    }
