"""Benchmark: localai on 10, 30 and 100 loopback hosts; the peers' drift in the same run.

Run (as root, from the repo root): python bench/scale.py --hosts 10 30 100
  --repeat 3          runs of each no-op (drift, apply) per size (median and min shown)
  --peer-repeat 1     runs of Ansible's and pyinfra's drift per size
  --skip-peers        localai only
  --scenarios ...     which of drift, apply, package, model (default: all four)
  --model-mb 200      size of the made-up model file
  --peers/--no-peers  write `defaults.transfer: {peers: BOOL}` into the model scenario's
                      site; without either the key is left out (the tool's default: on)
  --forks N           passed to localai (default: localai's own default)
  --out DIR           where scale.json, scale.md and scale.png go (default /tmp/localai-scale)
  --wait-idle S       as bench/drift.py: wait up to S s before each row for idle CPUs

What it does: one SSHFleet (tests/support/sshfleet.py) of max(N) hosts, every host made to
match the site by hand with tests/support/hostprep.py exactly as bench/drift.py does (venv
with the stand-in packages, model in the cache, stand-in server running), plus pip in each
venv (from the system's /usr/share/python-wheels) so that apply can install with it. Then,
for each size N (a site over the first N hosts):
  drift    `localai drift SITE --json`, a new process; every host must be in sync
  apply    `localai apply SITE --json` with nothing to do: every host must be unchanged
  peers    bench/drift.py's Ansible and pyinfra drift checks of the same hosts
and afterwards, for each size (and the model alone on 1 host):
  package  mlx-lm's pin moved to a version only the local wheelhouse has (a stand-in wheel):
           apply must change every host (install it, restart the server)
  model    on top of that, a made-up model (config.json and a random `model.safetensors` of
           --model-mb MB, new content for every size) given as the model's `source:` folder:
           apply must copy it to every host
after which the hosts are put back (an unmeasured apply of the base site, the copied model
removed) for the next size. Every localai run reports per host `cost` in its --json
(connections, commands, bytes_sent), summed or spanned here; connections and commands are
also counted from every host's sshd log, as bench/drift.py does. Writes every run as JSON, a
markdown table and a PNG plot (bench/scaleplot.py, in its own venv with matplotlib under
/tmp/bench-venvs). The fleet, servers, users and temporary files are removed at the end.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import yaml  # noqa: E402

from bench import drift  # noqa: E402
from bench.ansible.inventory import write_inventory  # noqa: E402
from localai_provision.fleet import check_hosts  # noqa: E402
from localai_provision.site import load_site  # noqa: E402
from tests.support import hostprep  # noqa: E402
from tests.support.sshfleet import SSHD, SSHFleet, TestHost, cleanup_stale  # noqa: E402
from tests.support.wheels import build_wheel  # noqa: E402

SCENARIOS = ("drift", "apply", "package", "model")
CHANGE_TIMEOUT_S = 3600.0
PIP_WHEELS = Path("/usr/share/python-wheels")  # Debian's pip wheel (python3-pip-whl)


@dataclass
class ScaleRow(drift.Row):
    scenario: str = "drift"
    bytes_sent: list[int] = field(default_factory=list)  # per run, summed over the hosts
    cost_connections: set[int] = field(default_factory=set)  # per host, from --json cost
    cost_commands: set[int] = field(default_factory=set)
    loads: list[float] = field(default_factory=list)  # 1-minute load average at each run

    def as_dict(self) -> dict[str, Any]:
        return {
            **super().as_dict(),
            "scenario": self.scenario,
            "bytes_sent": self.bytes_sent,
            "cost_connections_per_host": sorted(self.cost_connections),
            "cost_commands_per_host": sorted(self.cost_commands),
            "load1": self.loads,
        }


def localai_run(
    row: ScaleRow,
    argv: list[str],
    verdict: Callable[[int, dict[str, Any]], str],
    timeout: float = drift.RUN_TIMEOUT_S,
) -> Callable[[], tuple[bool, str]]:
    """One `python -m localai_provision ... --json` run as a new process (the worktree's code:
    the working directory comes first on sys.path), its cost read from the JSON."""
    cmd = [sys.executable, "-m", "localai_provision", *argv, "--json"]

    def once() -> tuple[bool, str]:
        row.loads.append(round(os.getloadavg()[0], 2))
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=ROOT)
        try:
            data = json.loads(proc.stdout)
        except ValueError:
            return False, f"exit {proc.returncode}: {proc.stdout[-1500:]} {proc.stderr[-1500:]}"
        costs = [h.get("cost", {}) for h in data.get("hosts", [])]
        row.bytes_sent.append(sum(c.get("bytes_sent", 0) for c in costs))
        row.cost_connections |= {c.get("connections", -1) for c in costs}
        row.cost_commands |= {c.get("commands", -1) for c in costs}
        why = verdict(proc.returncode, data)
        if why:
            failed = [h for h in data.get("hosts", []) if h.get("error")]
            return False, f"{why}; first failure: {json.dumps(failed[:1])[:1500]}"
        return True, ""

    return once


def expect_drift_in_sync(n: int) -> Callable[[int, dict[str, Any]], str]:
    def verdict(code: int, data: dict[str, Any]) -> str:
        summary = data.get("summary", {})
        return "" if code == 0 and summary.get("in_sync") == n else f"exit {code}, {summary}"

    return verdict


def expect_apply(n: int, *, changed: bool) -> Callable[[int, dict[str, Any]], str]:
    def verdict(code: int, data: dict[str, Any]) -> str:
        summary = data.get("summary", {})
        want = "changed" if changed else "ok"
        return "" if code == 0 and summary.get(want) == n else f"exit {code}, {summary}"

    return verdict


# ------------------------------------------------------------------------------ sites


class Sites:
    """Site files over the first N hosts: the base one (what hostprep made) and variants."""

    def __init__(self, work: Path, targets: list[dict[str, Any]], wheelhouse: Path) -> None:
        self.work = work
        self.targets = targets
        self.wheelhouse = wheelhouse

    def data(self, n: int) -> dict[str, Any]:
        data: dict[str, Any] = yaml.safe_load(drift.site_text(self.targets[:n], self.wheelhouse))
        # No uv wheel in the offline wheelhouse: say so rather than have every host try.
        data["defaults"]["installer"] = "pip"
        return data

    def write(self, name: str, data: dict[str, Any]) -> Path:
        path = self.work / f"site-{name}.yaml"
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        return path

    def base(self, n: int) -> Path:
        return self.write(f"base-{n}", self.data(n))

    def package(self, n: int, version: str) -> dict[str, Any]:
        data = self.data(n)
        data["defaults"]["packages"]["mlx-lm"] = version
        return data

    def model(self, data: dict[str, Any], model_id: str, folder: Path, peers: bool | None) -> Path:
        data["defaults"]["models"] = [drift.MODEL, {"id": model_id, "source": str(folder)}]
        if peers is not None:  # only when asked: without it the tool's default (peers on)
            data["defaults"]["transfer"] = {"peers": peers}
        hosts = len(data["hosts"])
        return self.write(f"model-{hosts}", data)


def make_model(folder: Path, megabytes: int) -> Path:
    """A made-up model folder: config.json and a random model.safetensors (new content)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps({"model_type": "llama", "bench": folder.name}))
    with open(folder / "model.safetensors", "wb") as f:
        for _ in range(megabytes):
            f.write(os.urandom(1 << 20))
    return folder


