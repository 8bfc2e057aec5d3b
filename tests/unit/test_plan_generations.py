"""Generations in plan: facts in, changes out (the recorded Linux host of test_plan.py, which
serves the site's set from its own generation), and the generation steps' pure commands."""

from __future__ import annotations

import json
from typing import Any

import pytest

from localai_provision.apply.generations import backup_config_command, prune_command, switch_argv
from localai_provision.facts.parse import parse_facts
from localai_provision.layout import Layout
from localai_provision.plan import generation_id, plan
from localai_provision.plan.generations import settings_digest
from localai_provision.site import parse_site
from localai_provision.site.model import HostSpec
from tests.unit.test_plan import SITE, in_sync_doc, spec_with

PREFIX = "/tmp/rec/home/.localai"


def upgraded(**more: str) -> HostSpec:
    """The test site with mlx-omni-server 0.5.2 (another set, another generation)."""
    text = SITE.replace("mlx-omni-server: 0.5.1", "mlx-omni-server: 0.5.2")
    text += "".join(f"    {line}\n" for line in more.values())
    return parse_site(text, "s.yaml").hosts["mini-01"]


def item(name: str, mtime: int, **fields: Any) -> dict[str, Any]:
    meta = {"created": f"2026-12-0{mtime}T00:00:00Z", "packages": {}, "size_kb": 2048}
    return {
        "name": name,
        "owned": True,
        "complete": True,
        "meta": json.dumps(meta),
        "failed": None,
        "mtime": mtime,
        **fields,
    }


def rows(spec: HostSpec, doc: dict[str, Any], **options: Any) -> dict[str, tuple[str, str]]:
    facts = parse_facts("mini-01", json.dumps(doc), spec.models)
    return {
        c.resource.split()[0] + (" " + c.name if c.kind == "package" else ""): (c.action, c.reason)
        for c in plan(spec, facts, **options)
    }


def wanted(spec: HostSpec) -> str:
    return generation_id(spec, parse_facts("mini-01", json.dumps(in_sync_doc()), spec.models), None)


def test_a_host_serving_the_sites_set_plans_no_generation() -> None:
    assert rows(spec_with(), in_sync_doc()) == {}


def test_another_set_is_a_new_generation_beside_the_one_that_serves_with_its_cost() -> None:
    doc = in_sync_doc()
    old = doc["generations"]["current"].split("/")[1]
    changes = rows(upgraded(), doc)
    action, reason = changes["generation"]
    assert action == "create"
    assert f"new generation {wanted(upgraded())} beside {old}" in reason
    assert "about 0 MB" in reason or "MB on the host" in reason
    # Only what differs from the set that serves is listed; the service restarts once.
    assert changes["package mlx-omni-server"][0] == "update"
    assert "package mlx-lm" not in changes
    assert changes["service"][0] == "restart" and "generation" in changes["service"][1]


def test_a_set_built_before_is_a_switch_without_a_build() -> None:
    doc = in_sync_doc()
    doc["generations"]["items"].append(item(wanted(upgraded()), 2))
    changes = rows(upgraded(), doc)
    assert changes["generation"][0] == "update"
    assert "switch to generation" in changes["generation"][1]
    assert not [k for k in changes if k.startswith("package ")]


def failed(settings: str) -> dict[str, Any]:
    record = {"failed_at": "2026-12-02T01:00:00Z", "step": "verify", "message": "no answer"}
    return item(wanted(upgraded()), 2, failed=json.dumps({**record, "settings": settings}))


def test_a_failed_set_is_not_tried_again_with_the_same_settings() -> None:
    doc = in_sync_doc()
    doc["generations"]["items"].append(failed(settings_digest(upgraded())))
    changes = rows(upgraded(), doc)
    action, reason = changes["generation"]
    assert action == "fail" and "not tried again" in reason and "--retry-failed" in reason
    assert "service" not in changes  # nothing moves


