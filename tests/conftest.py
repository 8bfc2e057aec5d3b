"""Fixtures that start real processes (a fleet of sshd, a wheelhouse). They always stop them."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.support.sshfleet import SSHD, SSHFleet, TestHost, cleanup_stale
from tests.support.wheels import build_standin_server, build_wheel

FLEET_SIZE = 8
CAN_SSH = os.geteuid() == 0 and Path(SSHD).exists()


@pytest.fixture(scope="session")
def shared_dir() -> Iterator[Path]:
    """A folder every test user can read (pytest's tmp_path is private to root)."""
    path = Path(tempfile.mkdtemp(prefix="localai-tests-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def wheelhouse(shared_dir: Path) -> Path:
    """Real wheels at chosen versions, and the STAND-IN mlx-omni-server."""
    house = shared_dir / "wheelhouse"
    build_standin_server(house, "0.5.1")
    build_standin_server(house, "0.5.2")
    for version in ("0.28.1", "0.28.2"):
        build_wheel(house, "mlx-lm", version, {"mlx_lm_standin.py": f"VERSION = {version!r}\n"})
    build_wheel(house, "mlx", "0.29.3", {"mlx_standin.py": ""})
    for path in house.iterdir():
        path.chmod(0o644)
    house.chmod(0o755)
    return house


@pytest.fixture(scope="session")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SSHFleet]:
    if not CAN_SSH:
        pytest.skip("needs root and openssh-server (bash .ci/run installs it)")
    cleanup_stale("lt")
    with SSHFleet(tmp_path_factory.mktemp("fleet"), FLEET_SIZE, prefix="lt") as started:
        yield started


def site_yaml(
    fleet: SSHFleet,
    hosts: list[TestHost],
    known_hosts: Path,
    *,
    ports: dict[str, int],
    defaults: dict[str, object] | None = None,
    per_host: dict[str, dict[str, object]] | None = None,
) -> str:
    """A site file for some of the fleet's hosts."""
    base: dict[str, object] = {
        "identity_file": str(fleet.client_key_path),
        "known_hosts_file": str(known_hosts),
        "python": "/usr/bin/python3",
        "prefix": "~/.localai",
        "hf_home": "~/hf",
        "connect_timeout_s": 5,
    }
    base.update(defaults or {})
    site_hosts: dict[str, object] = {}
    for host in hosts:
        entry: dict[str, object] = {
            "address": "127.0.0.1",
            "ssh_port": host.port,
            "user": host.user,
            "server": {"port": ports[host.name]},
        }
        entry.update((per_host or {}).get(host.name, {}))
        site_hosts[host.name] = entry
    return yaml.safe_dump({"version": 1, "defaults": base, "hosts": site_hosts}, sort_keys=False)
