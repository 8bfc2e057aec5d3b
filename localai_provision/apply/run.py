"""The orchestration: per host, gather, plan, lock, run the steps the plan asks for, verify,
gather and plan again; over the fleet, in parallel, in batches (--serial), up to --max-fail.

Every failure becomes a HostError naming the step, the command and the tail of its output;
it ends that host's run, never another's.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

from localai_provision.apply.benchstep import bench_after_change
from localai_provision.apply.cache import mark_new_cache, prune_models
from localai_provision.apply.context import (
    CHANGED,
    FAILED,
    OK,
    SKIPPED,
    ApplyOptions,
    HostContext,
    StepLog,
)
from localai_provision.apply.generations import (
    ROLLBACK_STEPS,
    backup_config,
    can_return_to,
    prune,
    roll_back,
    switch,
    write_meta,
)
from localai_provision.apply.host_models import copy_model, download_model
from localai_provision.apply.hostlock import acquire_lock, clear_leftovers, release_lock
from localai_provision.apply.install import (
    build_venv,
    install_packages,
    install_shim,
    write_server_config,
)
from localai_provision.apply.pull_timer import converge_pull_timer
from localai_provision.apply.refuse import refuse_failures, refuse_unusable
from localai_provision.apply.sources import refuse_escaping_links
from localai_provision.apply.state import write_state
from localai_provision.apply.verification import port_in_use, verify
from localai_provision.connectors.base import Connector, connector_for
from localai_provision.constants import DEFAULT_FORKS
from localai_provision.errors import HostError
from localai_provision.facts.gather import gather
from localai_provision.facts.model import Facts
from localai_provision.fleet import (
    ConnectorFactory,
    Fleet,
    HostResult,
    ProgressCallback,
)
from localai_provision.lock import Lock, LockError, lock_for
from localai_provision.model_sizes import source_sizes
from localai_provision.plan import (
    GENERATION,
    MACOS,
    MODEL,
    MODEL_FILES,
    PACKAGE,
    PULL_TIMER,
    SERVER_CONFIG,
    SERVICE,
    SERVICE_DEFINITION,
    SHIM,
    VENV,
    Action,
    Change,
    layout_for,
    plan,
    plan_warnings,
)
from localai_provision.results import ApplyReport, HostStatus
from localai_provision.services.base import ServiceManager, service_manager_for
from localai_provision.services.launchd import LaunchdService
from localai_provision.site.model import HostSpec
from localai_provision.transfer import Distributor
from localai_provision.transfer_progress import TransferProgress

ByKind = dict[str, list[Change]]


def execute(
    fleet: Fleet,
    host: HostContext,
    changes: list[Change],
    options: ApplyOptions,
    lock: Lock | None,
    distributor: Distributor,
) -> Facts:
    """Run the steps ``changes`` ask for, in order; return the facts read afterwards."""
    by_kind: ByKind = {}
    for change in changes:
        by_kind.setdefault(change.kind, []).append(change)
    # What the tool cannot fix stops the host before anything is touched.
    refuse_unusable(host.spec, lock)
    refuse_failures(host, changes)
    _install(fleet, host, by_kind, lock, distributor)
    _models(fleet, host, by_kind, distributor)
    _prune_models(fleet, host, by_kind)
    _host_settings(fleet, host, by_kind)
    _switch(fleet, host, by_kind)
    _service(fleet, host, by_kind, options)
    _prune(fleet, host, by_kind)
    fleet.progress(host.name, "checking the result")
    host.log.current = "gather"
    return gather(host.connector, host.spec)


def _step(fleet: Fleet, host: HostContext, name: str, progress: str) -> None:
    fleet.progress(host.name, progress)
    host.log.current = name


def _install(
    fleet: Fleet, host: HostContext, by_kind: ByKind, lock: Lock | None, distributor: Distributor
) -> None:
    log = host.log
    building = _moving(by_kind, Action.CREATE)
    if VENV in by_kind or building:
        _step(fleet, host, "venv", "building the venv")
        build_venv(host)
        log.steps.append({"step": "venv", "path": host.layout.venv})
        log.done += by_kind.get(VENV, [])
    if PACKAGE in by_kind or building:
        _step(fleet, host, "packages", "installing packages")
        install_packages(host, by_kind.get(PACKAGE, []), lock, distributor, whole=bool(building))
        log.done += by_kind.get(PACKAGE, [])
    if SHIM in by_kind:
        _step(fleet, host, "shim", "installing the start-up shim")
        install_shim(host)
        log.steps.append({"step": "shim"})
        log.done += by_kind[SHIM]
    if building or VENV in by_kind:
        # Last: from now on the generation may be switched to (and back to) as it is.
        _step(fleet, host, "generation", "completing the generation")
        meta = write_meta(host)
        log.steps.append({"step": "generation", "generation": host.generation, **meta})
        log.done += building
    if SERVER_CONFIG in by_kind:
        _step(fleet, host, "server-config", "writing the server configuration")
        if _moving(by_kind) and _names_serving_generation(host):
            backup_config(host)  # what a rollback puts back
        write_server_config(host)
        log.steps.append({"step": "server-config"})
        log.done += by_kind[SERVER_CONFIG]


def _models(fleet: Fleet, host: HostContext, by_kind: ByKind, distributor: Distributor) -> None:
    log = host.log
    fetch = [c for c in by_kind.get(MODEL, []) if c.action != Action.REMOVE]
    if fetch:
        mark_new_cache(host)
    for change in fetch:
        model = next(m for m in host.spec.models if m.id == change.name)
        _step(fleet, host, "models", f"model {model.id}")
        if model.source:
            refuse_escaping_links(host.spec, model)
            copied = copy_model(host, model, distributor)
            log.warnings += copied.pop("warnings", [])
            log.steps.append({"step": "models", **copied})
        else:
            log.steps.append({"step": "models", **download_model(host, model)})
        log.done.append(change)


def _prune_models(fleet: Fleet, host: HostContext, by_kind: ByKind) -> None:
    """What `models_prune` removes from the cache: before the restart the removal of a
    listed model asks for, so that the new server does not list it."""
    doomed = [c for c in by_kind.get(MODEL, []) if c.action == Action.REMOVE]
    doomed += by_kind.get(MODEL_FILES, [])
    if not doomed:
        return
    _step(fleet, host, "models", "removing undeclared models")
    result = prune_models(host, doomed, host.layout.loaded_models)
    host.log.steps.append({"step": "models-prune", **result})
    host.log.warnings += [
        f"{name} not removed: {why}" for name, why in result.get("skipped", {}).items()
    ]
    host.log.done += doomed


def _host_settings(fleet: Fleet, host: HostContext, by_kind: ByKind) -> None:
    log = host.log
    if MACOS in by_kind:
        _step(fleet, host, "macos", "Mac settings")
        launchd = LaunchdService(host.connector, host.spec, host.layout, host.facts)
        launchd.apply_macos_settings(by_kind[MACOS])
        log.steps.append({"step": "macos", "settings": [c.name for c in by_kind[MACOS]]})
        log.done += by_kind[MACOS]
    for change in by_kind.get(PULL_TIMER, []):
        fleet.progress(host.name, "the pull timer")
        converge_pull_timer(host, change)
        log.steps.append({"step": PULL_TIMER, "action": change.action})
        log.done.append(change)


def _names_serving_generation(host: HostContext) -> bool:
    """Does server.json run the generation that serves now? Only then is it the copy a
    rollback puts back (an earlier attempt may have written one for the new generation)."""
    config = host.facts.server_config
    serving = layout_for(host.facts).venv
    argv = config.argv if config else None
    return bool(host.facts.generations.current and argv and argv[0].startswith(serving + "/"))


def _moving(by_kind: ByKind, *actions: Action) -> list[Change]:
    """The change that moves the host to another generation (built, or switched to)."""
    wanted = actions or (Action.CREATE, Action.UPDATE)
    return [c for c in by_kind.get(GENERATION, []) if c.action in wanted]


def _switch(fleet: Fleet, host: HostContext, by_kind: ByKind) -> None:
    """Point `current` at the new generation (and `previous` at the one that served), just
    before the restart: until then the old server serves from its own venv."""
    moving = _moving(by_kind)
    if not moving:
        return
    assert host.generation is not None
    _step(fleet, host, "switch", f"switching to generation {host.generation}")
    previous = host.facts.generations.current
    switch(host, host.generation, previous)
    host.log.steps.append({"step": "switch", "generation": host.generation, "from": previous})
    host.log.done += [c for c in moving if c.action == Action.UPDATE]


def _prune(fleet: Fleet, host: HostContext, by_kind: ByKind) -> None:
    old = [c for c in by_kind.get(GENERATION, []) if c.action == Action.REMOVE]
    if not old:
        return
    _step(fleet, host, "generations", "removing old generations")
    prune(host, [c.name for c in old])
    host.log.steps.append({"step": "generations", "removed": [c.name for c in old]})
    host.log.done += old


def _service(fleet: Fleet, host: HostContext, by_kind: ByKind, options: ApplyOptions) -> None:
    log = host.log
    service_changes = by_kind.get(SERVICE, [])
    service = service_manager_for(host.connector, host.spec, host.layout, host.facts)
    redefined = SERVICE_DEFINITION in by_kind
    if redefined:
        _step(fleet, host, "service", "installing the service definition")
        service.install()
        log.steps.append({"step": "service-definition"})
        log.done += by_kind[SERVICE_DEFINITION]
    if not service_changes:
        return
    log.current = "service"
    _run_service(fleet, service, host, service_changes[0], redefined)
    log.done += service_changes
    _step(fleet, host, "verify", "verifying and prewarming")
    result = verify(host, options, prewarm=True)
    log.verify = {e["path"]: round(e.get("ms", 0.0), 1) for e in result["endpoints"]}
    log.verify["ready_after_s"] = round(result.get("waited_s") or 0.0, 2)
    log.prewarm = [
        {"model": p["model"], "ms": round(p.get("ms", 0.0), 1)} for p in result["prewarm"]
    ]


def _run_service(
    fleet: Fleet, service: ServiceManager, host: HostContext, change: Change, redefined: bool
) -> None:
    spec, facts = host.spec, host.facts
    process = facts.service.process
    ours = process is not None and process.alive
    if facts.port_open and not ours:
        # Stop what is ours first (an orphaned server of this venv), then look again.
        stopped = service.stop()
        if port_in_use(host):
            holders = facts.service.server_processes
            who = f" by pid {holders[0].pid} ({holders[0].command[:100]})" if holders else ""
            raise HostError(
                host=spec.name,
                step="service",
                message=f"port {spec.server.port} is held by another program{who}",
                hint="stop that program, or choose another `server.port` for this host",
                details={"stopped": stopped},
            )
    if redefined:
        # A changed definition is loaded anew, whether the job runs, crash-loops or is
        # stopped: launchd keeps the old one until bootout.
        fleet.progress(spec.name, "reloading the service")
        service.reload()
    elif change.action == "restart":
        fleet.progress(spec.name, "restarting the server")
        service.restart()
    else:
        fleet.progress(spec.name, "starting the server")
        service.start()
    host.log.steps.append({"step": "service", "action": change.action, "reason": change.reason})


# --- one host ---------------------------------------------------------------------------------


def _result(host: HostContext, status: HostStatus, warnings: list[str], **kw: Any) -> HostResult:
    return HostResult(
        name=host.name,
        status=status,
        warnings=warnings,
        facts=host.facts,
        commands=host.connector.commands_run,
        connections=1,
        **kw,
    )


def _unchanged(host: HostContext, warnings: list[str]) -> HostResult:
    return _result(host, OK, warnings, details=ApplyReport(verify=_verify_from_facts(host.facts)))


def _converge(
    fleet: Fleet,
    host: HostContext,
    changes: list[Change],
    lock: Lock | LockError | None,
    options: ApplyOptions,
    distributor: Distributor,
    warnings: list[str],
) -> HostResult:
    """Under the host's lock: run the plan, prove nothing is left, write the state."""
    fleet.progress(host.name, "taking the lock")
    waited, took_over = acquire_lock(host, options.lock_wait_s)
    host.log.warnings += took_over
    try:
        clear_leftovers(host)
        if waited:
            # Another apply ran meanwhile: plan again from what the host is now.
            host = host.with_facts(gather(host.connector, host.spec))
            changes = replan(host.spec, host.facts, lock, options)
            if not changes:
                return _unchanged(host, warnings + host.log.warnings)
        locked = lock if isinstance(lock, Lock) else None
        try:
            after = host.with_facts(execute(fleet, host, changes, options, locked, distributor))
        except HostError as exc:
            if _rolls_back(host, changes, exc):
                fleet.progress(host.name, "rolling back")
                raise roll_back(host, exc, options) from None
            raise
        remaining = replan(host.spec, after.facts, lock, options)
        if remaining:
            raise HostError(
                host=host.name,
                step="converge",
                message="the host still differs after the steps ran: "
                + "; ".join(f"{c.resource}: {c.reason}" for c in remaining),
                hint="run `localai plan` to see the differences; report this if it repeats",
            )
        write_state(after, options, bench_after_change(fleet, after))
    finally:
        # If the connection is gone, the next apply takes the stale lock over.
        with contextlib.suppress(HostError):
            release_lock(host)
    log = host.log
    return _result(
        after,
        CHANGED,
        warnings + log.warnings,
        changes=changes,
        details=ApplyReport.from_log(log.verify, log.prewarm, log.steps),
    )


