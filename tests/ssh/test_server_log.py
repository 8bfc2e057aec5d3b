"""The server's log over real SSH: rotated by size under a launchd crash loop (the stand-in
Mac's launchd restarts a KeepAlive job after ThrottleInterval, as launchd does), and on the
process service at each start; status shows its size and a crashed server's last lines.
Also the loaded models, as the stand-in server publishes them the way the shim does."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.conftest import CAN_SSH
from tests.ssh.test_launchd import label, mac_site, wait_for
from tests.ssh.test_launchd import model_source as model_source  # the module's fixture
from tests.support import hostprep
from tests.support.lab import MODEL, Lab
from tests.support.macos import have_sudo, job
from tests.support.sshfleet import TestHost

pytestmark = [
    pytest.mark.ssh,
    pytest.mark.skipif(not CAN_SSH, reason="needs root and openssh-server"),
]

LIMIT_MB = 0.002  # 2097 bytes: a few starts' worth of the stand-in's output
KEEP = 2
FILLER = b"old output of the server\n" * 200  # 5000 bytes: over the limit


def logs_dir(host: TestHost) -> Path:
    return host.home / ".localai" / "logs"


def write_as(host: TestHost, path: Path, data: bytes) -> None:
    path.write_bytes(data)
    hostprep.chown_tree(path, host.user)


@pytest.mark.skipif(not have_sudo(), reason="needs Debian's sudo (apt-get install sudo)")
def test_a_crash_looping_launchd_job_rotates_its_log_at_the_limit_keeping_only_its_own_files(
    lab: Lab, mac: TestHost, model_source: Path
) -> None:
    failing = mac_site(
        lab,
        mac,
        model_source,
        verify={"timeout_s": 3},
        server_log={"max_mb": LIMIT_MB, "keep": KEEP},
        per_host={
            mac.name: {
                "server": {"port": lab.ports[mac.name], "env": {"STANDIN_FAIL_AT_START": "1"}}
            }
        },
    )
    code, result = lab.json("apply", failing)
    assert code == 1 and result[mac.name]["failed_step"] == "verify", result
    logs = logs_dir(mac)
    # Between two starts of the loop: what an older server wrote, over the limit, and the
    # files of earlier rotations; beside them files the tool did not make.
    runs = int(str(job(mac, label(lab, mac))["runs"]))
    with open(logs / "server.log", "ab") as log:
        log.write(FILLER)
    write_as(mac, logs / "server.log.1", b"rotated once\n")
    write_as(mac, logs / "server.log.2", b"rotated twice: the oldest kept\n")
    write_as(mac, logs / "server.log.old", b"the admin's own copy\n")
    write_as(mac, logs / "notes.txt", b"not the tool's\n")
    wait_for(lambda: int(str(job(mac, label(lab, mac))["runs"])) >= runs + 2, seconds=60)

    names = sorted(os.listdir(logs))
    assert names == ["notes.txt", "server.log", "server.log.1", "server.log.2", "server.log.old"]
    assert FILLER in (logs / "server.log.1").read_bytes()  # rotated at the next start
    assert (logs / "server.log.2").read_bytes() == b"rotated once\n"  # shifted; the oldest gone
    assert (logs / "server.log.old").read_bytes() == b"the admin's own copy\n"
    assert (logs / "notes.txt").read_bytes() == b"not the tool's\n"
    current = (logs / "server.log").read_bytes()
    assert len(current) < int(LIMIT_MB * 1024 * 1024)
    assert b"STANDIN_FAIL_AT_START" in current  # the crash loop writes the new file

    code, status = lab.json("status", failing)
    log = status[mac.name]["log"]
    assert log["path"] == str(logs / "server.log")
    assert log["rotated_files"] == KEEP and log["size_bytes"] > 0
    assert any("STANDIN_FAIL_AT_START" in line for line in log["crash_tail"]), log
    _code, out, _err = lab.cli("status", str(failing))
    assert "the server has crashed; the last lines of" in out


def test_the_process_service_rotates_the_log_at_start_and_status_lists_the_loaded_model(
    lab: Lab, model_source: Path
) -> None:
    host = lab.fleet.hosts[5]
    hostprep.reset_host(host)
    models = [{"id": MODEL, "source": str(model_source)}]
    site = lab.site([host], models=models, server_log={"max_mb": LIMIT_MB, "keep": KEEP})
    code, result = lab.json("apply", site)
    assert code == 0, result
    code, status = lab.json("status", site)
    entry = status[host.name]
    # prewarm loaded the model through the server: the stand-in published it.
    assert entry["models_loaded"] == [MODEL], entry
    published = json.loads((host.home / ".localai" / "state" / "loaded-models.json").read_text())
    assert published["pid"] == entry["pid"]
    assert entry["log"]["rotated_files"] == 0

    logs = logs_dir(host)
    with open(logs / "server.log", "ab") as log:
        log.write(FILLER)
    # A changed setting is a changed configuration of the server: plan says so, apply
    # restarts it, and the launcher rotates the log before the new server writes.
    restarted = lab.site([host], models=models, server_log={"max_mb": LIMIT_MB, "keep": KEEP + 1})
    _code, plan = lab.json("plan", restarted)
    assert {"server-config", "service"} <= {c["resource"] for c in plan[host.name]["changes"]}
    code, result = lab.json("apply", restarted)
    assert code == 0, result
    assert FILLER in (logs / "server.log.1").read_bytes()
    assert FILLER not in (logs / "server.log").read_bytes()
    code, status = lab.json("status", restarted)
    assert status[host.name]["log"]["rotated_files"] == 1
    assert status[host.name]["pid"] != entry["pid"]
    assert status[host.name]["models_loaded"] == [MODEL]  # prewarmed by the new server
    hostprep.reset_host(host)
