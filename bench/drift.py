"""Benchmark: a no-op drift check of N in-sync hosts, localai against Ansible and pyinfra.

Run (as root, from the repo root): python bench/drift.py --hosts 10 30
  --repeat 5        runs of `localai drift` per size (median and min shown)
  --peer-repeat 3   runs of each peer per size (at the largest size Ansible also runs once
                    with gather_facts true, and once more with its masters still open)
  --skip-peers      only localai
  --json-out FILE   also write every measurement as JSON

What it does: starts an SSHFleet (one real sshd on loopback and one Unix user per host,
tests/support/sshfleet.py) of max(N) hosts, builds a wheelhouse with the STAND-IN
mlx-omni-server, makes every host exactly match the site with tests/support/hostprep.py
(venv with the pinned packages, model in the cache, stand-in server running), then times:
  - `python -m localai_provision drift SITE --json` as a new process (exit 0 = all in sync),
    and check_hosts() in process, with HostResult.connections/commands;
  - `ansible-playbook -i INV bench/ansible/drift.yml --check -f N` (ansible-core in its own
    venv under /tmp/bench-venvs, installed with pip on first use);
  - `pyinfra bench/pyinfra/inventory.py bench/pyinfra/deploy.py --dry --parallel N`
    (pyinfra in its own venv).
All three read the same hosts (one targets list) and the same known_hosts file, and check the
same things: pinned package versions in the venv, the server process named by the pid file,
and GET /v1/models answering 200 with the model listed. SSH connections and commands per host
are also counted independently, from the lines each run adds to every host's sshd log
("Accepted publickey" and "Starting session: command"). The fleet, servers, users and
temporary files are always removed at the end. Figures go to docs/BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import yaml  # noqa: E402

from bench.ansible.inventory import write_inventory  # noqa: E402
from localai_provision import __version__ as LOCALAI_VERSION  # noqa: E402
from localai_provision.connectors.base import connector_for  # noqa: E402
from localai_provision.facts.gather import facts_command  # noqa: E402
from localai_provision.fleet import IN_SYNC, check_hosts  # noqa: E402
from localai_provision.site import load_site  # noqa: E402
from tests.support import hostprep  # noqa: E402
from tests.support.sshfleet import SSHD, SSHFleet, TestHost, cleanup_stale  # noqa: E402
from tests.support.wheels import build_standin_server, build_wheel  # noqa: E402

BENCH = ROOT / "bench"
PACKAGES = {"mlx-omni-server": "0.5.1", "mlx-lm": "0.28.2"}
MODEL = "org/tiny-a"
FLEET_PREFIX = "lb"  # user names lb<runid>NN; the tests use "lt"
VENVS = Path("/tmp/bench-venvs")
RUN_TIMEOUT_S = 300.0


# ------------------------------------------------------------------------------ results


@dataclass
class Row:
    tool: str
    hosts: int
    times: list[float] = field(default_factory=list)
    connections: set[int] = field(default_factory=set)  # per host, from the sshd logs
    commands: set[int] = field(default_factory=set)
    reported: str = ""  # connections/commands as the tool itself reports them
    ok: bool = True
    note: str = ""
    idle: float = 0.0  # share of the CPUs idle just before the first run (others' load)
    cpu: list[float] = field(default_factory=list)  # the tool process's own CPU s, per run

    @property
    def median(self) -> float:
        return statistics.median(self.times) if self.times else float("nan")

    @property
    def best(self) -> float:
        return min(self.times) if self.times else float("nan")

    def as_dict(self) -> dict[str, Any]:
        return {
            "tool": self.tool,
            "hosts": self.hosts,
            "times_s": [round(t, 3) for t in self.times],
            "median_s": round(self.median, 3),
            "min_s": round(self.best, 3),
            "connections_per_host": sorted(self.connections),
            "commands_per_host": sorted(self.commands),
            "reported": self.reported,
            "ok": self.ok,
            "note": self.note,
            "cpu_idle_before": round(self.idle, 2),
            "tool_cpu_s": [round(c, 3) for c in self.cpu],
        }


def _span(values: set[int]) -> str:
    if not values:
        return "?"
    low, high = min(values), max(values)
    return str(low) if low == high else f"{low}-{high}"


# ------------------------------------------------------------------------ sshd log counts


class SSHDLogs:
    """Counts what each run adds to every host's sshd log (LogLevel VERBOSE)."""

    ACCEPTED = re.compile(r"Accepted publickey for ")
    SESSION = re.compile(r"Starting session: (command|shell|forced-command|subsystem)")

    def __init__(self, hosts: Sequence[TestHost]) -> None:
        self.hosts = list(hosts)

    def mark(self) -> dict[str, int]:
        return {h.name: h.log_path.stat().st_size for h in self.hosts}

    def count(self, marks: dict[str, int]) -> dict[str, tuple[int, int]]:
        counts = {}
        for h in self.hosts:
            with h.log_path.open("rb") as fh:
                fh.seek(marks[h.name])
                text = fh.read().decode(errors="replace")
            counts[h.name] = (len(self.ACCEPTED.findall(text)), len(self.SESSION.findall(text)))
        return counts


