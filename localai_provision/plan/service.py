"""The service: its definition (the launchd job's plist), then started when stopped, or
restarted once when an earlier planner changed what it loaded or it is not the server the
site describes."""

from __future__ import annotations

from localai_provision.facts.model import Facts, LaunchdFacts
from localai_provision.layout import launchd_label, launchd_plist, same_plist, service_kind
from localai_provision.plan.change import Action, Change, Changed, Kind, layout_for
from localai_provision.plan.config import desired_config
from localai_provision.site.model import HostSpec


def service_definition_changes(spec: HostSpec, facts: Facts) -> list[Change]:
    """On a launchd host, the job's plist installed as the site describes it."""
    if service_kind(spec, facts) != "launchd":
        return []
    job = facts.service.launchd
    wanted = launchd_plist(spec, layout_for(facts), facts.system.user, facts.system.home)
    actual = job.plist if job else None
    if same_plist(actual, wanted):
        return []
    return [
        Change(
            spec.name,
            Kind.SERVICE_DEFINITION,
            "",
            Action.CREATE if actual is None else Action.UPDATE,
            job.plist_path if job and actual else None,
            launchd_label(spec),
            "the launchd job's plist "
            + ("is not installed" if actual is None else "differs from the site's"),
        )
    ]


def service_changes(spec: HostSpec, facts: Facts, changed: Changed) -> list[Change]:
    """Start a stopped server; restart a running one for the first reason that applies."""
    process = facts.service.process
    job = facts.service.launchd
    running = facts.service.running and process is not None
    if job is not None and not job.running:
        running = False
    if not running:
        return [
            Change(
                spec.name,
                Kind.SERVICE,
                "",
                Action.START,
                "stopped",
                "running",
                _stopped_reason(spec, facts, job),
            )
        ]
    assert process is not None
    reason = restart_reason(spec, facts, changed, process.config_hash)
    if not reason:
        return []
    return [
        Change(spec.name, Kind.SERVICE, "", Action.RESTART, f"pid {process.pid}", "running", reason)
    ]


def _stopped_reason(spec: HostSpec, facts: Facts, job: LaunchdFacts | None) -> str:
    if facts.port_open:
        holders = list(facts.service.server_processes)
        who = f" (pid {holders[0].pid}: {holders[0].command[:80]})" if holders else ""
        return (
            f"not running, and port {spec.server.port} is held by another program{who}; "
            "apply will fail until it is stopped or `server.port` is changed"
        )
    if job is not None and job.crashed:
        return f"the launchd job {job.crash_summary()}; see the server's log"
    if job is not None and not job.loaded:
        return f"the launchd job {job.target} is not loaded"
    if job is not None:
        return f"the launchd job {job.target} is loaded but {job.state or 'not running'}"
    return "the server is not running"


def restart_reason(
    spec: HostSpec, facts: Facts, changed: Changed, running_hash: str | None
) -> str | None:
    """Why a running server restarts, or None: what changed under it, then another
    configuration than the site's, an endpoint failing, a model in the cache it does not
    list (the server reads the cache only when it starts)."""
    what = changed.words()
    if what:
        return f"{' and '.join(what)} changed"
    if running_hash != desired_config(spec, facts)["hash"]:
        return "it runs with another configuration than the site's"
    for path in dict.fromkeys(("/v1/models", *spec.verify.endpoints)):
        endpoint = facts.endpoint(path)
        if endpoint is None or not endpoint.ok:
            problem = endpoint.error if endpoint else "no answer"
            return f"{path} does not answer properly ({problem})"
    listed = facts.listed_models or set()
    unlisted = [m.id for m in spec.models if m.id not in listed]
    if unlisted:
        return (
            f"{unlisted[0]} is in the cache but not listed by the server, which reads the "
            "cache only when it starts"
        )
    return None
