"""The pure parsers, on outputs recorded from Linux and in Apple's documented formats."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from localai_provision.facts.model import LaunchdFacts
from localai_provision.facts.parse import (
    FactsFormatError,
    parse_dist_info_name,
    parse_endpoint,
    parse_etime,
    parse_facts,
    parse_macos_version,
    parse_model,
    parse_os_release,
    parse_process,
    parse_ps_etime_command,
    parse_pyvenv_cfg,
    parse_server_processes,
    parse_sw_vers,
)
from localai_provision.layout import relative_layout
from localai_provision.site.model import ModelSpec

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
MACOS = FIXTURES / "macos"


def remote_functions() -> dict[str, Any]:
    """The facts script's functions, without running its main()."""
    from localai_provision.facts.gather import remote_script

    namespace: dict[str, Any] = {}
    exec(compile(remote_script().split("\ndef main():")[0], "remote.py", "exec"), namespace)
    return namespace


def host_summary(config: dict[str, Any]) -> dict[str, Any]:
    """What the facts script sends of a PREFIX/server.json holding ``config``."""
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "server.json"
        path.write_text(json.dumps(config))
        summary: dict[str, Any] = remote_functions()["server_config_section"](str(path))
    return summary


def linux_doc() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / "facts-linux.json").read_text())
    return data


def macos_doc() -> dict[str, Any]:
    """The Linux document turned into what the script prints on a Mac."""
    doc = copy.deepcopy(linux_doc())
    doc["system"] = {
        "sysname": "Darwin",
        "release": "23.5.0",
        "machine": "arm64",
        "nodename": "mini-01.local",
        "uid": 501,
        "home": "/Users/lab",
        "user": "lab",
        "time": 1795654939.0,
        "system_version_plist": (MACOS / "SystemVersion.plist").read_text(),
    }
    doc["service"] = {
        "kind": "auto",
        "pid_file": "8123\n",
        "process": {
            "pid": 8123,
            "alive": True,
            "ps": (MACOS / "ps-etime-command.txt").read_text().strip(),
            "config_hash": "51fcc3e733332a28",
        },
        "server_processes": (MACOS / "ps-pid-command.txt").read_text(),
    }
    return doc


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("mlx_lm-0.28.2.dist-info", ("mlx-lm", "0.28.2")),
        ("mlx_omni_server-0.5.1.dist-info", ("mlx-omni-server", "0.5.1")),
        ("torch-2.13.0+cpu.dist-info", ("torch", "2.13.0+cpu")),
        ("PyYAML-6.0.3.dist-info", ("pyyaml", "6.0.3")),
        ("zope.interface-7.0.dist-info", ("zope-interface", "7.0")),
        ("mlx_lm.egg-info", None),
        ("broken.dist-info", None),
    ],
)
def test_dist_info_names(name: str, expected: tuple[str, str] | None) -> None:
    assert parse_dist_info_name(name) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("home = /usr/bin\nversion = 3.11.2\n", "3.11.2"),
        (
            "home = /opt/homebrew/bin\nimplementation = CPython\nversion_info = 3.11.9.final.0\n",
            "3.11.9",
        ),  # as uv writes it
        ("home = /usr/bin\n", None),
        (None, None),
    ],
)
def test_pyvenv_cfg(text: str | None, expected: str | None) -> None:
    assert parse_pyvenv_cfg(text) == expected


def test_macos_version_from_apple_files() -> None:
    assert parse_macos_version((MACOS / "SystemVersion.plist").read_text()) == "14.5"
    assert parse_macos_version("not a plist") == ""
    assert parse_sw_vers((MACOS / "sw_vers.txt").read_text())["ProductVersion"] == "14.5"


def test_os_release() -> None:
    assert parse_os_release('NAME="Debian GNU/Linux"\nVERSION_ID="12"\n') == "12"
    assert parse_os_release(None) == ""


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("05:07", 307.0), ("01:02:03", 3723.0), ("02-03:04:05", 183845.0), ("bad", None)],
)
def test_ps_etime(text: str, seconds: float | None) -> None:
    assert parse_etime(text) == seconds