IDLE_WANTED = 0.85
WAIT_IDLE_S = 90.0  # set by --wait-idle


def cpu_idle(interval: float = 0.5) -> float:
    """Share of all CPUs idle over ``interval`` (from /proc/stat)."""

    def sample() -> tuple[int, int]:
        with open("/proc/stat", encoding="ascii") as f:
            fields = [int(x) for x in f.readline().split()[1:9]]
        return fields[3] + fields[4], sum(fields)

    idle0, total0 = sample()
    time.sleep(interval)
    idle1, total1 = sample()
    return (idle1 - idle0) / max(1, total1 - total0)


def wait_idle() -> float:
    """Wait (up to WAIT_IDLE_S) until the machine is idle: the machine may be shared."""
    deadline = time.monotonic() + WAIT_IDLE_S
    idle = cpu_idle()
    while idle < IDLE_WANTED and time.monotonic() < deadline:
        idle = cpu_idle(2.0)
    if idle < IDLE_WANTED:
        print(f"  warning: CPUs only {idle:.0%} idle before measuring: figures are noisy")
    return idle


def measure(
    row: Row,
    logs: SSHDLogs,
    repeat: int,
    run_once: Callable[[], tuple[bool, str]],
    after: Callable[[], None] | None = None,
    idle: float | None = None,
) -> None:
    """Run ``run_once`` ``repeat`` times, timing each and counting sshd log lines."""
    row.idle = wait_idle() if idle is None else idle
    for i in range(repeat):
        marks = logs.mark()
        start = time.perf_counter()
        try:
            ok, why = run_once()
        except subprocess.TimeoutExpired:
            ok, why = False, f"timed out after {RUN_TIMEOUT_S:.0f} s"
        elapsed = time.perf_counter() - start
        if after:
            after()
        time.sleep(0.2)  # let sshd's connection handlers write their last lines
        counts = logs.count(marks)
        row.connections |= {c for c, _ in counts.values()}
        row.commands |= {s for _, s in counts.values()}
        if not ok:
            row.ok = False
            row.note = why
            print(f"  {row.tool} {row.hosts} hosts run {i + 1}: FAILED: {why[-2000:]}")
            return
        row.times.append(elapsed)
        print(
            f"  {row.tool:<28} {row.hosts:>3} hosts  run {i + 1}: {elapsed:6.2f} s  "
            f"connections/host {_span({c for c, _ in counts.values()})}, "
            f"commands/host {_span({s for _, s in counts.values()})}",
            flush=True,
        )


# ------------------------------------------------------------------------------ the lab


def make_wheelhouse(shared: Path) -> Path:
    house = shared / "wheelhouse"
    build_standin_server(house, PACKAGES["mlx-omni-server"])
    build_wheel(
        house,
        "mlx-lm",
        PACKAGES["mlx-lm"],
        {"mlx_lm_standin.py": f"VERSION = {PACKAGES['mlx-lm']!r}\n"},
    )
    # As tests/conftest.py: what a Linux host gets besides the pins (stand-ins).
    build_wheel(house, "mlx", "0.29.3", {"mlx_standin.py": ""})
    build_wheel(house, "torch", "2.13.0+cpu", {"torch_standin.py": ""})
    build_wheel(house, "mlx-cpu", "0.29.3", {"mlx_cpu_standin.py": ""})
    for path in house.iterdir():
        path.chmod(0o644)
    house.chmod(0o755)
    return house


