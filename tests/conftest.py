"""Fixtures that start real processes (a fleet of sshd, a wheelhouse). They always stop them."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import reliability
from tests.support.hostprep import free_port
from tests.support.lab import Lab
from tests.support.sshfleet import SSHD, SSHFleet, cleanup_stale
from tests.support.wheels import build_standin_server, build_wheel

FLEET_SIZE = 8
CAN_SSH = os.geteuid() == 0 and Path(SSHD).exists()


@pytest.fixture(scope="session", autouse=True)
def site_cache() -> Iterator[Path]:
    """The validated-site cache of the whole run in a folder of its own, not in ~/.cache."""
    folder = Path(tempfile.mkdtemp(prefix="localai-cache-"))
    before = os.environ.get("XDG_CACHE_HOME")
    os.environ["XDG_CACHE_HOME"] = str(folder)
    yield folder
    if before is None:
        os.environ.pop("XDG_CACHE_HOME", None)
    else:
        os.environ["XDG_CACHE_HOME"] = before
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(autouse=True)
def ssh_masters(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Each test's OpenSSH masters in a folder of its own, ended when the test ends: a
    master kept by one test (ControlPersist) is never reused by another, whose host may
    have a new key or sshd by then. Short (/tmp/cmXXXX): a socket path has 104 bytes."""
    folder = Path(tempfile.mkdtemp(prefix="cm", dir="/tmp"))
    monkeypatch.setenv("LOCALAI_SSH_CONTROL_DIR", str(folder))
    yield folder
    for sock in list(folder.iterdir()):
        subprocess.run(
            ["ssh", "-o", f"ControlPath={sock}", "-O", "exit", "localai-test"],
            capture_output=True,
            check=False,
            timeout=10,
        )
    shutil.rmtree(folder, ignore_errors=True)


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
    build_standin_server(house, "0.5.9", crash_at_start=True)  # a broken upgrade
    for version in ("0.28.1", "0.28.2"):
        build_wheel(house, "mlx-lm", version, {"mlx_lm_standin.py": f"VERSION = {version!r}\n"})
    build_wheel(house, "mlx", "0.29.3", {"mlx_standin.py": ""})
    # What a Linux host gets besides the pins: stand-ins for torch's CPU build and mlx-cpu.
    build_wheel(house, "torch", "2.13.0+cpu", {"torch_standin.py": ""})
    build_wheel(house, "mlx-cpu", "0.29.3", {"mlx_cpu_standin.py": ""})
    # uv, so that `installer: auto` finds it in the wheelhouse as it would on an index.
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--quiet",
            "--no-deps",
            "--only-binary=:all:",
            "--dest",
            str(house),
            "uv",
        ],
        check=False,
        capture_output=True,
    )
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


@pytest.fixture(scope="session")
def ports(fleet: SSHFleet) -> dict[str, int]:
    """A server port per test host (they share the machine's loopback)."""
    return {h.name: free_port() for h in fleet.hosts}


@pytest.fixture
def known_hosts(tmp_path: Path) -> Path:
    return tmp_path / "known_hosts"


@pytest.fixture
def lab(
    fleet: SSHFleet, tmp_path: Path, known_hosts: Path, ports: dict[str, int], wheelhouse: Path
) -> Lab:
    return Lab(fleet, tmp_path, known_hosts, ports, wheelhouse)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """Each fault and hostile-input test, once run, appends its outcome for bench/faults.py
    (tests/support/reliability.py says what is counted)."""
    outcome = yield
    report = outcome.get_result()
    kinds = [k for k in ("faults", "hostile") if item.get_closest_marker(k)]
    if not kinds or report.when != "call":
        return
    props = dict(item.user_properties)
    name = getattr(item, "originalname", item.name)
    entry: dict[str, object] = {
        "kind": "fault" if kinds[0] == "faults" else "hostile",
        "test": item.nodeid,
        "passed": report.passed,
        "skipped": report.skipped,
    }
    if kinds[0] == "faults":
        entry["fault"] = props.get("fault", name)
        entry["data_lost"] = int(props.get("data_lost", 0))
    else:
        tried = int(props.get("tried", reliability.EXAMPLES.pop(name, 0) or 1))
        entry["tried"] = tried
        entry["let_through"] = 0 if report.passed else int(props.get("let_through", 1))
    reliability.write(entry)
