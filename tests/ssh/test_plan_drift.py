"""plan and drift against real sshd hosts, prepared by hand (tests/support/hostprep.py)."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from localai_provision.fleet import check_hosts
from localai_provision.site import load_site
from tests.conftest import CAN_SSH
from tests.support import hostprep
from tests.support.lab import MODEL, Lab
from tests.support.sshfleet import TestHost

pytestmark = [
    pytest.mark.ssh,
    pytest.mark.skipif(not CAN_SSH, reason="needs root and openssh-server"),
]


def test_in_sync_host_costs_one_connection_and_one_command(lab: Lab) -> None:
    host = lab.fleet.hosts[0]
    site = lab.site([host])
    hostprep.prepare_in_sync(lab.fleet, host, lab.spec(site, host), lab.wheelhouse)

    code, hosts = lab.drift_json(site)
    assert code == 0, hosts
    assert hosts[host.name]["status"] == "in-sync"
    assert hosts[host.name]["differences"] == []

    # One command, and no new connection: the drift just before left its master open.
    [result] = check_hosts(list(load_site(site).hosts.values()))
    assert (result.connections, result.commands) == (0, 1)
    facts = result.facts
    assert facts is not None
    assert facts.venv.packages["mlx-lm"] == "0.28.2"
    assert facts.listed_models == {MODEL}
    assert facts.service.process is not None and facts.service.process.alive
    assert facts.system.os == "linux" and facts.system.user == host.user

    code, out, _ = lab.cli("plan", str(site))
    assert code == 0 and f"{host.name}: no changes" in out


def _pip(host: TestHost, *args: str) -> None:
    venv = host.home / ".localai" / "current" / "bin" / "python"
    hostprep.root_pip("--python", str(venv), *args, "-q")
    hostprep.chown_tree(host.home / ".localai", host.user)


Mutation = Callable[[Lab, TestHost], dict[str, dict[str, object]] | None]


def _older_package(lab: Lab, host: TestHost) -> None:
    _pip(host, "install", "--no-index", "--find-links", str(lab.wheelhouse), "mlx-lm==0.28.1")


def _missing_package(lab: Lab, host: TestHost) -> None:
    _pip(host, "uninstall", "-y", "mlx-lm")


def _server_killed(lab: Lab, host: TestHost) -> None:
    hostprep.kill_servers(host)


def _model_removed(lab: Lab, host: TestHost) -> None:
    subprocess.run(["rm", "-rf", str(host.home / "hf" / "hub" / "models--org--tiny-a")], check=True)


def _model_blob_missing(lab: Lab, host: TestHost) -> None:
    snapshot = host.home / "hf" / "hub" / "models--org--tiny-a" / "snapshots" / ("a" * 40)
    os.symlink("../../blobs/missing", snapshot / "tokenizer.json")


def _config_changed(lab: Lab, host: TestHost) -> dict[str, dict[str, object]]:
    return {host.name: {"server": {"port": lab.ports[host.name], "log_level": "debug"}}}


def _venv_python_gone(lab: Lab, host: TestHost) -> None:
    (host.home / ".localai" / "current" / "bin" / "python").unlink()


def _model_added_after_start(lab: Lab, host: TestHost) -> dict[str, dict[str, object]]:
    hostprep.write_model(lab.fleet, host, "org/tiny-b")
    return {host.name: {"models": [MODEL, "org/tiny-b"]}}


def _fresh_host(lab: Lab, host: TestHost) -> None:
    hostprep.reset_host(host)


# (id, mutation, {resource: action} expected in the plan)
DIFFERENCES: list[tuple[str, Mutation, dict[str, str]]] = [
    ("older-package", _older_package, {"package mlx-lm": "update", "service": "restart"}),
    ("missing-package", _missing_package, {"package mlx-lm": "create", "service": "restart"}),
    ("server-killed", _server_killed, {"service": "start"}),
    ("model-removed", _model_removed, {"model org/tiny-a": "create", "service": "restart"}),
    (
        "model-blob-missing",
        _model_blob_missing,
        {"model org/tiny-a": "update", "service": "restart"},
    ),
    ("config-changed", _config_changed, {"server-config": "update", "service": "restart"}),
    (
        "venv-python-gone",
        _venv_python_gone,
        {
            "venv": "update",
            "package mlx-omni-server": "create",
            "package mlx-lm": "create",
            "package torch": "create",
            "shim": "create",
            "service": "restart",
        },
    ),
    ("model-not-listed", _model_added_after_start, {"service": "restart"}),
    (
        "fresh-host",
        _fresh_host,
        {
            "generation": "create",
            "package mlx-omni-server": "create",
            "package mlx-lm": "create",
            "package torch": "create",
            "shim": "create",
            "server-config": "create",
            "model org/tiny-a": "create",
            "service": "start",
        },
    ),
]


@pytest.mark.parametrize(
    ("mutate", "expected"), [c[1:] for c in DIFFERENCES], ids=[c[0] for c in DIFFERENCES]
)
def test_every_kind_of_difference(lab: Lab, mutate: Mutation, expected: dict[str, str]) -> None:
    host = lab.fleet.hosts[1]
    site = lab.site([host])
    hostprep.prepare_in_sync(lab.fleet, host, lab.spec(site, host), lab.wheelhouse)
    per_host = mutate(lab, host)
    if per_host:
        site = lab.site([host], per_host=per_host)

    code, out, _ = lab.cli("plan", str(site), "--json")
    assert code == 2
    [result] = json.loads(out)["hosts"]
    # A generation's ID is a digest: the table names the kind only.
    actions = {
        c["resource"].split()[0] if c["resource"].startswith("generation ") else c["resource"]: c[
            "action"
        ]
        for c in result["changes"]
    }
    assert actions == expected
    restarts = [c for c in result["changes"] if c["action"] in ("start", "restart")]
    assert len(restarts) == 1  # one start or restart per host, whatever changed
    assert all(c["reason"] for c in result["changes"])

    code, hosts = lab.drift_json(site)
    assert code == 2
    assert hosts[host.name]["status"] == "drift"
    differences = {
        d["resource"].split()[0] if d["resource"].startswith("generation ") else d["resource"]
        for d in hosts[host.name]["differences"]
    }  # type: ignore[union-attr]
    assert differences == set(expected)


def test_port_held_by_another_program_is_named(lab: Lab) -> None:
    host = lab.fleet.hosts[2]
    hostprep.reset_host(host)
    port = lab.ports[host.name]
    with hostprep.hold_port(host, port):
        code, out, _ = lab.cli("plan", str(lab.site([host])), "--json")
        [result] = json.loads(out)["hosts"]
        service = next(c for c in result["changes"] if c["resource"] == "service")
        assert "held by another program" in service["reason"]
        assert code == 2


def test_unreachable_host_is_reported_and_the_others_still_checked(lab: Lab) -> None:
    host = lab.fleet.hosts[0]
    site = lab.site([host], per_host={})
    hostprep.prepare_in_sync(lab.fleet, host, lab.spec(site, host), lab.wheelhouse)
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        dead_port = s.getsockname()[1]
    text = site.read_text() + (
        f"  dead-01:\n    address: 127.0.0.1\n    ssh_port: {dead_port}\n    user: nobody\n"
    )
    site.write_text(text)
    code, hosts = lab.drift_json(site)
    assert code == 1
    assert hosts[host.name]["status"] == "in-sync"
    assert hosts["dead-01"]["status"] == "unreachable"
    error = hosts["dead-01"]["error"]
    assert isinstance(error, dict) and "refused" in str(error["message"])
    # Output is ordered by host name, whatever the finishing order.
    assert list(hosts) == sorted(hosts)

    code, out, _ = lab.cli("drift", str(site))
    assert code == 1
    assert "dead-01" in out and "unreachable" in out


@pytest.fixture
def silent_listener() -> Iterator[int]:
    """A TCP port that accepts connections and never says anything: a hung host."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
                held.append(conn)
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join()
    for conn in held:
        conn.close()
    server.close()


