"""apply never deletes what the tool did not create (on this machine, `connection: local`).

A prefix that is not a dedicated folder (`~`, a shared folder) may hold another program's
venv where the site's goes, temporary-looking files anywhere below it, a `wheels` folder of
someone's own. What the tool makes carries its marker (`.localai-owned`); only that goes.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import pytest

from localai_provision.apply import HostContext, build_venv, clear_leftovers
from localai_provision.connectors.local import LocalConnector
from localai_provision.errors import HostError
from localai_provision.facts.gather import gather
from localai_provision.plan import plan
from localai_provision.site import parse_site
from localai_provision.site.model import HostSpec
from localai_provision.transfer import list_files

pytestmark = pytest.mark.hostile


def spec_for(tmp_path: Path) -> HostSpec:
    site = parse_site(
        "version: 1\nhosts:\n  here:\n    connection: local\n"
        f"    prefix: {tmp_path}/home\n    hf_home: {tmp_path}/home/hf\n"
        f"    python: {sys.executable}\n    models: [org/tiny]\n"
        "    packages: {mlx-omni-server: 0.5.1}\n",
        "s.yaml",
    )
    return site.hosts["here"]


def test_a_venv_the_tool_did_not_make_is_not_deleted(tmp_path: Path) -> None:
    spec = spec_for(tmp_path)
    with LocalConnector(spec) as connector:
        host = HostContext.of(connector, spec, gather(connector, spec))
        theirs = Path(host.layout.venv)  # where the generation the site wants goes
        (theirs / "bin").mkdir(parents=True)
        (theirs / "bin" / "their-tool").write_text("precious")
        facts = gather(connector, spec)
        found = facts.generations.get(host.generation)
        assert found is not None and not found.owned
        refused = [c for c in plan(spec, facts) if c.kind == "generation"]
        assert [c.action for c in refused] == ["fail"]
        assert "not made by localai-provision" in refused[0].reason
        with pytest.raises(HostError) as caught:
            build_venv(HostContext.of(connector, spec, facts))
    assert (theirs / "bin" / "their-tool").read_text() == "precious"
    error = caught.value
    assert str(theirs) in error.message and "not made by localai-provision" in error.message
    assert "move that folder away" in error.hint


def test_a_venv_the_tool_made_is_marked_first_and_can_be_rebuilt(tmp_path: Path) -> None:
    spec = spec_for(tmp_path)
    with LocalConnector(spec) as connector:
        host = HostContext.of(connector, spec, gather(connector, spec))
        # An interrupted build: the folder and its first marker, nothing else.
        venv = Path(host.layout.venv)
        venv.mkdir(parents=True)
        (venv / ".localai-owned").write_text("")
        build_venv(host)
        after = gather(connector, spec).generations.get(host.generation)
    assert after is not None and after.owned and after.complete
    assert (venv / "bin" / "python").exists()


def test_leftovers_are_cleared_only_where_the_tool_writes(tmp_path: Path) -> None:
    spec = spec_for(tmp_path)
    home = tmp_path / "home"
    ours = [
        home / ".localai-tmp-1a2b3c",
        home / "state" / ".localai-tmp-4d5e6f",
        home / "hf" / "hub" / "models--org--tiny" / "refs" / "main.localai-tmp",
        home / "hf" / "hub" / "models--org--tiny" / "snapshots" / "c" / "w.bin.localai-tmp",
    ]
    theirs = [
        home / "projects" / ".localai-tmp-notes",  # the prefix is a home: not ours to clear
        home / "projects" / "deep" / "draft.localai-tmp",
        home / "hf" / "hub" / "models--other--model" / "refs" / "main.localai-tmp",
        home / "state" / "keep.txt",
    ]
    for path in ours + theirs:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("x")
    with LocalConnector(spec) as connector:
        facts = gather(connector, spec)
        clear_leftovers(HostContext.of(connector, spec, facts))
    assert [p for p in ours if p.exists()] == []
    assert [p for p in theirs if not p.exists()] == []


def test_a_wheels_folder_that_was_there_keeps_its_files(tmp_path: Path) -> None:
    """`package_index.push` prunes PREFIX/wheels to the locked set: only a folder the tool
    made (its marker), never one of the same name that was there before."""
    spec = spec_for(tmp_path)
    wheels = tmp_path / "home" / "wheels"
    wheels.mkdir(parents=True)
    (wheels / "my-own-1.0-py3-none-any.whl").write_text("mine")
    mine = tmp_path / "home" / "ours"
    with LocalConnector(spec) as connector:
        kept = list_files(
            connector, spec, sys.executable, str(wheels), "packages", create=True, keep=[]
        )
        assert "my-own-1.0-py3-none-any.whl" in kept
        list_files(connector, spec, sys.executable, str(mine), "packages", create=True, keep=[])
        (mine / "stale-0.1-py3-none-any.whl").write_text("old")
        listing = list_files(
            connector, spec, sys.executable, str(mine), "packages", create=True, keep=["a.whl"]
        )
    assert (wheels / "my-own-1.0-py3-none-any.whl").read_text() == "mine"
    assert not (mine / "stale-0.1-py3-none-any.whl").exists()
    assert set(listing) == {".localai-owned"}


def test_spec_without_models_clears_the_prefix_only(tmp_path: Path) -> None:
    spec = dataclasses.replace(spec_for(tmp_path), models=())
    leftover = tmp_path / "home" / ".localai-tmp-zz"
    leftover.parent.mkdir(parents=True)
    leftover.write_text("x")
    with LocalConnector(spec) as connector:
        clear_leftovers(HostContext.of(connector, spec, gather(connector, spec)))
    assert not leftover.exists()
