"""More hosts than --forks: they queue rather than fail, and what the controller holds open
(connections, file descriptors, threads) stays proportional to the forks, not to the hosts."""

from __future__ import annotations

import os
import threading
import time

import paramiko
import pytest

from localai_provision.connectors.base import Connector, connector_for
from localai_provision.fleet import DRIFT, check_hosts
from localai_provision.site import load_site
from localai_provision.site.model import HostSpec
from tests.conftest import CAN_SSH
from tests.support import hostprep
from tests.support.lab import Lab

pytestmark = [
    pytest.mark.ssh,
    pytest.mark.skipif(not CAN_SSH, reason="needs root and openssh-server"),
]


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


class Census:
    """Counts the connectors open at once and samples this process's file descriptors."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.live = 0
        self.most_live = 0
        self.opened = 0
        self.most_fds = 0
        self.most_transports = 0

    def sample(self) -> None:
        fds = _open_fds()
        # paramiko runs a thread per connection; one of a closed connection may take a
        # moment to end, so only the active ones count here (the leak check is below).
        transports = sum(
            1 for t in threading.enumerate() if isinstance(t, paramiko.Transport) and t.active
        )
        with self.lock:
            self.most_fds = max(self.most_fds, fds)
            self.most_transports = max(self.most_transports, transports)

    def factory(self, spec: HostSpec) -> Connector:
        connector = connector_for(spec)
        real_open, real_close = connector.open, connector.close
        is_open = False

        def open_() -> None:
            nonlocal is_open
            with self.lock:
                self.live += 1
                self.opened += 1
                self.most_live = max(self.most_live, self.live)
                is_open = True
            real_open()
            self.sample()

        def close() -> None:
            nonlocal is_open
            self.sample()
            real_close()
            with self.lock:
                if is_open:
                    self.live -= 1
                    is_open = False

        connector.open = open_  # type: ignore[method-assign]
        connector.close = close  # type: ignore[method-assign]
        return connector


@pytest.mark.parametrize("forks", [1, 2])
def test_more_hosts_than_forks_queue_and_stay_bounded(lab: Lab, forks: int) -> None:
    hosts = lab.fleet.hosts
    assert len(hosts) >= 4 * forks
    for host in hosts:
        hostprep.reset_host(host)  # every host then differs: reached, checked, reported
    site = lab.site(hosts)
    specs = list(load_site(site).hosts.values())
    census = Census()
    before, threads_before = _open_fds(), threading.active_count()

    results = check_hosts(
        specs,
        forks=forks,
        connector_factory=census.factory,
        progress=lambda host, step: census.sample(),
    )

    assert [r.name for r in results] == sorted(h.name for h in hosts)
    assert all(r.status == DRIFT and r.connections == 1 for r in results), [
        (r.name, r.status, str(r.error)) for r in results
    ]
    assert census.opened == len(hosts)
    assert census.live == 0
    assert census.most_live <= forks
    # A connection holds one socket; paramiko's threads hold none of their own. Room for the
    # executor and a few transient descriptors, none for one per host.
    assert census.most_fds - before <= 2 * forks + 4, (before, census.most_fds)
    assert census.most_transports <= forks
    deadline = time.monotonic() + 5  # and no thread is left behind
    while threading.active_count() > threads_before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert threading.active_count() <= threads_before, threading.enumerate()

    code, found = lab.drift_json(site, "--forks", str(forks))
    assert code == 2 and set(found) == {h.name for h in hosts}
    assert all(h["status"] == DRIFT for h in found.values())
