"""`transfer.max_rate` over real sshd: the controller's upload (paramiko SFTP) and a host
passing the file on (scripts/blobs.py `serve`) each keep within 10% of the cap.

The rate is the bytes of one copy over its own duration, as each end counts it: the
controller from the first piece to the SFTP close (every byte acknowledged), the receiving
host's `blobs.py fetch` from the first byte of the answer to the last. 24 MiB at 4 MiB/s
is 6 s a copy, so the fixed costs around a copy (opening the file, the last acknowledgement,
tens of milliseconds on a loaded machine) stay well under the 10%."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from localai_provision.connectors.base import connector_for
from localai_provision.connectors.openssh import OpenSSHConnector
from localai_provision.connectors.ssh import SSHConnector
from localai_provision.transfer import Artifact, Distributor, Placement
from localai_provision.transfer_progress import FileProgress
from tests.conftest import CAN_SSH
from tests.support import hostprep
from tests.support.lab import Lab

pytestmark = [
    pytest.mark.ssh,
    pytest.mark.skipif(not CAN_SSH, reason="needs root and openssh-server"),
]

SIZE = 24 << 20  # above transfer.PEER_MIN_BYTES: the second host gets it from the first
CAP = 4 << 20  # bytes/s


def test_max_rate_holds_the_controller_and_a_host_passing_the_file_on_within_10_percent(
    lab: Lab, tmp_path: Path
) -> None:
    hosts = lab.fleet.hosts[3:5]
    for host in hosts:
        hostprep.reset_host(host)
    site = lab.site(hosts, transfer={"max_rate": "4MiB"})
    data = os.urandom(SIZE)
    blob = tmp_path / "model.safetensors"
    blob.write_bytes(data)
    digest = hashlib.sha256(data).hexdigest()
    artifact = Artifact(f"sha256:{digest}", SIZE, blob)
    events: list[FileProgress] = []
    distributor = Distributor(progress=events.append)
    connectors = [SSHConnector(lab.spec(site, h)) for h in hosts]
    try:
        # One after the other, so that the order is certain: the first host's copy comes
        # from the controller, the second's from the first host.
        for host, connector in zip(hosts, connectors, strict=True):
            connector.open()
            connector.run(f"mkdir -p {host.home}/blobs")
            placement = Placement(artifact, f"{host.home}/blobs/{digest}")
            spec = lab.spec(site, host)
            assert spec.transfer.max_rate == CAP
            distributor.deliver(connector, spec, "/usr/bin/python3", [placement], "models")
    finally:
        for connector in connectors:
            connector.close()
    done = [e for e in events if e.finished]
    assert [(e.host, e.source) for e in done] == [
        (hosts[0].name, "controller"),
        (hosts[1].name, hosts[0].name),
    ]
    for event in done:
        rate = (event.done - event.start) / event.elapsed_s
        print(f"{event.source} -> {event.host}: {rate / CAP:.3f} of the cap")
        assert abs(rate / CAP - 1) < 0.10, f"{event.source} sent at {rate / 1e6:.2f} MB/s"
    # Progress came while the controller's copy ran, each with a rate and bytes so far.
    during = [e for e in events if e.source == "controller" and not e.finished]
    assert len(during) >= 10
    assert all(0 <= e.done <= SIZE for e in during)
    for host in hosts:
        assert hashlib.sha256((host.home / "blobs" / digest).read_bytes()).hexdigest() == digest


def test_a_paced_upload_over_openssh_goes_through_a_pipe_whole_and_resumes(
    lab: Lab, tmp_path: Path
) -> None:
    """`ssh` takes its stdin as a file descriptor: a metered upload is fed to it by a thread
    through a pipe. Every byte is told to the meter, and a resumed copy sends only the rest."""
    host = lab.fleet.hosts[3]
    hostprep.reset_host(host)
    spec = lab.spec(lab.site([host], ssh_client="openssh"), host)
    data = os.urandom(3 << 20)
    blob = tmp_path / "blob"
    blob.write_bytes(data)
    told: list[int] = []
    target = f"{host.home}/blob.incomplete"
    with connector_for(spec) as connector:
        assert isinstance(connector, OpenSSHConnector)
        connector.append_file(blob, target, 0, told.append)
        assert sum(told) == len(data) and max(told) <= 64 << 10
        told.clear()
        connector.append_file(blob, target, 1 << 20, told.append)
    assert sum(told) == len(data) - (1 << 20)
    assert (host.home / "blob.incomplete").read_bytes() == data