def test_bsd_ps_lines() -> None:
    elapsed, command = parse_ps_etime_command((MACOS / "ps-etime-command.txt").read_text())
    assert elapsed == 183845.0
    assert command.startswith("/Users/lab/.localai/venv/bin/python3.11 ")
    servers = parse_server_processes((MACOS / "ps-pid-command.txt").read_text())
    assert [s.pid for s in servers] == [8123, 9001]  # Finder and the shell are not servers


def test_process_from_linux_proc_and_from_macos_ps() -> None:
    linux = parse_process(
        {
            "pid": 7,
            "alive": True,
            "argv": ["/v/bin/python", "/v/bin/mlx-omni-server"],
            "config_hash": "h",
            "elapsed_s": 12.5,
        }
    )
    assert linux is not None and linux.alive and linux.uptime_s == 12.5
    assert linux.command == "/v/bin/python /v/bin/mlx-omni-server"
    mac = parse_process(macos_doc()["service"]["process"])
    assert mac is not None and mac.alive and mac.uptime_s == 183845.0 and mac.config_hash
    assert parse_process({"pid": 7, "alive": False}) is not None
    assert parse_process(None) is None


def test_endpoint_answers() -> None:
    ok = parse_endpoint(
        {
            "path": "/v1/models",
            "status_line": "HTTP/1.1 200 OK",
            "body": '{"object":"list","data":[{"id":"org/a"},{"id":"org/b"}]}',
            "ms": 4.2,
        }
    )
    assert ok.ok and ok.model_ids == ("org/a", "org/b") and ok.ms == 4.2
    error = parse_endpoint(
        {
            "path": "/v1/models",
            "status_line": "HTTP/1.1 500 Internal Server Error",
            "body": "oops",
            "ms": 3,
        }
    )
    assert not error.ok and error.error == "HTTP 500"
    refused = parse_endpoint({"path": "/v1/models", "error": "ConnectionRefusedError: [Errno 111]"})
    assert refused.status is None and "Refused" in (refused.error or "")
    garbage = parse_endpoint({"path": "/x", "status_line": "SSH-2.0-OpenSSH_9.2", "body": ""})
    assert garbage.status is None and garbage.error == "not an HTTP answer"


COMMIT = "c" * 40


def _raw_model(**over: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "dir": "models--org--m",
        "exists": True,
        "refs": {"main": COMMIT},
        "snapshots": {COMMIT: [["config.json", 10], ["model.safetensors", 1000]]},
        "incomplete_blobs": [],
        "marker": None,
    }
    raw.update(over)
    return raw


@pytest.mark.parametrize(
    ("raw", "complete", "problem"),
    [
        (_raw_model(), True, None),
        (None, False, "not in the model cache"),
        (_raw_model(exists=False), False, "not in the model cache"),
        (_raw_model(refs={}), False, "no ref `main`"),
        (_raw_model(snapshots={}), False, "has no snapshot"),
        (_raw_model(snapshots={COMMIT: []}), False, "empty"),
        (
            _raw_model(snapshots={COMMIT: [["config.json", 10], ["model.safetensors", None]]}),
            False,
            "1 file(s) missing",
        ),
        (_raw_model(incomplete_blobs=["abc.incomplete"]), False, "incomplete"),
        (
            _raw_model(marker='{"files": {"config.json": 10, "model.safetensors": 1000}}'),
            True,
            None,
        ),
        (
            _raw_model(marker='{"files": {"config.json": 10, "model.safetensors": 2000}}'),
            False,
            "has 1000 bytes, not 2000",
        ),
        (_raw_model(marker='{"files": {"tokenizer.json": 5}}'), False, "tokenizer.json is missing"),
    ],
)
def test_model_completeness(
    raw: dict[str, Any] | None, complete: bool, problem: str | None
) -> None:
    facts = parse_model(ModelSpec("org/m"), raw)
    assert facts.complete is complete
    if problem:
        assert problem in (facts.problem or "")
    else:
        assert facts.problem is None and facts.size_bytes == 1010


