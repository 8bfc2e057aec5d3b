"""Text a host controls (its pull report, a command's output) reaches the operator escaped.

Two hosts on this machine (`connection: local`): one whose pull report carries terminal
escape sequences, carriage returns, NUL and a right-to-left override; one whose `python`
prints the same on stderr and fails. Every printed output of plan, drift and status, and the
JUnit file, is searched for the raw characters.
"""

from __future__ import annotations

import io
import json
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from localai_provision.cli import Output, clean, main
from tests.support.hostprep import free_port

# Clear the screen, move home, set the window title, overwrite a line, fake a host's line,
# hide text right to left; NUL, DEL, a C1 CSI, a line separator.
HOSTILE = (
    "\x1b[2J\x1b[H\x1b]0;pwned\x07boom\rmini-02  in-sync  0 ms\n"
    "mini-03: no changes\x00\x7f\x9b31m\u202edesrever\u2028end"
)
RAW = ["\x1b", "\r", "\x00", "\x07", "\x7f", "\x9b", "\u202e", "\u2028"]


def run(*argv: str) -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), Output(out, err))
    return code, out.getvalue() + err.getvalue()


@pytest.fixture
def site(tmp_path: Path) -> Path:
    reporter = tmp_path / "reporter"
    (reporter / "state").mkdir(parents=True)
    report = {
        "v": 1,
        "host": "reporter",
        "finished_at": "2026-01-01T00:00:00Z" + HOSTILE,
        "result": "failed" + HOSTILE,
        "failed_step": "models" + HOSTILE,
        "error": HOSTILE,
        "changes": 1,
        "git_pull": {"ok": False, "error": HOSTILE},
    }
    (reporter / "state" / "pull-report.json").write_text(json.dumps(report))
    wrapper = tmp_path / "python-wrapper"
    wrapper.write_text(f"#!/bin/sh\nprintf '%s\\n' {json.dumps(HOSTILE)} >&2\nexit 1\n")
    wrapper.chmod(0o755)
    path = tmp_path / "site.yaml"
    hosts = {
        "reporter": {"prefix": str(reporter), "python": sys.executable},
        "broken": {"prefix": str(tmp_path / "broken"), "python": str(wrapper)},
    }
    lines = ["version: 1", "hosts:"]
    for name, settings in hosts.items():
        lines += [
            f"  {name}:",
            "    connection: local",
            f"    prefix: {settings['prefix']}",
            f"    hf_home: {tmp_path / 'hf'}",
            f"    python: {settings['python']}",
            "    packages: {mlx-omni-server: 0.5.1}",
            f"    server: {{port: {free_port()}}}",
        ]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.hostile
def test_host_text_is_printed_escaped_and_junit_stays_valid(site: Path, tmp_path: Path) -> None:
    junit = tmp_path / "drift.xml"
    outputs = {}
    for argv in (
        ("plan", str(site)),
        ("drift", str(site)),
        ("drift", str(site), "--junit", str(junit)),
        ("status", str(site)),
        ("apply", str(site), "--dry-run"),
    ):
        code, text = run(*argv)
        assert code in (1, 2), text
        outputs[" ".join(argv[:1] + argv[2:])] = text
    for command, text in outputs.items():
        found = [ch for ch in RAW if ch in text]
        assert not found, f"{command} printed {found!r} raw:\n{text}"
    # Still there to read, escaped: the operator sees what the host sent.
    assert "\\x1b[2J" in outputs["status"] and "\\u202edesrever" in outputs["drift"]
    # A host cannot fake a line of its own: its newlines in a warning or a cell are escaped.
    for text in outputs.values():
        assert not any(line.startswith(("mini-02", "mini-03")) for line in text.splitlines())
    tree = ET.parse(junit)  # well-formed despite the host's control characters
    xml = junit.read_text()
    assert not [ch for ch in RAW if ch in xml]
    assert {case.get("name") for case in tree.getroot()} == {"reporter", "broken"}


def test_clean_keeps_ordinary_text() -> None:
    text = "mini-01: 3 changes\n  ~ venv  update  Python 3.10 -> 3.11, café, 模型\ttab"
    assert clean(text) == text
    assert clean("a\nb", one_line=True) == "a\\nb"
