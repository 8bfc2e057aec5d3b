"""Artifacts from the controller, over real sshd hosts (stand-in server): large model blobs
passed on from host to host, partial copies resumed, what arrives checked, models the
controller downloads once (`source: hf:ID`), and locked wheels pushed (`package_index.push`).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from localai_provision.connectors.ssh import SSHConnector
from localai_provision.transfer import Artifact, Distributor, Placement
from tests.conftest import CAN_SSH
from tests.support import hostprep
from tests.support.lab import Lab
from tests.support.models import model_folder
from tests.support.sshfleet import TestHost

pytestmark = [
    pytest.mark.ssh,
    pytest.mark.skipif(not CAN_SSH, reason="needs root and openssh-server"),
]

BIG = 12 << 20  # above transfer.PEER_MIN_BYTES: goes through the peer tree
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def big_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = model_folder(tmp_path_factory.mktemp("models") / "big", BIG)
    folder.chmod(0o755)
    return folder


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def model_steps(entry: dict[str, Any]) -> list[dict[str, Any]]:
    return [s for s in entry["steps"] if s["step"] == "models"]


def blobs(host: TestHost, model: str = "models--org--big") -> Path:
    return host.home / "hf" / "hub" / model / "blobs"


def test_a_large_blob_passes_from_host_to_host(lab: Lab, big_model: Path) -> None:
    hosts = lab.fleet.hosts[:4]
    for host in hosts:
        hostprep.reset_host(host)
    site = lab.site(hosts, models=[{"id": "org/big", "source": str(big_model)}])
    code, result = lab.json("apply", site)
    assert code == 0, result
    steps = [model_steps(result[h.name])[0] for h in hosts]
    from_controller = sum(s["bytes_from_controller"] for s in steps)
    from_peers = sum(s["bytes_from_peers"] for s in steps)
    # The controller uploads the big blob to fewer than all four hosts; the rest got it
    # from a host that already had it.
    assert from_controller < 4 * BIG
    assert from_peers >= BIG
    assert any(set(s["sources"]) - {"controller"} for s in steps)
    assert sum(result[h.name]["cost"]["bytes_sent"] for h in hosts) < 4 * BIG
    want = sha256(big_model / "model.safetensors")
    for host in hosts:
        assert (blobs(host) / want).stat().st_size == BIG
        assert sha256(blobs(host) / want) == want
        assert not list(blobs(host).glob("*.incomplete"))
    assert lab.drift_json(site)[0] == 0
    # Nothing is sent again.
    code, again = lab.json("apply", site)
    assert code == 0 and all(again[h.name]["status"] == "ok" for h in hosts)
    assert sum(again[h.name]["cost"]["bytes_sent"] for h in hosts) == 0


@pytest.mark.faults
def test_an_interrupted_copy_resumes_and_a_wrong_one_is_refused(
    lab: Lab, big_model: Path, request: pytest.FixtureRequest
) -> None:
    request.node.user_properties.append(
        ("fault", "model copy cut half-way, then bytes that are not what was sent")
    )
    host = lab.fleet.hosts[4]
    hostprep.reset_host(host)
    site = lab.site(
        [host],
        models=[{"id": "org/big", "source": str(big_model)}],
        transfer={"peers": False},
    )
    want = sha256(big_model / "model.safetensors")
    data = (big_model / "model.safetensors").read_bytes()
    folder = blobs(host)
    folder.mkdir(parents=True)
    # What a copy cut at 5 MiB leaves behind.
    (folder / f"{want}.incomplete").write_bytes(data[: 5 << 20])
    hostprep.chown_tree(host.home / "hf", host.user)
    code, result = lab.json("apply", site)
    assert code == 0, result
    step = model_steps(result[host.name])[0]
    assert step["bytes_resumed"] == 5 << 20
    # Config, tokenizer and the rest of the weights; not the 5 MiB already there.
    assert BIG - (5 << 20) <= step["bytes_from_controller"] < BIG
    assert sha256(folder / want) == want

    # A partial copy whose content is wrong: what arrives is checked and refused.
    hostprep.reset_host(host)
    folder.mkdir(parents=True)
    (folder / f"{want}.incomplete").write_bytes(os.urandom(5 << 20))
    hostprep.chown_tree(host.home / "hf", host.user)
    code, result = lab.json("apply", site)
    assert code == 1
    error = result[host.name]["error"]
    assert result[host.name]["failed_step"] == "models"
    assert "not what was sent" in error["message"] and want in error["message"]
    assert not (folder / want).exists() and not (folder / f"{want}.incomplete").exists()
    # The next apply sends it whole.
    code, result = lab.json("apply", site)
    assert code == 0, result
    assert sha256(folder / want) == want


@pytest.mark.faults
def test_a_host_that_cannot_serve_falls_back_to_the_controller(
    lab: Lab, big_model: Path, request: pytest.FixtureRequest
) -> None:
    """Library level, so that the order is certain: A holds the blob, then B asks for it."""
    request.node.user_properties.append(
        ("fault", "a host cannot pass a file on (an address not its own)")
    )
    hosts = lab.fleet.hosts[5:7]
    for host in hosts:
        hostprep.reset_host(host)
    # 192.0.2.1 (TEST-NET-1) is no address of this machine: a peer cannot listen on it.
    per_host = {h.name: {"transfer": {"peer_address": "192.0.2.1"}} for h in hosts}
    site = lab.site(hosts, per_host=per_host)
    weights = big_model / "model.safetensors"
    artifact = Artifact(f"sha256:{sha256(weights)}", BIG, weights)
    distributor = Distributor()
    deliveries = []
    connectors = [SSHConnector(lab.spec(site, h)) for h in hosts]
    try:
        for host, connector in zip(hosts, connectors, strict=True):
            connector.open()
            connector.run(f"mkdir -p {host.home}/hf/blobs")
            placement = Placement(artifact, f"{host.home}/hf/blobs/{sha256(weights)}")
            spec = lab.spec(site, host)
            deliveries.append(
                distributor.deliver(connector, spec, "/usr/bin/python3", [placement], "models")
            )
    finally:
        for connector in connectors:
            connector.close()
    assert [d.sources for d in deliveries] == [{"controller": 1}, {"controller": 1}]
    assert deliveries[0].warnings == []
    (warning,) = deliveries[1].warnings
    assert f"could not get a file from {hosts[0].name}" in warning
    assert "no free port" in warning and "192.0.2.1" in warning
    for host in hosts:
        assert sha256(host.home / "hf" / "blobs" / sha256(weights)) == sha256(weights)


def hub_cache(root: Path, repo: str, files: dict[str, bytes]) -> str:
    """A Hugging Face cache holding ``repo`` as huggingface_hub lays it out: large files
    named by sha256, small ones by their git blob id, a snapshot of symlinks, a ref."""
    commit = hashlib.sha1(repo.encode()).hexdigest()
    base = root / "hub" / ("models--" + repo.replace("/", "--"))
    (base / "blobs").mkdir(parents=True)
    for rel, data in files.items():
        if len(data) > 1 << 20:
            name = hashlib.sha256(data).hexdigest()
        else:
            name = hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
        (base / "blobs" / name).write_bytes(data)
        link = base / "snapshots" / commit / rel
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(base / "blobs" / name, link.parent))
    (base / "refs").mkdir()
    (base / "refs" / "main").write_text(commit)
    return commit


def run_cli(*argv: str, env: dict[str, str]) -> tuple[int, dict[str, Any], str]:
    proc = subprocess.run(
        [sys.executable, "-m", "localai_provision.cli", *argv],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO), **env},
        timeout=600,
        check=False,
    )
    hosts = {h["name"]: h for h in json.loads(proc.stdout)["hosts"]} if proc.stdout else {}
    return proc.returncode, hosts, proc.stderr


def test_a_hub_model_is_fetched_once_by_the_controller_and_laid_out_alike(
    lab: Lab, tmp_path: Path
) -> None:
    hosts = lab.fleet.hosts[:2]
    for host in hosts:
        hostprep.reset_host(host)
    files = {
        "config.json": json.dumps({"model_type": "llama", "hidden_size": 64}).encode(),
        "model.safetensors": os.urandom(2 << 20),
        "tokenizer.json": b'{"model": {"vocab": {"a": 0}}}',
    }
    controller_hf = tmp_path / "controller-hf"
    commit = hub_cache(controller_hf, "org/hubby", files)
    site = lab.site(hosts, models=[{"id": "org/hubby", "source": "hf:org/hubby"}])
    env = {"HF_HOME": str(controller_hf), "HF_HUB_OFFLINE": "1"}
    code, result, err = run_cli("apply", str(site), "--json", env=env)
    assert code == 0, (result, err)
    want = controller_hf / "hub" / "models--org--hubby"
    for host in hosts:
        got = host.home / "hf" / "hub" / "models--org--hubby"
        assert sorted(p.name for p in (got / "blobs").iterdir()) == sorted(
            p.name for p in (want / "blobs").iterdir()
        )
        assert (got / "refs" / "main").read_text() == commit
        for rel, data in files.items():
            link = got / "snapshots" / commit / rel
            assert link.is_symlink() and link.read_bytes() == data
    # A model the controller cannot get is a clear error on every host that needs it.
    site = lab.site(hosts, models=[{"id": "org/absent", "source": "hf:org/absent"}])
    code, result, err = run_cli("apply", str(site), "--json", env=env)
    assert code == 1
    for host in hosts:
        message = result[host.name]["error"]["message"]
        assert "the controller could not download org/absent@main" in message


def test_pushed_wheels_install_with_no_index(
    lab: Lab, tmp_path: Path, big_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    host = lab.fleet.hosts[7]
    hostprep.reset_host(host)
    # Wheels only the controller can read (root's private temporary folder): the host must
    # install from what it was sent.
    private = tmp_path / "private-wheels"
    shutil.copytree(lab.wheelhouse, private)
    os.chmod(tmp_path, 0o700)
    site = lab.site(
        [host],
        models=[{"id": "org/big", "source": str(big_model)}],
        lock="locks/pushed",
        package_index={"no_index": True, "find_links": [str(private)], "push": True},
    )
    code, _out, err = lab.cli("lock", str(site), "--platform", "linux-x86_64")
    assert code == 0, err
    monkeypatch.setenv("LOCALAI_WHEELHOUSE", str(tmp_path / "controller-wheels"))
    code, result = lab.json("apply", site)
    assert code == 0, json.dumps(result[host.name]["error"])
    wheels = next(s for s in result[host.name]["steps"] if s["step"] == "wheels")
    assert wheels["files_sent"] == wheels["wheels"] >= 4
    sent = sorted(p.name for p in (host.home / ".localai" / "wheels").iterdir())
    assert any(name.startswith("mlx_omni_server-0.5.1") for name in sent)
    assert any(name.startswith("uv-") for name in sent)
    assert lab.drift_json(site)[0] == 0
    # A wheel of no use any more is deleted when the set changes; one already there is
    # not sent again.
    stray = host.home / ".localai" / "wheels" / "old-1.0-py3-none-any.whl"
    stray.write_bytes(b"old")
    hostprep.root_pip(
        "--python",
        str(host.home / ".localai" / "current" / "bin" / "python"),
        "uninstall",
        "-q",
        "-y",
        "mlx-lm",
    )
    code, result = lab.json("apply", site)
    assert code == 0, result
    wheels = next(s for s in result[host.name]["steps"] if s["step"] == "wheels")
    assert wheels["files_sent"] == 0
    assert not stray.exists()


@pytest.mark.faults
def test_a_holder_that_dies_mid_copy_is_resumed_from_elsewhere(
    lab: Lab, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """A's server is killed while B copies from it: B keeps what arrived, resumes from the
    controller, and ends with the right bytes."""
    request.node.user_properties.append(("fault", "a host passing a file on killed mid-copy"))
    hosts = lab.fleet.hosts[2:4]
    for host in hosts:
        hostprep.reset_host(host)
    site = lab.site(hosts)
    weights = tmp_path / "weights.bin"
    weights.write_bytes(os.urandom(150 << 20))
    digest = sha256(weights)
    artifact = Artifact(f"sha256:{digest}", weights.stat().st_size, weights)
    distributor = Distributor()
    connectors = [SSHConnector(lab.spec(site, h)) for h in hosts]
    for connector, host in zip(connectors, hosts, strict=True):
        connector.open()
        connector.run(f"mkdir -p {host.home}/blobs")

    def deliver(index: int) -> Any:
        host = hosts[index]
        placement = Placement(artifact, f"{host.home}/blobs/{digest}")
        return distributor.deliver(
            connectors[index], lab.spec(site, host), "/usr/bin/python3", [placement], "models"
        )

    try:
        first = deliver(0)
        with ThreadPoolExecutor(1) as pool:
            second_future = pool.submit(deliver, 1)
            partial = hosts[1].home / "blobs" / f"{digest}.incomplete"
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and (
                not partial.exists() or partial.stat().st_size < (1 << 20)
            ):
                time.sleep(0.005)
            subprocess.run(["pkill", "-KILL", "-u", hosts[0].user, "-f", "serve"], check=False)
            second = second_future.result(timeout=300)
    finally:
        for connector in connectors:
            connector.close()
    assert first.sources == {"controller": 1}
    assert sha256(hosts[1].home / "blobs" / digest) == digest
    if second.sources == {hosts[0].name: 1}:
        pytest.skip("the copy finished before the holder was killed (a very fast machine)")
    assert second.sources == {"controller": 1}
    assert any(f"could not get a file from {hosts[0].name}" in w for w in second.warnings)
    # What arrived from A before it died was kept, not sent again.
    assert second.resumed_bytes > 0
    assert second.from_controller_bytes == artifact.size - second.resumed_bytes
