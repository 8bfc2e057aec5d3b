"""Pull mode over real SSH: a test host runs `localai apply --local` on itself, as its own
user, from a git checkout it pulls; the controller's drift and status read its report over
SSH; `localai apply` from the controller installs the pull timer (crontab on Linux, launchd
through the STAND-INS on a "Mac")."""

from __future__ import annotations

import json
import os
import plistlib
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import CAN_SSH
from tests.support import hostprep
from tests.support.lab import Lab
from tests.support.macos import job as standin_job
from tests.support.pullhost import (
    git,
    host_env,
    install_tool,
    make_checkout,
    push_site,
    run_localai,
)
from tests.support.sshfleet import TestHost

pytestmark = [
    pytest.mark.ssh,
    pytest.mark.skipif(not CAN_SSH, reason="needs root and openssh-server"),
]

HAS_CRONTAB = shutil.which("crontab") is not None


@pytest.fixture(scope="module")
def program(shared_dir: Path) -> Path:
    """`localai` as a test host's user can run it."""
    return install_tool(shared_dir / "pull-tool")


@pytest.fixture(scope="module")
def model_source(shared_dir: Path) -> Path:
    folder = shared_dir / "models" / "pull-tiny"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps({"model_type": "llama"}))
    (folder / "model.safetensors").write_bytes(b"\2" * 4096)
    return folder


@pytest.fixture
def pair(lab: Lab) -> Iterator[list[TestHost]]:
    hosts = lab.fleet.hosts[4:6]
    for host in hosts:
        hostprep.reset_host(host)
    yield hosts
    for host in hosts:
        hostprep.reset_host(host)
        for name in ("lab", "work", "origin.git"):
            shutil.rmtree(host.home / name, ignore_errors=True)
        if HAS_CRONTAB:
            subprocess.run(["crontab", "-r", "-u", host.user], capture_output=True, check=False)


def report_of(host: TestHost) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(
        (host.home / ".localai" / "state" / "pull-report.json").read_text()
    )
    return data


def apply_local(lab: Lab, program: Path, host: TestHost, *extra: str) -> tuple[int, Any]:
    done = run_localai(
        lab.fleet,
        program,
        host,
        "apply",
        "--local",
        str(host.home / "lab" / "site.yaml"),
        "--host",
        host.name,
        "--git-pull",
        "--json",
        *extra,
    )
    assert done.stdout, done.stderr
    return done.returncode, json.loads(done.stdout)


def test_a_host_converges_itself_and_the_controller_sees_its_report(
    lab: Lab, program: Path, model_source: Path, pair: list[TestHost]
) -> None:
    me, other = pair
    models = [{"id": "org/tiny-a", "source": str(model_source)}]
    site = lab.site(pair, models=models)
    text = site.read_text()
    checkout = make_checkout(lab.fleet, me, text)

    code, result = apply_local(lab, program, me)
    assert code == 0, result
    [entry] = result["hosts"]  # this host only: the other one is not touched
    assert entry["name"] == me.name and entry["status"] == "changed"
    assert entry["cost"]["connections"] == 1
    assert not (other.home / ".localai").exists()
    report = report_of(me)
    head = git(lab.fleet, me, "-C", str(checkout), "rev-parse", "HEAD")
    assert report["result"] == "changed" and report["changes"] == len(entry["changes"])
    assert report["git_commit"] == head and report["git_pull"] == {"ok": True, "error": None}
    assert report["site_file"] == str(checkout / "site.yaml")
    assert report["failed_step"] is None and report["error"] is None
    assert result["pull_report"] == str(me.home / ".localai" / "state" / "pull-report.json")
    assert oct((me.home / ".localai" / "state" / "pull-report.json").stat().st_uid) == oct(
        (me.home).stat().st_uid
    )

    # The controller: the host it converged is in sync, over SSH, with its last pull shown.
    code, drift = lab.drift_json(site, "--limit", me.name)
    assert code == 0, drift
    assert drift[me.name]["status"] == "in-sync"
    assert drift[me.name]["last_pull"]["result"] == "changed"
    assert drift[me.name]["last_pull"]["git_commit"] == head
    assert not [w for w in drift[me.name]["warnings"] if "pull" in w]
    code, drift = lab.drift_json(site)
    assert code == 2 and drift[other.name]["status"] == "drift"  # never applied

    # Again: nothing to do, and the report says so.
    code, result = apply_local(lab, program, me)
    assert code == 0 and result["hosts"][0]["status"] == "ok"
    assert report_of(me)["result"] == "converged"

    # A commit that breaks this host: its pull fails; the controller warns, by host, time
    # and error, and drift's exit code still says only whether the host differs.
    broken = yaml.safe_load(text)
    broken["hosts"][me.name]["server"]["env"] = {"TOKEN": {"from_env": "LOCALAI_NOT_SET_HERE"}}
    new_head = push_site(lab.fleet, me, yaml.safe_dump(broken), "a token for the server")
    code, result = apply_local(lab, program, me)
    assert code == 1
    report = report_of(me)
    assert report["git_commit"] == new_head  # the pull took the new commit
    assert report["result"] == "failed" and report["failed_step"] == "secret"
    assert "LOCALAI_NOT_SET_HERE" in report["error"]
    code, out, _ = lab.cli("drift", str(site), "--limit", me.name)
    assert code == 0, out  # in sync with the controller's site: a warning, not drift
    warning = next(line for line in out.splitlines() if "the last pull" in line)
    assert warning.startswith(f"warning: {me.name}: the last pull")
    assert report["finished_at"] in warning and "failed at step secret" in warning
    assert "LOCALAI_NOT_SET_HERE" in warning
    code, status = lab.json("status", site, "--limit", me.name)
    assert code == 0
    assert status[me.name]["last_pull"]["result"] == "failed"
    assert any("failed at step secret" in w for w in status[me.name]["warnings"])
    code, out, _ = lab.cli("status", str(site), "--limit", me.name)
    assert f"failed {report['finished_at']}" in out and "warning:" in out


