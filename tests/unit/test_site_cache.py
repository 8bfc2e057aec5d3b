"""The validated-site cache: a file checked once is only resolved next time (no PyYAML, no
jsonschema), an invalid file is never cached and keeps its FILE:LINE:COL, and an entry that
is broken, foreign or stale is ignored."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from localai_provision.errors import SiteError
from localai_provision.site import cache, load_site

REPO = Path(__file__).resolve().parents[2]

SITE = """\
version: 1
defaults:
  packages: {mlx-omni-server: 0.5.1}
  identity_file: keys/id_ed25519
  server:
    env: {HF_TOKEN: {from_env: CACHE_TEST_TOKEN}}
hosts:
  mini-01: {address: 10.0.0.1}
  mini-02: {address: 10.0.0.2, ssh_client: paramiko}
"""


@pytest.fixture
def cache_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "cache"
    monkeypatch.setenv("XDG_CACHE_HOME", str(home))
    return home / "localai-provision" / "sites"


def entries(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.json")) if folder.exists() else []


def test_a_site_read_again_is_the_same_site_and_the_entry_is_private(
    tmp_path: Path, cache_home: Path
) -> None:
    site = tmp_path / "site.yaml"
    site.write_text(SITE)
    first = load_site(site)
    (entry,) = entries(cache_home)
    assert stat.S_IMODE(entry.stat().st_mode) == 0o600
    assert stat.S_IMODE(cache_home.stat().st_mode) == 0o700
    assert load_site(site) == first
    assert first.hosts["mini-02"].ssh_client == "paramiko"
    assert first.hosts["mini-01"].identity_file == str(tmp_path / "keys" / "id_ed25519")


def test_a_cached_site_needs_neither_yaml_nor_jsonschema(tmp_path: Path, cache_home: Path) -> None:
    site = tmp_path / "site.yaml"
    site.write_text(SITE)
    probe = (
        "import sys; from localai_provision.site import load_site; "
        f"load_site({str(site)!r}); print('jsonschema' in sys.modules, 'yaml' in sys.modules)"
    )
    env = {**os.environ, "XDG_CACHE_HOME": str(cache_home.parents[1])}

    def modules() -> str:
        done = subprocess.run(
            [sys.executable, "-c", probe], capture_output=True, text=True, env=env, cwd=REPO
        )
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    assert modules() == "True True"  # checked in full, then stored
    assert modules() == "False False"  # only resolved


def test_environment_values_and_the_folder_are_resolved_afresh(
    tmp_path: Path, cache_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CACHE_TEST_TOKEN", "one")
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    for folder in ("a", "b"):
        (tmp_path / folder / "site.yaml").write_text(SITE)
    assert load_site(tmp_path / "a" / "site.yaml").hosts["mini-01"].server.env["HF_TOKEN"] == "one"
    monkeypatch.setenv("CACHE_TEST_TOKEN", "two")
    again = load_site(tmp_path / "b" / "site.yaml")  # the same text: the same entry
    assert len(entries(cache_home)) == 1
    assert again.hosts["mini-01"].server.env["HF_TOKEN"] == "two"
    assert again.hosts["mini-01"].identity_file == str(tmp_path / "b" / "keys" / "id_ed25519")
    assert "two" not in entries(cache_home)[0].read_text()  # no resolved value is stored


def test_an_invalid_site_is_never_cached_and_keeps_its_position(
    tmp_path: Path, cache_home: Path
) -> None:
    site = tmp_path / "site.yaml"
    site.write_text(SITE.replace("address: 10.0.0.2", "address: 10.0.0.2, ssh_port: 0"))
    for _ in range(2):
        with pytest.raises(SiteError) as caught:
            load_site(site)
        assert caught.value.problems[0].render().startswith(f"{site}:9:")
    assert entries(cache_home) == []


@pytest.mark.parametrize(
    "content",
    [
        "not json",
        '{"key": "another", "data": {}}',
        "[1, 2]",
        '{"key": "KEY", "data": {"version": 1, "hosts": {"x": {"ssh_port": "nope"}}}}',
        '{"key": "KEY", "digest": "0", "data": {"version": 1, "hosts": {"x": {}}}}',
    ],
    ids=["garbage", "another key", "not a mapping", "no digest", "a wrong digest"],
)
def test_a_broken_or_foreign_entry_is_ignored_and_the_file_checked_in_full(
    tmp_path: Path, cache_home: Path, content: str
) -> None:
    site = tmp_path / "site.yaml"
    site.write_text(SITE)
    expected = load_site(site)
    (entry,) = entries(cache_home)
    entry.write_text(content.replace("KEY", entry.stem))
    assert load_site(site) == expected
    assert json.loads(entry.read_text())["key"] == entry.stem  # written again, whole


def test_a_change_to_the_checkers_or_the_tool_makes_a_new_entry(
    tmp_path: Path, cache_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    site = tmp_path / "site.yaml"
    site.write_text(SITE)
    load_site(site)
    monkeypatch.setattr(cache, "__version__", "99.0")
    load_site(site)
    assert len(entries(cache_home)) == 2


def test_an_unwritable_cache_is_no_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))  # a file where the folder would go
    site = tmp_path / "site.yaml"
    site.write_text(SITE)
    assert load_site(site).hosts["mini-01"].address == "10.0.0.1"


def test_the_entries_are_bounded(tmp_path: Path, cache_home: Path) -> None:
    for i in range(cache.MAX_ENTRIES + 5):
        site = tmp_path / f"site{i}.yaml"
        site.write_text(SITE.replace("10.0.0.1", f"10.0.1.{i}"))
        load_site(site)
    assert len(entries(cache_home)) == cache.MAX_ENTRIES