def _rolls_back(host: HostContext, changes: list[Change], failed: HostError) -> bool:
    """Did the step that failed follow a switch away from a generation that can serve again?"""
    if failed.step not in ROLLBACK_STEPS:
        return False
    moved = any(c.kind == GENERATION and c.action != Action.REMOVE for c in changes)
    gens = host.facts.generations
    return moved and gens.current is not None and can_return_to(gens.serving)


def replan(
    spec: HostSpec, facts: Facts, lock: Lock | LockError | None, options: ApplyOptions
) -> list[Change]:
    """apply's plan: the models' sizes as the controller has them now (the memory check),
    and --retry-failed."""
    return plan(spec, facts, lock, retry_failed=options.retry_failed, sizes=source_sizes(spec))


def gathered(
    connector: Connector, spec: HostSpec, log: StepLog
) -> tuple[HostContext, Lock | LockError | None]:
    """The host as its facts (one command) describe it, with its locked set (or the error
    met reading it, which plan reports)."""
    facts = gather(connector, spec)
    lock = lock_for(spec, facts)
    locked = lock if isinstance(lock, Lock) else None
    return HostContext.of(connector, spec, facts, log, lock=locked), lock


def apply_job_factory(
    options: ApplyOptions, distributor: Distributor | None = None
) -> Callable[[Fleet, HostSpec], HostResult]:
    shared = distributor or Distributor()

    def apply_job(fleet: Fleet, spec: HostSpec) -> HostResult:
        fleet.progress(spec.name, "connecting")
        connector: Connector = fleet.open(spec)
        log = StepLog()
        try:
            fleet.progress(spec.name, "gathering facts")
            host, lock = gathered(connector, spec, log)
            warnings = list(getattr(connector, "warnings", [])) + plan_warnings(spec, host.facts)
            changes = replan(spec, host.facts, lock, options)
            if not changes:
                return _unchanged(host, warnings)
            return _converge(fleet, host, changes, lock, options, shared, warnings)
        except HostError as exc:
            if not exc.step:
                exc.step = log.current or "apply"
            exc.details.setdefault("report", ApplyReport.from_log({}, [], log.steps))
            exc.details.setdefault("changes", log.done)
            raise
        finally:
            shared.retire(spec.name)
            fleet.release(connector)

    return apply_job