def test_a_site_file_the_host_cannot_read_is_a_failed_pull(
    lab: Lab, program: Path, pair: list[TestHost]
) -> None:
    me = pair[0]
    make_checkout(
        lab.fleet,
        me,
        "version: 1\ndefaults: {packages: {mlx-omni-server: 0.5.1}}\nhosts:\n  someone-else: {}\n",
    )
    report = me.home / ".localai" / "state" / "pull-report.json"
    done = run_localai(
        lab.fleet,
        program,
        me,
        "apply",
        "--local",
        str(me.home / "lab" / "site.yaml"),
        "--host",
        me.name,
        "--report",
        str(report),
    )
    assert done.returncode == 1 and "is not a host of" in done.stderr
    assert "(hosts: someone-else)" in done.stderr
    data = report_of(me)
    assert data["result"] == "failed" and data["failed_step"] == "site"


def pull_settings(host: TestHost, program: Path, **extra: object) -> dict[str, object]:
    return {
        "checkout": "~/lab",
        "site": "site.yaml",
        "command": str(program),
        "interval_s": 300,
        **extra,
    }


def crontab_of(host: TestHost) -> str:
    done = subprocess.run(["crontab", "-l", "-u", host.user], capture_output=True, text=True)
    return done.stdout if done.returncode == 0 else ""


@pytest.mark.skipif(not HAS_CRONTAB, reason="needs cron's crontab (bash .ci/run installs it)")
def test_apply_installs_the_pull_timer_in_the_users_crontab_and_removes_it(
    lab: Lab, program: Path, model_source: Path, pair: list[TestHost]
) -> None:
    me = pair[0]
    models = [{"id": "org/tiny-a", "source": str(model_source)}]
    # A line of the user's own, which the tool must keep.
    subprocess.run(
        ["crontab", "-u", me.user, "-"], input="0 3 * * * echo mine\n", text=True, check=True
    )
    site = lab.site([me], models=models, pull=pull_settings(me, program))
    make_checkout(lab.fleet, me, site.read_text())

    code, plan = lab.json("plan", site)
    assert {c["resource"]: c["action"] for c in plan[me.name]["changes"]}["pull-timer"] == "create"
    code, result = lab.json("apply", site)
    assert code == 0, result
    table = crontab_of(me)
    assert table.startswith("0 3 * * * echo mine\n")
    [line] = [x for x in table.splitlines() if "apply --local" in x]
    assert line.startswith("*/5 * * * * ")
    assert f"--host {me.name} --git-pull" in line
    assert (me.home / ".localai" / "state" / "pull-cron").exists()
    assert lab.drift_json(site)[0] == 0
    code, status = lab.json("status", site)
    assert status[me.name]["pull_timer"]["kind"] == "cron"
    assert f"--host {me.name}" in status[me.name]["pull_timer"]["definition"]

    # What cron would run, run now as the user: the host pulls and reports.
    command = line.split(" ", 5)[5]
    done = lab.fleet.run_as(me, ["/bin/sh", "-c", command], env=host_env(me), check=False)
    assert done.returncode == 0, (me.home / ".localai" / "logs" / "pull.log").read_text()
    assert report_of(me)["result"] == "converged"
    assert report_of(me)["interval_s"] == 300
    code, drift = lab.drift_json(site)
    assert code == 0 and drift[me.name]["last_pull"]["result"] == "converged"

    # A pull older than 3 intervals (the timer stopped, the host slept): a warning, not drift.
    report = report_of(me)
    report["finished_at"] = "2020-01-01T00:00:00Z"
    path = me.home / ".localai" / "state" / "pull-report.json"
    path.write_text(json.dumps(report))
    code, out, _ = lab.cli("drift", str(site))
    assert code == 0, out
    assert f"warning: {me.name}: the last pull ran" in out
    assert "(2020-01-01T00:00:00Z), more than 3 times its interval of 300 s" in out

    # A new interval replaces the line; the user's own line stays.
    site = lab.site([me], models=models, pull=pull_settings(me, program, interval_s=3600))
    code, result = lab.json("apply", site)
    assert code == 0
    assert [c["action"] for c in result[me.name]["changes"]] == ["update"]
    table = crontab_of(me)
    assert "0 3 * * * echo mine" in table and "\n0 * * * * mkdir" in table
    assert table.count("BEGIN localai-provision pull") == 1

    # `pull` left out of the site: the timer goes, the rest of the crontab stays.
    site = lab.site([me], models=models)
    code, plan = lab.json("plan", site)
    assert [(c["resource"], c["action"]) for c in plan[me.name]["changes"]] == [
        ("pull-timer", "remove")
    ]
    assert lab.json("apply", site)[0] == 0
    assert crontab_of(me) == "0 3 * * * echo mine\n"
    assert not (me.home / ".localai" / "state" / "pull-cron").exists()
    assert lab.drift_json(site)[0] == 0


