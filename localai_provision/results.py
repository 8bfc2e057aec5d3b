"""What the library reports per host, typed: the border between the commands and the CLI.

`HostStatus` is every status a host's result can have (each command uses its own few); the
dataclasses are what each command adds about a host, read by attribute in the CLI and turned
into `--json` by their ``as_json`` (the keys and their order are part of the output).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from enum import StrEnum

from localai_provision.benchresults import BenchRecord, BenchReport
from localai_provision.facts.model import PullReport


class HostStatus(StrEnum):
    """A host's status after a command; the values are what the output shows."""

    # plan and drift
    IN_SYNC = "in-sync"
    DRIFT = "drift"
    # apply
    OK = "ok"  # nothing to do
    CHANGED = "changed"
    FAILED = "failed"  # apply's word for a host that did not converge
    ROLLED_BACK = "rolled-back"  # a new generation failed; the host serves the one before
    # status and stop
    RUNNING = "running"
    STOPPED = "stopped"
    # doctor
    READY = "ready"
    BLOCKED = "blocked"
    # bench
    MEASURED = "measured"
    # any command
    UNREACHABLE = "unreachable"
    ERROR = "error"
    SKIPPED = "skipped"  # not started (--max-fail, --serial)


FAILURES = frozenset(
    {HostStatus.UNREACHABLE, HostStatus.ERROR, HostStatus.FAILED, HostStatus.ROLLED_BACK}
)


@dataclass(frozen=True)
class PullTimer:
    """The pull timer as installed on the host (its crontab lines or its plist)."""

    kind: str
    path: str | None
    definition: str

    def as_json(self) -> dict[str, object]:
        return {"kind": self.kind, "path": self.path, "definition": self.definition}


@dataclass(frozen=True)
class ServerLog:
    """The server's log on the host: its size, the rotated files' total, and its last lines
    when the server has crashed (empty otherwise)."""

    path: str
    size_bytes: int | None  # None: no log yet
    rotated_files: int
    rotated_bytes: int
    crash_tail: tuple[str, ...] = ()

    def as_json(self) -> dict[str, object]:
        return {
            "path": self.path,
            "size_bytes": self.size_bytes,
            "rotated_files": self.rotated_files,
            "rotated_bytes": self.rotated_bytes,
            "crash_tail": list(self.crash_tail),
        }


@dataclass(frozen=True)
class ServerStatus:
    """`localai status`: the live state of one host's server."""

    running: bool
    pid: int | None
    uptime_s: float | None
    port: int
    port_open: bool
    packages: Mapping[str, str | None]  # each pin's installed version (None: not installed)
    models_listed: tuple[str, ...]
    # mlx-omni-server 0.5.1 has no route that says which models are loaded; later
    # releases add GET /v1/cache. None means "the server cannot say".
    models_loaded: tuple[str, ...] | None
    latency_ms: Mapping[str, float]  # by endpoint path
    os: str
    last_apply: str | None
    # Pull mode: the host's own report of its last `apply --local` (docs/pull.md).
    last_pull: PullReport | None
    pull_timer: PullTimer | None
    warnings: tuple[str, ...]
    generation: str | None = None  # the package set's generation the host serves
    memory_total_bytes: int | None = None
    memory_available_bytes: int | None = None  # what a new process can have, now
    # `verify.bench`: the figures the last apply recorded, and those they replaced.
    bench: BenchRecord | None = None
    bench_previous: BenchRecord | None = None
    models_loading: tuple[str, ...] = ()  # being loaded right now (the shim says)
    log: ServerLog | None = None

    @property
    def server_version(self) -> str | None:
        return self.packages.get("mlx-omni-server")

    def as_json(self) -> dict[str, object]:
        return {
            "running": self.running,
            "pid": self.pid,
            "uptime_s": self.uptime_s,
            "port": self.port,
            "port_open": self.port_open,
            "packages": dict(self.packages),
            "models_listed": list(self.models_listed),
            "models_loaded": None if self.models_loaded is None else list(self.models_loaded),
            "latency_ms": dict(self.latency_ms),
            "os": self.os,
            "last_apply": self.last_apply,
            "last_pull": self.last_pull.as_dict() if self.last_pull else None,
            "pull_timer": self.pull_timer.as_json() if self.pull_timer else None,
            "warnings": list(self.warnings),
            "generation": self.generation,
            "memory": {
                "total_bytes": self.memory_total_bytes,
                "available_bytes": self.memory_available_bytes,
            },
            "bench": self.bench.as_json() if self.bench else None,
            "bench_previous": self.bench_previous.as_json() if self.bench_previous else None,
            "models_loading": list(self.models_loading),
            "log": self.log.as_json() if self.log else None,
        }


