"""The facts script's compiled code kept on the host (facts/remote_loader.py): written once
in the user's private cache folder, loaded by the next check with the same facts, and never
trusted or needed when something about it is wrong."""

from __future__ import annotations

import json
import marshal
import os
import subprocess
import sys
from pathlib import Path

import pytest

from localai_provision.facts.gather import _script_words, facts_command
from localai_provision.facts.parse import parse_facts
from localai_provision.site import parse_site
from localai_provision.site.model import HostSpec

# What does not change between two runs (the system section has the clock, the service one
# the process list).
STATIC = ("venv", "generations", "prefix", "server_config", "state", "errors")


def _spec(tmp_path: Path) -> HostSpec:
    text = (
        "version: 1\nhosts:\n  here:\n    connection: local\n"
        f"    prefix: {tmp_path}/prefix\n    hf_home: {tmp_path}/hf\n"
        f"    python: {sys.executable}\n"
        "    packages: {mlx-omni-server: 0.5.1}\n    server: {port: 1}\n"
    )
    return parse_site(text, "site.yaml").hosts["here"]


def _facts(tmp_path: Path, home: Path) -> dict[str, object]:
    """The facts as the host prints them, the command run as the connector would run it."""
    env = {"PATH": os.environ["PATH"], "HOME": str(home)}
    done = subprocess.run(
        ["sh", "-c", facts_command(_spec(tmp_path))], env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert not done.stderr.strip(), done.stderr
    parse_facts("here", done.stdout, [])  # what the controller reads
    body = done.stdout.split("--- localai facts begin ---\n")[1]
    doc: dict[str, object] = json.loads(body.split("\n--- localai facts end ---")[0])
    return {key: doc.get(key) for key in STATIC}


def _folder(home: Path) -> Path:
    return home / ".cache" / "localai-provision" / "facts"


def test_the_first_check_keeps_the_compiled_script_and_the_next_loads_it(
    tmp_path: Path,
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    first = _facts(tmp_path, home)
    folder = _folder(home)
    [entry] = folder.iterdir()
    _, digest = _script_words()
    assert entry.name.startswith(digest + "-cpython-")
    assert folder.stat().st_mode & 0o777 == 0o700
    assert entry.stat().st_mode & 0o777 == 0o600
    written = entry.stat().st_mtime_ns
    assert _facts(tmp_path, home) == first  # the same facts from the kept code
    assert entry.stat().st_mtime_ns == written  # loaded, not written again


def test_a_damaged_entry_is_compiled_again_and_replaced(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    first = _facts(tmp_path, home)
    [entry] = _folder(home).iterdir()
    good = entry.read_bytes()
    entry.write_bytes(good[: len(good) // 2])  # cut short, as a full disk leaves it
    assert _facts(tmp_path, home) == first
    assert entry.read_bytes() == good
    entry.write_bytes(b"\x00not marshal at all")
    assert _facts(tmp_path, home) == first
    assert entry.read_bytes() == good


def test_entries_of_other_versions_are_removed_and_nothing_else(tmp_path: Path) -> None:
    home = tmp_path / "home"
    folder = _folder(home)
    folder.mkdir(parents=True, mode=0o700)
    old = folder / ("0" * 64 + "-cpython-38-30807f0")
    old.write_bytes(b"an older tool's entry")
    left = folder / (str(os.getpid()) + "-x.tmp")  # a writer that died before its rename
    left.write_bytes(b"partial")
    kept = folder / "notes.txt"  # not a name the loader writes
    kept.write_text("mine")
    _facts(tmp_path, home)
    names = sorted(p.name for p in folder.iterdir())
    assert old.name not in names and left.name not in names
    assert "notes.txt" in names and len(names) == 2


@pytest.mark.hostile
def test_a_folder_others_may_write_is_neither_read_nor_written(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    first = _facts(tmp_path, home)
    folder = _folder(home)
    [entry] = folder.iterdir()
    # Someone else's code planted where the loader looks, in a folder opened to others: a
    # loader that trusted it would run it.
    planted = compile("print('PLANTED'); raise SystemExit(0)", "<planted>", "exec")
    entry.write_bytes(marshal.dumps(planted))
    folder.chmod(0o777)
    assert _facts(tmp_path, home) == first
    assert entry.read_bytes() == marshal.dumps(planted)  # not written either
    folder.chmod(0o700)


def test_a_home_that_cannot_hold_the_cache_only_means_compiling(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.write_text("a file where the home folder should be")
    first = _facts(tmp_path, home)
    assert first["errors"] == {}
    assert home.read_text() == "a file where the home folder should be"