DAEMONS = "~/fake-root/Library/LaunchDaemons"


def test_apply_installs_the_pull_timer_as_a_launchd_job_on_a_mac(
    lab: Lab, program: Path, model_source: Path, mac: TestHost
) -> None:
    models = [{"id": "org/tiny-a", "source": str(model_source)}]

    def site_with(**pull: object) -> Path:
        return lab.site(
            [mac],
            models=models,
            launchd={"plist_dir": DAEMONS},
            pull=pull_settings(mac, program, **pull),
        )

    site = site_with()
    code, result = lab.json("apply", site)
    assert code == 0, result
    assert "pull-timer" in {c["resource"] for c in result[mac.name]["changes"]}
    plist_path = mac.home / "fake-root/Library/LaunchDaemons/com.localai-provision.pull.plist"
    job = plistlib.loads(plist_path.read_bytes())
    assert job["Label"] == "com.localai-provision.pull"
    assert job["StartInterval"] == 300 and job["RunAtLoad"] is False
    assert job["UserName"] == mac.user
    script = job["ProgramArguments"][2]
    assert script.startswith(f"cd {mac.home}/lab && exec {program} apply --local site.yaml")
    assert f"--report {mac.home}/.localai/state/pull-report.json" in script
    assert job["StandardOutPath"] == str(mac.home / ".localai" / "logs" / "pull.log")
    pull_job = standin_job(mac, "com.localai-provision.pull")
    assert pull_job["domain"] == "system"
    assert pull_job["runs"] == 0  # not at load: apply just ran
    assert plist_path.stat().st_uid == 0  # given to root by the root helper
    assert lab.drift_json(site)[0] == 0

    # A new interval: the plist is replaced and the job reloaded (bootout, then bootstrap).
    site = site_with(interval_s=1800)
    code, result = lab.json("apply", site)
    assert code == 0, result
    assert [c["resource"] for c in result[mac.name]["changes"]] == ["pull-timer"]
    assert plistlib.loads(plist_path.read_bytes())["StartInterval"] == 1800
    assert lab.drift_json(site)[0] == 0

    # No `pull` any more: the job is booted out and its plist removed.
    site = lab.site([mac], models=models, launchd={"plist_dir": DAEMONS})
    code, result = lab.json("apply", site)
    assert code == 0, result
    assert [(c["resource"], c["action"]) for c in result[mac.name]["changes"]] == [
        ("pull-timer", "remove")
    ]
    assert not plist_path.exists()
    jobs = json.loads((mac.home / ".macstandin" / "launchd.json").read_text())
    assert "com.localai-provision.pull" not in jobs or jobs["com.localai-provision.pull"].get(
        "gone_at"
    )
    assert lab.drift_json(site)[0] == 0
    assert os.path.exists(mac.home / ".localai" / "current")  # the rest is left as it was