def test_model_pinned_to_a_commit() -> None:
    facts = parse_model(ModelSpec("org/m", revision=COMMIT), _raw_model(refs={}))
    assert facts.complete and facts.commit == COMMIT


def test_whole_linux_document() -> None:
    facts = parse_facts("mini-01", json.dumps(linux_doc()), [ModelSpec("org/tiny-a")])
    assert facts.system.os == "linux" and facts.system.os_version == "12"
    assert facts.python.version == (3, 11, 2) and facts.python.found
    assert facts.venv.usable and facts.venv.python_version == "3.11.2"
    assert facts.venv.packages == {
        "mlx": "0.29.3",
        "mlx-lm": "0.28.2",
        "mlx-omni-server": "0.5.1",
        "torch": "2.13.0+cpu",
    }
    assert facts.server_config is not None and facts.server_config.hash
    assert facts.server_config.env.keys() == {"HF_HOME"}
    assert facts.models[0].complete and facts.models[0].commit == COMMIT
    assert facts.state is not None and facts.state["tool_version"] == "0.1.0"


def test_whole_macos_document() -> None:
    facts = parse_facts("mini-01", json.dumps(macos_doc()), [ModelSpec("org/tiny-a")])
    assert (facts.system.os, facts.system.os_version, facts.system.arch) == (
        "macos",
        "14.5",
        "arm64",
    )
    assert facts.service.pid == 8123 and facts.service.running
    assert [p.pid for p in facts.service.server_processes] == [8123, 9001]


@pytest.mark.parametrize("output", ["", "not json", "[]", '{"v": 2}', "Welcome to my Mac!\n{}"])
def test_unexpected_output_is_a_clear_error(output: str) -> None:
    with pytest.raises(FactsFormatError):
        parse_facts("h", output, [])


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        ("/v/bin/python3 /v/bin/mlx-omni-server --port 10240", True),
        ("/v/bin/mlx-omni-server --port 10240", True),
        ("/opt/homebrew/bin/python3.11 -m mlx_omni_server.main --port 8080", True),
        ("/usr/bin/python -m pip install mlx-omni-server==0.5.1", False),
        ("bash -c exec python3 -I -S -c 'mlx-omni-server'", False),
        ("vim mlx-omni-server.txt", False),
    ],
)
def test_what_counts_as_a_server_process(command: str, expected: bool) -> None:
    from localai_provision.facts.parse import is_server_command

    assert is_server_command(command) is expected


def test_launchctl_print_block_as_apple_documents_it() -> None:
    from localai_provision.facts.parse import parse_launchctl_print, parse_launchd

    text = (MACOS / "launchctl-print.txt").read_text()
    values = parse_launchctl_print(text)
    assert values["state"] == "running" and values["pid"] == "4821"
    assert values["runs"] == "3" and values["last exit code"] == "1"
    assert "HOME" not in values  # nested environment blocks are not top-level keys
    job = parse_launchd(
        {
            "target": "system/x",
            "print_status": 0,
            "print": text,
            "plist_path": "/Library/LaunchDaemons/x.plist",
            "plist": None,
        }
    )
    assert job is not None and job.loaded and job.pid == 4821 and not job.crashed
    gone = parse_launchd(
        {"target": "system/x", "print_status": 113, "print": None, "plist_path": "p", "plist": None}
    )
    assert gone is not None and not gone.loaded


def launchd_from(name: str) -> LaunchdFacts:
    from localai_provision.facts.parse import parse_launchd

    text = (MACOS / name).read_text()
    job = parse_launchd(
        {"target": "gui/501/x", "print_status": 0, "print": text, "plist_path": "p", "plist": None}
    )
    assert job is not None
    return job


def test_a_crash_loop_in_launchctl_print_is_read_as_one() -> None:
    """Real output (tests/fixtures/macos/SOURCES.md, a3): KeepAlive between two tries."""
    job = launchd_from("launchctl-print-spawn-scheduled.txt")
    assert job.loaded and not job.running and job.state == "spawn scheduled"
    assert job.crashed and job.runs == 17169 and job.last_exit_code == 1
    assert job.crash_summary() == "keeps ending: it exited with 1, after 17169 runs"


