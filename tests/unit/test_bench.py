"""`localai bench`'s pure parts: figures from recorded timings, the host's report from the
script's JSON, the model chosen, the table and the JSON. No host is reached."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from localai_provision.apply.benchstep import slower_warning
from localai_provision.apply.state import bench_entries
from localai_provision.bench import bench_config, bench_model, report_from_script
from localai_provision.benchresults import (
    BenchRecord,
    BenchReport,
    Figures,
    Memory,
    NoTokens,
    RunTimings,
    TokenSource,
    median_figures,
    run_figures,
)
from localai_provision.cli import Output, main
from localai_provision.cli.bench import bench_row, memory_text, notes, was_text
from localai_provision.cli.hostjson import host_json
from localai_provision.errors import HostError
from localai_provision.fleet import HostResult
from localai_provision.results import HostStatus
from localai_provision.site.model import HostSpec, ModelSpec

# Recorded from scripts/bench.py against the stand-in (max_tokens 8: 7 token chunks).
RUN = {
    "chunks": 7,
    "first_s": 0.025,
    "last_s": 0.085,
    "total_s": 0.09,
    "usage": {
        "prompt_tokens": 110,
        "completion_tokens": 7,
        "total_tokens": 117,
        "prompt_tokens_details": {"cached_tokens": 10},
    },
}
SPEC = HostSpec(
    name="mini-01",
    address="10.0.0.1",
    models=(ModelSpec("org/cold", prewarm=False), ModelSpec("org/warm")),
)


def timings(**changes: object) -> RunTimings:
    return RunTimings.from_script({**RUN, **changes})


def test_prompt_tokens_per_second_counts_only_tokens_the_prompt_cache_did_not_serve() -> None:
    f = run_figures(timings())
    assert f.prompt_tokens == 100
    assert f.prompt_tps == pytest.approx(100 / 0.025)
    assert f.first_token_ms == pytest.approx(25.0)
    assert f.total_ms == pytest.approx(90.0)


def test_generation_tokens_per_second_is_the_tokens_after_the_first_over_their_time() -> None:
    f = run_figures(timings())
    assert f.completion_tokens == 7
    assert f.gen_tps == pytest.approx(6 / 0.06)
    assert f.tokens_from == TokenSource.USAGE


def test_without_usage_the_chunks_are_counted_and_the_prompt_rate_is_unknown() -> None:
    f = run_figures(timings(usage=None))
    assert f.tokens_from == TokenSource.CHUNKS
    assert f.completion_tokens == 7 and f.gen_tps == pytest.approx(6 / 0.06)
    assert f.prompt_tokens is None and f.prompt_tps is None


def test_one_token_has_no_generation_rate_and_no_token_is_an_error() -> None:
    one = run_figures(timings(chunks=1, last_s=0.025, usage={"completion_tokens": 1}))
    assert one.gen_tps is None
    with pytest.raises(NoTokens):
        run_figures(timings(chunks=0, first_s=None, last_s=None))


def test_each_figure_is_the_median_of_the_runs_so_one_slow_run_moves_none() -> None:
    runs = [timings(first_s=s, last_s=s + 0.06) for s in (0.02, 0.025, 0.5)]
    f = median_figures(runs)
    assert f.first_token_ms == pytest.approx(25.0)
    assert f.prompt_tps == pytest.approx(4000.0)
    with pytest.raises(NoTokens):
        median_figures([])


def test_the_model_is_the_one_asked_for_else_the_first_prewarmed_else_the_first() -> None:
    assert bench_model(SPEC, "org/other") == "org/other"
    assert bench_model(SPEC) == "org/warm"
    cold = HostSpec(name="h", address="a", models=(ModelSpec("org/a", prewarm=False),))
    assert bench_model(cold) == "org/a"
    assert bench_model(HostSpec(name="h", address="a")) is None


def test_the_script_asks_the_server_on_loopback_when_it_listens_everywhere() -> None:
    spec = HostSpec(name="h", address="a", server=SPEC.server.__class__(host="0.0.0.0"))
    config = bench_config(spec, "org/a")
    assert config["host"] == "127.0.0.1" and config["port"] == 10240
    assert config["pid_file"] == "run/server.pid" and config["state"] == "state.json"


def script_out(**changes: object) -> dict[str, object]:
    out: dict[str, object] = {
        "error": None,
        "reason": None,
        "runs": [RUN, RUN, RUN],
        "memory": {"rss_kb": 820_000, "peak_kb": 900_000},
        "pid": 4242,
        "generation": "abc123def456",
        "previous": None,
    }
    out.update(changes)
    return out


def test_a_host_with_no_server_fails_naming_the_address_and_what_to_do() -> None:
    out = script_out(error="ConnectionRefusedError: refused", reason="no-server", runs=[])
    with pytest.raises(HostError) as caught:
        report_from_script(SPEC, "org/warm", out, "2026-12-02T04:00:00Z")
    text = str(caught.value)
    assert "mini-01 [bench]: no server answers on 127.0.0.1:10240" in text
    assert "localai apply FILE" in text


def test_a_server_that_refuses_the_model_fails_with_its_answer() -> None:
    out = script_out(error="HTTP 404 from the server: model x not found", reason="http")
    with pytest.raises(HostError) as caught:
        report_from_script(SPEC, "org/x", out, "t")
    assert "measuring org/x on 127.0.0.1:10240 failed: HTTP 404" in str(caught.value)


def report(previous: dict[str, object] | None = None) -> BenchReport:
    return report_from_script(SPEC, "org/warm", script_out(previous=previous), "2026-12-02T04:00")


def test_the_report_keeps_the_generation_memory_and_the_last_recorded_figures() -> None:
    before = report().current.as_json() | {"gen_tps": 41.2, "measured_at": "2026-12-01T10:00Z"}
    r = report(previous=before)
    assert r.current.generation == "abc123def456" and r.current.runs == 3
    assert r.current.memory == Memory(820_000, 900_000)
    assert r.previous is not None and r.previous.figures.gen_tps == 41.2
    assert r.pid == 4242


def test_a_damaged_record_in_the_state_file_is_no_previous_record() -> None:
    assert BenchRecord.from_json({"gen_tps": 3}) is None
    assert BenchRecord.from_json("junk") is None
    assert BenchRecord.from_json({"model": "m", "tokens_from": "telepathy"}) is None


def test_a_record_read_back_from_its_json_is_the_same_record() -> None:
    record = report().current
    assert BenchRecord.from_json(json.loads(json.dumps(record.as_json()))) == record


def result(details: BenchReport) -> HostResult:
    return HostResult(name="mini-01", status=HostStatus.MEASURED, details=details)


def test_the_table_row_shows_rates_first_token_memory_and_what_was_recorded() -> None:
    before = report().current.as_json() | {"gen_tps": 41.2, "measured_at": "2026-12-01T10:00Z"}
    assert bench_row(result(report(previous=before))) == (
        "mini-01",
        "org/warm",
        "4,000.0",
        "100.0",
        "25 ms",
        "801 MiB (peak 879)",
        "was 41.2 tok/s (generation abc123def456, 2026-12-01)",
    )


def test_a_failed_host_row_shows_its_status_and_the_rest_empty() -> None:
    failed = HostResult(name="m2", status=HostStatus.ERROR, error=HostError(host="m2", message="x"))
    assert bench_row(failed) == ("m2", "error", "-", "-", "-", "-", "-")


def test_memory_and_was_read_dash_when_unknown() -> None:
    record = report().current
    assert memory_text(BenchRecord(**{**record.__dict__, "memory": None})) == "-"
    mac = BenchRecord(**{**record.__dict__, "memory": Memory(2048, None)})
    assert memory_text(mac) == "2 MiB"
    assert was_text(None) == "-"


def test_counted_chunks_are_said_under_the_table() -> None:
    r = report()
    chunky = Figures(**{**r.current.figures.__dict__, "tokens_from": TokenSource.CHUNKS})
    current = BenchRecord(**{**r.current.__dict__, "figures": chunky})
    lines = notes([result(BenchReport(current, None, 1))])
    assert lines == [
        "note: mini-01: the server reported no token usage; tokens were counted as stream chunks"
    ]


def test_the_json_has_the_figures_typed_and_the_previous_record() -> None:
    data = host_json(result(report()), "details")
    assert list(data) == [
        "name",
        "status",
        "model",
        "generation",
        "measured_at",
        "runs",
        "prompt_tokens",
        "completion_tokens",
        "prompt_tps",
        "gen_tps",
        "first_token_ms",
        "total_ms",
        "tokens_from",
        "memory",
        "pid",
        "previous",
        "error",
    ]
    assert data["status"] == "measured" and data["tokens_from"] == "usage"
    assert data["gen_tps"] == 100.0 and data["previous"] is None
    json.dumps(data)


def test_an_apply_that_measured_keeps_the_figures_it_replaced_as_the_previous_ones() -> None:
    new = report().current
    old = {"model": "org/warm", "gen_tps": 41.2}
    assert bench_entries({"bench": old}, new) == {
        "bench": new.as_json(),
        "bench_previous": old,
    }
    assert bench_entries({}, new) == {"bench": new.as_json()}


def test_an_apply_that_measured_nothing_keeps_what_the_state_file_held() -> None:
    held = {"bench": {"model": "m"}, "bench_previous": {"model": "n"}, "other": 1}
    assert bench_entries(held, None) == {"bench": {"model": "m"}, "bench_previous": {"model": "n"}}
    assert bench_entries({}, None) == {}


def test_a_much_slower_host_is_a_warning_naming_the_generation_it_was_faster_on() -> None:
    new = report().current  # 100 tok/s
    faster = BenchRecord.from_json(new.as_json() | {"gen_tps": 400.0, "generation": "old123"})
    assert slower_warning(new, faster) == (
        "org/warm: generation 100.0 tok/s, was 400.0 on generation old123 (2026-12-02): 75 % slower"
    )
    near = BenchRecord.from_json(new.as_json() | {"gen_tps": 110.0})
    other_model = BenchRecord.from_json(new.as_json() | {"model": "x", "gen_tps": 400.0})
    assert slower_warning(new, near) is None
    assert slower_warning(new, other_model) is None
    assert slower_warning(new, None) is None


@pytest.mark.parametrize("argv", [["bench"], ["bench", "site.yaml", "--model"], ["bench", "-x"]])
def test_a_usage_error_exits_64(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        main(argv, Output(io.StringIO(), io.StringIO()))
    assert caught.value.code == 64


def test_bash_completes_bench_and_its_model_flag(tmp_path: Path) -> None:
    from tests.unit.test_completion import SITE, complete

    (tmp_path / "site.yaml").write_text(SITE)
    assert complete(tmp_path, "ben") == ["bench"]
    assert complete(tmp_path, "bench", "site.yaml", "--m") == ["--model"]
    assert complete(tmp_path, "bench", "site.yaml", "-l", "stu") == ["studio-01", "studios"]
