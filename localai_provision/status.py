"""`localai status` (what runs where, live) and `localai stop` (stop the service, keep the rest)."""

from __future__ import annotations

from collections.abc import Sequence

from localai_provision.benchresults import BenchRecord
from localai_provision.connectors.base import connector_for
from localai_provision.constants import DEFAULT_FORKS
from localai_provision.facts.gather import gather
from localai_provision.facts.model import Facts
from localai_provision.fleet import ConnectorFactory, Fleet, HostResult
from localai_provision.lock import lock_for
from localai_provision.model_sizes import source_sizes
from localai_provision.plan import desired_packages, layout_for, plan, pull_warnings
from localai_provision.results import HostStatus, PullTimer, ServerLog, ServerStatus, StopReport
from localai_provision.services.base import service_manager_for
from localai_provision.site.model import HostSpec

RUNNING = HostStatus.RUNNING
STOPPED = HostStatus.STOPPED


def describe(spec: HostSpec, facts: Facts) -> ServerStatus:
    """The live state of one host's server, from its facts."""
    process = facts.service.process
    running = facts.service.running
    wanted = desired_packages(spec, facts)  # the pins (and Linux additions), not the whole lock
    return ServerStatus(
        running=running,
        pid=process.pid if process and running else None,
        uptime_s=round(process.uptime_s, 1) if process and process.uptime_s else None,
        port=spec.server.port,
        port_open=facts.port_open,
        packages={name: facts.venv.packages.get(name.partition("[")[0]) for name in wanted},
        models_listed=tuple(sorted(facts.listed_models or [])),
        models_loaded=_loaded_models(facts),
        latency_ms={e.path: round(e.ms, 1) for e in facts.endpoints if e.ms is not None},
        os=f"{facts.system.os} {facts.system.os_version}".strip(),
        last_apply=(facts.state or {}).get("applied_at"),
        last_pull=facts.pull_report,
        pull_timer=_pull_timer(facts),
        warnings=tuple(pull_warnings(spec, facts)),
        generation=facts.generations.current,
        memory_total_bytes=facts.memory.total_bytes,
        memory_available_bytes=facts.memory.available_bytes,
        bench=BenchRecord.from_json((facts.state or {}).get("bench")),
        bench_previous=BenchRecord.from_json((facts.state or {}).get("bench_previous")),
        models_loading=_loading_models(facts),
        log=_server_log(facts),
    )


def _pull_timer(facts: Facts) -> PullTimer | None:
    """The pull timer as installed on the host (its crontab lines or its plist), if any."""
    timer = facts.pull_timer
    if timer is None or timer.definition is None:
        return None
    return PullTimer(kind=timer.kind, path=timer.path, definition=timer.definition)


def _loaded_models(facts: Facts) -> tuple[str, ...] | None:
    """What the start-up shim publishes (mlx-omni-server 0.5.1 has no route for it), else
    GET /v1/cache of later releases; None when the server cannot say."""
    published = facts.published_models
    if published is not None:
        return published.loaded
    cache = facts.endpoint("/v1/cache")
    if cache is None or not cache.ok or not isinstance(cache.body, dict):
        return None
    models = cache.body.get("models") or cache.body.get("data") or []
    return tuple(
        sorted(
            str(m.get("model_id", m.get("id", m))) if isinstance(m, dict) else str(m)
            for m in models
        )
    )


def _loading_models(facts: Facts) -> tuple[str, ...]:
    published = facts.published_models
    return published.loading if published is not None else ()


def crashed(facts: Facts) -> bool:
    """The server is down but should run: launchd says its job's process ended badly, or
    the process service's pid file names a process that is gone."""
    service = facts.service
    if service.launchd is not None:
        return service.launchd.crashed
    return service.pid is not None and not service.running


def _server_log(facts: Facts) -> ServerLog | None:
    log = facts.server_log
    if log is None:
        return None
    return ServerLog(
        path=log.path,
        size_bytes=log.size_bytes,
        rotated_files=log.rotated_files,
        rotated_bytes=log.rotated_bytes,
        crash_tail=log.tail if crashed(facts) else (),
    )


def status_job(fleet: Fleet, spec: HostSpec) -> HostResult:
    connector = fleet.open(spec)
    try:
        facts = gather(connector, spec)
    finally:
        fleet.release(connector)
    info = describe(spec, facts)
    return HostResult(
        name=spec.name,
        status=RUNNING if info.running else STOPPED,
        warnings=list(info.warnings),
        facts=facts,
        commands=1,
        connections=1,
        details=info,
    )


def observe_job(fleet: Fleet, spec: HostSpec) -> HostResult:
    """status and drift from the same one facts command (the page and the metrics): the
    plan is pure, so knowing what differs costs the host nothing more."""
    result = status_job(fleet, spec)
    facts = result.facts
    assert facts is not None  # status_job either gathered facts or raised
    result.changes = plan(spec, facts, lock_for(spec, facts), sizes=source_sizes(spec))
    return result


def stop_job(fleet: Fleet, spec: HostSpec) -> HostResult:
    fleet.progress(spec.name, "stopping the server")
    connector = fleet.open(spec)
    try:
        facts = gather(connector, spec)
        if not facts.venv.usable:
            return HostResult(
                name=spec.name,
                status=STOPPED,
                facts=facts,
                connections=1,
                details=StopReport(installed=False),
            )
        service = service_manager_for(connector, spec, layout_for(facts), facts)
        outcome = service.stop()
        after = gather(connector, spec)
    finally:
        fleet.release(connector)
    return HostResult(
        name=spec.name,
        status=RUNNING if after.service.running else STOPPED,
        facts=after,
        commands=connector.commands_run,
        connections=1,
        details=StopReport(installed=True, was_running=facts.service.running, service=outcome),
    )


def status_hosts(
    hosts: Sequence[HostSpec],
    *,
    forks: int = DEFAULT_FORKS,
    connector_factory: ConnectorFactory = connector_for,
) -> list[HostResult]:
    return Fleet(hosts, forks=forks, connector_factory=connector_factory).run(status_job)


def observe_hosts(
    hosts: Sequence[HostSpec],
    *,
    forks: int = DEFAULT_FORKS,
    connector_factory: ConnectorFactory = connector_for,
) -> list[HostResult]:
    """Each host's status with its drift (``changes``), one connection and command each."""
    return Fleet(hosts, forks=forks, connector_factory=connector_factory).run(observe_job)


def stop_hosts(
    hosts: Sequence[HostSpec],
    *,
    forks: int = DEFAULT_FORKS,
    connector_factory: ConnectorFactory = connector_for,
) -> list[HostResult]:
    return Fleet(hosts, forks=forks, connector_factory=connector_factory).run(stop_job)