def test_a_hanging_host_is_cut_at_its_timeout(lab: Lab, silent_listener: int) -> None:
    host = lab.fleet.hosts[0]
    site = lab.site([host])
    text = site.read_text() + (
        f"  hung-01:\n    address: 127.0.0.1\n    ssh_port: {silent_listener}\n"
        "    user: nobody\n    connect_timeout_s: 1\n"
    )
    site.write_text(text)
    code, hosts = lab.drift_json(site)
    assert code == 1
    assert hosts["hung-01"]["status"] == "unreachable"
    assert hosts[host.name]["status"] in ("in-sync", "drift")


def test_accept_new_records_the_key_and_a_changed_key_is_refused(lab: Lab) -> None:
    host = lab.fleet.hosts[-1]
    hostprep.reset_host(host)
    site = lab.site([host])
    code, hosts = lab.drift_json(site)
    assert hosts[host.name]["status"] == "drift"
    recorded = lab.known_hosts.read_text()
    assert recorded.startswith(f"[127.0.0.1]:{host.port} ssh-ed25519 ")

    lab.fleet.regenerate_host_key(host)
    code, hosts = lab.drift_json(site)
    assert code == 1
    error = hosts[host.name]["error"]
    assert isinstance(error, dict)
    assert error["kind"] == "HostKeyError"
    assert "CHANGED" in str(error["message"]) and "line 1" in str(error["message"])
    assert "ssh-keygen -R" in str(error["hint"])
    # Refused always: the known_hosts file is untouched.
    assert lab.known_hosts.read_text() == recorded


