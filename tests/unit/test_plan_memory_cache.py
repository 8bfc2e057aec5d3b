"""Memory fit and the model cache's hygiene: the parsers on recorded output, and the
planners (facts in, changes out) as tables."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from localai_provision.apply.cache import mark_new_cache_command, prune_argv
from localai_provision.facts.cache import CachedModel, CacheFacts, ModelFiles, parse_cache
from localai_provision.facts.memory import (
    GB,
    MB,
    MemoryFacts,
    default_wired_bytes,
    parse_meminfo,
    parse_vm_stat,
)
from localai_provision.facts.model import Facts, LoadedModels
from localai_provision.plan import plan
from localai_provision.plan.memory import memory_changes
from localai_provision.plan.models import cache_warnings, prune_model_changes
from tests.unit.plan_tables import linux, mac, rows, site

FIXTURES = Path(__file__).parent.parent / "fixtures"

# `vm_stat` on an Apple silicon Mac: the format of tests/fixtures/macos/SOURCES.md [e10].
VM_STAT = """Mach Virtual Memory Statistics: (page size of 16384 bytes)
Pages free:                               40000.
Pages active:                            300000.
Pages inactive:                          200000.
Pages speculative:                        10000.
Pages throttled:                              0.
Pages wired down:                        400000.
Pages purgeable:                          20000.
"Translation faults":                 123456789.
Pages copy-on-write:                    1234567.
"""


def test_meminfo_gives_the_total_and_what_the_kernel_says_is_available() -> None:
    memory = parse_meminfo((FIXTURES / "memory" / "meminfo-debian12.txt").read_text())
    assert memory.total_bytes is not None and memory.total_bytes > 1 * GB
    assert memory.available_bytes is not None
    assert 0 < memory.available_bytes <= memory.total_bytes
    assert memory.used_bytes == memory.total_bytes - memory.available_bytes


def test_vm_stat_counts_free_and_inactive_pages_as_available() -> None:
    assert parse_vm_stat(VM_STAT, 64 * GB) == (40000 + 200000) * 16384


def test_vm_stat_that_is_not_vm_stat_gives_nothing() -> None:
    assert parse_vm_stat("vm_stat: command not found", 16 * GB) is None
    assert parse_vm_stat(None, 16 * GB) is None


@pytest.mark.parametrize(
    ("total_gb", "share_gb"), [(8, 8 * 2 / 3), (16, 16 * 2 / 3), (36, 24), (64, 48), (512, 384)]
)
def test_a_mac_gives_the_gpu_two_thirds_up_to_36_gb_and_three_quarters_above(
    total_gb: int, share_gb: float
) -> None:
    assert default_wired_bytes(total_gb * GB) == pytest.approx(share_gb * GB, rel=1e-6)


def test_the_cache_section_is_typed_and_a_damaged_one_is_empty() -> None:
    raw = {
        "exists": True,
        "owned": True,
        "undeclared": {"models--org--old": {"bytes": 5 * MB, "link": False}},
        "leftovers": [".localai-removing-models--org--gone"],
        "declared": {"models--org--tiny-a": {"snapshots": {"c1": ["b1"]}, "blobs": {"b1": 10}}},
    }
    cache = parse_cache(raw)
    assert cache.undeclared == (CachedModel("models--org--old", 5 * MB),)
    assert cache.undeclared[0].id == "org/old"
    assert cache.declared["models--org--tiny-a"].snapshots == {"c1": ("b1",)}
    assert parse_cache("garbage") == CacheFacts()


def test_stale_files_are_other_snapshots_and_blobs_only_they_use() -> None:
    files = ModelFiles(
        snapshots={"new": ("shared", "b-new"), "old": ("shared", "b-old")},
        blobs={"shared": 1, "b-new": 2, "b-old": 3, "x.incomplete": 4, "orphan": 5},
    )
    assert files.stale("new") == (("old",), {"b-old": 3, "orphan": 5})
    assert files.stale("missing") == ((), {})


def with_memory(facts: Facts, total_gb: float, wired_mb: int | None = None) -> Facts:
    return dataclasses.replace(
        facts, memory=MemoryFacts(int(total_gb * GB), int(total_gb * GB / 2), wired_mb)
    )


GIB = GB
MEMORY_CASES = [
    ("no memory facts: nothing to check", site(), linux(), {"org/tiny-a": 99 * GIB}, []),
    ("fits a Linux host", site(), with_memory(linux(), 24), {"org/tiny-a": 4 * GIB}, []),
    (
        "more than a Linux host's memory",
        site(),
        with_memory(linux(), 24),
        {"org/tiny-a": 30 * GIB},
        [("memory", "fail")],
    ),
    (
        "fits the memory but not twice, with two workers",
        site(server="{port: 18999, workers: 2}"),
        with_memory(linux(), 24),
        {"org/tiny-a": 12 * GIB},
        [("memory", "fail")],
    ),
    (
        "a model that is not prewarmed is not loaded at start",
        site(),
        with_memory(linux(), 24),
        {},
        [],
    ),
    (
        "within a 16 GB Mac's memory but above macOS's default GPU share",
        site(),
        with_memory(mac(), 16, 0),
        {"org/tiny-a": 11 * GIB},
        [("memory", "fail")],
    ),
    (
        "the site raises the Mac's wired limit: then it fits",
        site("macos: {gpu_wired_limit_mb: 14336}"),
        with_memory(mac(), 16, 0),
        {"org/tiny-a": 11 * GIB},
        [],
    ),
    (
        "the Mac's own wired limit is lower than the model",
        site(),
        with_memory(mac(), 64, 8192),
        {"org/tiny-a": 10 * GIB},
        [("memory", "fail")],
    ),
]


@pytest.mark.parametrize(
    ("spec", "facts", "sizes", "expected"),
    [case[1:] for case in MEMORY_CASES],
    ids=[case[0] for case in MEMORY_CASES],
)
def test_memory_fit(spec, facts, sizes, expected) -> None:  # type: ignore[no-untyped-def]
    assert rows(memory_changes(spec, facts, sizes)) == expected


def test_a_model_that_does_not_fit_says_by_how_much_and_what_to_do() -> None:
    facts = with_memory(linux(), 24)
    (change,) = memory_changes(site(), facts, {"org/tiny-a": 30 * GIB})
    assert "org/tiny-a 30.0 GB + 1024 MB headroom = 31.0 GB" in change.reason
    assert "more than this host's memory (24.0 GB)" in change.reason
    assert "prewarm: false" in change.reason


def test_a_host_that_does_not_fit_fails_before_anything_else_is_planned() -> None:
    changes = plan(site(), with_memory(linux(), 24), sizes={"org/tiny-a": 30 * GIB})
    assert changes[0].resource == "memory" and changes[0].action == "fail"


def test_a_wired_limit_above_any_mac_is_refused_by_validate() -> None:
    from localai_provision.errors import SiteError
    from localai_provision.site import parse_site

    text = (
        "version: 1\nhosts:\n  a:\n    connection: local\n"
        "    packages: {mlx-omni-server: 0.5.1}\n    macos: {gpu_wired_limit_mb: 1048576}\n"
    )
    with pytest.raises(SiteError) as error:
        parse_site(text, "s.yaml")
    assert "no Mac has more than 512 GB" in str(error.value)


def cache_facts(**fields: object) -> Facts:
    facts = linux()
    listed = dataclasses.replace(facts, cache=CacheFacts(exists=True, owned=True))
    return dataclasses.replace(listed, cache=dataclasses.replace(listed.cache, **fields))


OLD = CachedModel("models--org--old", 5 * MB)
PRUNE = "models_prune: true"
PRUNE_CASES = [
    ("nothing undeclared", site(PRUNE), cache_facts(), []),
    (
        "an undeclared model",
        site(PRUNE),
        cache_facts(undeclared=(OLD,)),
        [("model org/old", "remove")],
    ),
    ("models_prune is off by default", site(), cache_facts(undeclared=(OLD,)), []),
    ("a cache the tool did not make", site(PRUNE), cache_facts(undeclared=(OLD,), owned=False), []),
    (
        "an undeclared model that is a symbolic link",
        site(PRUNE),
        cache_facts(undeclared=(dataclasses.replace(OLD, link=True),)),
        [],
    ),
    (
        "a removal cut short",
        site(PRUNE),
        cache_facts(leftovers=(".localai-removing-models--org--x",)),
        [("model-files .localai-removing-models--org--x", "remove")],
    ),
]


@pytest.mark.parametrize(
    ("spec", "facts", "expected"),
    [case[1:] for case in PRUNE_CASES],
    ids=[case[0] for case in PRUNE_CASES],
)
def test_model_pruning(spec, facts, expected) -> None:  # type: ignore[no-untyped-def]
    assert rows(prune_model_changes(spec, facts)) == expected


def test_an_old_snapshot_of_a_declared_model_is_stale_and_its_shared_blobs_are_kept() -> None:
    facts = cache_facts()
    model = facts.models[0]
    assert model.complete and model.commit
    files = ModelFiles(
        snapshots={model.commit: ("shared",), "0" * 40: ("shared", "old-only")},
        blobs={"shared": 10, "old-only": 20},
    )
    facts = dataclasses.replace(
        facts, cache=dataclasses.replace(facts.cache, declared={"models--org--tiny-a": files})
    )
    (change,) = prune_model_changes(site(PRUNE), facts)
    assert change.resource == "model-files org/tiny-a"
    assert "1 snapshot(s)" in change.reason and "1 blob(s)" in change.reason


def test_undeclared_models_are_a_warning_that_says_how_to_remove_them() -> None:
    (text,) = cache_warnings(site(), cache_facts(undeclared=(OLD,)))
    assert "org/old (5 MB)" in text and "models_prune: true" in text
    (text,) = cache_warnings(site(PRUNE), cache_facts(undeclared=(OLD,), owned=False))
    assert "touch" in text and ".localai-cache" in text
    assert cache_warnings(site(PRUNE), cache_facts(undeclared=(OLD,))) == []


def test_removing_a_served_model_restarts_the_server_so_that_it_no_longer_lists_it() -> None:
    changes = plan(site(PRUNE), cache_facts(undeclared=(OLD,)))
    assert ("service", "restart") in rows(changes)


def test_the_prune_command_names_models_by_folder_and_keeps_the_declared_revision() -> None:
    facts = cache_facts(undeclared=(OLD,))
    changes = prune_model_changes(site(PRUNE), facts)
    argv = prune_argv("/usr/bin/python3", "/h/hf", changes, {"org/tiny-a": "main"}, None)
    config = argv[-1]
    assert '"remove": ["models--org--old"]' in config and '"hub": "/h/hf/hub"' in config


def test_only_a_cache_the_tool_makes_is_marked() -> None:
    command = mark_new_cache_command("/h/hf")
    assert command == (
        "mkdir -p /h/hf && if mkdir /h/hf/hub 2>/dev/null; then : > /h/hf/hub/.localai-cache; fi"
    )


def test_a_model_the_server_is_loading_right_now_is_left_for_the_next_apply() -> None:
    facts = cache_facts(undeclared=(OLD,))
    assert facts.service.process is not None
    pid = facts.service.process.pid
    busy = dataclasses.replace(
        facts, loaded_models=LoadedModels(pid=pid, loaded=(), loading=("org/old",), updated=1.0)
    )
    assert prune_model_changes(site(PRUNE), busy) == []
    (text,) = cache_warnings(site(PRUNE), busy)
    assert "loading it right now" in text and "next apply removes it" in text
    stale = dataclasses.replace(
        busy, loaded_models=LoadedModels(pid=pid + 1, loaded=(), loading=("org/old",), updated=1.0)
    )  # written by a server that has died since: ignored
    assert rows(prune_model_changes(site(PRUNE), stale)) == [("model org/old", "remove")]
