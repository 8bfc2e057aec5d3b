"""Models in the host's cache: each one the site names, complete at its revision."""

from __future__ import annotations

from localai_provision.facts.model import Facts
from localai_provision.layout import CACHE_MARKER
from localai_provision.plan.change import Action, Change, Kind
from localai_provision.plan.memory import size_text
from localai_provision.site.model import HostSpec


def model_changes(spec: HostSpec, facts: Facts) -> list[Change]:
    """A model missing or incomplete is fetched (downloaded, or copied from its `source`)."""
    return [
        Change(
            spec.name,
            Kind.MODEL,
            model.id,
            Action.CREATE if not model.present else Action.UPDATE,
            model.problem,
            model.revision,
            f"{model.id}@{model.revision}: {model.problem}; it will be "
            + (f"copied from {model_spec.source}" if model_spec.source else "downloaded"),
        )
        for model_spec, model in zip(spec.models, facts.models, strict=True)
        if not model.complete
    ]


def prune_model_changes(spec: HostSpec, facts: Facts) -> list[Change]:
    """With `models_prune`, in a cache the tool made: remove the models the site does not
    declare (the server lists every model of the cache, so they are served), the snapshots
    of revisions the site does not declare and the blobs no kept snapshot uses."""
    cache = facts.cache
    if not spec.models_prune or not cache.owned:
        return []  # plan_warnings says why nothing is removed
    listed = facts.listed_models or set()
    busy = loading(facts)
    changes = [
        Change(
            spec.name,
            Kind.MODEL,
            model.id,
            Action.REMOVE,
            f"{size_text(model.size_bytes)} in the cache"
            + (", listed by the server" if model.id in listed else ""),
            None,
            f"{model.id} is in the cache but not in the site (models_prune: true)",
        )
        for model in cache.undeclared
        if not model.link and model.id not in busy
    ]
    for folder in cache.leftovers:
        changes.append(
            Change(
                spec.name,
                Kind.MODEL_FILES,
                folder,
                Action.REMOVE,
                "left by a removal that was cut short",
                None,
                f"{folder} is what remains of a model apply was removing",
            )
        )
    for model_spec, model in zip(spec.models, facts.models, strict=True):
        files = cache.declared.get(model_spec.cache_dir_name)
        if files is None:
            continue
        if model.complete:
            snapshots, blobs = files.stale(model.commit)
            if not snapshots and not blobs:
                continue
            what = _stale_words(snapshots, blobs)
        elif files.snapshots:  # after the model step: its ref may name another snapshot
            what = f"the snapshots other than {model_spec.revision}'s, once it is in"
        else:
            continue
        changes.append(
            Change(
                spec.name,
                Kind.MODEL_FILES,
                model_spec.id,
                Action.REMOVE,
                what,
                None,
                f"{model_spec.id}: files no declared revision uses ({what}); "
                f"{model_spec.revision}'s are kept",
            )
        )
    return changes


def loading(facts: Facts) -> set[str]:
    """Models the running server is loading right now, as the start-up shim publishes them:
    removing a model's files under its load would fail that request half way."""
    published = facts.published_models
    return set(published.loading) if published is not None else set()


def _stale_words(snapshots: tuple[str, ...], blobs: dict[str, int]) -> str:
    parts = []
    if snapshots:
        parts.append(f"{len(snapshots)} snapshot(s) ({', '.join(c[:12] for c in snapshots)})")
    if blobs:
        parts.append(f"{len(blobs)} blob(s), {size_text(sum(blobs.values()))}")
    return " and ".join(parts)


def cache_warnings(spec: HostSpec, facts: Facts) -> list[str]:
    """Models in the cache that the site does not declare, when apply will not remove them."""
    cache = facts.cache
    pruned = spec.models_prune and cache.owned
    busy = loading(facts)
    undeclared = [m for m in cache.undeclared if not (pruned and not m.link and m.id not in busy)]
    if not undeclared:
        return []
    listed = facts.listed_models or set()
    served = [m.id for m in undeclared if m.id in listed]
    names = ", ".join(f"{m.id} ({size_text(m.size_bytes)})" for m in undeclared[:5])
    more = f" and {len(undeclared) - 5} more" if len(undeclared) > 5 else ""
    text = (
        f"{len(undeclared)} model(s) in {facts.hf_home}/hub that the site does not declare: "
        f"{names}{more}" + (f"; the server serves {', '.join(served)}" if served else "")
    )
    if not spec.models_prune:
        return [text + "; set `models_prune: true` to have apply remove them"]
    if not cache.owned:
        return [
            text + f"; models_prune leaves this cache alone: localai-provision did not make "
            f"it (no {CACHE_MARKER} in it) and other programs may use it. Point `hf_home` at "
            f"a folder of the site's own, or give this one to the site: "
            f"touch {facts.hf_home}/hub/{CACHE_MARKER} on the host"
        ]
    warnings = []
    links = [m.id for m in undeclared if m.link]
    if links:
        warnings.append(f"{', '.join(links)}: a symbolic link in the model cache, never removed")
    loading_now = [m.id for m in undeclared if not m.link and m.id in busy]
    if loading_now:
        warnings.append(
            f"{', '.join(loading_now)}: the server is loading it right now, so it is not "
            "removed now; the next apply removes it"
        )
    return warnings