@pytest.mark.parametrize(
    ("settings", "retry", "why"),
    [("same", True, "--retry-failed"), ("other", False, "the site changed since")],
)
def test_a_failed_set_is_built_again_when_asked_or_when_the_site_changed(
    settings: str, retry: bool, why: str
) -> None:
    doc = in_sync_doc()
    digest = settings_digest(upgraded()) if settings == "same" else "0" * 16
    doc["generations"]["items"].append(failed(digest))
    action, reason = rows(upgraded(), doc, retry_failed=retry)["generation"]
    assert action == "create" and why in reason


def test_a_folder_the_tool_did_not_make_where_the_generation_goes_is_refused() -> None:
    doc = in_sync_doc()
    doc["generations"]["items"].append(item(wanted(upgraded()), 2, owned=False))
    action, reason = rows(upgraded(), doc)["generation"]
    assert action == "fail" and "not made by localai-provision" in reason


def test_a_host_of_the_single_venv_gets_its_first_generation_beside_it() -> None:
    doc = in_sync_doc()
    del doc["generations"]
    doc["venv"]["path"] = f"{PREFIX}/venv"
    action, reason = rows(spec_with(), doc)["generation"]
    assert action == "create" and reason.startswith(
        f"new generation {wanted(spec_with())} beside venv"
    )


@pytest.mark.parametrize(
    ("keep", "removed"),
    [(2, {"aaa"}), (3, set()), (1, {"aaa", "bbb"})],
)
def test_generations_beyond_keep_are_removed_newest_failure_kept(
    keep: int, removed: set[str]
) -> None:
    doc = in_sync_doc()
    gens = doc["generations"]
    gens["items"][0]["mtime"] = 5
    gens["previous"] = "generations/bbb"
    gens["items"] += [
        item("aaa", 1),
        item("bbb", 3),
        item("fff", 2, failed=json.dumps({"step": "verify", "message": "x"})),
        item("theirs", 1, owned=False),
    ]
    spec = parse_site(SITE + f"    generations: {{keep: {keep}}}\n", "s.yaml").hosts["mini-01"]
    facts = parse_facts("mini-01", json.dumps(doc), spec.models)
    gone = {c.name for c in plan(spec, facts) if c.kind == "generation" and c.action == "remove"}
    assert gone == removed  # never `theirs` (no marker), never the newest failed one


def test_the_switch_command_points_current_last_and_swaps_the_configuration_on_rollback() -> None:
    layout = Layout(PREFIX)
    argv = switch_argv("/usr/bin/python3", layout, "abc", "venv", swap_config=True)
    config = json.loads(argv[-1])
    assert config == {
        "prefix": PREFIX,
        "current": "generations/abc",
        "previous": "venv",
        "swap_config": True,
    }
    assert argv[:4] == ["/usr/bin/python3", "-I", "-S", "-c"]
    assert argv[4].index('point("previous"') < argv[4].index('point("current"')


def test_the_previous_configuration_is_copied_with_its_mode_and_renamed_into_place() -> None:
    command = backup_config_command(Layout(PREFIX))
    assert command == (
        f"if [ -f {PREFIX}/server.json ]; then cp -p {PREFIX}/server.json "
        f"{PREFIX}/server.json.previous.localai-tmp && mv -f "
        f"{PREFIX}/server.json.previous.localai-tmp {PREFIX}/server.json.previous; fi"
    )


def test_pruning_deletes_only_folders_with_the_tools_marker() -> None:
    command = prune_command(Layout(PREFIX), ["abc", "venv"])
    assert command == (
        f"if [ -e {PREFIX}/generations/abc/.localai-owned ] || "
        f"[ -e {PREFIX}/generations/abc/.localai-complete ]; "
        f"then rm -rf {PREFIX}/generations/abc; fi; "
        f"if [ -e {PREFIX}/venv/.localai-owned ] || [ -e {PREFIX}/venv/.localai-complete ]; "
        f"then rm -rf {PREFIX}/venv; fi"
    )
