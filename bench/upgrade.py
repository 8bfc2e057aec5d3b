"""Benchmark: how long hosts stop serving during a package upgrade, and a rollback's time.

Run (as root, from the repo root):
    python bench/upgrade.py --hosts 1 10 [--repo PATH] [--json-out FILE]

  --repo PATH   run `localai` from another checkout (e.g. a worktree of the commit before
                generations) to measure "before" on the same machine, in the same way

What it does: starts an SSHFleet (one real sshd on loopback and one Unix user per host,
tests/support/sshfleet.py) and a wheelhouse of the tests' STAND-IN server (0.5.1, 0.5.2, and
0.5.9 whose server exits as it starts). For each N: the N hosts are applied fresh with
mlx-omni-server 0.5.1; then one client thread per host asks GET /v1/models every 50 ms
while `localai apply` (a separate process, as a user runs it) upgrades them to 0.5.2. The
longest time between two answered requests is a host's gap: before generations it is the
whole install plus the restart; with generations, the restart alone. It also reports the
first answer's latency after the gap, the apply's wall time, and with generations: an
upgrade to the broken 0.5.9 (with generations rolled back by itself; before, the hosts
serve nothing afterwards: `serving_after`) and `localai rollback` to the previous set.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import yaml  # noqa: E402

from tests.support import hostprep  # noqa: E402
from tests.support.sshfleet import SSHFleet, cleanup_stale  # noqa: E402
from tests.support.wheels import build_standin_server, build_wheel  # noqa: E402

FLEET_PREFIX = "bu"
POLL_S = 0.05
BASE = {"mlx-omni-server": "0.5.1", "mlx-lm": "0.28.2"}
PIP_DOWNLOAD = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:"]


def wheelhouse(folder: Path) -> Path:
    build_standin_server(folder, "0.5.1")
    build_standin_server(folder, "0.5.2")
    build_standin_server(folder, "0.5.9", crash_at_start=True)
    build_wheel(folder, "mlx-lm", "0.28.2", {"mlx_lm_standin.py": ""})
    build_wheel(folder, "torch", "2.13.0+cpu", {"torch_standin.py": ""})
    build_wheel(folder, "mlx-cpu", "0.29.3", {"mlx_cpu_standin.py": ""})
    subprocess.run(
        [*PIP_DOWNLOAD, "--dest", str(folder), "uv"],
        check=False,
        capture_output=True,
    )
    for path in [folder, *folder.iterdir()]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    return folder


def site_file(
    fleet: SSHFleet,
    n: int,
    ports: dict[str, int],
    house: Path,
    packages: dict[str, str],
    path: Path,
) -> Path:
    hosts = {
        h.name: {
            "address": "127.0.0.1",
            "ssh_port": h.port,
            "user": h.user,
            "server": {"port": ports[h.name]},
        }
        for h in fleet.hosts[:n]
    }
    data = {
        "version": 1,
        "defaults": {
            "identity_file": str(fleet.client_key_path),
            "known_hosts_file": str(path.parent / "known_hosts"),
            "python": "/usr/bin/python3",
            "prefix": "~/.localai",
            "hf_home": "~/hf",
            "packages": packages,
            "package_index": {"no_index": True, "find_links": [str(house)]},
        },
        "hosts": hosts,
    }
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def localai(repo: Path, *argv: str) -> tuple[int, float, str]:
    env = {**os.environ, "PYTHONPATH": str(repo)}
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "localai_provision", *argv],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        cwd=repo,  # `-m` puts the working folder first on sys.path, before PYTHONPATH
    )
    return done.returncode, time.perf_counter() - start, done.stdout + done.stderr


class Poller(threading.Thread):
    """GET /v1/models every 50 ms; the longest time between two answers, and the latency of
    the first answer after it. Bounded: stops when told or after ``limit_s``."""

    def __init__(self, port: int, limit_s: float = 900.0) -> None:
        super().__init__(daemon=True)
        self.port = port
        self.limit_s = limit_s
        self.stop = threading.Event()
        self.gap_s = 0.0
        self.after_gap_ms: float | None = None
        self.answered = 0

    def run(self) -> None:
        url = f"http://127.0.0.1:{self.port}/v1/models"
        last_ok = time.monotonic()
        deadline = last_ok + self.limit_s
        while not self.stop.is_set() and time.monotonic() < deadline:
            start = time.monotonic()
            try:
                with urllib.request.urlopen(url, timeout=1) as response:
                    response.read()
                ok = response.status == 200
            except OSError:
                ok = False
            now = time.monotonic()
            if ok:
                self.answered += 1
                gap = now - last_ok
                if gap > self.gap_s:
                    self.gap_s = gap
                    self.after_gap_ms = (now - start) * 1000
                last_ok = now
            time.sleep(max(0.0, POLL_S - (time.monotonic() - start)))


def answers(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models", timeout=2) as response:
            return int(response.status) == 200
    except OSError:
        return False


def during(repo: Path, ports: list[int], *argv: str) -> dict[str, Any]:
    pollers = [Poller(p) for p in ports]
    for p in pollers:
        p.start()
    time.sleep(0.5)
    code, wall, out = localai(repo, *argv)
    time.sleep(1.0)
    for p in pollers:
        p.stop.set()
        p.join()
    gaps = [round(p.gap_s, 2) for p in pollers]
    serving = sum(1 for p in ports if answers(p))
    return {
        "serving_after": f"{serving}/{len(ports)}",
        "exit": code,
        "wall_s": round(wall, 2),
        "gap_max_s": max(gaps),
        "gap_median_s": statistics.median(gaps),
        "first_after_gap_ms": round(max(p.after_gap_ms or 0.0 for p in pollers), 1),
        "output_tail": out[-600:] if code not in (0, 1) else "",
    }


def one_size(fleet: SSHFleet, n: int, repo: Path, house: Path, work: Path) -> dict[str, Any]:
    hosts = fleet.hosts[:n]
    for host in hosts:
        hostprep.reset_host(host)
    ports = {h.name: hostprep.free_port() for h in hosts}
    base = site_file(fleet, n, ports, house, BASE, work / "base.yaml")
    code, wall, out = localai(repo, "apply", str(base), "--json")
    assert code == 0, out[-2000:]
    result: dict[str, Any] = {"hosts": n, "fresh_apply_s": round(wall, 2)}
    good = site_file(fleet, n, ports, house, {**BASE, "mlx-omni-server": "0.5.2"}, work / "up.yaml")
    result["upgrade"] = during(repo, list(ports.values()), "apply", str(good), "--json")
    generations = (repo / "localai_provision" / "rollback.py").exists()
    if generations:
        result["rollback"] = during(repo, list(ports.values()), "rollback", str(good), "--json")
    # A set whose server exits as it starts: rolled back by itself with generations; before,
    # the hosts serve nothing until someone fixes the site (serving_after says how many do).
    bad = {**BASE, "mlx-omni-server": "0.5.9"}
    broken = site_file(fleet, n, ports, house, bad, work / "broken.yaml")
    result["broken_upgrade"] = during(repo, list(ports.values()), "apply", str(broken), "--json")
    for host in hosts:
        hostprep.kill_servers(host)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, nargs="+", default=[1, 10])
    parser.add_argument("--repo", type=Path, default=ROOT)
    parser.add_argument("--json-out", type=Path)
    args = parser.parse_args()
    cleanup_stale(FLEET_PREFIX)
    work = Path(tempfile.mkdtemp(prefix="localai-bench-upgrade-"))
    work.chmod(0o755)
    house = wheelhouse(work / "wheelhouse")
    results = []
    with SSHFleet(work / "fleet", max(args.hosts), prefix=FLEET_PREFIX) as fleet:
        for n in args.hosts:
            results.append(one_size(fleet, n, args.repo.resolve(), house, work))
            print(json.dumps(results[-1]), flush=True)
    if args.json_out:
        args.json_out.write_text(json.dumps({"repo": str(args.repo), "runs": results}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
