"""Lock files: parsing, matching the site's pins, and plans against a locked set."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from localai_provision.facts.parse import parse_facts
from localai_provision.lock import LockError, parse_lock, plan_locks, read_lock, requirements
from localai_provision.plan import plan
from localai_provision.site import parse_site
from tests.unit.test_plan import in_sync_doc

REPO = Path(__file__).resolve().parents[2]

LOCK = """# localai lock for linux-x86_64
mlx-lm==0.28.2 \\
    --hash=sha256:aaaa
    # via mlx-omni-server
mlx-omni-server==0.5.1 \\
    --hash=sha256:bbbb
MarkupSafe==3.0.2 \\
    --hash=sha256:cccc
torch==2.13.0+cpu \\
    --hash=sha256:dddd
"""


def site_with_lock(tmp_path: Path, pins: str = "mlx-omni-server: 0.5.1, mlx-lm: 0.28.2") -> Path:
    site = tmp_path / "site.yaml"
    site.write_text(
        "version: 1\nhosts:\n  mini-01:\n    connection: local\n"
        "    prefix: /tmp/rec/home/.localai\n    hf_home: /tmp/rec/home/hf\n"
        f"    python: /usr/bin/python3\n    packages: {{{pins}}}\n    models: [org/tiny-a]\n"
        "    server: {port: 18999}\n    lock: locks/set\n"
    )
    (tmp_path / "locks").mkdir(exist_ok=True)
    (tmp_path / "locks" / "set.linux-x86_64.txt").write_text(LOCK)
    return site


def test_parse_lock() -> None:
    assert parse_lock(LOCK) == {
        "mlx-lm": "0.28.2",
        "mlx-omni-server": "0.5.1",
        "markupsafe": "3.0.2",
        "torch": "2.13.0+cpu",
    }


def test_shipped_locks_hold_the_field_notes_set() -> None:
    linux = parse_lock((REPO / "playbooks/locks/demo.linux-x86_64.txt").read_text())
    mac = parse_lock((REPO / "playbooks/locks/demo.macos-arm64.txt").read_text())
    for packages in (linux, mac):
        assert (packages["mlx-omni-server"], packages["mlx-lm"], packages["mlx"]) == (
            "0.5.1",
            "0.28.2",
            "0.29.3",
        )
    assert linux["torch"] == "2.13.0+cpu" and linux["mlx-cpu"] == "0.29.3"
    assert "mlx-metal" in mac and not any(name.startswith("nvidia") for name in linux)


def test_a_lock_that_does_not_match_the_pins_is_refused(tmp_path: Path) -> None:
    from localai_provision.site import load_site

    spec = load_site(site_with_lock(tmp_path, "mlx-omni-server: 0.5.2")).hosts["mini-01"]
    with pytest.raises(LockError, match=r"mlx-omni-server 0.5.2 \(lock has 0.5.1\).*localai lock"):
        read_lock(spec, "linux-x86_64")
    with pytest.raises(LockError, match="no lock for macos-arm64"):
        read_lock(spec, "macos-arm64")


def test_plan_against_a_locked_set(tmp_path: Path) -> None:
    from localai_provision.site import load_site

    spec = load_site(site_with_lock(tmp_path)).hosts["mini-01"]
    doc = in_sync_doc()
    doc["venv"]["dist_infos"] = [
        "mlx_omni_server-0.5.1.dist-info",
        "mlx_lm-0.28.1.dist-info",
        "torch-2.13.0+cpu.dist-info",
        "requests-2.32.0.dist-info",
        "pip-24.0.dist-info",
    ]
    facts = parse_facts("mini-01", json.dumps(doc), spec.models)
    changes = {c.resource: c for c in plan(spec, facts, read_lock(spec, "linux-x86_64"))}
    assert changes["package mlx-lm"].action == "update"
    assert changes["package markupsafe"].action == "create"
    assert "locked in set.linux-x86_64.txt" in changes["package markupsafe"].reason
    assert changes["package requests"].action == "remove"
    assert "package pip" not in changes  # the installer's own tools are not part of a set
    assert changes["service"].action == "restart"


def test_a_missing_lock_is_a_planned_failure(tmp_path: Path) -> None:
    from localai_provision.lock import lock_for
    from localai_provision.site import load_site

    site = site_with_lock(tmp_path)
    (tmp_path / "locks" / "set.linux-x86_64.txt").unlink()
    spec = load_site(site).hosts["mini-01"]
    facts = parse_facts("mini-01", json.dumps(in_sync_doc()), spec.models)
    [change] = [c for c in plan(spec, facts, lock_for(spec, facts)) if c.resource == "lock"]
    assert change.action == "fail" and "run `localai lock SITE`" in change.reason


def test_linux_requirements_and_grouping() -> None:
    site = parse_site(
        "version: 1\ndefaults:\n  lock: l/a\n  packages: {mlx-omni-server: 0.5.1, mlx: 0.29.3}\n"
        "hosts:\n  a: {}\n  b: {}\n  c: {lock: l/c}\n",
        "s.yaml",
    )
    spec = site.hosts["a"]
    assert requirements(spec, "linux-x86_64") == [
        "mlx-omni-server==0.5.1",
        "mlx[cpu]==0.29.3",
        "torch==2.13.0+cpu",
    ]
    assert requirements(spec, "macos-arm64") == ["mlx==0.29.3", "mlx-omni-server==0.5.1"]
    jobs = plan_locks(
        list(site.hosts.values()),
        {
            "a": [("linux-x86_64", "3.11")],
            "b": [("macos-arm64", "3.11")],
            "c": [("macos-arm64", "3.11")],
        },
    )
    assert [(j.hosts, j.platform) for j in jobs] == [
        (("a", "b"), "linux-x86_64"),
        (("a", "b"), "macos-arm64"),
        (("c",), "macos-arm64"),
    ]
    mixed = parse_site(
        "version: 1\ndefaults: {lock: l/a, packages: {mlx-omni-server: 0.5.1}}\nhosts:\n"
        "  a: {packages: {x: '1'}}\n  b: {packages: {x: '2'}}\n",
        "s.yaml",
    )
    with pytest.raises(LockError, match="share `lock"):
        plan_locks(list(mixed.hosts.values()), {"a": [("linux-x86_64", "3.11")]})


def test_a_lock_resolved_from_other_requirements_is_stale(tmp_path: Path) -> None:
    from localai_provision.site import load_site

    site = site_with_lock(tmp_path)
    lock_file = tmp_path / "locks" / "set.linux-x86_64.txt"
    lock_file.write_text("# from: mlx-omni-server==0.5.1 mlx-lm==0.28.2 torch==2.12.0+cpu\n" + LOCK)
    spec = load_site(site).hosts["mini-01"]
    with pytest.raises(LockError, match=r"other requirements \(now also torch==2.13.0\+cpu\)"):
        read_lock(spec, "linux-x86_64")
    lock_file.write_text("# from: mlx-lm==0.28.2 mlx-omni-server==0.5.1 torch==2.13.0+cpu\n" + LOCK)
    assert read_lock(spec, "linux-x86_64").packages["torch"] == "2.13.0+cpu"
