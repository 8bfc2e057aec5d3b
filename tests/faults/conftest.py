"""Helpers of the fault-injection suite: model folders, and the check that nothing is
half-written on a host (what it finds is recorded as `data_lost` for bench/faults.py)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support import hostprep
from tests.support.lab import Lab
from tests.support.models import model_folder
from tests.support.sshfleet import SSHFleet, TestHost

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def small_model(shared_dir: Path) -> Path:
    return model_folder(shared_dir / "fault-models" / "tiny", 256 * 1024)


@pytest.fixture(scope="session")
def big_model(shared_dir: Path) -> Path:
    """A model of 48 MB: its copy takes long enough to be interrupted, and fills 20 MB."""
    return model_folder(shared_dir / "fault-models" / "big", 48 << 20, tokenizer=False)


@pytest.fixture(autouse=True)
def fresh_hosts_afterwards(fleet: SSHFleet) -> Iterator[None]:
    """A fault test leaves every host it may have used as a fresh machine: the tests of
    tests/ssh that run after it on the same session fleet expect their own state only."""
    yield
    for host in fleet.hosts:
        hostprep.reset_host(host)


def models(source: Path, model_id: str = "org/fault-a") -> list[dict[str, str]]:
    return [{"id": model_id, "source": str(source)}]


def _sha(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def half_written(
    host: TestHost, *, sources: dict[str, Path] | None = None, settled: bool = False
) -> list[str]:
    """What on the host is half-written: a file the tool relies on that does not parse, a
    model marked complete whose files do not match, a venv marked complete without its
    Python. With ``settled`` (after an apply that converged): also any lock, any temporary
    file left behind, and every model file must equal its source."""
    prefix, hf_home = hostprep.host_paths(host)
    found: list[str] = []
    for name in ("state.json", "server.json"):
        path = prefix / name
        if path.exists():
            try:
                json.loads(path.read_text())
            except ValueError:
                found.append(f"{path} does not parse")
    venvs = [prefix / "venv", *sorted((prefix / "generations").glob("*"))]
    for venv in venvs:
        if (venv / ".localai-complete").exists() and not (venv / "bin" / "python").exists():
            found.append(f"{venv} is marked complete without its Python")
    current = prefix / "current"
    if current.is_symlink() and not (current / ".localai-generation.json").exists():
        found.append(f"{current} names a generation that is not complete")
    hub = hf_home / "hub"
    for base in sorted(hub.glob("models--*")) if hub.is_dir() else []:
        marker = base / ".localai-complete"
        if not marker.exists():
            continue
        data = json.loads(marker.read_text())
        snapshot = base / "snapshots" / data["commit"]
        for rel, size in data["files"].items():
            file = snapshot / rel
            if not file.exists() or file.stat().st_size != size:
                found.append(f"{file} is marked complete but is missing or truncated")
    if settled:
        if (prefix / "lock").exists():
            found.append(f"{prefix / 'lock'} is left behind")
        for root in (prefix, hf_home):
            for path in root.rglob("*") if root.exists() else []:
                partial = path.name.endswith(".incomplete") and path.parent.name == "blobs"
                if (".localai-tmp" in path.name or partial) and not {"venv", "generations"} & set(
                    path.parts
                ):
                    found.append(f"temporary file {path} is left behind")
        for model_id, source in (sources or {}).items():
            base = hub / ("models--" + model_id.replace("/", "--"))
            commit = (base / "refs" / "main").read_text().strip()
            for file in source.rglob("*"):
                if file.is_file():
                    copy = base / "snapshots" / commit / file.relative_to(source)
                    if not copy.exists() or _sha(copy) != _sha(file):
                        found.append(f"{copy} differs from {file}")
    return found


class Faults:
    """Names the fault a test injects and counts what it finds half-written."""

    def __init__(self, request: pytest.FixtureRequest) -> None:
        self.node = request.node
        self.lost = 0

    def inject(self, name: str) -> None:
        self.node.user_properties.append(("fault", name))

    def check(
        self, host: TestHost, *, sources: dict[str, Path] | None = None, settled: bool = False
    ) -> None:
        found = half_written(host, sources=sources, settled=settled)
        self.lost += len(found)
        self.node.user_properties = [p for p in self.node.user_properties if p[0] != "data_lost"]
        self.node.user_properties.append(("data_lost", self.lost))
        assert not found, found


@pytest.fixture
def faults(request: pytest.FixtureRequest) -> Faults:
    return Faults(request)


def start_apply(site: Path, *extra: str) -> subprocess.Popen[str]:
    """`localai apply` as a separate process (to be signalled or watched)."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen(
        [sys.executable, "-m", "localai_provision", "apply", str(site), "--json", *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def wait_for(condition: Callable[[], bool], timeout: float = 60.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what or condition}")


def copying(host: TestHost) -> bool:
    """A model blob is being uploaded (its partial file, BLOB.incomplete, exists)."""
    _, hf_home = hostprep.host_paths(host)
    for path in (hf_home / "hub").glob("models--*/blobs/*.incomplete"):
        try:
            if path.stat().st_size > 0:
                return True
        except OSError:
            pass  # renamed meanwhile
    return False


def converge(lab: Lab, site: Path) -> dict[str, object]:
    code, result = lab.json("apply", site)
    assert code == 0, json.dumps({h: e["error"] for h, e in result.items() if e["error"]})
    return result