def targets_for(
    fleet: SSHFleet, hosts: Sequence[TestHost], known_hosts: Path, ports: dict[str, int]
) -> list[dict[str, Any]]:
    """One description of the hosts; the site, the inventories and the deploy all use it."""
    return [
        {
            "name": h.name,
            "address": h.address,
            "ssh_port": h.port,
            "user": h.user,
            "identity_file": str(fleet.client_key_path),
            "known_hosts_file": str(known_hosts),
            "python": hostprep.SYSTEM_PYTHON,
            "prefix": str(hostprep.host_paths(h)[0]),  # absolute: what ~/.localai is there
            "server_port": ports[h.name],
            "packages": dict(PACKAGES),
            "model": MODEL,
        }
        for h in hosts
    ]


def site_text(targets: list[dict[str, Any]], wheelhouse: Path) -> str:
    first = targets[0]
    defaults: dict[str, Any] = {
        "identity_file": first["identity_file"],
        "known_hosts_file": first["known_hosts_file"],
        "python": first["python"],
        "prefix": "~/.localai",
        "hf_home": "~/hf",
        "connect_timeout_s": 5,
        "packages": dict(PACKAGES),
        "models": [MODEL],
        "package_index": {"no_index": True, "find_links": [str(wheelhouse)]},
    }
    hosts = {
        t["name"]: {
            "address": t["address"],
            "ssh_port": t["ssh_port"],
            "user": t["user"],
            "server": {"port": t["server_port"]},
        }
        for t in targets
    }
    return yaml.safe_dump({"version": 1, "defaults": defaults, "hosts": hosts}, sort_keys=False)


def prepare_hosts(
    fleet: SSHFleet, hosts: Sequence[TestHost], site: Path, wheelhouse: Path
) -> float:
    specs = load_site(site).hosts
    start = time.perf_counter()

    def prep(host: TestHost) -> None:
        hostprep.prepare_in_sync(fleet, host, specs[host.name], wheelhouse)

    # hostprep installs with root's pip, which also reads this machine's pip configuration
    # and PIP_FIND_LINKS=/opt/wheels: it then prefers the real 190 MB torch CPU wheel there
    # (a more specific tag) to the wheelhouse's stand-in, about 15 s and 760 MB per host.
    # Only the wheelhouse, then, for the pip processes started while preparing.
    saved = {k: os.environ.get(k) for k in ("PIP_FIND_LINKS", "PIP_CONFIG_FILE")}
    os.environ.pop("PIP_FIND_LINKS", None)
    os.environ["PIP_CONFIG_FILE"] = os.devnull
    try:
        with ThreadPoolExecutor(max_workers=min(8, len(hosts))) as pool:
            list(pool.map(prep, hosts))
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    return time.perf_counter() - start


def prepare_fleet(
    fleet: SSHFleet, work: Path, wheelhouse: Path, known_hosts: Path
) -> tuple[list[dict[str, Any]], Path, float]:
    """Make every fleet host match the site (hostprep), retry hosts found out of sync.

    Returns the targets (one per host), the site file over all of them, the seconds taken."""
    total = len(fleet.hosts)
    ports = {h.name: hostprep.free_port() for h in fleet.hosts}
    full_site = work / f"site-{total}.yaml"
    to_prepare = list(fleet.hosts)
    prep_s = 0.0
    for attempt in range(3):
        all_targets = targets_for(fleet, fleet.hosts, known_hosts, ports)
        full_site.write_text(site_text(all_targets, wheelhouse))
        prep_s += prepare_hosts(fleet, to_prepare, full_site, wheelhouse)
        results = check_hosts(list(load_site(full_site).hosts.values()))
        drifted = [r for r in results if r.changes or r.failed]
        if not drifted:
            break
        r = drifted[0]
        why = "; ".join(f"{c.resource}: {c.reason}" for c in r.changes) or str(r.error)
        print(f"{len(drifted)} hosts not in sync after preparing, e.g. {r.name}: {why}")
        if attempt == 2:
            raise SystemExit("giving up (do tests/support/hostprep.py and the planner disagree?)")
        # Most likely a server port taken by another program meanwhile (the machine may
        # be shared): those hosts get a new port and are prepared again.
        to_prepare = [fleet.host_by_name(r.name) for r in drifted]
        ports.update({h.name: hostprep.free_port() for h in to_prepare})
    print(f"prepared {total} hosts in sync (stand-in servers up) in {prep_s:.1f} s", flush=True)
    return all_targets, full_site, prep_s


# ------------------------------------------------------------------------------- localai


