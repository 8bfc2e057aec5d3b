"""`localai metrics`: the fleet as Prometheus metrics, from the same one facts command per
host that `status` and `drift` use.

Imported only by that command (prometheus_client is not paid for by any other). The
registry holds one collector, FleetCollector, which gathers the fleet when scraped, at most
once per ``min_interval_s``: Prometheus and a second scraper (a dashboard, a curl) asking at
once, or a scrape interval shorter than a gather, never multiply the SSH connections to the
hosts. Concurrent scrapes wait for the one gather in flight and share its result.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence

from prometheus_client.core import CollectorRegistry, GaugeMetricFamily, Metric
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import Collector

from localai_provision.cli.fleetview import HostView
from localai_provision.errors import UsageError
from localai_provision.plan import Kind

Gather = Callable[[], Sequence[HostView]]

PREFIX = "localai"


def _gauge(name: str, doc: str, labels: Sequence[str] = ("host",)) -> GaugeMetricFamily:
    return GaugeMetricFamily(f"{PREFIX}_{name}", doc, labels=list(labels))


def _bool(flag: bool) -> float:
    return 1.0 if flag else 0.0


def host_families(views: Sequence[HostView]) -> list[GaugeMetricFamily]:
    """One family per measure, a sample per host. A measure a host cannot give (latency of a
    stopped server, a Linux host's memory) has no sample rather than a made-up 0."""
    up = _gauge("host_up", "1 when the host answered its facts command")
    in_sync = _gauge("host_in_sync", "1 when the host matches the site (nothing to apply)")
    drift = _gauge(
        "host_drift_changes",
        "changes apply would make, by kind of resource (0 for every kind when in sync)",
        ("host", "kind"),
    )
    info = _gauge(
        "host_info",
        "always 1: the host's package set, site generation and server version as labels",
        ("host", "package_set", "generation", "server_version"),
    )
    running = _gauge("server_running", "1 when mlx-omni-server runs on the host")
    latency = _gauge("models_latency_seconds", "GET /v1/models on the host, as it timed it")
    listed = _gauge("models_listed", "models the running server lists on /v1/models")
    loaded = _gauge("models_loaded", "models the server says are loaded (when it can say)")
    memory = _gauge("host_memory_bytes", "the host's memory (hw.memsize on a Mac, MemTotal)")
    available = _gauge(
        "host_memory_available_bytes", "what a new process can have now (MemAvailable, vm_stat)"
    )
    applied = _gauge("last_apply_timestamp_seconds", "when the last successful apply ended")
    pulled = _gauge(
        "last_pull_timestamp_seconds", "when the host's last pull (apply --local) ended"
    )
    pull_ok = _gauge("last_pull_success", "1 when the last pull converged or changed the host")
    check = _gauge("host_check_seconds", "how long the host's facts command took, connect included")
    for v in views:
        up.add_metric([v.name], _bool(v.up))
        check.add_metric([v.name], v.elapsed_ms / 1000)
        if not v.up:
            continue
        in_sync.add_metric([v.name], _bool(v.in_sync))
        for kind in Kind:
            drift.add_metric([v.name, kind.value], float(v.drift.get(kind.value, 0)))
        info.add_metric([v.name, v.package_set, v.generation or "", v.server_version or ""], 1.0)
        running.add_metric([v.name], _bool(v.running))
        if v.latency_ms is not None:
            latency.add_metric([v.name], v.latency_ms / 1000)
        if v.running:
            listed.add_metric([v.name], float(len(v.models_listed)))
        if v.models_loaded is not None:
            loaded.add_metric([v.name], float(len(v.models_loaded)))
        if v.memory_bytes is not None:
            memory.add_metric([v.name], float(v.memory_bytes))
        if v.memory_available_bytes is not None:
            available.add_metric([v.name], float(v.memory_available_bytes))
        if v.last_apply_epoch is not None:
            applied.add_metric([v.name], v.last_apply_epoch)
        pull = v.last_pull
        if pull is not None:
            pull_ok.add_metric([v.name], _bool(not pull.failed))
            if pull.finished_epoch is not None:
                pulled.add_metric([v.name], pull.finished_epoch)
    families = [up, in_sync, drift, info, running, latency, listed, loaded, memory, available]
    return [*families, applied, pulled, pull_ok, check]


class FleetCollector(Collector):
    """Gathers the fleet when scraped, at most once per ``min_interval_s``."""

    def __init__(
        self, gather: Gather, min_interval_s: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._gather = gather
        self._min_interval_s = min_interval_s
        self._clock = clock
        self._lock = threading.Lock()
        self._views: Sequence[HostView] = ()
        self._gathered_at: float | None = None
        self._took_s = 0.0
        self.gathers = 0  # how many times the fleet was gathered (the tests count them)

    def views(self) -> Sequence[HostView]:
        with self._lock:
            now = self._clock()
            stale = self._gathered_at is None or now - self._gathered_at >= self._min_interval_s
            if stale:
                start = time.perf_counter()
                self._views = self._gather()
                self._took_s = time.perf_counter() - start
                self._gathered_at = self._clock()
                self.gathers += 1
            return self._views

    def collect(self) -> Iterator[Metric]:
        views = self.views()
        yield from host_families(views)
        took = _gauge("gather_seconds", "how long the last gather of the fleet took", ())
        took.add_metric([], self._took_s)
        yield took
        gathers = _gauge(
            "gathers", "gathers of the fleet since start (at most one per interval)", ()
        )
        gathers.add_metric([], float(self.gathers))
        yield gathers
        hosts = _gauge("hosts", "hosts the site (and --limit) selects", ())
        hosts.add_metric([], float(len(views)))
        yield hosts


def registry_for(collector: FleetCollector) -> CollectorRegistry:
    # No auto_describe: registering must not gather the fleet (collect is the gather).
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    return registry


def exposition(collector: FleetCollector) -> str:
    """The text format, as node_exporter's textfile collector reads it."""
    return generate_latest(registry_for(collector)).decode("utf-8")


def serve(
    collector: FleetCollector, addr: str, port: int, stop: threading.Event
) -> tuple[str, int]:
    """Serve /metrics on ``addr:port`` until ``stop`` is set; returns the address bound (port 0
    picks a free one, which tests use). The server runs in a thread; the caller waits."""
    from prometheus_client import start_http_server

    try:
        server, _thread = start_http_server(port, addr=addr, registry=registry_for(collector))
    except OSError as exc:  # the port is taken, the address is not this machine's
        raise UsageError(
            f"cannot listen on {addr}:{port}: {exc.strerror or exc}; choose another "
            "--listen ADDR:PORT (a free port, an address of this machine)"
        ) from None
    bound = server.server_address

    def stop_when_asked() -> None:
        stop.wait()
        server.shutdown()
        server.server_close()

    threading.Thread(target=stop_when_asked, name="metrics-stop", daemon=True).start()
    return str(bound[0]), int(bound[1])