@dataclass(frozen=True)
class StopReport:
    """`localai stop`: whether the server ran, and the service manager's account of the stop
    (its keys as the host's stop script or launchd gave them)."""

    installed: bool
    was_running: bool = False
    service: Mapping[str, object] = field(default_factory=dict)

    def as_json(self) -> dict[str, object]:
        if not self.installed:
            return {"note": "not installed"}
        return {"was_running": self.was_running, **self.service}


@dataclass(frozen=True)
class Check:
    """One of doctor's checks."""

    name: str
    ok: bool
    blocking: bool  # not ok and blocking: apply cannot work until it is fixed
    detail: str
    fix: str = ""

    @property
    def mark(self) -> str:
        return "ok" if self.ok else ("BLOCKS" if self.blocking else "warn")


@dataclass(frozen=True)
class DoctorReport:
    """`localai doctor`: the host's checks, blocking ones first."""

    checks: tuple[Check, ...]

    def as_json(self) -> dict[str, object]:
        return {"checks": [asdict(c) for c in self.checks]}


@dataclass(frozen=True)
class Prewarm:
    model: str
    ms: float

    def as_json(self) -> dict[str, object]:
        return {"model": self.model, "ms": self.ms}


@dataclass(frozen=True)
class Step:
    """One step apply carried out on a host: its name and what it says about itself (for
    `--json` only: a package count, a download's bytes, the wheels' delivery)."""

    step: str
    facts: Mapping[str, object] = field(default_factory=dict)

    def as_json(self) -> dict[str, object]:
        return {"step": self.step, **self.facts}


@dataclass(frozen=True)
class ApplyReport:
    """`localai apply`: verify's timings by endpoint (and ``ready_after_s``), the models
    prewarmed and the steps carried out (a failed host: the steps done before it failed)."""

    verify: Mapping[str, float] = field(default_factory=dict)
    prewarm: tuple[Prewarm, ...] = ()
    steps: tuple[Step, ...] = ()

    def as_json(self) -> dict[str, object]:
        return {
            "verify": dict(self.verify),
            "prewarm": [p.as_json() for p in self.prewarm],
            "steps": [s.as_json() for s in self.steps],
        }

    @classmethod
    def from_log(
        cls,
        verify: Mapping[str, float],
        prewarm: Sequence[Mapping[str, object]],
        steps: Sequence[Mapping[str, object]],
    ) -> ApplyReport:
        """From apply's step log (plain dicts, as apply keeps them while it runs)."""
        return cls(
            verify=dict(verify),
            prewarm=tuple(Prewarm(str(p["model"]), _ms(p["ms"])) for p in prewarm),
            steps=tuple(
                Step(str(s["step"]), {k: v for k, v in s.items() if k != "step"}) for s in steps
            ),
        )


def _ms(value: object) -> float:
    assert isinstance(value, int | float), value
    return value


@dataclass(frozen=True)
class GenerationRow:
    """One generation of a host, as `localai generations` lists it."""

    name: str
    created: str
    current: bool
    previous: bool
    failed: str | None  # why it was rolled back
    differs: tuple[str, ...]  # packages not as in the current one: "name a -> b"
    size_kb: int | None

    def as_json(self) -> dict[str, object]:
        return {
            "generation": self.name,
            "created": self.created,
            "current": self.current,
            "previous": self.previous,
            "failed": self.failed,
            "differs_from_current": list(self.differs),
            "size_kb": self.size_kb,
        }


@dataclass(frozen=True)
class GenerationsReport:
    wanted: str  # the generation the site asks for
    rows: tuple[GenerationRow, ...]
    rolled_back_from: str | None = None  # `rollback`: the generation it left

    def as_json(self) -> dict[str, object]:
        data: dict[str, object] = {
            "wanted": self.wanted,
            "generations": [r.as_json() for r in self.rows],
        }
        if self.rolled_back_from:
            data["rolled_back_from"] = self.rolled_back_from
        return data


HostDetails = (
    ServerStatus | StopReport | DoctorReport | ApplyReport | GenerationsReport | BenchReport
)