def control_env(control_dir: Path) -> dict[str, str]:
    """The environment of a localai run whose OpenSSH masters live in ``control_dir``: a new
    folder per run makes a cold run (no master to reuse), the same one a repeated run."""
    return {**os.environ, "LOCALAI_SSH_CONTROL_DIR": str(control_dir)}


def close_control_dir(control_dir: Path) -> None:
    """End the masters a localai run left in ``control_dir`` (ControlPersist), as for Ansible."""
    _close_masters(control_dir)
    shutil.rmtree(control_dir, ignore_errors=True)


def bench_localai(
    site: Path,
    n: int,
    logs: SSHDLogs,
    repeat: int,
    *,
    repeated: bool = False,
    root: Path = ROOT,
    label: str = "",
) -> Row:
    """`localai drift` as a new process. Cold: a new control folder every run and the masters
    closed after it (what a first check in a while pays). Repeated: one unmeasured run opens
    the masters, the measured ones reuse them (a check every minute from cron)."""
    row = Row("localai drift, repeated" if repeated else "localai drift (new process)", n)
    if label:
        row.tool = f"{row.tool} {label}"
    cmd = [sys.executable, "-m", "localai_provision", "drift", str(site), "--json"]
    if n > 32:
        cmd += ["--forks", str(n)]
    base = Path(tempfile.mkdtemp(prefix="cm-", dir="/tmp"))
    runs = iter(range(10_000))
    control = base / "warm"

    def once() -> tuple[bool, str]:
        nonlocal control
        if not repeated:
            control = base / str(next(runs))
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        proc = subprocess.run(
            cmd,
            capture_output=True,
            text=True,
            timeout=RUN_TIMEOUT_S,
            cwd=root,  # `-m` runs the package found there first: another checkout's code
            env=control_env(control),
        )
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        # localai and the ssh clients it waited for (a master, once detached, is not counted)
        row.cpu.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
        if proc.returncode != 0:
            return False, f"exit {proc.returncode}: {proc.stdout[-1500:]} {proc.stderr[-1500:]}"
        summary = json.loads(proc.stdout)["summary"]
        if summary["in_sync"] != n:
            return False, f"summary {summary}"
        return True, ""

    try:
        if repeated:
            idle = wait_idle()
            once()
            measure(row, logs, repeat, once, idle=idle)
        else:
            measure(row, logs, repeat, once, after=lambda: close_control_dir(control))
    finally:
        for folder in list(base.iterdir()):
            close_control_dir(folder)
        shutil.rmtree(base, ignore_errors=True)
    return row


def bench_localai_in_process(site: Path, n: int, logs: SSHDLogs, repeat: int) -> Row:
    row = Row("localai check_hosts (in process)", n)
    specs = list(load_site(site).hosts.values())
    reported: set[tuple[int, int]] = set()

    def once() -> tuple[bool, str]:
        results = check_hosts(specs, forks=max(32, n))
        reported.update((r.connections, r.commands) for r in results)
        bad = [f"{r.name}: {r.status} {r.error or ''}" for r in results if r.status != IN_SYNC]
        if bad or len(results) != n:
            return False, "; ".join(bad)
        return True, ""

    measure(row, logs, repeat, once)
    row.reported = ", ".join(f"{c} conn / {k} cmd" for c, k in sorted(reported))
    # One command a host; one connection, or none where a master kept from before served.
    if not reported or any(k != 1 or c not in (0, 1) for c, k in reported):
        row.ok = False
        row.note = f"HostResult connections/commands {sorted(reported)}, expected (0-1, 1)"
    return row


