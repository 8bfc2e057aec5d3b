"""Fixtures that start real processes (a fleet of sshd, a wheelhouse). They always stop them."""

from __future__ import annotations

import fcntl
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import reliability
from tests.support.hostprep import free_port
from tests.support.lab import Lab
from tests.support.sshfleet import SSHD, SSHFleet, cleanup_stale
from tests.support.wheels import build_standin_server, build_wheel

FLEET_SIZE = 8
CAN_SSH = os.geteuid() == 0 and Path(SSHD).exists()

# A run started in the background by a shell without job control (`cmd &` in a script) starts
# with SIGINT ignored, and every controller the tests start would inherit that: the Ctrl-C
# tests' controllers finished their apply instead of stopping with 130 (a run of 2026-12-02).
# A handler, unlike "ignored", is not inherited across exec: the controllers get the default.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN and (
    threading.current_thread() is threading.main_thread()  # signal() is refused elsewhere
):
    signal.signal(signal.SIGINT, signal.default_int_handler)


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


RUN_DIR = "localai_run_dir"  # the key of the run's folder in an xdist worker's input
_run_dir_key = pytest.StashKey[Path]()


def pytest_configure(config: pytest.Config) -> None:
    """The controller (or a serial run) makes one folder for the whole run, which its
    workers share: what is the same for all of them (the wheelhouse) is made there once."""
    if not hasattr(config, "workerinput"):
        path = Path(tempfile.mkdtemp(prefix="localai-tests-run-"))
        path.chmod(0o755)
        config.stash[_run_dir_key] = path


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """pytest-xdist: tell each worker where the run's folder is."""
    node.workerinput[RUN_DIR] = str(node.config.stash[_run_dir_key])


def pytest_unconfigure(config: pytest.Config) -> None:
    if not hasattr(config, "workerinput") and _run_dir_key in config.stash:
        shutil.rmtree(config.stash[_run_dir_key], ignore_errors=True)


@pytest.fixture(scope="session")
def run_dir(pytestconfig: pytest.Config) -> Path:
    """The run's folder (every test user can read it), shared by all workers; the
    controller removes it at the end."""
    workerinput = getattr(pytestconfig, "workerinput", None)
    if workerinput is not None:
        return Path(workerinput[RUN_DIR])
    return pytestconfig.stash[_run_dir_key]


@pytest.fixture(scope="session")
def wheelhouse(run_dir: Path) -> Path:
    """Real wheels at chosen versions, and the STAND-IN mlx-omni-server. Read-only once
    made, so the first worker that needs it makes it for all (under a lock; measured
    2026-12-02: 3 s of CPU and a 17 MB download of uv per worker otherwise)."""
    house = run_dir / "wheelhouse"
    with (run_dir / "wheelhouse.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not house.is_dir():
            partial = run_dir / "wheelhouse.partial"
            shutil.rmtree(partial, ignore_errors=True)
            _build_wheelhouse(partial)
            partial.rename(house)
    return house


def _build_wheelhouse(house: Path) -> None:
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


@pytest.fixture(scope="session")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SSHFleet]:
    if not CAN_SSH:
        pytest.skip("needs root and openssh-server (bash .ci/run installs it)")
    cleanup_stale("lt")
    with SSHFleet(tmp_path_factory.mktemp("fleet"), FLEET_SIZE, prefix="lt") as started:
        yield started


@pytest.fixture(scope="session")
def ports(fleet: SSHFleet, run_dir: Path) -> dict[str, int]:
    """A server port per test host (they share the machine's loopback). Kept for the
    session, so no two workers of a run may hold the same: each takes its ports under a
    lock and writes them down for the others (8 ports a worker out of ~28,000 that
    bind() hands out: 4 workers would share one in about 1 run in 70 otherwise)."""
    with (run_dir / "ports").open("a+") as taken:
        fcntl.flock(taken, fcntl.LOCK_EX)
        taken.seek(0)
        used = {int(line) for line in taken.read().split()}
        chosen: dict[str, int] = {}
        for host in fleet.hosts:
            port = next(p for p in (free_port() for _ in range(100)) if p not in used)
            used.add(port)
            chosen[host.name] = port
        taken.write("".join(f"{port}\n" for port in chosen.values()))
    return chosen


@pytest.fixture
def known_hosts(tmp_path: Path) -> Path:
    return tmp_path / "known_hosts"


@pytest.fixture
def lab(
    fleet: SSHFleet, tmp_path: Path, known_hosts: Path, ports: dict[str, int], wheelhouse: Path
) -> Lab:
    return Lab(fleet, tmp_path, known_hosts, ports, wheelhouse)


# The folders of the tests that use real systems (markers ssh, faults, e2e).
REAL_SYSTEM_DIRS = ("tests/ssh/", "tests/faults/", "tests/e2e/")


@pytest.hookimpl(tryfirst=True, optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """How pytest-xdist deals the tests out (`-n 4 --dist loadgroup`, pyproject.toml).

    Each worker has its own session fixtures (a fleet of 8 sshd, a shared folder), so a
    file of real-system tests runs whole, in its order, on one worker: its module fixtures
    (the e2e `applied` installs the real server) are made once, and a test that reuses the
    hosts its neighbours converged finds them as in a serial run. Every other test goes to
    whichever worker is free. Files with more tests are dealt first (xdist's default).

    Done here rather than with `xdist_group` markers: with pytest 9.2 and xdist 3.8 those
    group nothing (xdist renames `item._nodeid`, which pytest 9 no longer reads; measured
    2026-12-02: three tests of one group ran on two workers)."""
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadGroupScheduling

    class RealSystemFilesWhole(LoadGroupScheduling):
        def _split_scope(self, nodeid: str) -> str:
            scope = str(super()._split_scope(nodeid))
            if scope != nodeid:
                return scope  # an xdist_group, where xdist can read it
            path = nodeid.split("::", 1)[0]
            return path if path.startswith(REAL_SYSTEM_DIRS) else nodeid

    return RealSystemFilesWhole(config, log)


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
