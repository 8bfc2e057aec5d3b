"""One host as the operator's views show it (the status page, the metrics): the typed
results of `status` (ServerStatus) and of drift (the plan's changes) from one facts command,
flattened into the few things a dashboard draws. No output here: html and metrics render it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import PurePath

from localai_provision.facts.model import PullReport

# A host's ISO 8601 time (state.json's applied_at) as seconds; None if unreadable: the
# parser the pull report's times already go through.
from localai_provision.facts.parse import parse_iso_time as epoch
from localai_provision.fleet import HostResult
from localai_provision.results import HostStatus, ServerStatus
from localai_provision.site.model import HostSpec

MODELS_PATH = "/v1/models"


@dataclass(frozen=True)
class HostView:
    name: str
    status: HostStatus  # running, stopped, unreachable, error
    groups: tuple[str, ...] = ()
    package_set: str = "pins"  # the lock's stem, or "pins" when the site pins packages only
    generation: str | None = None  # the package set's generation the host serves
    server_version: str | None = None
    packages: Mapping[str, str | None] = field(default_factory=dict)
    models_listed: tuple[str, ...] = ()
    models_loaded: tuple[str, ...] | None = None  # None: the server cannot say
    latency_ms: float | None = None  # GET /v1/models, as the facts command timed it
    memory_bytes: int | None = None  # the host's memory (hw.memsize, MemTotal)
    memory_available_bytes: int | None = None  # what a new process can have, now
    drift: Mapping[str, int] = field(default_factory=dict)  # changes by kind
    last_apply: str | None = None
    last_pull: PullReport | None = None
    error: str | None = None
    elapsed_ms: float = 0.0

    @property
    def up(self) -> bool:
        """The host answered its facts command (whatever its server is doing)."""
        return self.status in (HostStatus.RUNNING, HostStatus.STOPPED)

    @property
    def running(self) -> bool:
        return self.status == HostStatus.RUNNING

    @property
    def in_sync(self) -> bool:
        return self.up and not self.drift

    @property
    def last_apply_epoch(self) -> float | None:
        return epoch(self.last_apply)


def host_view(spec: HostSpec | None, result: HostResult) -> HostView:
    """What the page and the metrics show of ``result`` (from `observe_hosts`)."""
    base = HostView(
        name=result.name,
        status=result.status,
        groups=spec.groups if spec else (),
        package_set=PurePath(spec.lock).name if spec and spec.lock else "pins",
        error=result.error.message if result.error else None,
        elapsed_ms=result.elapsed_ms,
    )
    d = result.details
    if result.failed or not isinstance(d, ServerStatus):
        return base
    facts = result.facts
    # The generation the host serves (issue 16); before generations, the site hash of the
    # last apply (state.json) is the nearest thing.
    state = (facts.state if facts else None) or {}
    generation = d.generation or state.get("site_hash")
    return HostView(
        name=base.name,
        status=base.status,
        groups=base.groups,
        package_set=base.package_set,
        generation=str(generation) if generation else None,
        server_version=d.server_version,
        packages=d.packages,
        models_listed=d.models_listed,
        models_loaded=d.models_loaded,
        latency_ms=d.latency_ms.get(MODELS_PATH),
        memory_bytes=facts.memory.total_bytes if facts else None,
        memory_available_bytes=facts.memory.available_bytes if facts else None,
        drift=dict(Counter(c.kind.value for c in result.changes)),
        last_apply=d.last_apply,
        last_pull=d.last_pull,
        elapsed_ms=result.elapsed_ms,
    )


def fleet_views(specs: Sequence[HostSpec], results: Sequence[HostResult]) -> list[HostView]:
    by_name = {s.name: s for s in specs}
    return [host_view(by_name.get(r.name), r) for r in results]
