"""Faults of a host's own making, over real SSH with the STAND-IN server: each is injected
into a converged host, must give a clear error naming the host, the step and the cause (or
be repaired outright), and the next apply must converge with nothing half-written."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.conftest import CAN_SSH
from tests.faults.conftest import Faults, converge, models
from tests.support import hostprep
from tests.support.lab import Lab

pytestmark = [
    pytest.mark.faults,
    pytest.mark.ssh,
    pytest.mark.skipif(not CAN_SSH, reason="needs root and openssh-server"),
]


def _site_with_env(lab: Lab, host: object, source: Path, env: dict[str, str]) -> Path:
    name = host.name  # type: ignore[attr-defined]
    return lab.site(
        [host],  # type: ignore[list-item]
        models=models(source),
        per_host={name: {"server": {"port": lab.ports[name], "env": env}}},
    )


def test_a_server_that_crashes_at_start(lab: Lab, small_model: Path, faults: Faults) -> None:
    faults.inject("server crashes at start")
    host = lab.fleet.hosts[0]
    hostprep.reset_host(host)
    converge(lab, lab.site([host], models=models(small_model)))
    broken = _site_with_env(lab, host, small_model, {"STANDIN_FAIL_AT_START": "1"})
    code, result = lab.json("apply", broken)
    assert code == 1
    entry = result[host.name]
    assert entry["status"] == "failed" and entry["failed_step"] == "verify"
    assert "exited while starting" in entry["error"]["message"]
    assert "STANDIN_FAIL_AT_START" in entry["error"]["output_tail"]  # the server's own log
    assert "server.log" in entry["error"]["hint"]
    faults.check(host)
    converge(lab, lab.site([host], models=models(small_model)))
    faults.check(host, sources={"org/fault-a": small_model}, settled=True)


def test_a_server_in_a_crash_loop(lab: Lab, small_model: Path, faults: Faults) -> None:
    faults.inject("server crash loop (dies after its first answer)")
    host = lab.fleet.hosts[0]
    hostprep.reset_host(host)
    looping = _site_with_env(lab, host, small_model, {"STANDIN_CRASH_AFTER_REQUESTS": "1"})
    code, result = lab.json("apply", looping)
    assert code == 1
    entry = result[host.name]
    assert entry["status"] == "failed" and entry["failed_step"] == "verify", entry
    assert "crash" in entry["error"]["message"]
    assert "crashing after 1 requests" in entry["error"]["output_tail"]
    code, result = lab.json("apply", looping)  # again: the same clear error, never "ok"
    assert code == 1 and result[host.name]["failed_step"] == "verify"
    faults.check(host)
    converge(lab, lab.site([host], models=models(small_model)))
    faults.check(host, sources={"org/fault-a": small_model}, settled=True)


def test_the_port_taken_by_another_program(lab: Lab, small_model: Path, faults: Faults) -> None:
    faults.inject("server port held by another program")
    host = lab.fleet.hosts[1]
    hostprep.reset_host(host)
    site = lab.site([host], models=models(small_model))
    with hostprep.hold_port(host, lab.ports[host.name]):
        code, result = lab.json("apply", site)
        assert code == 1
        entry = result[host.name]
        assert entry["failed_step"] == "service"
        assert (
            f"port {lab.ports[host.name]} is held by another program" in entry["error"]["message"]
        )
        assert "server.port" in entry["error"]["hint"]
        faults.check(host)
    converge(lab, site)
    faults.check(host, sources={"org/fault-a": small_model}, settled=True)


def test_the_venv_python_deleted(lab: Lab, small_model: Path, faults: Faults) -> None:
    faults.inject("venv's Python deleted")
    host = lab.fleet.hosts[1]
    hostprep.reset_host(host)
    site = lab.site([host], models=models(small_model))
    converge(lab, site)
    prefix, _ = hostprep.host_paths(host)
    hostprep.kill_servers(host)
    for name in ("python", "python3", "python3.11"):
        (prefix / "current" / "bin" / name).unlink(missing_ok=True)
    code, drift = lab.drift_json(site)
    assert code == 2
    venv = next(d for d in drift[host.name]["differences"] if d["resource"] == "venv")
    assert "Python is gone" in venv["reason"]
    result = converge(lab, site)
    entry = result[host.name]  # type: ignore[index]
    assert "venv" in {c["resource"] for c in entry["changes"]}
    assert lab.drift_json(site)[0] == 0
    faults.check(host, sources={"org/fault-a": small_model}, settled=True)


@pytest.mark.parametrize("half", ["files-gone", "dist-info-gone"])
def test_a_package_half_installed(lab: Lab, small_model: Path, faults: Faults, half: str) -> None:
    faults.inject(f"package half-installed ({half})")
    host = lab.fleet.hosts[2]
    hostprep.reset_host(host)
    site = lab.site([host], models=models(small_model))
    converge(lab, site)
    prefix, _ = hostprep.host_paths(host)
    site_packages = next((prefix / "current" / "lib").glob("python3.*")) / "site-packages"
    if half == "files-gone":
        (site_packages / "localai_standin_server.py").unlink()  # dist-info kept
    else:
        shutil.rmtree(next(site_packages.glob("mlx_omni_server-*.dist-info")))  # files kept
    code, drift = lab.drift_json(site)
    assert code == 2
    resources = {d["resource"]: d["reason"] for d in drift[host.name]["differences"]}
    assert "package mlx-omni-server" in resources, resources
    result = converge(lab, site)
    entry = result[host.name]  # type: ignore[index]
    assert "package mlx-omni-server" in {c["resource"] for c in entry["changes"]}
    assert (site_packages / "localai_standin_server.py").exists()
    assert lab.drift_json(site)[0] == 0
    faults.check(host, sources={"org/fault-a": small_model}, settled=True)


@pytest.mark.parametrize("damage", ["blob-truncated", "file-missing"])
def test_a_damaged_model(lab: Lab, small_model: Path, faults: Faults, damage: str) -> None:
    faults.inject(f"model {damage}")
    host = lab.fleet.hosts[3]
    hostprep.reset_host(host)
    site = lab.site([host], models=models(small_model))
    converge(lab, site)
    _, hf_home = hostprep.host_paths(host)
    base = hf_home / "hub" / "models--org--fault-a"
    snapshot = next((base / "snapshots").iterdir())
    if damage == "blob-truncated":
        blob = (snapshot / "model.safetensors").resolve()
        with open(blob, "r+b") as f:
            f.truncate(1000)  # marker, refs and links all still there
    else:
        (snapshot / "tokenizer.json").unlink()
    code, drift = lab.drift_json(site)
    assert code == 2
    differences = {d["resource"]: d["reason"] for d in drift[host.name]["differences"]}
    assert "model org/fault-a" in differences, differences
    assert "org/fault-a" in differences["model org/fault-a"]
    converge(lab, site)
    assert lab.drift_json(site)[0] == 0
    faults.check(host, sources={"org/fault-a": small_model}, settled=True)


def test_a_wrong_clock_is_warned_about(lab: Lab, small_model: Path, faults: Faults) -> None:
    faults.inject("host clock an hour ahead")
    host = lab.fleet.hosts[3]
    hostprep.reset_host(host)
    # The host's Python (the site's `python`) reads a clock one hour ahead: a wrapper that
    # runs the facts script with time.time shifted. The system clock is never touched.
    wrapper = host.home / "skewed-python"
    wrapper.write_text(
        "#!/bin/sh\n"
        "# called as: skewed-python -I -S -c CODE ARG...\nshift 3\n"
        'exec /usr/bin/python3 -I -S -c "'
        "import sys, time; real = time.time; time.time = lambda: real() + 3600; "
        "code = sys.argv[1]; sys.argv = ['-c'] + sys.argv[2:]; "
        "exec(compile(code, '<facts>', 'exec'), {'__name__': '__main__'})\" \"$@\"\n"
    )
    wrapper.chmod(0o755)
    hostprep.chown_tree(wrapper, host.user)
    site = lab.site([host], models=models(small_model), python=str(wrapper))
    code, result = lab.json("apply", site)
    assert code == 0, result
    warnings = result[host.name]["warnings"]
    assert any("clock is +3600 s off" in w for w in warnings), warnings
    code, out, _ = lab.cli("plan", str(site))
    assert "clock is +3600 s off" in out
    faults.check(host, sources={"org/fault-a": small_model}, settled=True)