def test_strict_refuses_an_unknown_key_and_off_warns(lab: Lab) -> None:
    host = lab.fleet.hosts[3]
    hostprep.reset_host(host)
    site = lab.site([host], host_key_checking="strict")
    code, hosts = lab.drift_json(site)
    assert code == 1
    error = hosts[host.name]["error"]
    assert isinstance(error, dict) and "strict" in str(error["message"])
    assert "ssh-keyscan" in str(error["hint"])
    assert not lab.known_hosts.exists()

    site = lab.site([host], host_key_checking="off")
    code, out, _ = lab.cli("plan", str(site))
    assert code == 2
    assert "host key checking is off" in out


def test_a_wrong_key_is_refused_with_the_user_named(lab: Lab, tmp_path: Path) -> None:
    host = lab.fleet.hosts[3]
    other_key = tmp_path / "other_ed25519"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other_key)], check=True
    )
    site = lab.site([host], identity_file=str(other_key))
    code, hosts = lab.drift_json(site)
    assert code == 1
    error = hosts[host.name]["error"]
    assert isinstance(error, dict) and error["kind"] == "AuthenticationError"
    assert host.user in str(error["message"]) and str(other_key) in str(error["message"])


def test_junit_report_has_a_case_per_host(lab: Lab, tmp_path: Path) -> None:
    in_sync, drifted = lab.fleet.hosts[0], lab.fleet.hosts[4]
    site = lab.site([in_sync, drifted])
    hostprep.prepare_in_sync(lab.fleet, in_sync, lab.spec(site, in_sync), lab.wheelhouse)
    hostprep.reset_host(drifted)
    report = tmp_path / "drift.xml"
    code, _, _ = lab.cli("drift", str(site), "--junit", str(report))
    assert code == 2
    suite = ET.parse(report).getroot()
    assert suite.get("tests") == "2" and suite.get("failures") == "1"
    cases = {c.get("name"): c for c in suite.iter("testcase")}
    assert cases[in_sync.name].find("failure") is None
    failure = cases[drifted.name].find("failure")
    assert failure is not None and "generation" in (failure.text or "")


def test_limit_and_parallel_hosts(lab: Lab) -> None:
    hosts = lab.fleet.hosts
    for host in hosts:
        hostprep.reset_host(host)
    site = lab.site(hosts)
    results = check_hosts(list(load_site(site).hosts.values()))
    assert [r.name for r in results] == sorted(h.name for h in hosts)
    assert all(r.status == "drift" and r.connections == 1 and r.commands == 1 for r in results)

    code, found = lab.drift_json(site, "--limit", f"{hosts[0].name},{hosts[1].name}")
    assert code == 2 and set(found) == {hosts[0].name, hosts[1].name}


def test_ctrl_c_stops_cleanly_while_a_host_hangs(lab: Lab, silent_listener: int) -> None:
    host = lab.fleet.hosts[0]
    site = lab.site([host])
    site.write_text(
        site.read_text()
        + (
            f"  hung-01:\n    address: 127.0.0.1\n    ssh_port: {silent_listener}\n"
            "    user: nobody\n    connect_timeout_s: 600\n"
        )
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "localai_provision", "drift", str(site)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(2)  # the hung host holds one worker in its 600 s connect timeout
    proc.send_signal(signal.SIGINT)
    # Without a clean stop the command would wait out the hung host's 600 s.
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 130
    assert "interrupted" in err and "Traceback" not in err


def _tree(root: Path) -> dict[str, tuple[int, int, float]]:
    """Every file and folder below ``root``: (mode, size, mtime)."""
    found: dict[str, tuple[int, int, float]] = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = os.path.join(folder, name)
            st = os.lstat(path)
            found[os.path.relpath(path, root)] = (st.st_mode, st.st_size, st.st_mtime)
    return found


def test_drift_and_plan_change_nothing_on_the_host_but_the_kept_facts_code(lab: Lab) -> None:
    host = lab.fleet.hosts[2]
    site = lab.site([host])
    hostprep.prepare_in_sync(lab.fleet, host, lab.spec(site, host), lab.wheelhouse)
    hostprep.kill_servers(host)  # a drifted host: the check must still leave it as it is
    # The one thing a check writes: the facts script's compiled code, in the user's cache
    # folder, for the next check (facts/remote_loader.py). Removed first to see it written.
    kept = host.home / ".cache" / "localai-provision"
    shutil.rmtree(kept, ignore_errors=True)
    before = _tree(host.home)
    for _ in range(3):
        assert lab.drift_json(site)[0] == 2
        assert lab.cli("plan", str(site))[0] == 2
        assert lab.cli("status", str(site))[0] == 0
    after = _tree(host.home)
    cache = {p for p in after if p == ".cache" or p.startswith(".cache/localai-provision")}
    assert {p: v for p, v in after.items() if p not in cache} == {
        p: v for p, v in before.items() if p not in cache
    }
    [entry] = (kept / "facts").iterdir()
    assert entry.stat().st_mode & 0o777 == 0o600
    assert entry.stat().st_uid == pwd.getpwnam(host.user).pw_uid