def test_an_exit_code_with_its_name_is_read_with_its_name() -> None:
    """`last exit code = 78: EX_CONFIG` (SOURCES.md a5): the name after the code."""
    job = launchd_from("launchctl-print-ex-config.txt")
    assert (job.last_exit_code, job.last_exit_name) == (78, "EX_CONFIG")
    assert job.crashed and "exited with 78: EX_CONFIG, after 3325 runs" in job.crash_summary()


def test_a_signal_is_read_and_a_nested_blocks_keys_are_not_the_jobs() -> None:
    """`last terminating signal = Killed: 9` (SOURCES.md a5), and the `last exit code = 0` of
    a nested block is not the job's."""
    job = launchd_from("launchctl-print-signal.txt")
    assert (job.last_signal, job.last_signal_name) == (9, "Killed")
    assert job.last_exit_code is None and job.pid == 38837 and job.running
    assert "killed by signal 9 (Killed: 9)" in job.how_it_ended()


def test_the_facts_script_drops_the_environment_of_launchctl_print_on_the_host() -> None:
    """`launchctl print` shows a job's environment to any local user: it never leaves."""
    from localai_provision.facts.gather import remote_script

    namespace: dict[str, object] = {"__name__": "facts"}
    source = remote_script().rsplit("\nmain()", 1)[0]
    exec(compile(source, "remote.py", "exec"), namespace)
    without = namespace["without_environment"]
    assert callable(without)
    text = (MACOS / "launchctl-print.txt").read_text()
    assert "HF_HOME" in text and "=>" in text
    kept = without(text)
    assert "=>" not in kept and "HF_HOME" not in kept and "SSH_AUTH_SOCK" not in kept
    assert "state = running" in kept and "pid = 4821" in kept


def test_pmset_output() -> None:
    from localai_provision.facts.parse import parse_pmset

    values = parse_pmset((MACOS / "pmset-g.txt").read_text())
    assert values["autorestart"] == "1" and values["sleep"] == "1" and values["disksleep"] == "10"


def test_pull_report_as_apply_local_writes_it() -> None:
    from localai_provision.facts.parse import parse_pull_report

    text = json.dumps(
        {
            "v": 1,
            "host": "mini-01",
            "started_at": "2026-11-26T02:40:00Z",
            "finished_at": "2026-11-26T02:41:05Z",
            "result": "failed",
            "failed_step": "packages",
            "error": "could not install mlx-lm==0.28.2",
            "changes": 3,
            "site_file": "/Users/lab/lab/playbooks/lab.yaml",
            "site_hash": "0123456789abcdef",
            "git_commit": "a" * 40,
            "git_pull": {"ok": False, "error": "fatal: unable to access"},
            "interval_s": 900,
        }
    )
    report = parse_pull_report(text)
    assert report is not None and report.failed
    assert report.finished_epoch == 1795660865.0
    assert (report.failed_step, report.error, report.changes) == (
        "packages",
        "could not install mlx-lm==0.28.2",
        3,
    )
    assert report.git_commit == "a" * 40 and report.git_error == "fatal: unable to access"
    assert report.interval_s == 900
    assert report.as_dict()["result"] == "failed"


@pytest.mark.parametrize(
    ("text", "result", "failed"),
    [
        (None, None, None),
        ('{"result": "converged", "finished_at": "2026-11-26T02:41:05Z"}', "converged", False),
        ('{"result": "changed", "finished_at": "yesterday"}', "changed", False),
        ("{half a fi", "unreadable", True),
        ('["result"]', "unreadable", True),
        ('{"finished_at": "2026-11-26T02:41:05Z"}', "unreadable", True),
    ],
)
def test_pull_report_damaged_or_partial(
    text: str | None, result: str | None, failed: bool | None
) -> None:
    from localai_provision.facts.parse import parse_pull_report

    report = parse_pull_report(text)
    if result is None:
        assert report is None
        return
    assert report is not None and report.result == result and report.failed is failed
    if report.finished_at == "yesterday":
        assert report.finished_epoch is None  # no staleness can be judged from it


