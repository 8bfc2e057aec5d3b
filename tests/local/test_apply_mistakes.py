"""A user's mistake that reaches apply ends in a message with a hint, never a traceback, and a
failed apply counts what it changed before failing (`connection: local`, the STAND-IN
server of the tests' wheelhouse)."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from localai_provision.cli import Output, main
from tests.support.hostprep import free_port


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), Output(out, err))
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
def local_pip(monkeypatch: pytest.MonkeyPatch) -> None:
    # root's pip settings (/opt/wheels) would pull real packages instead of the stand-ins.
    for name in [n for n in os.environ if n.startswith("PIP_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)


def site(tmp_path: Path, wheelhouse: Path, packages: dict[str, str], **server: Any) -> Path:
    path = tmp_path / "site.yaml"
    host = {
        "connection": "local",
        "prefix": str(tmp_path / "prefix"),
        "hf_home": str(tmp_path / "hf"),
        "python": "/usr/bin/python3",
        "packages": packages,
        "package_index": {"no_index": True, "find_links": [str(wheelhouse)]},
        "server": {"port": free_port(), **server},
    }
    path.write_text(yaml.safe_dump({"version": 1, "hosts": {"here": host}}))
    return path


@pytest.mark.hostile
@pytest.mark.parametrize(
    ("packages", "server", "says"),
    [
        ({"mlx-omni-server": "0.5.1"}, {"env": {"MODE": "a\0b"}}, "NUL"),
        ({"mlx-omni-server": "0.5.1"}, {"extra_args": ["--x\0y"]}, "NUL"),
        ({"mlx-lm": "0.28.2"}, {}, "mlx-omni-server"),
    ],
    ids=["nul-in-env", "nul-in-extra-args", "no-server-pin"],
)
def test_a_mistake_reaching_apply_is_a_message_not_a_traceback(
    tmp_path: Path,
    wheelhouse: Path,
    local_pip: None,
    packages: dict[str, str],
    server: dict[str, Any],
    says: str,
) -> None:
    path = site(tmp_path, wheelhouse, packages, **server)
    try:
        code, out, err = run("apply", str(path), "--json")
    finally:
        run("stop", str(path))
    assert code == 1, out + err
    assert "Traceback" not in out + err and "internal error" not in out + err
    if "hosts" not in (json.loads(out) if out.strip() else {}):
        # Validate refuses it first (the site-file half of the same issue): with its line.
        assert str(path) in out + err and "error" in out + err, out + err
        assert not (tmp_path / "prefix" / "venv").exists()
        return
    [host] = json.loads(out)["hosts"]
    error = host["error"]
    assert error["kind"] == "HostError" and says in error["message"] and error["hint"]
    # Refused before anything was touched.
    assert host["changes"] == [] and not (tmp_path / "prefix" / "venv").exists()


def test_a_failed_apply_counts_what_it_changed_before_failing(
    tmp_path: Path, wheelhouse: Path, local_pip: None
) -> None:
    """The venv, packages, shim and configuration were done when the model step failed (its
    source folder is gone): CHANGES says so, and --json lists those changes and steps."""
    path = site(tmp_path, wheelhouse, {"mlx-omni-server": "0.5.1"})
    data = yaml.safe_load(path.read_text())
    data["hosts"]["here"]["models"] = [{"id": "org/gone", "source": str(tmp_path / "gone")}]
    path.write_text(yaml.safe_dump(data))
    code, out, _ = run("apply", str(path), "--json")
    assert code == 1
    [host] = json.loads(out)["hosts"]
    assert host["failed_step"] == "models"
    done = {c["resource"] for c in host["changes"]}
    assert {"package mlx-omni-server", "shim", "server-config"} <= done
    assert any(r.startswith("generation ") for r in done)  # built, not switched to
    assert "model org/gone" not in done and "service" not in done
    steps = [s["step"] for s in host["steps"]]
    assert steps[0] == "venv" and steps[1:3] == ["installer", "packages"]  # uv, then with it
    code, text, _ = run("apply", str(path))
    row = next(line for line in text.splitlines() if line.startswith("here"))
    assert row.split()[1:3] == ["failed", "0"]  # the second run had nothing left to do...
    assert "org/gone" in text  # ...but the model, which fails again
