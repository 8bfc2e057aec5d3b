"""`localai validate` and `localai hosts` through the real CLI entry point."""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from localai_provision.cli import Output, main
from tests.support.examples import examples

REPO = Path(__file__).resolve().parents[2]
LAB = str(REPO / "playbooks" / "lab.yaml")


# The server pin every site needs, appended so that the positions above it stay.
PIN = "defaults: {packages: {mlx-omni-server: 0.5.1}}\n"


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), Output(out, err))
    return code, out.getvalue(), err.getvalue()


def test_validate_valid_file_prints_one_summary_line() -> None:
    code, out, err = run("validate", LAB)
    assert code == 0, err
    assert out.strip().endswith("valid: 4 hosts, 2 groups, 2 models")
    assert err == ""


def test_validate_invalid_file_lists_every_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\nhosts:\n  a:\n    ssh_port: 0\n    adress: x\n" + PIN)
    code, _, err = run("validate", str(bad))
    assert code == 1
    lines = err.strip().splitlines()
    assert lines[0].startswith(f"{bad}:4:15: error: ")
    assert lines[1].startswith(f"{bad}:5:5: error: ") and "did you mean `address`" in lines[1]
    assert lines[-1] == f"{bad}: 2 errors"


def test_validate_json(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\nhosts:\n  a:\n    ssh_port: 0\n" + PIN)
    code, out, _ = run("validate", "--json", LAB, str(bad))
    assert code == 1
    data = json.loads(out)
    assert data["valid"] is False
    assert [f["valid"] for f in data["files"]] == [True, False]
    error = data["files"][1]["errors"][0]
    assert error == {
        "file": str(bad),
        "line": 4,
        "column": 15,
        "path": "hosts.a.ssh_port",
        "message": "0 is below the minimum 1",
    }


def test_missing_and_unreadable_files_are_one_line_errors(tmp_path: Path) -> None:
    code, _, err = run("validate", str(tmp_path / "nope.yaml"))
    assert code == 1 and "no such file" in err and "Traceback" not in err
    code, _, err = run("validate", str(tmp_path))
    assert code == 1 and "folder" in err
    binary = tmp_path / "bin.yaml"
    binary.write_bytes(b"version: 1\nhosts: \xff\xfe\n")
    code, _, err = run("validate", str(binary))
    assert code == 1 and f"{binary}:2:8: error:" in err and "UTF-8" in err


def test_hosts_shows_resolved_settings_and_limits() -> None:
    code, out, _ = run("hosts", LAB, "--limit", "big", "--json")
    assert code == 0
    hosts = json.loads(out)["hosts"]
    assert [h["name"] for h in hosts] == ["studio-01"]
    assert [m["id"] for m in hosts[0]["models"]] == [
        "mlx-community/Qwen3-4B-4bit",
        "mlx-community/Qwen3-30B-A3B-4bit",
    ]
    code, out, _ = run("hosts", LAB, "-l", "mini-0[12]")
    assert code == 0
    assert out.startswith("mini-01:\n  address: 10.20.0.11\n")
    assert "mini-02:" in out and "mini-03:" not in out


def test_hosts_with_a_limit_matching_nothing_fails_clearly() -> None:
    code, out, err = run("hosts", LAB, "--limit", "mac-*")
    assert code == 1 and out == ""
    assert "'mac-*' matches no host or group" in err


def test_hosts_on_invalid_file_reports_like_validate(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\nhosts:\n  a: {ssh_port: x}\n" + PIN)
    code, _, err = run("hosts", str(bad))
    assert code == 1 and err.startswith(f"{bad}:3:17: error:")


def test_module_and_console_script_work_from_anywhere(tmp_path: Path) -> None:
    # Run from an unrelated folder so the installed package (and its schema) is what runs.
    result = subprocess.run(
        [sys.executable, "-m", "localai_provision", "validate", LAB],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    result = subprocess.run(
        [sys.executable, "-m", "localai_provision", "--version"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.stdout.startswith("localai ")


@settings(
    max_examples=examples(200),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(st.text(max_size=300))
def test_no_input_whatever_gives_a_traceback(tmp_path: Path, text: str) -> None:
    site = tmp_path / "fuzz.yaml"
    site.write_text(text, encoding="utf-8", errors="surrogatepass")
    code, _, err = run("validate", str(site))
    assert code in (0, 1)
    assert "internal error" not in err and "Traceback" not in err


@settings(
    max_examples=examples(200),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=8),
        lambda children: (
            st.lists(children, max_size=3)
            | st.dictionaries(
                st.sampled_from(
                    [
                        "version",
                        "hosts",
                        "groups",
                        "defaults",
                        "a",
                        "server",
                        "models",
                        "packages",
                        "address",
                        "ssh_port",
                        "id",
                    ]
                ),
                children,
                max_size=4,
            )
        ),
        max_leaves=20,
    )
)
def test_no_structure_whatever_gives_a_traceback(tmp_path: Path, data: object) -> None:
    site = tmp_path / "fuzz.yaml"
    site.write_text(json.dumps({"version": 1, "hosts": {"a": data}}))
    code, _, err = run("validate", str(site))
    assert code in (0, 1)
    assert "internal error" not in err, err


@pytest.mark.parametrize(
    "argv",
    [
        [],  # no command
        ["validate"],  # a missing argument
        ["drift", "site.yaml", "--limt", "x"],  # a mistyped option
        ["apply", "site.yaml", "--forks", "many"],  # a value of the wrong kind
        ["frobnicate"],  # no such command
    ],
)
def test_a_usage_error_exits_64_not_2_which_means_changes(argv: list[str]) -> None:
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        try:
            code = main(argv, Output(io.StringIO(), err))
        except SystemExit as exc:
            code = exc.code  # type: ignore[assignment]
    assert code == 64, err.getvalue()
    assert "usage: localai" in err.getvalue()


def test_the_command_exits_64_on_a_usage_error() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "localai_provision", "plan", "x.yaml", "--bogus"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 64 and "unrecognized arguments: --bogus" in done.stderr
