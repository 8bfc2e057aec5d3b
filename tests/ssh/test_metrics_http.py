"""`localai metrics` over real sshd: served over HTTP on loopback and scraped by a real client
(httpx), read with prometheus_client's own parser; the one-shot textfile likewise. The
server runs as the real command in its own process, with a bounded life."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import CAN_SSH
from tests.support import hostprep
from tests.support.lab import Lab
from tests.unit.test_metrics import Samples, samples, value

pytestmark = [
    pytest.mark.ssh,
    pytest.mark.skipif(not CAN_SSH, reason="needs root and openssh-server"),
]

LIFETIME_S = 120  # --exit-after: the server ends by itself even if the test dies


@pytest.fixture
def served(lab: Lab) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    for host in lab.fleet.hosts[:2]:
        hostprep.reset_host(host)  # as a fresh machine, whatever ran on it before
    site = lab.site(lab.fleet.hosts[:2])
    argv = [sys.executable, "-m", "localai_provision.cli", "metrics", str(site), "--json"]
    argv += ["--listen", "127.0.0.1:0", "--min-interval", "300", "--exit-after", str(LIFETIME_S)]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert first, proc.stderr.read() if proc.stderr else ""
        yield json.loads(first)["listen"], proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)


def test_metrics_are_scraped_over_http_and_the_fleet_gathered_once_per_interval(
    lab: Lab, served: tuple[str, subprocess.Popen[str]]
) -> None:
    url, proc = served
    assert url.startswith("http://127.0.0.1:")
    with httpx.Client(timeout=60) as client:
        first = client.get(url)
        second = client.get(url)
    assert first.status_code == 200 and first.headers["content-type"].startswith("text/plain")
    found = samples(first.text)
    for host in lab.fleet.hosts[:2]:
        assert value(found, "host_up", host=host.name) == 1.0
        assert value(found, "server_running", host=host.name) == 0.0
        # Never applied: drift counts the packages to install.
        assert (value(found, "host_drift_changes", host=host.name, kind="package") or 0) >= 1
        assert value(found, "host_in_sync", host=host.name) == 0.0
    assert value(samples(second.text), "gathers") == 1.0  # the second scrape used the cache
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 143  # as every command stopped by SIGTERM


def test_the_textfile_is_written_whole_with_an_unreachable_host_down(lab: Lab) -> None:
    hosts = lab.fleet.hosts[:2]
    site = lab.site(hosts, per_host={hosts[1].name: {"ssh_port": 1}})  # nothing listens on 1
    textfile = lab.tmp_path / "localai.prom"
    code, out, err = lab.cli("metrics", str(site), "--textfile", str(textfile), "--json")
    assert code == 0, err
    assert json.loads(out) == {"textfile": str(textfile), "hosts": 2, "up": 1, "in_sync": 0}
    found: Samples = samples(textfile.read_text())
    assert value(found, "host_up", host=hosts[0].name) == 1.0
    assert value(found, "host_up", host=hosts[1].name) == 0.0
    assert list(text_string_to_metric_families(textfile.read_text()))
    assert [p.name for p in Path(lab.tmp_path).iterdir() if p.name.endswith(".tmp")] == []
