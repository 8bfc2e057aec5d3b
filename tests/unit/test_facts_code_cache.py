"""The facts script's compiled code kept on the host (facts/remote_loader.py): written once
in the user's private cache folder, loaded by the next check with the same facts, and never
trusted or needed when something about it is wrong."""

from __future__ import annotations

import json
import marshal
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from localai_provision.facts.gather import _HERE, _script_words, facts_command
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


def _run(tmp_path: Path, home: Path) -> subprocess.CompletedProcess[str]:
    """The facts command run as the connector would run it, by `sh`, in ``home``."""
    env = {"PATH": os.environ["PATH"], "HOME": str(home)}
    return subprocess.run(
        ["sh", "-c", facts_command(_spec(tmp_path))], env=env, capture_output=True, text=True
    )


def _facts(tmp_path: Path, home: Path) -> dict[str, object]:
    """The facts as the host prints them, checked as the controller reads them."""
    done = _run(tmp_path, home)
    assert done.returncode == 0, done.stderr
    assert not done.stderr.strip(), done.stderr
    parse_facts("here", done.stdout, [])  # what the controller reads
    body = done.stdout.split("--- localai facts begin ---\n")[1]
    doc: dict[str, object] = json.loads(body.split("\n--- localai facts end ---")[0])
    return {key: doc.get(key) for key in STATIC}


def _folder(home: Path) -> Path:
    return home / ".cache" / "localai-provision" / "facts"


PLANTED = marshal.dumps(compile("print('PLANTED CODE RAN')", "<planted>", "exec"))


def _kept(tmp_path: Path) -> tuple[Path, Path]:
    """A home whose first check has kept the code, and that entry."""
    home = tmp_path / "home"
    home.mkdir()
    _facts(tmp_path, home)
    [entry] = _folder(home).iterdir()
    return home, entry


def test_the_first_check_keeps_the_compiled_script_and_the_next_loads_it(
    tmp_path: Path,
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    first = _facts(tmp_path, home)
    folder = _folder(home)
    [entry] = folder.iterdir()
    _, digest, _ = _script_words()
    assert entry.name.startswith(digest + "-cpython-")
    assert folder.stat().st_mode & 0o777 == 0o700
    assert entry.stat().st_mode & 0o777 == 0o600
    kept = entry.stat()
    assert _facts(tmp_path, home) == first  # the same facts from the kept code
    again = entry.stat()
    assert (again.st_ino, again.st_mtime_ns) == (kept.st_ino, kept.st_mtime_ns)  # not rewritten
    # And it is the kept code that runs: other code in its place, in the user's own folder.
    entry.write_bytes(PLANTED)
    assert _run(tmp_path, home).stdout == "PLANTED CODE RAN\n"


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda good: good[: len(good) // 2], id="cut-short"),
        pytest.param(lambda good: b"\x00not marshal at all", id="garbage"),
        pytest.param(lambda good: marshal.dumps(True), id="a-value-not-code"),
        pytest.param(lambda good: marshal.dumps("print('source text')"), id="source-text"),
    ],
)
def test_a_damaged_entry_is_compiled_again_and_replaced(
    tmp_path: Path, damage: Callable[[bytes], bytes]
) -> None:
    home, entry = _kept(tmp_path)
    good = entry.read_bytes()
    first = _facts(tmp_path, home)
    entry.write_bytes(damage(good))
    assert _facts(tmp_path, home) == first
    assert entry.read_bytes() == good


def test_entries_of_older_versions_are_removed_and_nothing_else(tmp_path: Path) -> None:
    home, entry = _kept(tmp_path)
    folder = entry.parent
    suffix = entry.name[64:]  # -cpython-311-30b07f0: this Python's
    older = folder / ("0" * 64 + suffix)  # an older tool's, for this Python
    other_python = folder / ("0" * 64 + "-cpython-38-30812f0")  # another Python's: kept
    dead = folder / "x.123.tmp"  # a writer that died before its rename, two hours ago
    fresh = folder / "y.456.tmp"  # a writer at work now
    mine = folder / "notes.txt"  # not a name the loader writes
    for path in (older, other_python, dead, fresh, mine):
        path.write_bytes(b"x")
    two_hours_ago = time.time() - 7200
    os.utime(dead, (two_hours_ago, two_hours_ago))
    entry.unlink()  # so that the next check compiles and writes
    _facts(tmp_path, home)
    names = {p.name for p in folder.iterdir()}
    assert names == {entry.name, other_python.name, fresh.name, mine.name}


@pytest.mark.hostile
@pytest.mark.parametrize("how", ["open-to-others", "another-owner"])
def test_a_folder_not_the_users_own_is_neither_read_nor_written(tmp_path: Path, how: str) -> None:
    home, entry = _kept(tmp_path)
    first = _facts(tmp_path, home)
    # Someone else's code where the loader looks: a loader that trusted it would run it.
    entry.write_bytes(PLANTED)
    folder = entry.parent
    if how == "open-to-others":
        folder.chmod(0o777)
    else:
        if os.geteuid() != 0:
            pytest.skip("needs root to give the folder away")
        os.chown(folder, 65534, 65534)
    assert _facts(tmp_path, home) == first
    assert entry.read_bytes() == PLANTED  # not written either
    folder.chmod(0o700)
    os.chown(folder, os.getuid(), os.getgid())


@pytest.mark.hostile
def test_a_linked_entry_or_folder_is_not_followed(tmp_path: Path) -> None:
    home, entry = _kept(tmp_path)
    first = _facts(tmp_path, home)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(mode=0o700)
    (elsewhere / entry.name).write_bytes(PLANTED)
    entry.unlink()
    entry.symlink_to(elsewhere / entry.name)  # the entry a link to planted code
    assert _facts(tmp_path, home) == first
    assert not entry.is_symlink()  # replaced by the real entry
    folder = entry.parent
    shutil.rmtree(folder)
    folder.symlink_to(elsewhere)  # the folder itself a link
    assert _facts(tmp_path, home) == first
    assert (elsewhere / entry.name).read_bytes() == PLANTED


def test_a_home_that_cannot_hold_the_cache_only_means_compiling(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.write_text("a file where the home folder should be")
    first = _facts(tmp_path, home)
    assert first["errors"] == {}
    assert home.read_text() == "a file where the home folder should be"


def test_the_loader_runs_on_the_oldest_python_hosts_have(tmp_path: Path) -> None:
    # macOS's /usr/bin/python3 is 3.9; the script's floor is 3.8.
    found = ("/usr/bin/python3.8", "/root/.pyenv/versions/3.8.18/bin/python3.8")
    old = next((p for p in found if Path(p).exists()), None)
    if old is None:
        pytest.skip("no Python 3.8 here")
    loader = (_HERE / "remote_loader.py").read_text()
    home = tmp_path / "home"
    home.mkdir()
    env = {"PATH": os.environ["PATH"], "HOME": str(home)}
    for _ in range(2):  # compiled and kept, then loaded
        done = subprocess.run(
            [old, "-I", "-S", "-W", "error", "-c", loader, "d" * 64, "print('ran')", "{}"],
            env=env,
            capture_output=True,
            text=True,
        )
        assert (done.returncode, done.stdout, done.stderr) == (0, "ran\n", "")
    assert len(list(_folder(home).iterdir())) == 1
