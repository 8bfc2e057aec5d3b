"""The server's log and loaded models as facts: the facts script's section run on a real
folder, the pure parsers on its output and on the file the start-up shim writes, and what
status makes of them."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from localai_provision.facts.model import LoadedModels, ProcessFacts
from localai_provision.facts.parse import parse_facts
from localai_provision.facts.parse_server import parse_loaded_models, parse_server_log
from localai_provision.status import crashed, describe
from tests.unit.test_facts_parse import remote_functions

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "server"
LOG = "/Users/lab/.localai/logs/server.log"


def test_the_facts_script_stats_the_log_and_its_rotated_files_and_nothing_else(
    tmp_path: Path,
) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "server.log").write_bytes(b"x" * 100)
    (logs / "server.log.1").write_bytes(b"y" * 1000)
    (logs / "server.log.2").write_bytes(b"z" * 10)
    (logs / "server.log.old").write_bytes(b"mine" * 100)  # not the tool's
    (logs / "pull.log").write_bytes(b"p")
    section = remote_functions()["server_log_section"]
    raw = section(str(logs / "server.log"), True)
    assert raw == {
        "path": str(logs / "server.log"),
        "sizes": {"server.log": 100, "server.log.1": 1000, "server.log.2": 10},
    }
    facts = parse_server_log(raw)
    assert facts is not None
    assert (facts.size_bytes, facts.rotated_files, facts.rotated_bytes) == (100, 2, 1010)
    assert facts.tail == ()


def test_the_facts_script_reads_the_logs_tail_only_when_the_server_is_down(
    tmp_path: Path,
) -> None:
    log = tmp_path / "server.log"
    log.write_text("".join(f"line {n}\n" for n in range(2000)))
    raw = remote_functions()["server_log_section"](str(log), False)
    assert len(raw["tail"]) == 4096 and raw["tail_from"] > 0
    facts = parse_server_log(raw)
    assert facts is not None
    # the first line read was cut in the middle: dropped; the last ten kept
    assert facts.tail == tuple(f"line {n}" for n in range(1990, 2000))


def test_a_missing_log_has_no_size() -> None:
    facts = parse_server_log({"path": LOG, "sizes": {}})
    assert facts is not None and facts.size_bytes is None and facts.rotated_files == 0
    assert parse_server_log(None) is None
    assert parse_server_log({"sizes": {}}) is None


def test_the_loaded_models_file_as_the_shim_writes_it() -> None:
    text = (FIXTURES / "loaded-models.json").read_text()
    models = parse_loaded_models(text)
    assert models is not None
    data = json.loads(text)
    assert models.pid == data["pid"]
    assert models.loaded == tuple(sorted(data["loaded"]))
    assert models.current(data["pid"]) and not models.current(data["pid"] + 1)
    assert not models.current(None)


def test_a_damaged_or_foreign_loaded_models_file_says_nothing() -> None:
    for text in (None, "", "{", "[]", '{"pid": 3}', '{"loaded": "a"}'):
        assert parse_loaded_models(text) is None
    odd = parse_loaded_models('{"pid": true, "loaded": ["b", "a", 3, "a"], "loading": null}')
    assert odd == LoadedModels(pid=None, loaded=("a", "b"), loading=(), updated=None)


def _facts(**changes: Any) -> Any:
    from tests.unit.test_facts_parse import FIXTURES as ALL

    facts = parse_facts("m1", (ALL / "facts-linux.json").read_text(), ())
    return dataclasses.replace(facts, **changes)


def _serving(facts: Any, pid: int) -> Any:
    process = ProcessFacts(
        pid=pid, alive=True, command="mlx-omni-server", config_hash=None, uptime_s=5.0
    )
    return dataclasses.replace(
        facts, service=dataclasses.replace(facts.service, pid=pid, process=process)
    )


def test_status_lists_the_models_the_running_server_published_and_ignores_a_dead_ones() -> None:
    from localai_provision.site.model import HostSpec

    spec = HostSpec(name="m1", address="m1")
    published = LoadedModels(pid=4242, loaded=("org/a",), loading=("org/b",), updated=1.0)
    serving = _serving(_facts(loaded_models=published), 4242)
    info = describe(spec, serving)
    assert info.models_loaded == ("org/a",) and info.models_loading == ("org/b",)
    restarted = _serving(_facts(loaded_models=published), 5151)  # a file of the server before
    assert describe(spec, restarted).models_loaded is None


def test_a_process_service_whose_pid_file_outlived_its_server_has_crashed() -> None:
    facts = _facts()
    gone = ProcessFacts(pid=77, alive=False, command="", config_hash=None, uptime_s=None)
    down = dataclasses.replace(
        facts, service=dataclasses.replace(facts.service, pid=77, process=gone)
    )
    assert crashed(down)
    never = dataclasses.replace(
        facts, service=dataclasses.replace(facts.service, pid=None, process=None)
    )
    assert not crashed(never)
