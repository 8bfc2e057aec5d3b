"""Smoke tests for tests.support.sshfleet: real sshd hosts, reached with paramiko."""

from __future__ import annotations

import os
import pwd
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import paramiko
import pytest

from tests.support.sshfleet import SSHD, SSHFleet, TestHost

pytestmark = [
    pytest.mark.ssh,
    pytest.mark.skipif(
        os.geteuid() != 0 or not Path(SSHD).exists(), reason="needs root and openssh-server"
    ),
]


def _connect(fleet: SSHFleet, host: TestHost, known_hosts: Path) -> paramiko.SSHClient:
    client = paramiko.SSHClient()
    client.load_host_keys(str(known_hosts))
    # Strict: an unknown or changed host key must fail, exactly as in production.
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    client.connect(
        host.address,
        port=host.port,
        username=host.user,
        key_filename=str(fleet.client_key_path),
        allow_agent=False,
        look_for_keys=False,
        timeout=10,
    )
    return client


def _run(client: paramiko.SSHClient, command: str) -> tuple[int, str]:
    _stdin, stdout, _stderr = client.exec_command(command, timeout=30)
    out = stdout.read().decode()
    return stdout.channel.recv_exit_status(), out


def _assert_gone(fleet: SSHFleet) -> None:
    """Nothing of the fleet may survive stop(): users, processes, files."""
    users = [h.user for h in fleet.hosts]
    assert not [p.pw_name for p in pwd.getpwall() if p.pw_name in users]
    # sshd rewrites its argv into one title string, so search the text for the config.
    configs = [str(h.config_path) for h in fleet.hosts]
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            title = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        assert not [c for c in configs if c + " " in title + " "], f"{pid} survived: {title}"
    assert not fleet.homes_root.exists()
    assert not any(fleet.base_dir.iterdir())


def test_three_hosts_strict_host_keys(tmp_path: Path) -> None:
    known_hosts = tmp_path / "known_hosts"
    fleet = SSHFleet(tmp_path / "fleet", 3)
    with fleet:
        print(f"\n3 hosts started in {fleet.start_seconds:.2f} s")
        fleet.write_known_hosts(known_hosts)
        started = time.monotonic()
        for host in fleet.hosts:
            client = _connect(fleet, host, known_hosts)
            try:
                status, out = _run(client, "id -un && echo $HOME")
            finally:
                client.close()
            assert status == 0
            assert out.split() == [host.user, str(host.home)]
        print(f"3 hosts connected one by one (id + HOME) in {time.monotonic() - started:.2f} s")
    _assert_gone(fleet)


def test_fault_helpers(tmp_path: Path) -> None:
    known_hosts = tmp_path / "known_hosts"
    with SSHFleet(tmp_path / "fleet", 1) as fleet:
        host = fleet.hosts[0]
        fleet.write_known_hosts(known_hosts)

        # run_as prepares state as the host's user; it shows up over SSH.
        fleet.run_as(host, ["bash", "-c", "echo prepared > marker"])
        assert (host.home / "marker").stat().st_uid == pwd.getpwnam(host.user).pw_uid
        client = _connect(fleet, host, known_hosts)
        assert _run(client, "cat marker") == (0, "prepared\n")
        client.close()

        # Host down: connection refused on the same port; back up: same port works.
        port = host.port
        fleet.stop_host(host)
        with pytest.raises(paramiko.ssh_exception.NoValidConnectionsError):
            _connect(fleet, host, known_hosts)
        fleet.start_host(host)
        assert host.port == port
        _connect(fleet, host, known_hosts).close()

        # Host key changed: the old known_hosts must now be rejected.
        old_key = host.host_pubkey
        assert fleet.regenerate_host_key(host) != old_key
        assert host.port == port
        with pytest.raises(paramiko.BadHostKeyException):
            _connect(fleet, host, known_hosts)
        _connect(fleet, host, fleet.write_known_hosts(tmp_path / "known_hosts.new")).close()
    _assert_gone(fleet)


def test_thirty_hosts_in_parallel(tmp_path: Path) -> None:
    known_hosts = tmp_path / "known_hosts"
    fleet = SSHFleet(tmp_path / "fleet", 30)
    with fleet:
        print(f"\n30 hosts started in {fleet.start_seconds:.2f} s")
        fleet.write_known_hosts(known_hosts)

        def check(host: TestHost) -> int:
            client = _connect(fleet, host, known_hosts)
            try:
                return _run(client, "true")[0]
            finally:
                client.close()

        started = time.monotonic()
        with ThreadPoolExecutor(max_workers=30) as pool:
            statuses = list(pool.map(check, fleet.hosts))
        elapsed = time.monotonic() - started
        print(f"30 hosts connected in parallel, `true` on each, in {elapsed:.2f} s")
        assert statuses == [0] * 30
        stop_started = time.monotonic()
    print(f"30 hosts stopped and removed in {time.monotonic() - stop_started:.2f} s")
    _assert_gone(fleet)