def _verify_from_facts(facts: Facts) -> dict[str, float]:
    return {e.path: round(e.ms, 1) for e in facts.endpoints if e.ms is not None}


def apply_hosts(
    hosts: list[HostSpec],
    options: ApplyOptions,
    *,
    forks: int = DEFAULT_FORKS,
    max_fail: int | None = None,
    serial: int | None = None,
    connector_factory: ConnectorFactory = connector_for,
    progress: ProgressCallback | None = None,
    transfer_progress: TransferProgress | None = None,
) -> list[HostResult]:
    """Converge every host; one result per host, sorted by name. ``transfer_progress`` is
    told how each large file's copy to a host goes.

    ``serial`` N works through the hosts N at a time (a rolling update of a lab that serves
    people) and starts no new batch once one failed (a host rolled back counts: a bad set
    stops after the canary batch). ``max_fail`` N starts no new host after N failures; 0 is
    taken as 1 (no failure tolerated: the first one stops the rest), not as "start none".
    """
    if max_fail is not None:
        max_fail = max(1, max_fail)
    batches = (
        [hosts] if not serial else [hosts[i : i + serial] for i in range(0, len(hosts), serial)]
    )
    results: list[HostResult] = []
    failures = 0
    job = apply_job_factory(options, Distributor(transfer_progress))
    for number, batch in enumerate(batches):
        if serial and failures:
            results += [_not_started(spec, number, serial) for spec in batch]
            continue
        left = None if max_fail is None else max(0, max_fail - failures)
        fleet = Fleet(
            batch,
            forks=forks,
            connector_factory=connector_factory,
            progress=progress,
            max_fail=left,
            error_status=FAILED,
        )
        if left == 0:
            fleet.stop_starting()
        batch_results = fleet.run(job)
        failures += sum(1 for r in batch_results if r.failed)
        results += batch_results
    return sorted(results, key=lambda r: r.name)


def _not_started(spec: HostSpec, batch: int, serial: int) -> HostResult:
    error = HostError(
        host=spec.name, message=f"not started: batch {batch} of --serial {serial} failed"
    )
    return HostResult(name=spec.name, status=SKIPPED, error=error)
