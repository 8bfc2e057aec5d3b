"""Pull mode without SSH: `--local FILE --host NAME`, the report, the timer's definitions.

Over real SSH (a host converging itself, the controller reading its report, the timers):
tests/ssh/test_pull.py.
"""

from __future__ import annotations

import io
import json
import os
import stat
from pathlib import Path

import pytest

from localai_provision.cli import Output, main
from localai_provision.connectors.local import LocalConnector
from localai_provision.errors import SiteError
from localai_provision.facts.gather import gather
from localai_provision.layout import CRON_BEGIN, CRON_END, cron_schedule, pull_cron_block
from localai_provision.site import parse_site

# The server pin every site needs, appended so that the positions above it stay.
PIN = "defaults: {packages: {mlx-omni-server: 0.5.1}}\n"


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), Output(out, err))
    return code, out.getvalue(), err.getvalue()


def two_hosts(tmp_path: Path, extra: str = "") -> Path:
    site = tmp_path / "site.yaml"
    site.write_text(
        "version: 1\n"
        "hosts:\n"
        "  mini-01:\n"
        "    address: 10.20.0.11\n"
        f"    prefix: {tmp_path}/prefix\n"
        f"    hf_home: {tmp_path}/hf\n"
        "    packages: {mlx-omni-server: 0.5.1}\n"
        "    server:\n"
        "      port: 1\n"
        "      env: {TOKEN: {from_env: LOCALAI_TEST_SURELY_UNSET}}\n"
        f"{extra}"
        "  mini-02:\n"
        "    address: 10.20.0.12\n"
        "    packages: {mlx-omni-server: 0.5.1}\n"
    )
    return site


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["apply", "--local", "S"], "--local needs --host NAME"),
        (["plan", "--local", "S"], "--local needs --host NAME"),
        (["apply", "S", "--host", "mini-01"], "--host goes with --local FILE"),
        (["drift", "S", "--local", "S", "--host", "mini-01"], "give the site file once"),
        (["apply", "--local", "S", "--host", "mini-01", "--limit", "x"], "--limit does not go"),
        (["apply", "--local", "S", "--host", "mini-03"], "'mini-03' is not a host of"),
        (["apply", "--local", "S", "--host", "mini-*"], "(hosts: mini-01, mini-02)"),
        (["apply", "S", "--git-pull"], "--git-pull and --report go with --local"),
        (["apply"], "no site file"),
    ],
)
def test_usage_errors(tmp_path: Path, argv: list[str], message: str) -> None:
    site = str(two_hosts(tmp_path))
    code, out, err = run(*[site if a == "S" else a for a in argv])
    assert code == 1 and out == ""
    assert message in err, err


def test_plan_local_works_on_this_machine_without_ssh(tmp_path: Path) -> None:
    # mini-01's address is unreachable from here: --local must not even try it.
    code, out, err = run("drift", "--local", str(two_hosts(tmp_path)), "--host", "mini-01")
    assert code == 2, err
    assert "mini-01" in out and "mini-02" not in out
    code, out, _ = run("plan", "--local", str(two_hosts(tmp_path)), "--host", "mini-01", "--json")
    [host] = json.loads(out)["hosts"]
    assert host["name"] == "mini-01" and host["cost"]["connections"] == 1
    assert "secret TOKEN" in {c["resource"] for c in host["changes"]}
    # apply's own options keep working: --dry-run is the plan, and touches nothing.
    code, out, _ = run(
        "apply", "--local", str(two_hosts(tmp_path)), "--host", "mini-01", "--dry-run", "--json"
    )
    assert code == 2 and json.loads(out)["hosts"][0]["name"] == "mini-01"
    assert not (tmp_path / "prefix" / "state").exists()  # no report for a dry run


def test_a_failed_pull_leaves_a_report_and_drift_warns(tmp_path: Path) -> None:
    site = two_hosts(tmp_path)
    code, out, _ = run("apply", "--local", str(site), "--host", "mini-01", "--json")
    assert code == 1
    result = json.loads(out)
    report_path = tmp_path / "prefix" / "state" / "pull-report.json"
    assert result["pull_report"] == str(report_path)
    report = json.loads(report_path.read_text())
    assert report["host"] == "mini-01" and report["result"] == "failed"
    assert report["failed_step"] == "secret" and "LOCALAI_TEST_SURELY_UNSET" in report["error"]
    assert report["site_hash"] and report["site_file"] == str(site.resolve())
    assert report["git_commit"] is None  # tmp_path is no git work tree
    assert [p.name for p in report_path.parent.iterdir()] == ["pull-report.json"]  # atomic

    code, out, _ = run("drift", "--local", str(site), "--host", "mini-01")
    assert code == 2  # the host differs; the failed pull adds a warning, not a difference
    assert "warning: mini-01: the last pull (localai apply --local" in out
    assert "failed at step secret" in out
    code, out, _ = run("drift", "--local", str(site), "--host", "mini-01", "--json")
    [host] = json.loads(out)["hosts"]
    assert host["last_pull"]["result"] == "failed"
    assert any("failed at step secret" in w for w in host["warnings"])


def test_a_site_file_that_does_not_load_is_reported(tmp_path: Path) -> None:
    site = tmp_path / "site.yaml"
    site.write_text("version: 1\nhosts:\n  mini-01: {ssh_port: nope}\n" + PIN)
    report = tmp_path / "report.json"
    code, _, err = run("apply", "--local", str(site), "--host", "mini-01", "--report", str(report))
    assert code == 1 and "ssh_port" in err
    data = json.loads(report.read_text())
    assert data["result"] == "failed" and data["failed_step"] == "site"
    assert "ssh_port" in data["error"]


