"""The metrics' families from hand-built hosts, read back with prometheus_client's own
parser; the cache that gathers the fleet at most once per interval; --listen's grammar."""

from __future__ import annotations

import argparse

import pytest
from prometheus_client.parser import text_string_to_metric_families

from localai_provision.cli.exporter import FleetCollector, exposition
from localai_provision.cli.parser_ops import listen_address
from tests.support.sampleviews import SAMPLE_VIEWS

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def samples(text: str) -> Samples:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(found: Samples, name: str, **labels: str) -> float | None:
    return found.get((f"localai_{name}", tuple(sorted(labels.items()))))


@pytest.fixture
def scraped() -> Samples:
    return samples(exposition(FleetCollector(lambda: SAMPLE_VIEWS, 10.0)))


def test_each_host_is_up_or_down_and_in_sync_or_drifted_by_kind(scraped: Samples) -> None:
    assert value(scraped, "host_up", host="studio-01") == 1.0
    assert value(scraped, "host_up", host="mini-04") == 0.0
    assert value(scraped, "host_in_sync", host="studio-01") == 1.0
    assert value(scraped, "host_in_sync", host="studio-02") == 0.0
    assert value(scraped, "host_drift_changes", host="studio-02", kind="package") == 2.0
    assert value(scraped, "host_drift_changes", host="studio-02", kind="venv") == 0.0
    assert value(scraped, "host_in_sync", host="mini-04") is None  # down: not known
    assert value(scraped, "hosts") == 4.0 and value(scraped, "gathers") == 1.0


def test_what_a_host_cannot_say_has_no_sample_rather_than_a_zero(scraped: Samples) -> None:
    assert value(scraped, "models_latency_seconds", host="studio-01") == pytest.approx(0.0118)
    assert value(scraped, "models_latency_seconds", host="mini-03") is None  # stopped
    assert value(scraped, "host_memory_bytes", host="studio-01") == 192 * 1024**3
    assert value(scraped, "host_memory_bytes", host="mini-03") is None
    assert value(scraped, "host_memory_available_bytes", host="studio-01") == 120 * 1024**3
    assert value(scraped, "host_memory_available_bytes", host="studio-02") is None
    assert value(scraped, "models_loaded", host="studio-01") == 1.0
    assert value(scraped, "models_loaded", host="studio-02") is None  # the server cannot say


def test_versions_apply_and_pull_are_labels_and_timestamps(scraped: Samples) -> None:
    info = value(
        scraped,
        "host_info",
        host="studio-01",
        package_set="omni",
        generation="3f2a9c0d11aa22bb",
        server_version="0.5.1",
    )
    assert info == 1.0
    assert value(scraped, "last_apply_timestamp_seconds", host="studio-01") == 1796151600.0
    assert value(scraped, "last_pull_success", host="studio-01") == 1.0
    assert value(scraped, "last_pull_timestamp_seconds", host="studio-01") == 1796155200.0
    assert value(scraped, "server_running", host="mini-03") == 0.0


def test_the_fleet_is_gathered_at_most_once_per_interval() -> None:
    now = [100.0]
    collector = FleetCollector(lambda: SAMPLE_VIEWS, 15.0, clock=lambda: now[0])
    for _ in range(3):
        exposition(collector)
    assert collector.gathers == 1
    now[0] += 14.9
    exposition(collector)
    assert collector.gathers == 1
    now[0] += 0.2
    exposition(collector)
    assert collector.gathers == 2


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:9101", ("127.0.0.1", 9101)),
        ("[::1]:9101", ("::1", 9101)),
        (":9101", ("0.0.0.0", 9101)),
        ("localhost:0", ("localhost", 0)),
    ],
)
def test_listen_takes_addr_colon_port(text: str, expected: tuple[str, int]) -> None:
    assert listen_address(text) == expected


@pytest.mark.parametrize("text", ["9101", "127.0.0.1", "127.0.0.1:99999", "::1:9101", "a:b"])
def test_listen_refuses_what_is_not_addr_colon_port(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match="is not ADDR:PORT"):
        listen_address(text)


def test_a_port_already_taken_is_said_with_what_to_do() -> None:
    import socket
    import threading

    from localai_provision.cli.exporter import serve
    from localai_provision.errors import UsageError

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(UsageError, match=f"cannot listen on 127.0.0.1:{port}: .*choose"):
            serve(FleetCollector(lambda: SAMPLE_VIEWS, 10.0), "127.0.0.1", port, threading.Event())
