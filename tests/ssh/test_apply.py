"""`localai apply` against real sshd hosts, with the STAND-IN server (tests/support).

The real mlx-omni-server is covered by tests/e2e; here the reconciler's behaviour is tested
on several hosts at once: converging, idempotence, one restart per change, failures that
stay on their host, the lock.
"""

from __future__ import annotations

import json
import os
import pwd
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import CAN_SSH
from tests.support import hostprep
from tests.support.lab import Lab
from tests.support.models import model_folder
from tests.support.sshfleet import TestHost

pytestmark = [
    pytest.mark.ssh,
    pytest.mark.skipif(not CAN_SSH, reason="needs root and openssh-server"),
]


@pytest.fixture(scope="module")
def model_source(shared_dir: Path) -> Path:
    """A model folder on the controller, copied to hosts through `source:`."""
    return model_folder(shared_dir / "models" / "tiny-a", 256 * 1024)


def models(source: Path, *extra: tuple[str, Path]) -> list[dict[str, str]]:
    entries = [{"id": "org/tiny-a", "source": str(source)}]
    entries += [{"id": model_id, "source": str(path)} for model_id, path in extra]
    return entries


def server_pid(host: TestHost) -> int:
    return int((host.home / ".localai" / "run" / "server.pid").read_text())


def chat(lab: Lab, host: TestHost, model: str = "org/tiny-a") -> int:
    import urllib.request

    body = json.dumps(
        {"model": model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
    ).encode()
    request = urllib.request.Request(
        f"http://127.0.0.1:{lab.ports[host.name]}/v1/chat/completions",
        data=body,
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return int(response.status)


def test_fresh_hosts_converge_and_a_second_apply_changes_nothing(
    lab: Lab, model_source: Path
) -> None:
    hosts = lab.fleet.hosts[:3]
    for host in hosts:
        hostprep.reset_host(host)
    site = lab.site(hosts, models=models(model_source))

    code, result = lab.json("apply", site)
    assert code == 0, result
    for host in hosts:
        entry = result[host.name]
        assert entry["status"] == "changed", entry
        resources = {c["resource"] for c in entry["changes"]}
        assert len([r for r in resources if r.startswith("generation ")]) == 1
        assert {r for r in resources if not r.startswith("generation ")} == {
            "package mlx-omni-server",
            "package mlx-lm",
            "package torch",
            "shim",
            "server-config",
            "model org/tiny-a",
            "service",
        }
        assert entry["verify"]["/v1/models"] >= 0
        assert [p["model"] for p in entry["prewarm"]] == ["org/tiny-a"]
        assert chat(lab, host) == 200
        state = json.loads((host.home / ".localai" / "state.json").read_text())
        assert state["packages"] == {"mlx-omni-server": "0.5.1", "mlx-lm": "0.28.2"}
        assert state["models"]["org/tiny-a"]
        config = host.home / ".localai" / "server.json"
        assert os.stat(config).st_mode & 0o777 == 0o600
        assert not (host.home / ".localai" / "lock").exists()  # released
    pids = {h.name: server_pid(h) for h in hosts}

    code, result = lab.json("apply", site)
    assert code == 0
    for host in hosts:
        assert result[host.name]["status"] == "ok"
        assert result[host.name]["changes"] == []
        assert server_pid(host) == pids[host.name]  # nothing restarted

    code, drift = lab.drift_json(site)
    assert code == 0 and all(h["status"] == "in-sync" for h in drift.values())

    code, out, _ = lab.cli("apply", str(site), "--quiet")
    assert code == 0
    assert "3 hosts: 3 unchanged, 0 changed, 0 failed, 0 skipped" in out


def test_a_version_bump_changes_one_package_and_restarts_once(lab: Lab, model_source: Path) -> None:
    host = lab.fleet.hosts[0]
    site = lab.site([host], models=models(model_source))
    assert lab.cli("apply", str(site), "--quiet")[0] == 0
    before = server_pid(host)

    bumped = lab.site(
        [host],
        models=models(model_source),
        packages={"mlx-omni-server": "0.5.2", "mlx-lm": "0.28.2"},
    )
    code, result = lab.json("apply", bumped)
    assert code == 0, result
    changes = result[host.name]["changes"]
    # Another set is a new generation, built beside the one that served, then one restart.
    generation = changes[0]["resource"]
    assert generation.startswith("generation ")
    assert [(c["resource"], c["action"]) for c in changes] == [
        (generation, "create"),
        ("package mlx-omni-server", "update"),
        ("shim", "create"),
        ("server-config", "update"),
        ("service", "restart"),
    ]
    assert changes[1]["before"] == "0.5.1" and changes[1]["after"] == "0.5.2"
    assert server_pid(host) != before
    code, _ = lab.drift_json(bumped)
    assert code == 0


def test_an_added_model_is_copied_listed_and_prewarmed(
    lab: Lab, model_source: Path, shared_dir: Path
) -> None:
    host = lab.fleet.hosts[1]
    hostprep.reset_host(host)
    site = lab.site([host], models=models(model_source))
    assert lab.cli("apply", str(site), "--quiet")[0] == 0

    second = shared_dir / "models" / "tiny-b"
    second.mkdir(parents=True, exist_ok=True)
    (second / "config.json").write_text(json.dumps({"model_type": "llama"}))
    # The same weights as tiny-a: the blob (named by its hash) must not be sent again.
    (second / "model.safetensors").write_bytes((model_source / "model.safetensors").read_bytes())
    site = lab.site([host], models=models(model_source, ("org/tiny-b", second)))
    code, result = lab.json("apply", site)
    assert code == 0, result
    entry = result[host.name]
    assert [(c["resource"], c["action"]) for c in entry["changes"]] == [
        ("model org/tiny-b", "create"),
        ("service", "restart"),
    ]
    assert {p["model"] for p in entry["prewarm"]} == {"org/tiny-a", "org/tiny-b"}
    assert chat(lab, host, "org/tiny-b") == 200
    blobs = host.home / "hf" / "hub" / "models--org--tiny-b" / "blobs"
    assert len(list(blobs.iterdir())) == 2  # config.json and the weights
    snapshot = next((blobs.parent / "snapshots").iterdir())
    link = snapshot / "model.safetensors"
    assert link.is_symlink() and os.readlink(link).startswith("../../blobs/")


def test_a_killed_server_is_started_again(lab: Lab, model_source: Path) -> None:
    host = lab.fleet.hosts[2]
    site = lab.site([host], models=models(model_source))
    assert lab.cli("apply", str(site), "--quiet")[0] == 0
    os.kill(server_pid(host), signal.SIGKILL)
    time.sleep(0.2)
    code, drift = lab.drift_json(site)
    assert code == 2
    assert [d["resource"] for d in drift[host.name]["differences"]] == ["service"]
    code, result = lab.json("apply", site)
    assert code == 0
    assert [c["action"] for c in result[host.name]["changes"]] == ["start"]
    assert chat(lab, host) == 200


def test_one_unreachable_host_among_five(lab: Lab, model_source: Path) -> None:
    hosts = lab.fleet.hosts[:4]
    site = lab.site(hosts, models=models(model_source))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    site.write_text(
        site.read_text()
        + (f"  gone-01:\n    address: 127.0.0.1\n    ssh_port: {dead}\n    user: nobody\n")
    )
    code, result = lab.json("apply", site)
    assert code == 1
    assert result["gone-01"]["status"] == "unreachable"
    assert result["gone-01"]["failed_step"] == "connect"
    for host in hosts:
        assert result[host.name]["status"] in ("ok", "changed"), result[host.name]
    code, _ = lab.drift_json(site, "--limit", "!gone-01")
    assert code == 0


def test_a_port_held_by_another_program_fails_clearly(lab: Lab, model_source: Path) -> None:
    host = lab.fleet.hosts[3]
    hostprep.reset_host(host)
    port = lab.ports[host.name]
    with hostprep.hold_port(host, port):
        site = lab.site([host], models=models(model_source))
        code, result = lab.json("apply", site)
        assert code == 1
        entry = result[host.name]
        assert entry["status"] == "failed" and entry["failed_step"] == "service"
        assert f"port {port} is held by another program" in entry["error"]["message"]
        assert "server.port" in entry["error"]["hint"]
        code, out, _ = lab.cli("apply", str(site), "--quiet")
        assert code == 1 and f"[service]: port {port} is held" in out


def test_a_server_that_fails_at_start_is_reported_with_its_log(
    lab: Lab, model_source: Path
) -> None:
    host = lab.fleet.hosts[4]
    hostprep.reset_host(host)
    site = lab.site(
        [host],
        models=models(model_source),
        per_host={
            host.name: {
                "server": {"port": lab.ports[host.name], "env": {"STANDIN_FAIL_AT_START": "1"}}
            }
        },
    )
    code, result = lab.json("apply", site)
    assert code == 1
    entry = result[host.name]
    assert entry["failed_step"] == "verify"
    assert "exited while starting" in entry["error"]["message"]
    assert "STANDIN_FAIL_AT_START" in entry["error"]["output_tail"]


def test_two_applies_on_one_host_do_not_interleave(lab: Lab, model_source: Path) -> None:
    host = lab.fleet.hosts[5]
    hostprep.reset_host(host)
    site = lab.site([host], models=models(model_source))
    # Another apply holds the lock: its session (here a sleeping process of the host's
    # user) is alive.
    account = pwd.getpwnam(host.user)
    holder = subprocess.Popen(["sleep", "60"], user=account.pw_uid, group=account.pw_gid)
    lock = host.home / ".localai" / "lock"
    try:
        lock.mkdir(parents=True)
        (lock / "owner.json").write_text(
            json.dumps(
                {
                    "session_pid": holder.pid,
                    "controller": "other-mac",
                    "controller_pid": 4242,
                    "started": "2026-11-26T00:00:00Z",
                    "tool_version": "0.1.0",
                }
            )
        )
        hostprep.chown_tree(host.home / ".localai", host.user)
        code, result = lab.json("apply", site, "--lock-wait", "1")
        assert code == 1
        entry = result[host.name]
        assert entry["failed_step"] == "lock"
        assert "another apply is running" in entry["error"]["message"]
        assert "other-mac, pid 4242" in entry["error"]["message"]
    finally:
        holder.kill()
        holder.wait()
    # The holder is gone: its lock is stale and taken over.
    code, result = lab.json("apply", site)
    assert code == 0, result
    assert any("stale lock" in w for w in result[host.name]["warnings"])

    # And two real applies at once: both end converged, never interleaved.
    hostprep.reset_host(host)
    procs = [
        subprocess.Popen(
            [
                "python",
                "-m",
                "localai_provision",
                "apply",
                str(site),
                "--json",
                "--lock-wait",
                "120",
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outs = [json.loads(p.communicate(timeout=300)[0]) for p in procs]
    statuses = sorted(o["hosts"][0]["status"] for o in outs)
    assert statuses == ["changed", "ok"]
    assert all(p.returncode == 0 for p in procs)


def test_an_interrupted_model_copy_is_redone(lab: Lab, model_source: Path) -> None:
    host = lab.fleet.hosts[6]
    site = lab.site([host], models=models(model_source))
    assert lab.cli("apply", str(site), "--quiet")[0] == 0
    base = host.home / "hf" / "hub" / "models--org--tiny-a"
    # What a copy cut half-way leaves: a truncated blob and no ref or marker yet.
    weights = next(p for p in (base / "blobs").iterdir() if p.stat().st_size > 100_000)
    with open(weights, "r+b") as f:
        f.truncate(1000)
    (base / "refs" / "main").unlink()
    (base / ".localai-complete").unlink()
    code, drift = lab.drift_json(site)
    assert code == 2
    assert "model org/tiny-a" in {d["resource"] for d in drift[host.name]["differences"]}
    code, result = lab.json("apply", site)
    assert code == 0, result
    assert weights.stat().st_size == (model_source / "model.safetensors").stat().st_size
    assert lab.drift_json(site)[0] == 0


def test_max_fail_and_serial(lab: Lab, model_source: Path) -> None:
    hosts = lab.fleet.hosts[:3]
    site = lab.site(hosts, models=models(model_source))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    # `aaa-` sorts first: with --serial 1 it is the first batch, and its failure stops the rest.
    site.write_text(
        site.read_text()
        + (f"  aaa-gone:\n    address: 127.0.0.1\n    ssh_port: {dead}\n    user: nobody\n")
    )
    text = site.read_text()
    lines = text.splitlines(keepends=True)
    hosts_at = lines.index("hosts:\n")
    block_start = next(i for i, line in enumerate(lines) if line.startswith("  aaa-gone:"))
    block = lines[block_start:]
    site.write_text("".join(lines[: hosts_at + 1] + block + lines[hosts_at + 1 : block_start]))
    code, result = lab.json("apply", site, "--serial", "1")
    assert code == 1
    assert result["aaa-gone"]["status"] == "unreachable"
    assert all(result[h.name]["status"] == "skipped" for h in hosts)
    code, result = lab.json("apply", site, "--max-fail", "1", "--forks", "1")
    assert code == 1
    assert [result[h.name]["status"] for h in hosts] == ["skipped"] * 3


def test_pip_installer_and_uv_installer(lab: Lab, model_source: Path) -> None:
    host = lab.fleet.hosts[7]
    hostprep.reset_host(host)
    site = lab.site([host], models=models(model_source), installer="pip")
    code, result = lab.json("apply", site)
    assert code == 0, result
    assert not (host.home / ".localai" / "tools").exists()
    if not list(lab.wheelhouse.glob("uv-*.whl")):
        pytest.skip("no uv wheel could be downloaded into the wheelhouse")
    hostprep.reset_host(host)
    site = lab.site([host], models=models(model_source), installer="uv")
    code, result = lab.json("apply", site)
    assert code == 0, result
    assert (host.home / ".localai" / "tools" / "bin" / "uv").exists()


def test_a_locked_set_is_synced_exactly(lab: Lab, model_source: Path) -> None:
    host = lab.fleet.hosts[7]
    hostprep.reset_host(host)
    site = lab.site([host], models=models(model_source), lock="locks/set")
    code, _out, err = lab.cli("lock", str(site), "--platform", "linux-x86_64")
    assert code == 0, err
    lock_file = site.parent / "locks" / "set.linux-x86_64.txt"
    assert "--hash=sha256:" in lock_file.read_text()
    code, result = lab.json("apply", site)
    assert code == 0, result
    assert not any("only the pinned packages" in w for w in result[host.name]["warnings"])

    # Something the lock does not name appears in the venv: drift names it, apply removes it.
    venv_python = host.home / ".localai" / "current" / "bin" / "python"
    hostprep.root_pip(
        "--python",
        str(venv_python),
        "install",
        "-q",
        "--no-index",
        "--find-links",
        str(lab.wheelhouse),
        "--no-deps",
        "mlx==0.29.3",
    )
    hostprep.chown_tree(host.home / ".localai", host.user)
    code, drift = lab.drift_json(site)
    assert code == 2
    assert {d["resource"] for d in drift[host.name]["differences"]} == {"package mlx", "service"}
    code, result = lab.json("apply", site)
    assert code == 0, result
    assert lab.drift_json(site)[0] == 0


def test_a_server_that_never_answers_is_cut_at_the_verify_timeout(
    lab: Lab, model_source: Path
) -> None:
    host = lab.fleet.hosts[4]
    hostprep.reset_host(host)
    site = lab.site(
        [host],
        models=models(model_source),
        verify={"timeout_s": 2},
        per_host={
            host.name: {
                "server": {"port": lab.ports[host.name], "env": {"STANDIN_START_DELAY_S": "60"}}
            }
        },
    )
    code, result = lab.json("apply", site)
    assert code == 1
    entry = result[host.name]
    assert entry["failed_step"] == "verify"
    assert (
        "did not answer" in entry["error"]["message"] and "within 2 s" in entry["error"]["message"]
    )
    hostprep.kill_servers(host)