def add_pip(fleet: SSHFleet, hosts: list[TestHost], wheelhouse: Path) -> None:
    """hostprep makes venvs --without-pip; apply installs with the venv's pip."""
    for wheel in PIP_WHEELS.glob("pip-*.whl"):
        shutil.copy(wheel, wheelhouse / wheel.name)
        (wheelhouse / wheel.name).chmod(0o644)

    def install(host: TestHost) -> None:
        venv = hostprep.host_paths(host)[0] / "venv"
        hostprep.root_pip(
            "--python",
            str(venv / "bin" / "python"),
            "install",
            "-q",
            "--no-index",
            "--find-links",
            str(wheelhouse),
            "pip",
        )
        hostprep.chown_tree(venv, host.user)

    with ThreadPoolExecutor(max_workers=min(8, len(hosts))) as pool:
        list(pool.map(install, hosts))


def restore(sites: Sites, hosts: list[TestHost], model_ids: list[str]) -> None:
    """Unmeasured: back to the base site, copied models removed, checked in sync."""
    n = len(hosts)
    site = sites.base(n)
    proc = subprocess.run(
        [sys.executable, "-m", "localai_provision", "apply", str(site), "--json"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=CHANGE_TIMEOUT_S,
    )
    if proc.returncode != 0:
        print(f"  restore apply failed: {proc.stdout[-1500:]} {proc.stderr[-800:]}")
    for host in hosts:
        hub = hostprep.host_paths(host)[1] / "hub"
        for model_id in model_ids:
            shutil.rmtree(hub / ("models--" + model_id.replace("/", "--")), ignore_errors=True)
    results = check_hosts(list(load_site(site).hosts.values()))
    bad = [r.name for r in results if r.changes or r.failed]
    if bad:
        print(f"  warning: {len(bad)} hosts not back in sync after restoring: {bad[:5]}")


# ------------------------------------------------------------------------------ main


def markdown(rows: list[ScaleRow]) -> str:
    lines = [
        "| scenario | tool | hosts | median s | min s | MB sent | conn/host json (sshd) "
        "| cmd/host json (sshd) | runs | load1 |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        status = "" if r.ok else " FAILED"
        most = max(r.bytes_sent) if r.bytes_sent else None
        sent = "" if most is None else f"{most / 1e6:.1f}" if most >= 1e5 else f"{most / 1e6:.4f}"
        json_conn = drift._span(r.cost_connections) if r.cost_connections else "-"
        json_cmd = drift._span(r.cost_commands) if r.cost_commands else "-"
        load = f"{max(r.loads):.1f}" if r.loads else ""
        lines.append(
            f"| {r.scenario} | {r.tool}{status} | {r.hosts} | {r.median:.2f} | {r.best:.2f} | "
            f"{sent} | {json_conn} ({drift._span(r.connections)}) | {json_cmd} "
            f"({drift._span(r.commands)}) | {len(r.times)} | {load} |"
        )
    return "\n".join(lines)


def make_plot(results_path: Path, png: Path) -> str:
    venv = drift.ensure_venv("plot", "matplotlib", "fonttools")  # fonttools: a matplotlib dep
    plot = [str(venv / "bin" / "python"), str(drift.BENCH / "scaleplot.py")]
    proc = subprocess.run(
        [*plot, str(results_path), str(png)],
        capture_output=True,
        text=True,
        check=False,
    )
    return "" if proc.returncode == 0 else proc.stderr[-1500:]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--hosts", type=int, nargs="+", default=[10, 30, 100], metavar="N")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each no-op per size")
    parser.add_argument("--peer-repeat", type=int, default=1, help="Ansible/pyinfra runs")
    parser.add_argument("--skip-peers", action="store_true", help="measure localai only")
    parser.add_argument("--scenarios", nargs="+", choices=SCENARIOS, default=list(SCENARIOS))
    parser.add_argument("--model-mb", type=int, default=200)
    parser.add_argument(
        "--model-hosts",
        type=int,
        nargs="+",
        metavar="N",
        help="sizes for the model scenario (default: every size, and 1)",
    )
    parser.add_argument(
        "--peers",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="write `transfer: {peers: BOOL}` into the model site (default: leave it out)",
    )
    parser.add_argument("--forks", type=int, help="passed to localai (default: its own)")
    parser.add_argument("--out", type=Path, default=Path("/tmp/localai-scale"))
    parser.add_argument("--wait-idle", type=float, default=drift.WAIT_IDLE_S, metavar="S")
    args = parser.parse_args()
    drift.WAIT_IDLE_S = args.wait_idle
    if os.geteuid() != 0 or not Path(SSHD).exists():
        parser.error("needs root and openssh-server (/usr/sbin/sshd)")
    sizes = sorted(set(args.hosts))
    total = max(sizes)
    model_sizes = sorted(set(args.model_hosts or [1, *sizes]))
    forks = ["--forks", str(args.forks)] if args.forks else []
    args.out.mkdir(parents=True, exist_ok=True)

    venvs: dict[str, Path] = {}
    meta: dict[str, Any] = {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "commit": subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT
        ).stdout.strip(),
        "cpus": os.cpu_count(),
        "argv": sys.argv[1:],
        "versions": {
            "localai": drift.LOCALAI_VERSION,
            "python": sys.version.split()[0],
            "openssh": drift.tool_version(["ssh", "-V"]),
        },
    }
    if not args.skip_peers:
        venvs["ansible"] = drift.ensure_venv("ansible", "ansible-core", "ansible-playbook")
        venvs["pyinfra"] = drift.ensure_venv("pyinfra", "pyinfra", "pyinfra")
        meta["versions"]["ansible-core"] = drift.tool_version(
            [str(venvs["ansible"] / "bin" / "ansible"), "--version"]
        )
        meta["versions"]["pyinfra"] = drift.tool_version(
            [str(venvs["pyinfra"] / "bin" / "pyinfra"), "--version"]
        )

    cleanup_stale(drift.FLEET_PREFIX)
    work = Path(tempfile.mkdtemp(prefix="localai-scale-"))
    work.chmod(0o755)  # the hosts' users read the wheelhouse and the model folders
    fleet = SSHFleet(work / "fleet", total, prefix=drift.FLEET_PREFIX)
    rows: list[ScaleRow] = []
    try:
        fleet.start()
        print(f"fleet: {total} sshd hosts started in {fleet.start_seconds:.1f} s", flush=True)
        wheelhouse = drift.make_wheelhouse(work)
        known_hosts = fleet.write_known_hosts(work / "known_hosts")
        targets, _, prep_s = drift.prepare_fleet(fleet, work, wheelhouse, known_hosts)
        start = time.perf_counter()
        add_pip(fleet, fleet.hosts, wheelhouse)
        meta["prepare_s"] = round(prep_s + time.perf_counter() - start, 1)
        sites = Sites(work, targets, wheelhouse)

        for n in sizes:
            hosts = fleet.hosts[:n]
            logs = drift.SSHDLogs(hosts)
            site = sites.base(n)
            print(f"\n== {n} hosts, no-op", flush=True)
            if "drift" in args.scenarios:
                row = ScaleRow("localai drift", n, scenario="drift")
                once = localai_run(row, ["drift", str(site), *forks], expect_drift_in_sync(n))
                drift.measure(row, logs, args.repeat, once)
                rows.append(row)
                if not args.skip_peers:
                    targets_file = work / f"targets-{n}.json"
                    targets_file.write_text(json.dumps(targets[:n], indent=1))
                    inventory = write_inventory(targets[:n], work / f"inventory-{n}.yml")
                    for peer in (
                        drift.bench_pyinfra(
                            venvs["pyinfra"], targets_file, n, logs, args.peer_repeat
                        ),
                        drift.bench_ansible(
                            venvs["ansible"], inventory, n, logs, args.peer_repeat, work
                        ),
                    ):
                        rows.append(ScaleRow(**vars(peer), scenario="drift"))
            if "apply" in args.scenarios:
                row = ScaleRow("localai apply", n, scenario="apply")
                once = localai_run(
                    row, ["apply", str(site), *forks], expect_apply(n, changed=False)
                )
                drift.measure(row, logs, args.repeat, once)
                rows.append(row)

        if "package" in args.scenarios or "model" in args.scenarios:
            change_sizes = sorted(
                {*(sizes if "package" in args.scenarios else []), *model_sizes}
                if "model" in args.scenarios
                else sizes
            )
            for i, n in enumerate(change_sizes):
                hosts = fleet.hosts[:n]
                logs = drift.SSHDLogs(hosts)
                print(f"\n== {n} hosts, changes", flush=True)
                version = f"0.28.{10 + i}"  # new to every host at every size
                build_wheel(
                    wheelhouse, "mlx-lm", version, {"mlx_lm_standin.py": f"VERSION = {version!r}\n"}
                )
                for wheel in wheelhouse.iterdir():
                    wheel.chmod(0o644)
                run_package = "package" in args.scenarios and n in sizes
                # The model goes on top of the package change only where that ran first:
                # else its apply would install the package too, and be timed with it.
                data = sites.package(n, version) if run_package else sites.data(n)
                package_site = sites.write(f"package-{n}", data)
                if run_package:
                    row = ScaleRow("localai package", n, scenario="package")
                    once = localai_run(
                        row,
                        ["apply", str(package_site), *forks],
                        expect_apply(n, changed=True),
                        timeout=CHANGE_TIMEOUT_S,
                    )
                    drift.measure(row, logs, 1, once)
                    rows.append(row)
                model_ids = []
                if "model" in args.scenarios and n in model_sizes:
                    model_id = f"bench/big-{n}"
                    model_ids.append(model_id)
                    folder = make_model(work / "models" / f"big-{n}", args.model_mb)
                    folder.chmod(0o755)
                    model_site = sites.model(data, model_id, folder, args.peers)
                    label = "localai model" + ("" if args.peers is None else f" peers={args.peers}")
                    row = ScaleRow(label, n, scenario="model")
                    once = localai_run(
                        row,
                        ["apply", str(model_site), *forks],
                        expect_apply(n, changed=True),
                        timeout=CHANGE_TIMEOUT_S,
                    )
                    drift.measure(row, logs, 1, once)
                    rows.append(row)
                    shutil.rmtree(folder, ignore_errors=True)
                print(f"  restoring {n} hosts to the base site (not measured)", flush=True)
                restore(sites, hosts, model_ids)

        if "drift" in args.scenarios:
            print(f"\n== where localai's time goes ({total} hosts)", flush=True)
            breakdown = drift.where_localai_time_goes(sites.base(total))
            breakdown.update(drift.facts_script_cost(fleet, fleet.hosts[0], sites.base(total)))
            meta["localai_breakdown"] = breakdown
            for key, value in breakdown.items():
                print(f"  {key}: {value:.3f}" if isinstance(value, float) else f"  {key}: {value}")
    finally:
        try:
            fleet.stop()
        finally:
            shutil.rmtree(work, ignore_errors=True)

    table = markdown(rows)
    print()
    print(table)
    model = {r.hosts: r.median for r in rows if r.scenario == "model" and r.ok and r.times}
    if 1 in model:
        meta["model_time_vs_one_host"] = {n: round(t / model[1], 2) for n, t in model.items()}
        print(f"model time / one host's: {meta['model_time_vs_one_host']}")
    meta["title"] = (
        f"bench/scale.py at {meta['commit']}, {meta['date'][:10]}, {meta['cpus']} CPUs, loopback; "
        f"model {args.model_mb} MB"
    )
    results_path = args.out / "scale.json"
    results_path.write_text(
        json.dumps({**meta, "rows": [r.as_dict() for r in rows]}, indent=1, default=str)
    )
    (args.out / "scale.md").write_text(table + "\n")
    failure = make_plot(results_path, args.out / "scale.png")
    if failure:
        print(f"plot failed: {failure}")
    print(f"\nwrote {results_path}, scale.md, scale.png in {args.out}")
    return 0 if all(r.ok for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