def test_pull_timer_facts() -> None:
    from localai_provision.facts.parse import parse_pull_timer

    assert parse_pull_timer(None) is None
    cron = parse_pull_timer({"kind": "cron", "available": False, "definition": None})
    assert cron is not None and not cron.available and cron.definition is None
    mac = parse_pull_timer({"kind": "launchd", "path": "/L/x.plist", "definition": "<plist/>"})
    assert mac is not None and mac.available and mac.path == "/L/x.plist"
    facts = parse_facts("mini-01", json.dumps(linux_doc()), [])
    assert facts.pull_report is None and facts.pull_timer is None  # older scripts: none


def test_the_facts_script_finds_a_half_installed_package(tmp_path: Path) -> None:
    """The facts script's RECORD check, run on a made-up site-packages: a package whose
    top-level module is gone is reported with that file; a whole one, or one that only lost
    a deep data file, is not."""
    from localai_provision.facts.gather import remote_script

    namespace: dict[str, Any] = {}
    exec(compile(remote_script().split("\ndef main():")[0], "remote.py", "exec"), namespace)
    site = tmp_path / "site-packages"
    for name, files in {
        "whole": ["whole.py"],
        "broken": ["broken/__init__.py"],
        "deep": ["deep/__init__.py", "deep/data/table.bin"],
    }.items():
        info = site / f"{name}-1.0.dist-info"
        info.mkdir(parents=True)
        for rel in files:
            (site / rel).parent.mkdir(parents=True, exist_ok=True)
            (site / rel).write_text("")
        (info / "RECORD").write_text(
            "".join(f"{rel},sha256=x,0\n" for rel in files) + f"{info.name}/RECORD,,\n"
        )
    (site / "broken" / "__init__.py").unlink()
    (site / "deep" / "data" / "table.bin").unlink()
    (site / "norecord-1.0.dist-info").mkdir()
    venv = namespace["venv_section"](str(tmp_path / "no-venv"), relative_layout())
    assert venv["half_installed"] == {}
    found = {
        name: namespace["missing_file"](str(site), name)
        for name in sorted(p.name for p in site.glob("*.dist-info"))
    }
    assert found == {
        "broken-1.0.dist-info": "broken/__init__.py",
        "deep-1.0.dist-info": None,
        "norecord-1.0.dist-info": "norecord-1.0.dist-info/RECORD",
        "whole-1.0.dist-info": None,
    }


SECRET = "hf_NeverLeavesTheHost_41c9"


