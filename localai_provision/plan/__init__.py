"""plan(desired, observed) -> changes: a pure function, the heart of the reconciler.

Given a host's resolved settings (HostSpec) and what the host looks like now (Facts), list
exactly the changes that make it match, each with the reason in words. No I/O: tests drive it
with tables, and apply executes its output and nothing else.

One planner per concern, each facts in and typed changes out, composed below in the order
apply carries them out:

    prerequisites  what only the host's admin can fix (FAILs): system, secrets, lock, python, Mac
    venv           the venv              packages  the pinned or locked set, exactly
    config         server.json, shim     models    the model cache
    macos          pmset and sysctl      pull      pull mode's timer (and its report's warnings)
    service        the launchd plist, then start or restart, with the reason
    warnings       what is worth saying and is not a change
"""

from __future__ import annotations

from collections.abc import Mapping

from localai_provision.facts.model import Facts
from localai_provision.lock import Lock, LockError
from localai_provision.plan.change import Action, Change, Changed, Kind, layout_for
from localai_provision.plan.config import (
    config_changes,
    desired_config,
    desired_shim,
    shim_changes,
    shim_pth,
)
from localai_provision.plan.generations import generation_changes, generation_id, prune_changes
from localai_provision.plan.macos import macos_changes
from localai_provision.plan.memory import memory_changes
from localai_provision.plan.models import model_changes, prune_model_changes
from localai_provision.plan.packages import HALF_INSTALLED, desired_packages, package_changes
from localai_provision.plan.prerequisites import (
    MIN_MACOS,
    lock_changes,
    prerequisite_changes,
    python_changes,
    secret_changes,
    system_changes,
)
from localai_provision.plan.pull import (
    STALE_PULL_INTERVALS,
    desired_pull_timer,
    pull_timer_changes,
    pull_warnings,
)
from localai_provision.plan.service import service_changes, service_definition_changes
from localai_provision.plan.venv import venv_changes
from localai_provision.plan.warnings import CLOCK_TOLERANCE_S, plan_warnings
from localai_provision.site.model import HostSpec

# The actions and kinds by their old names: each is equal to its string ("create", "venv").
CREATE, UPDATE, REMOVE = Action.CREATE, Action.UPDATE, Action.REMOVE
START, RESTART, FAIL = Action.START, Action.RESTART, Action.FAIL
SYSTEM, LOCK, SECRET, PYTHON = Kind.SYSTEM, Kind.LOCK, Kind.SECRET, Kind.PYTHON
VENV, PACKAGE, SERVER_CONFIG, SHIM = Kind.VENV, Kind.PACKAGE, Kind.SERVER_CONFIG, Kind.SHIM
SERVICE_DEFINITION, SERVICE = Kind.SERVICE_DEFINITION, Kind.SERVICE
MACOS, MODEL, PULL_TIMER = Kind.MACOS, Kind.MODEL, Kind.PULL_TIMER
ROOT_HELPER, LAUNCHD_DOMAIN = Kind.ROOT_HELPER, Kind.LAUNCHD_DOMAIN
GENERATION, MEMORY, MODEL_FILES = Kind.GENERATION, Kind.MEMORY, Kind.MODEL_FILES

__all__ = [
    "CLOCK_TOLERANCE_S",
    "CREATE",
    "FAIL",
    "GENERATION",
    "HALF_INSTALLED",
    "LAUNCHD_DOMAIN",
    "LOCK",
    "MACOS",
    "MEMORY",
    "MIN_MACOS",
    "MODEL",
    "MODEL_FILES",
    "PACKAGE",
    "PULL_TIMER",
    "PYTHON",
    "REMOVE",
    "RESTART",
    "ROOT_HELPER",
    "SECRET",
    "SERVER_CONFIG",
    "SERVICE",
    "SERVICE_DEFINITION",
    "SHIM",
    "STALE_PULL_INTERVALS",
    "START",
    "SYSTEM",
    "UPDATE",
    "VENV",
    "Action",
    "Change",
    "Changed",
    "Kind",
    "desired_config",
    "desired_packages",
    "desired_pull_timer",
    "desired_shim",
    "generation_id",
    "layout_for",
    "macos_changes",
    "plan",
    "plan_warnings",
    "prerequisite_changes",
    "pull_timer_changes",
    "pull_warnings",
    "shim_pth",
]


def plan(
    spec: HostSpec,
    facts: Facts,
    lock: Lock | LockError | None = None,
    *,
    retry_failed: bool = False,
    sizes: Mapping[str, int] | None = None,
) -> list[Change]:
    """The changes that make the host match ``spec``. ``lock`` is the host's locked set (its
    platform's lock file), the error met reading it, or None when the site locks nothing.
    ``retry_failed``: build again a generation that failed with the same settings.
    ``sizes``: the models' sizes as the controller has them (apply.sources.source_sizes)."""
    locked = None if isinstance(lock, LockError) else lock
    changes = [
        *system_changes(spec, facts),
        *secret_changes(spec),
        *lock_changes(spec, lock),
        *prerequisite_changes(spec, facts, locked),
        *python_changes(spec, facts),
        *memory_changes(spec, facts, sizes or {}),
    ]
    generation, package_set = _package_set_changes(spec, facts, locked, retry_failed)
    changes += package_set
    changes += config_changes(spec, facts, generation)
    changes += model_changes(spec, facts)
    changes += prune_model_changes(spec, facts)
    changes += macos_changes(spec, facts)
    changes += pull_timer_changes(spec, facts)
    changes += service_definition_changes(spec, facts)
    # The service: restarted once for what anything above changed.
    changes += service_changes(spec, facts, Changed.by(changes))
    # Last, once the host serves the generation wanted: what is beyond `generations.keep`.
    return changes + prune_changes(spec, facts, generation)


def _package_set_changes(
    spec: HostSpec, facts: Facts, locked: Lock | None, retry_failed: bool
) -> tuple[str, list[Change]]:
    """The generation the host is to serve, and the changes that get it there: another set
    is built beside the one that serves (or switched to, when built before), never changed
    in place; the set that serves is repaired in place when broken."""
    # Without the site's Python there is no set to build (python_changes FAILs the host).
    current = facts.generations.current
    generation = current if current and not facts.python.found else None
    generation = generation or generation_id(spec, facts, locked)
    moving = generation_changes(spec, facts, generation, retry_failed=retry_failed)
    if any(c.action == Action.FAIL for c in moving):
        # Refused (a failed set, a folder not ours): the rest is planned for what serves.
        return current or generation, [*moving, *venv_changes(spec, facts)]
    if moving and any(c.action == Action.CREATE for c in moving):
        # Listed: what differs from the set that serves; the new generation gets it all.
        packages = package_changes(spec, facts, locked, venv_rebuilt=False)
        return generation, [*moving, *packages, *shim_changes(spec, facts, venv_rebuilt=True)]
    if moving:
        shim = shim_changes(spec, facts, venv_rebuilt=False, generation=generation)
        return generation, [*moving, *shim]
    venv = venv_changes(spec, facts)
    rebuilt = Changed.by(venv).venv
    return generation, [
        *venv,
        *package_changes(spec, facts, locked, venv_rebuilt=rebuilt),
        *shim_changes(spec, facts, venv_rebuilt=rebuilt),
    ]
