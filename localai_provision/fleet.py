"""Run one job per host, in parallel, and collect one result per host.

Like fabric's Group: every host reports its own result, and one host's failure never stops
the others. Nothing here raises for a host's failure; the caller decides what the results
mean (exit codes live in the CLI).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field

from localai_provision.connectors.base import Connector, check_connector, connector_for
from localai_provision.constants import DEFAULT_FORKS
from localai_provision.errors import ConnectError, HostError, RolledBack
from localai_provision.facts.gather import gather
from localai_provision.facts.model import Facts
from localai_provision.lock import lock_for
from localai_provision.model_sizes import source_sizes
from localai_provision.plan import Change, plan, plan_warnings
from localai_provision.results import FAILURES, HostDetails, HostStatus
from localai_provision.site.model import HostSpec

# Host statuses (the names other modules import; HostStatus lists them all).
IN_SYNC = HostStatus.IN_SYNC
DRIFT = HostStatus.DRIFT
UNREACHABLE = HostStatus.UNREACHABLE
ERROR = HostStatus.ERROR
SKIPPED = HostStatus.SKIPPED

ConnectorFactory = Callable[[HostSpec], Connector]
ProgressCallback = Callable[[str, str], None]  # (host name, what it is doing now)


@dataclass
class HostResult:
    name: str
    status: HostStatus
    changes: list[Change] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    error: HostError | None = None
    elapsed_ms: float = 0.0
    facts: Facts | None = None
    commands: int = 0  # commands run on the host (round trips after connecting)
    connections: int = 0
    bytes_sent: int = 0  # file bytes the controller uploaded to this host

    def cost(self) -> dict[str, int]:
        """What reaching this host cost, for `--json` and the benchmarks."""
        return {
            "connections": self.connections,
            "commands": self.commands,
            "bytes_sent": self.bytes_sent,
        }

    # What the command reports about the host (status, stop, doctor, apply); None for a
    # host it could not reach, and for plan and drift, whose report is the changes.
    details: HostDetails | None = None

    @property
    def failed(self) -> bool:
        return self.status in FAILURES


class Fleet:
    """Runs a per-host job over a thread pool, with every live connector tracked so that
    Ctrl-C can close them all at once instead of waiting for each host's timeout."""

    def __init__(
        self,
        hosts: Sequence[HostSpec],
        *,
        forks: int = DEFAULT_FORKS,
        connector_factory: ConnectorFactory = connector_for,
        progress: ProgressCallback | None = None,
        max_fail: int | None = None,
        error_status: HostStatus = ERROR,
    ) -> None:
        self.hosts = list(hosts)
        # What a host whose job raised is: `error`, or apply's `failed`.
        self.error_status = error_status
        self.max_fail = max_fail
        self._failures = 0
        self.forks = max(1, forks)
        self.connector_factory = connector_factory
        self.progress = progress or (lambda host, step: None)
        self._live: set[Connector] = set()
        self._opened: dict[str, list[Connector]] = {}  # by host: what each host cost
        self._lock = threading.Lock()
        self._interrupted = threading.Event()
        self._stop_new = threading.Event()  # --max-fail reached: start no more hosts

    def open(self, spec: HostSpec) -> Connector:
        """Connect to a host; the connection is closed for us when the job ends."""
        if self._interrupted.is_set():
            raise KeyboardInterrupt
        connector = self.connector_factory(spec)
        with self._lock:
            self._live.add(connector)
            self._opened.setdefault(spec.name, []).append(connector)
        try:
            connector.open()
        except BaseException:
            self.release(connector)
            raise
        return connector

    def stop_starting(self) -> None:
        """Hosts not yet started are reported as skipped instead of being worked on."""
        self._stop_new.set()

    def release(self, connector: Connector) -> None:
        with self._lock:
            self._live.discard(connector)
        connector.close()

    def run(self, job: Callable[[Fleet, HostSpec], HostResult]) -> list[HostResult]:
        """Run ``job`` for every host; results come back sorted by host name."""
        results: dict[str, HostResult] = {}
        pool = ThreadPoolExecutor(max_workers=min(self.forks, max(1, len(self.hosts))))
        futures: dict[Future[HostResult], HostSpec] = {
            pool.submit(self._guarded, job, spec): spec for spec in self.hosts
        }
        pending = set(futures)
        try:
            while pending:
                # A short wait keeps the main thread responsive to Ctrl-C.
                done, pending = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
                for future in done:
                    result = future.result()
                    results[result.name] = result
        except KeyboardInterrupt:
            self._interrupted.set()
            with self._lock:
                live = list(self._live)
            for connector in live:
                connector.close()
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        pool.shutdown(wait=True)
        return [results[name] for name in sorted(results)]

    def _guarded(self, job: Callable[[Fleet, HostSpec], HostResult], spec: HostSpec) -> HostResult:
        start = time.perf_counter()
        if self._stop_new.is_set():
            return HostResult(
                name=spec.name,
                status=SKIPPED,
                error=HostError(
                    host=spec.name,
                    message=f"not started: {self._failures} host(s) failed (--max-fail "
                    f"{self.max_fail})",
                ),
            )
        try:
            result = job(self, spec)
        except HostError as exc:
            status = UNREACHABLE if isinstance(exc, ConnectError) else self.error_status
            if isinstance(exc, RolledBack):
                status = HostStatus.ROLLED_BACK
            # A job that failed half-way says what it did before (apply: the changes carried
            # out and its steps), so that a failure is never reported as "nothing changed".
            done = exc.details.get("changes")
            report = exc.details.get("report")
            result = HostResult(
                name=spec.name,
                status=status,
                error=exc,
                changes=list(done) if isinstance(done, list) else [],
                details=report if isinstance(report, HostDetails) else None,
            )
        except KeyboardInterrupt:
            result = HostResult(
                name=spec.name, status=self.error_status, error=HostError(spec.name, "interrupted")
            )
        except Exception as exc:  # noqa: BLE001 - a bug must not take the other hosts down
            result = HostResult(
                name=spec.name,
                status=self.error_status,
                error=HostError(
                    host=spec.name,
                    message=f"internal error: {type(exc).__name__}: {exc}",
                    hint="this is a bug in localai-provision; please report it",
                ),
            )
        result.elapsed_ms = (time.perf_counter() - start) * 1000
        with self._lock:
            opened = self._opened.pop(spec.name, [])
        if opened:
            result.connections = sum(c.connections_made for c in opened)
            result.commands = sum(c.commands_run for c in opened)
            result.bytes_sent = sum(c.bytes_sent for c in opened)
        if result.failed:
            with self._lock:
                self._failures += 1
                if self.max_fail is not None and self._failures >= self.max_fail:
                    self._stop_new.set()
        self.progress(spec.name, result.status)
        return result


def check_job(fleet: Fleet, spec: HostSpec) -> HostResult:
    """Read-only: connect, gather facts in one command, plan. Used by `plan` and `drift`."""
    fleet.progress(spec.name, "connecting")
    connector = fleet.open(spec)
    try:
        fleet.progress(spec.name, "gathering facts")
        facts = gather(connector, spec)
        commands = connector.commands_run
        warnings = list(getattr(connector, "warnings", []))
    finally:
        fleet.release(connector)
    changes = plan(spec, facts, lock_for(spec, facts), sizes=source_sizes(spec))
    warnings += plan_warnings(spec, facts)
    return HostResult(
        name=spec.name,
        status=DRIFT if changes else IN_SYNC,
        changes=changes,
        warnings=warnings,
        facts=facts,
        commands=commands,
        connections=1,
    )


def check_hosts(
    hosts: Sequence[HostSpec],
    *,
    forks: int = DEFAULT_FORKS,
    connector_factory: ConnectorFactory = check_connector,
    progress: ProgressCallback | None = None,
) -> list[HostResult]:
    fleet = Fleet(hosts, forks=forks, connector_factory=connector_factory, progress=progress)
    return fleet.run(check_job)