def _run_facts_script(tmp_path: Path, env: dict[str, str]) -> str:
    """The facts script, run here on a made-up prefix whose server.json holds ``env``."""
    import subprocess
    import sys

    from localai_provision.facts.gather import remote_script

    prefix = tmp_path / "prefix"
    prefix.mkdir()
    argv = ["/p/venv/bin/mlx-omni-server", "--port", "1"]
    (prefix / "server.json").write_text(json.dumps({"argv": argv, "env": env, "hash": "h1"}))
    config = {
        "prefix": str(prefix),
        "layout": relative_layout(),
        "hf_home": str(tmp_path / "hf"),
        "python": sys.executable,
        "service": "process",
        "server_host": "127.0.0.1",
        "port": 9,
        "endpoints": [],
        "models": [],
        "timeout": 0.2,
        "launchd": None,
        "macos_settings": None,
        "pull": None,
    }
    done = subprocess.run(
        [sys.executable, "-I", "-S", "-c", remote_script(), json.dumps(config)],
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout


@pytest.mark.hostile
def test_the_facts_script_sends_no_value_of_server_json(tmp_path: Path) -> None:
    """server.json holds the server's environment, secrets included: the script sends its
    hash, argv, the variables' names and salted digests, never a value; a value differs
    from another in its digest, and the same value gets another digest on every run."""
    output = _run_facts_script(tmp_path, {"HF_TOKEN": SECRET, "PLAIN": "visible-value"})
    assert SECRET not in output and "visible-value" not in output
    facts = parse_facts("h", output, [])
    config = facts.server_config
    assert config is not None and config.readable and config.hash == "h1"
    assert config.argv == ("/p/venv/bin/mlx-omni-server", "--port", "1")
    assert set(config.env) == {"HF_TOKEN", "PLAIN"}
    from localai_provision.layout import env_digest

    assert config.env["HF_TOKEN"] == env_digest(config.salt, "HF_TOKEN", SECRET)
    assert config.env["HF_TOKEN"] != env_digest(config.salt, "HF_TOKEN", SECRET + "x")
    (tmp_path / "prefix").rename(tmp_path / "first")
    again = parse_facts("h", _run_facts_script(tmp_path, {"HF_TOKEN": SECRET}), [])
    assert again.server_config is not None
    assert again.server_config.env["HF_TOKEN"] != config.env["HF_TOKEN"]


def test_a_damaged_server_json_is_reported_not_shown(tmp_path: Path) -> None:
    namespace = remote_functions()
    path = tmp_path / "server.json"
    path.write_text('{"env": {"HF_TOKEN": "' + SECRET)  # cut short
    summary = namespace["server_config_section"](str(path))
    assert summary == {"readable": False}
    assert namespace["server_config_section"](str(tmp_path / "none.json")) is None


@pytest.mark.hostile
@pytest.mark.parametrize(
    ("before", "after"),
    [
        ("Welcome to mini-01!\nLast login: today\n", ""),
        ('\x1b[2J\x1b[Hbanner\n{"v": 1}\n', "bye from .bash_logout\n"),
        ("python wrapper: using pyenv 3.11\n", "\n--- localai facts begin ---\n"),
        ("", "wrapper done\n"),
    ],
)
def test_chatter_around_the_framed_facts_is_ignored(
    tmp_path: Path, before: str, after: str
) -> None:
    """A login banner, a chatty shell profile or a `python` wrapper printing around the
    facts: what is between the script's begin and end lines is read, the rest ignored."""
    output = _run_facts_script(tmp_path, {"HF_TOKEN": SECRET})
    facts = parse_facts("h", before + output + after, [])
    assert facts.server_config is not None and facts.server_config.hash == "h1"


def test_framing_markers_are_the_scripts_own() -> None:
    from localai_provision.facts.parse import FRAME_BEGIN, FRAME_END

    namespace = remote_functions()
    assert (namespace["BEGIN"], namespace["END"]) == (FRAME_BEGIN, FRAME_END)


@pytest.mark.hostile
@pytest.mark.parametrize(
    "stdout",
    [
        '--- localai facts begin ---\n{"server_config": "' + SECRET,  # cut short
        "Welcome!\n" + json.dumps({"env": {"HF_TOKEN": SECRET}}),  # no frame, no facts
        "--- localai facts begin ---\nnot json " + SECRET + "\n--- localai facts end ---\n",
    ],
)
def test_unusable_facts_output_is_an_error_that_shows_none_of_it(stdout: str) -> None:
    """When the output still cannot be read, the error says so and how much came, and shows
    stderr's last lines only (a traceback), never stdout: it could hold anything."""
    from localai_provision.connectors.base import CommandResult, Connector
    from localai_provision.errors import HostError
    from localai_provision.facts.gather import gather
    from localai_provision.site.model import HostSpec

    class Canned(Connector):
        def open(self) -> None: ...
        def close(self) -> None: ...
        def run(self, command: str, *, timeout: float = 0, stdin: bytes | None = None) -> Any:
            return CommandResult(command, 0, stdout, "a line on stderr\n", 0.0)

        def put(self, data: bytes, path: str, mode: int = 0o644) -> None: ...
        def put_file(self, local_path: Path, path: str, mode: int = 0o644) -> None: ...
        def append_file(
            self, local_path: Path, path: str, offset: int = 0, meter: Any = None
        ) -> None: ...
        def get(self, path: str) -> bytes:
            return b""

    spec = HostSpec(name="h", address="localhost")
    with pytest.raises(HostError) as caught:
        gather(Canned(spec), spec)
    error = caught.value
    assert SECRET not in str(error) and SECRET not in json.dumps(error.as_dict())
    assert "not shown" in error.message and error.output_tail == "a line on stderr"
