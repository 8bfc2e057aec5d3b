"""Generations: each package set in its own venv (PREFIX/generations/ID), built beside the
one that serves, switched to only when complete, rolled back from by itself when it does not
serve, and pruned to the site's `generations.keep`.

A generation's ID is the digest of the exact set (the lock's or the pins' names and
versions, Linux's additions included) and the Python it is built with: the same set is the
same generation on every host, and going back to a set built before is a switch, not a build.
"""

from __future__ import annotations

import hashlib
import json

from localai_provision.facts.generations import Generation, GenerationsFacts
from localai_provision.facts.model import Facts
from localai_provision.lock import Lock
from localai_provision.plan.change import Action, Change, Kind
from localai_provision.plan.packages import desired_packages
from localai_provision.site.model import HostSpec

ID_LENGTH = 12


def generation_id(spec: HostSpec, facts: Facts, lock: Lock | None) -> str:
    wanted = desired_packages(spec, facts, lock)
    python = facts.python.short_version if facts.python.found else spec.python
    return set_id({name: version for name, (version, _why) in wanted.items()}, python)


def set_id(packages: dict[str, str], python: str) -> str:
    """The ID of the set ``packages`` (name -> exact version) built with Python ``python``."""
    lines = [f"{name}=={version}" for name, version in sorted(packages.items())]
    text = "\n".join([*lines, f"python {python}"])
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:ID_LENGTH]


def settings_digest(spec: HostSpec) -> str:
    """The host's settings as the site gives them (secret values masked): a generation that
    failed is tried again only when these change (or with --retry-failed)."""
    text = json.dumps(spec.to_dict(), sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def _cost(serving: Generation | None) -> str:
    if serving is None or serving.size_kb is None:
        return ""
    mb = serving.size_kb / 1024
    return (
        f" (about {mb:,.0f} MB on the host, the size of {serving.name}; with uv, files "
        "unchanged since are hard links into its cache)"
    )


def generation_changes(
    spec: HostSpec, facts: Facts, generation: str, *, retry_failed: bool = False
) -> list[Change]:
    """The move to ``generation`` when the host serves another (or none yet)."""
    gens = facts.generations
    if gens.current == generation:
        return []
    target = gens.get(generation)
    old = gens.current

    def change(action: Action, reason: str) -> list[Change]:
        return [Change(spec.name, Kind.GENERATION, generation, action, old, generation, reason)]

    beside = f" beside {old}" if old else " (the host's first)"
    if target is not None and not target.owned and not target.legacy:
        return change(
            Action.FAIL,
            f"{facts.prefix}/generations/{generation} exists but was not made by "
            "localai-provision (no .localai-owned marker): refused, apply would have to "
            "delete it",
        )
    failure = target.failure if target is not None else None
    if failure is not None:
        same = failure.settings == settings_digest(spec)
        if same and not retry_failed:
            return change(
                Action.FAIL,
                f"generation {generation} failed at {failure.step} on {failure.failed_at} "
                f"({failure.message}) and was rolled back; it is not tried again with the "
                "same settings: change the site, or apply with --retry-failed",
            )
        why = "--retry-failed" if same else "the site changed since"
        return change(
            Action.CREATE,
            f"new generation {generation}{beside}, built again ({why}; it failed at "
            f"{failure.step} on {failure.failed_at})",
        )
    if target is not None and target.ready and target.complete:
        return change(Action.UPDATE, f"switch to generation {generation} (built before){beside}")
    again = ", built again (an earlier build was interrupted)" if target is not None else ""
    return change(Action.CREATE, f"new generation {generation}{beside}{again}{_cost(gens.serving)}")


def kept_generations(
    gens: GenerationsFacts, current: str | None, previous: str | None, keep: int
) -> set[str]:
    """What stays: the current one, the previous one while `keep` allows, the newest others
    up to `keep`, and the newest failed one (kept for inspection)."""
    kept = {g for g in (current, previous if keep >= 2 else None) if g}
    others = sorted(
        (g for g in gens.items if g.name not in kept and g.failure is None),
        key=lambda g: g.mtime,
        reverse=True,
    )
    kept |= {g.name for g in others[: max(0, keep - len(kept))]}
    failed = sorted((g for g in gens.items if g.failure is not None), key=lambda g: g.mtime)
    if failed:
        kept.add(failed[-1].name)
    return kept


def prune_changes(spec: HostSpec, facts: Facts, generation: str) -> list[Change]:
    """Generations beyond the kept count, as they will be once the host serves
    ``generation``; only those the tool made."""
    gens = facts.generations
    switching = gens.current != generation
    previous = gens.current if switching else gens.previous
    kept = kept_generations(gens, generation, previous, spec.generations.keep)
    return [
        Change(
            spec.name,
            Kind.GENERATION,
            g.name,
            Action.REMOVE,
            g.name,
            None,
            f"generation {g.name} is older than the {spec.generations.keep} kept"
            + (" (it failed; a newer failure is kept)" if g.failure else ""),
        )
        for g in gens.items
        if g.name not in kept and g.owned and g.name != generation
    ]
