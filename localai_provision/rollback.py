"""`localai generations` (each host's generations, read from its facts: one command) and
`localai rollback` (back to the previous generation, under the host's apply lock, verified
and prewarmed like an apply)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence

from localai_provision.apply.context import CHANGED, FAILED, OK, ApplyOptions, HostContext, StepLog
from localai_provision.apply.generations import can_return_to, mark_failed, swap_back
from localai_provision.apply.hostlock import acquire_lock, release_lock
from localai_provision.apply.run import gathered
from localai_provision.connectors.base import connector_for
from localai_provision.constants import DEFAULT_FORKS
from localai_provision.errors import HostError
from localai_provision.facts.gather import gather
from localai_provision.facts.generations import Generation
from localai_provision.fleet import (
    ConnectorFactory,
    Fleet,
    HostResult,
)
from localai_provision.results import GenerationRow, GenerationsReport
from localai_provision.site.model import HostSpec


def _differs(gen: Generation, current: Generation | None) -> tuple[str, ...]:
    if current is None or gen.name == current.name:
        return ()
    ours, theirs = gen.packages, current.packages
    return tuple(
        f"{name} {theirs.get(name, '-')} -> {ours.get(name, '-')}"
        for name in sorted(set(ours) | set(theirs))
        if ours.get(name) != theirs.get(name)
    )


def report(host: HostContext, rolled_back_from: str | None = None) -> GenerationsReport:
    gens = host.facts.generations
    serving = gens.serving
    rows = tuple(
        GenerationRow(
            name=g.name,
            created=g.created or "-",
            current=g.name == gens.current,
            previous=g.name == gens.previous,
            failed=f"{g.failure.step}: {g.failure.message}" if g.failure else None,
            differs=_differs(g, serving),
            size_kb=g.size_kb,
        )
        for g in sorted(gens.items, key=lambda g: (g.created or "", g.mtime), reverse=True)
    )
    return GenerationsReport(host.generation or "-", rows, rolled_back_from)


def _context(fleet: Fleet, spec: HostSpec) -> HostContext:
    return gathered(fleet.open(spec), spec, StepLog())[0]


def generations_job(fleet: Fleet, spec: HostSpec) -> HostResult:
    host = _context(fleet, spec)
    try:
        return HostResult(name=spec.name, status=OK, facts=host.facts, details=report(host))
    finally:
        fleet.release(host.connector)


def rollback_job_factory(options: ApplyOptions) -> Callable[[Fleet, HostSpec], HostResult]:
    def rollback_job(fleet: Fleet, spec: HostSpec) -> HostResult:
        host = _context(fleet, spec)
        try:
            return _roll_back(host, options)
        finally:
            fleet.release(host.connector)

    return rollback_job


def _roll_back(host: HostContext, options: ApplyOptions) -> HostResult:
    gens = host.facts.generations
    current, previous = gens.current, gens.previous
    target = gens.get(previous)
    if current is None or previous is None or target is None:
        raise HostError(
            host=host.name,
            step="rollback",
            message="there is no previous generation to go back to"
            + (f" (the host serves {current})" if current else ""),
            hint="`localai generations` lists what the host keeps",
        )
    if not can_return_to(target):
        why = f"it failed ({target.failure.message})" if target.failure else "it is incomplete"
        raise HostError(
            host=host.name,
            step="rollback",
            message=f"the previous generation {previous} cannot serve: {why}",
            hint="apply a site whose package set works instead",
        )
    _waited, took_over = acquire_lock(host, options.lock_wait_s)
    try:
        swap_back(host, previous, current, options)
        # The generation left is not switched to again by apply while the site is the same.
        mark_failed(host, current, "rollback", "rolled back by `localai rollback`", "")
        after = host.with_facts(gather(host.connector, host.spec))
    finally:
        with contextlib.suppress(HostError):
            release_lock(host)
    return HostResult(
        name=host.name,
        status=CHANGED,
        warnings=took_over,
        facts=after.facts,
        details=report(after, rolled_back_from=current),
    )


def generations_hosts(
    hosts: Sequence[HostSpec],
    *,
    forks: int = DEFAULT_FORKS,
    connector_factory: ConnectorFactory = connector_for,
) -> list[HostResult]:
    return Fleet(hosts, forks=forks, connector_factory=connector_factory).run(generations_job)


def rollback_hosts(
    hosts: Sequence[HostSpec],
    options: ApplyOptions,
    *,
    forks: int = DEFAULT_FORKS,
    connector_factory: ConnectorFactory = connector_for,
) -> list[HostResult]:
    fleet = Fleet(hosts, forks=forks, connector_factory=connector_factory, error_status=FAILED)
    return fleet.run(rollback_job_factory(options))