def test_git_commit_and_a_failed_git_pull(tmp_path: Path) -> None:
    import subprocess

    checkout = tmp_path / "checkout"
    checkout.mkdir()
    site = two_hosts(checkout)
    git = ["git", "-C", str(checkout), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "site.yaml"], check=True)
    subprocess.run([*git, "commit", "-qm", "lab"], check=True)
    head = subprocess.run(
        [*git, "rev-parse", "HEAD"], check=True, capture_output=True, text=True
    ).stdout.strip()
    code, _, err = run("apply", "--local", str(site), "--host", "mini-01", "--git-pull", "-q")
    assert code == 1
    assert "warning: git pull failed" in err  # no upstream: applied as it is
    report = json.loads((checkout / "prefix" / "state" / "pull-report.json").read_text())
    assert report["git_commit"] == head
    assert report["git_pull"]["ok"] is False and report["git_pull"]["error"]


@pytest.mark.parametrize(
    ("interval_s", "schedule"),
    [
        (60, "* * * * *"),
        (300, "*/5 * * * *"),
        (900, "*/15 * * * *"),
        (420, "*/6 * * * *"),  # 7 minutes do not divide an hour: the nearest shorter that does
        (2700, "*/30 * * * *"),
        (3600, "0 * * * *"),
        (5 * 3600, "0 */4 * * *"),
        (86400, "0 0 * * *"),
    ],
)
def test_cron_schedule(interval_s: int, schedule: str) -> None:
    assert cron_schedule(interval_s) == schedule


def test_the_crontab_lines_run_apply_local_for_this_host() -> None:
    site = parse_site(
        "version: 1\nhosts:\n  mini-01:\n    pull: {checkout: '~/lab 50%', site: lab.yaml}\n" + PIN,
        "s.yaml",
    )
    block = pull_cron_block(site.hosts["mini-01"])
    begin, line, end = block.splitlines()
    assert (begin, end) == (CRON_BEGIN, CRON_END)
    assert line.startswith("*/15 * * * * ")
    assert "apply --local lab.yaml --host mini-01 --git-pull --lock-wait 300 --quiet" in line
    assert '--report "$HOME"/.localai/state/pull-report.json' in line
    assert "cd \"$HOME\"/'lab 50\\%'" in line  # cron reads a bare % as a newline
    assert line.endswith('> "$HOME"/.localai/logs/pull.log 2>&1')


@pytest.mark.parametrize(
    ("pull", "message"),
    [
        ("{site: lab.yaml}", "`pull` needs `checkout`"),
        ("{checkout: ~/lab}", "`pull` needs `site`"),
        ("{checkout: ~/lab, site: /abs/lab.yaml}", "relative to `checkout`"),
        ("{checkout: ~/lab, site: lab.yaml, interval_s: 10}", "10"),
        ("{checkout: ~/lab, site: lab.yaml, every: 10m}", "unknown key `every`"),
    ],
)
def test_pull_settings_are_checked(pull: str, message: str) -> None:
    with pytest.raises(SiteError) as caught:
        parse_site(f"version: 1\nhosts:\n  mini-01:\n    pull: {pull}\n", "s.yaml")
    assert any(message in p.message for p in caught.value.problems), caught.value.problems


def test_pull_merges_from_defaults_groups_and_hosts() -> None:
    site = parse_site(
        "version: 1\n"
        "defaults:\n  pull: {checkout: ~/lab, command: /opt/localai/bin/localai}\n"
        "  packages: {mlx-omni-server: 0.5.1}\n"
        "groups:\n  fast: {pull: {interval_s: 300}}\n"
        "hosts:\n"
        "  mini-01: {groups: [fast], pull: {site: a.yaml}}\n"
        "  mini-02: {pull: {site: b.yaml, enabled: false}}\n",
        "s.yaml",
    )
    one, two = site.hosts["mini-01"].pull, site.hosts["mini-02"].pull
    assert (one.checkout, one.site, one.command, one.interval_s) == (
        "~/lab",
        "a.yaml",
        "/opt/localai/bin/localai",
        300,
    )
    assert one.declared and not two.declared


def test_facts_read_only_the_tools_lines_of_the_crontab(tmp_path: Path) -> None:
    """The facts script runs `crontab -l` when a timer is declared, and keeps only the tool's
    lines; without `crontab` the host says so."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    crontab = bin_dir / "crontab"
    crontab.write_text(
        "#!/bin/sh\n"
        "cat <<'EOF'\n"
        "MAILTO=someone@example.com\n"
        "0 3 * * * backup --password=hunter2\n"
        f"{CRON_BEGIN}\n"
        "*/15 * * * * localai apply\n"
        f"{CRON_END}\n"
        "5 5 * * * other\n"
        "EOF\n"
    )
    crontab.chmod(crontab.stat().st_mode | stat.S_IXUSR)
    site = parse_site(
        "version: 1\nhosts:\n  here:\n    connection: local\n"
        f"    prefix: {tmp_path}/prefix\n    hf_home: {tmp_path}/hf\n"
        "    pull: {checkout: /srv/lab, site: lab.yaml}\n" + PIN,
        "s.yaml",
    )
    spec = site.hosts["here"]
    path = os.environ["PATH"]
    try:
        os.environ["PATH"] = f"{bin_dir}:{path}"
        facts = gather(LocalConnector(spec), spec)
        assert facts.pull_timer is not None and facts.pull_timer.kind == "cron"
        assert facts.pull_timer.definition == (
            f"{CRON_BEGIN}\n*/15 * * * * localai apply\n{CRON_END}\n"
        )
        crontab.unlink()
        os.environ["PATH"] = f"{bin_dir}:/nonexistent"
        facts = gather(LocalConnector(spec), spec)
        assert facts.pull_timer is not None and not facts.pull_timer.available
    finally:
        os.environ["PATH"] = path