def where_localai_time_goes(site: Path) -> dict[str, Any]:
    """Interpreter start, imports, site loading: what a new process pays before any SSH."""

    def best_of(cmd: list[str], times: int = 5) -> float:
        runs = []
        for _ in range(times):
            start = time.perf_counter()
            subprocess.run(cmd, capture_output=True, check=True, cwd=ROOT)
            runs.append(time.perf_counter() - start)
        return statistics.median(runs)

    out: dict[str, Any] = {
        "python_start_s": best_of([sys.executable, "-c", "pass"]),
        "localai_version_s": best_of([sys.executable, "-m", "localai_provision", "--version"]),
        "import_ssh_stack_s": best_of(
            [sys.executable, "-c", "import localai_provision.cli, localai_provision.connectors.ssh"]
        ),
    }
    loads = []
    for _ in range(5):
        start = time.perf_counter()
        load_site(site)
        loads.append(time.perf_counter() - start)
    out["load_site_s"] = statistics.median(loads)
    # -X importtime of the whole drift command: which top-level imports cost most.
    proc = subprocess.run(
        [
            sys.executable,
            "-X",
            "importtime",
            "-m",
            "localai_provision",
            "drift",
            str(site),
            "--json",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    top: list[tuple[int, str]] = []
    total = 0
    for line in proc.stderr.splitlines():
        m = re.match(r"import time:\s+(\d+) \|\s+(\d+) \| (\s*)(\S+)", line)
        if not m:
            continue
        if not m.group(3):  # a top-level import (not nested in another)
            cumulative = int(m.group(2))
            total += cumulative
            top.append((cumulative, m.group(4)))
    top.sort(reverse=True)
    out["drift_imports_total_s"] = total / 1e6
    out["drift_imports_top"] = [(name, round(us / 1e6, 3)) for us, name in top[:6]]
    out.update(ssh_phases(site))
    return out


def facts_script_cost(
    fleet: SSHFleet, host: TestHost, site: Path, runs: int = 10
) -> dict[str, Any]:
    """CPU of the facts command on one host (run locally as its user, no SSH), against a bare
    `python3 -I -S -c pass`, and the script's largest imports."""

    command = facts_command(load_site(site).hosts[host.name])

    def cpu_ms(shell_command: str) -> float:
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        for _ in range(runs):
            fleet.run_as(host, ["sh", "-c", shell_command])
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        used = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        return used / runs * 1000

    traced = fleet.run_as(
        host, ["sh", "-c", command.replace('"$p" -I -S', '"$p" -X importtime -I -S', 1)]
    )
    top = []
    for line in traced.stderr.splitlines():
        m = re.match(r"import time:\s+\d+ \|\s+(\d+) \| (\S.*)", line)
        if m:  # top level only (nested imports are indented)
            top.append((int(m.group(1)), m.group(2)))
    top.sort(reverse=True)
    return {
        "facts_cpu_ms_per_host": cpu_ms(command),
        "python_pass_cpu_ms": cpu_ms(f"{hostprep.SYSTEM_PYTHON} -I -S -c pass"),
        "facts_imports_ms": sum(us for us, _ in top) / 1000,
        "facts_imports_top_ms": [(name, round(us / 1000, 1)) for us, name in top[:5]],
    }


def ssh_phases(site: Path, repeat: int = 3) -> dict[str, float]:
    """In process, every host at once (as check_hosts does): connect and close only; plus
    `true`; plus the facts command. The differences say what SSH and the script cost."""
    specs = list(load_site(site).hosts.values())

    def phase(command: Callable[[Any], str] | None) -> float:
        def job(spec: Any) -> None:
            connector = connector_for(spec)
            connector.open()
            try:
                if command is not None:
                    result = connector.run(command(spec), timeout=30)
                    assert result.exit_status == 0, result.tail()
            finally:
                connector.close()

        runs = []
        for _ in range(repeat):
            start = time.perf_counter()
            with ThreadPoolExecutor(max_workers=len(specs)) as pool:
                list(pool.map(job, specs))
            runs.append(time.perf_counter() - start)
        return statistics.median(runs)

    return {
        "connect_close_s": phase(None),
        "connect_true_s": phase(lambda spec: "true"),
        "connect_facts_s": phase(facts_command),
    }


# --------------------------------------------------------------------------------- floor


def bench_floor(targets: list[dict[str, Any]], logs: SSHDLogs, repeat: int) -> Row:
    """The bare-SSH floor of issue 19: paramiko in this process, one thread a host, connect
    (the same key and strict known_hosts) and run `true`; imports excluded. No tool can
    check a host with fewer round trips; what it costs over this is the tool's own."""
    import paramiko

    row = Row("floor: paramiko connect + true", len(targets))

    def job(t: dict[str, Any]) -> None:
        client = paramiko.SSHClient()
        client.load_host_keys(t["known_hosts_file"])
        client.set_missing_host_key_policy(paramiko.RejectPolicy())
        client.connect(
            t["address"],
            port=t["ssh_port"],
            username=t["user"],
            key_filename=t["identity_file"],
            look_for_keys=False,
            allow_agent=False,
            timeout=10,
        )
        try:
            _, stdout, _ = client.exec_command("true")
            assert stdout.channel.recv_exit_status() == 0
        finally:
            client.close()

    def once() -> tuple[bool, str]:
        with ThreadPoolExecutor(max_workers=len(targets)) as pool:
            list(pool.map(job, targets))
        return True, ""

    measure(row, logs, repeat, once)
    return row


def bench_floor_openssh(targets: list[dict[str, Any]], logs: SSHDLogs, repeat: int) -> Row:
    """The same floor with the system's ssh client: one `ssh HOST true` process a host, all
    at once, no master (ControlMaster=no): what a cold OpenSSH connection costs."""
    row = Row("floor: ssh connect + true", len(targets))

    def job(t: dict[str, Any]) -> int:
        return subprocess.run(
            [
                "ssh",
                "-F",
                "none",
                "-o",
                "BatchMode=yes",
                "-o",
                "ControlMaster=no",
                "-o",
                "StrictHostKeyChecking=yes",
                "-o",
                "KexAlgorithms=^curve25519-sha256",  # as localai's OpenSSH connector
                "-o",
                f"UserKnownHostsFile={t['known_hosts_file']}",
                "-o",
                "IdentitiesOnly=yes",
                "-i",
                t["identity_file"],
                "-p",
                str(t["ssh_port"]),
                "-l",
                t["user"],
                t["address"],
                "true",
            ],
            capture_output=True,
            timeout=60,
            check=False,
        ).returncode

    def once() -> tuple[bool, str]:
        with ThreadPoolExecutor(max_workers=len(targets)) as pool:
            codes = set(pool.map(job, targets))
        return codes == {0}, f"exit codes {codes}"

    measure(row, logs, repeat, once)
    return row


# --------------------------------------------------------------------------------- peers


def ensure_venv(name: str, requirement: str, exe: str) -> Path:
    """A venv of its own under /tmp/bench-venvs (never the main environment)."""
    venv = VENVS / name
    if not (venv / "bin" / exe).exists():
        print(f"installing {requirement} into {venv} (once)", flush=True)
        VENVS.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run(
            [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", requirement], check=True
        )
    return venv


def tool_version(cmd: list[str]) -> str:
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    return (proc.stdout or proc.stderr).strip().splitlines()[0]


def _close_masters(cp_dir: Path) -> None:
    """End the OpenSSH ControlMaster processes Ansible left (ControlPersist) in ``cp_dir``."""
    for sock in list(cp_dir.iterdir()) if cp_dir.exists() else []:
        subprocess.run(
            ["ssh", "-o", f"ControlPath={sock}", "-O", "exit", "bench-host"],
            capture_output=True,
            check=False,
            timeout=10,
        )


_RECAP = re.compile(
    r"^(\S+)\s*:\s*ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.M
)


def bench_ansible(
    venv: Path,
    inventory: Path,
    n: int,
    logs: SSHDLogs,
    repeat: int,
    work: Path,
    *,
    gather_facts: bool = False,
    warm: bool = False,
    label: str = "ansible-playbook",
) -> Row:
    row = Row(label, n)
    env = {
        **os.environ,
        "ANSIBLE_CONFIG": str(BENCH / "ansible" / "ansible.cfg"),
        "ANSIBLE_HOME": str(work / "ansible-home"),
        "ANSIBLE_NOCOLOR": "1",
        "PATH": f"{venv / 'bin'}:{os.environ.get('PATH', '')}",
    }
    cmd = [
        str(venv / "bin" / "ansible-playbook"),
        "-i",
        str(inventory),
        str(BENCH / "ansible" / "drift.yml"),
        "--check",
        "-f",
        str(n),
    ]
    if gather_facts:
        cmd += ["-e", "bench_gather_facts=true"]
    runs = iter(range(10_000))
    cp_dir = work / "cp-warm"

    def once() -> tuple[bool, str]:
        nonlocal cp_dir
        if not warm:  # a fresh control path dir: no master from an earlier run is reused
            cp_dir = work / f"cp-{n}-{next(runs)}"
        cp_dir.mkdir(exist_ok=True)
        proc = subprocess.run(
            cmd,
            capture_output=True,
            text=True,
            timeout=RUN_TIMEOUT_S,
            env={**env, "ANSIBLE_SSH_CONTROL_PATH_DIR": str(cp_dir)},
        )
        recap = {m.group(1): m.groups()[1:] for m in _RECAP.finditer(proc.stdout)}
        bad = {h: r for h, r in recap.items() if r[2] != "0" or r[3] != "0"}
        if proc.returncode != 0 or len(recap) != n or bad:
            return (
                False,
                f"exit {proc.returncode}, recap {bad or len(recap)}: {proc.stdout[-1500:]}",
            )
        oks = {int(r[0]) for r in recap.values()}
        changed = {int(r[1]) for r in recap.values()}
        row.reported = f"ok={_span(oks)} changed={_span(changed)}"
        return True, ""

    try:
        if warm:  # one unmeasured run opens the masters; the measured ones reuse them
            idle = wait_idle()  # before: waiting afterwards could outlast ControlPersist
            cp_dir.mkdir(exist_ok=True)
            subprocess.run(
                cmd,
                capture_output=True,
                timeout=RUN_TIMEOUT_S,
                env={**env, "ANSIBLE_SSH_CONTROL_PATH_DIR": str(cp_dir)},
            )
            measure(row, logs, repeat, once, idle=idle)
        else:
            measure(row, logs, repeat, once, after=lambda: _close_masters(cp_dir))
    finally:
        for d in work.glob("cp-*"):
            _close_masters(d)
    return row


def bench_pyinfra(venv: Path, targets: Path, n: int, logs: SSHDLogs, repeat: int) -> Row:
    row = Row("pyinfra --dry", n)
    cmd = [
        str(venv / "bin" / "pyinfra"),
        str(BENCH / "pyinfra" / "inventory.py"),
        str(BENCH / "pyinfra" / "deploy.py"),
        "--dry",
        "--parallel",
        str(n),
    ]
    env = {**os.environ, "BENCH_TARGETS": str(targets), "NO_COLOR": "1"}

    def once() -> tuple[bool, str]:
        proc = subprocess.run(
            cmd, capture_output=True, text=True, timeout=RUN_TIMEOUT_S, env=env, cwd=ROOT
        )
        text = proc.stdout + proc.stderr
        if proc.returncode != 0 or "DRIFT" in text:
            return False, f"exit {proc.returncode}: {text[-2500:]}"
        return True, ""

    measure(row, logs, repeat, once)
    return row


# ---------------------------------------------------------------------------------- main


def print_table(rows: list[Row]) -> str:
    lines = [
        "| tool | hosts | median s | min s | CPU s | connections/host | commands/host | runs "
        "| idle |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        status = "" if r.ok else " FAILED"
        lines.append(
            f"| {r.tool}{status} | {r.hosts} | {r.median:.2f} | {r.best:.2f} | "
            f"{statistics.median(r.cpu) if r.cpu else float('nan'):.2f} | "
            f"{_span(r.connections)} | {_span(r.commands)} | {len(r.times)} | {r.idle:.0%} |"
        )
    text = "\n".join(lines)
    print(text)
    return text


def main() -> int:
    global WAIT_IDLE_S
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--hosts", type=int, nargs="+", default=[10, 30], metavar="N")
    parser.add_argument("--repeat", type=int, default=5, help="localai runs per size")
    parser.add_argument("--peer-repeat", type=int, default=3, help="Ansible/pyinfra runs per size")
    parser.add_argument("--skip-peers", action="store_true", help="measure localai only")
    parser.add_argument("--json-out", type=Path, help="write all measurements as JSON here")
    parser.add_argument(
        "--compare",
        type=Path,
        metavar="DIR",
        help="also time `localai drift` from the checkout in DIR (e.g. `git worktree add DIR "
        "main`) in the same run: before and after side by side",
    )
    parser.add_argument(
        "--wait-idle",
        type=float,
        default=WAIT_IDLE_S,
        metavar="S",
        help=f"before each measurement wait up to S seconds for the CPUs to be "
        f"{IDLE_WANTED:.0%} idle (default {WAIT_IDLE_S:.0f})",
    )
    args = parser.parse_args()
    WAIT_IDLE_S = args.wait_idle
    if os.geteuid() != 0 or not Path(SSHD).exists():
        parser.error("needs root and openssh-server (/usr/sbin/sshd)")
    sizes = sorted(set(args.hosts))
    total = max(sizes)

    venvs: dict[str, Path] = {}
    versions = {
        "localai": LOCALAI_VERSION,
        "python": sys.version.split()[0],
        "openssh": tool_version(["ssh", "-V"]),
    }
    if not args.skip_peers:  # before the fleet starts: pip may take a while the first time
        venvs["ansible"] = ensure_venv("ansible", "ansible-core", "ansible-playbook")
        venvs["pyinfra"] = ensure_venv("pyinfra", "pyinfra", "pyinfra")
        versions["ansible-core"] = tool_version(
            [str(venvs["ansible"] / "bin" / "ansible"), "--version"]
        )
        versions["pyinfra"] = tool_version([str(venvs["pyinfra"] / "bin" / "pyinfra"), "--version"])

    # Bytecode as an installed tool has it (pip compiles at install, Python on first import):
    # with PYTHONDONTWRITEBYTECODE set (as on the dev machine of 2026-12-02) every run would
    # compile the tool's sources again, 0.10-0.13 s of CPU a run.
    for checkout in (ROOT, *([args.compare.resolve()] if args.compare else [])):
        subprocess.run(
            [sys.executable, "-m", "compileall", "-q", str(checkout / "localai_provision")],
            check=True,
        )
    cleanup_stale(FLEET_PREFIX)
    work = Path(tempfile.mkdtemp(prefix="localai-bench-"))  # shared: 0755, users may read
    work.chmod(0o755)
    fleet = SSHFleet(work / "fleet", total, prefix=FLEET_PREFIX)
    rows: list[Row] = []
    extra: dict[str, Any] = {"versions": versions}
    try:
        fleet.start()
        print(f"fleet: {total} sshd hosts started in {fleet.start_seconds:.1f} s", flush=True)
        wheelhouse = make_wheelhouse(work)
        known_hosts = fleet.write_known_hosts(work / "known_hosts")
        all_targets, full_site, prep_s = prepare_fleet(fleet, work, wheelhouse, known_hosts)
        extra["prepare_s"] = round(prep_s, 1)

        for n in sizes:
            hosts = fleet.hosts[:n]
            logs = SSHDLogs(hosts)
            targets = all_targets[:n]
            site = work / f"site-{n}.yaml"
            site.write_text(site_text(targets, wheelhouse))
            targets_file = work / f"targets-{n}.json"
            targets_file.write_text(json.dumps(targets, indent=1))
            print(f"\n== {n} hosts", flush=True)
            rows.append(bench_floor(targets, logs, args.repeat))
            rows.append(bench_floor_openssh(targets, logs, args.repeat))
            if args.compare:
                for repeated in (False, True):
                    rows.append(
                        bench_localai(
                            site,
                            n,
                            logs,
                            args.repeat,
                            repeated=repeated,
                            root=args.compare.resolve(),
                            label=f"@{args.compare.name}",
                        )
                    )
            rows.append(bench_localai(site, n, logs, args.repeat))
            rows.append(bench_localai(site, n, logs, args.repeat, repeated=True))
            rows.append(bench_localai_in_process(site, n, logs, args.repeat))
            if args.skip_peers:
                continue
            inventory = write_inventory(targets, work / f"inventory-{n}.yml")
            rows.append(bench_pyinfra(venvs["pyinfra"], targets_file, n, logs, args.peer_repeat))
            rows.append(bench_ansible(venvs["ansible"], inventory, n, logs, args.peer_repeat, work))
            if n == total:
                rows.append(
                    bench_ansible(
                        venvs["ansible"],
                        inventory,
                        n,
                        logs,
                        1,
                        work,
                        gather_facts=True,
                        label="ansible-playbook, gather_facts",
                    )
                )
                rows.append(
                    bench_ansible(
                        venvs["ansible"],
                        inventory,
                        n,
                        logs,
                        1,
                        work,
                        warm=True,
                        label="ansible-playbook, warm masters",
                    )
                )
        print("\n== where localai's time goes (largest size)", flush=True)
        extra["localai_breakdown"] = where_localai_time_goes(work / f"site-{total}.yaml")
        extra["localai_breakdown"].update(facts_script_cost(fleet, fleet.hosts[0], full_site))
    finally:
        try:
            fleet.stop()
        finally:
            shutil.rmtree(work, ignore_errors=True)

    print()
    for key, value in versions.items():
        print(f"{key}: {value}")
    breakdown = extra.get("localai_breakdown", {})
    for key, value in breakdown.items():
        shown = f"{value:.3f}" if isinstance(value, float) else value
        print(f"{key}: {shown}")
    print()
    extra["table"] = print_table(rows)
    if args.json_out:
        args.json_out.write_text(
            json.dumps({"rows": [r.as_dict() for r in rows], **extra}, indent=1, default=str)
        )
    return 0 if all(r.ok for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
