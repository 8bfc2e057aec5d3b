"""Benchmark: how long `localai validate` takes on a generated 500-host site file.

Run: python bench/validate.py [--hosts 500] [--repeat 5]
Prints the median wall time of load_site (in-process) and of the whole `localai validate`
command (a new Python process, imports included). Figures go to docs/BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from localai_provision.site import load_site


def make_site(hosts: int) -> str:
    lines = [
        "version: 1",
        "defaults:",
        "  user: lab",
        "  packages: {mlx-omni-server: 0.5.1, mlx-lm: 0.28.2, mlx: 0.29.3}",
        "  models: [mlx-community/Qwen3-4B-4bit]",
        "groups:",
        "  big:",
        "    models: [{id: mlx-community/Qwen3-30B-A3B-4bit, prewarm: true}]",
        "  minis: {server: {port: 10240}}",
        "hosts:",
    ]
    for i in range(hosts):
        group = "big" if i % 10 == 0 else "minis"
        lines += [
            f"  mac-{i:04d}:",
            f"    address: 10.{i // 65536}.{(i // 256) % 256}.{i % 256}",
            f"    groups: [{group}]",
            "    server: {log_level: info}",
        ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--hosts", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "site.yaml"
        path.write_text(make_site(args.hosts))
        size_kb = path.stat().st_size / 1024
        in_process = []
        for _ in range(args.repeat):
            start = time.perf_counter()
            site = load_site(path)
            in_process.append(time.perf_counter() - start)
        assert len(site.hosts) == args.hosts
        whole = []
        for _ in range(args.repeat):
            start = time.perf_counter()
            subprocess.run(
                [sys.executable, "-m", "localai_provision", "validate", str(path)],
                check=True,
                capture_output=True,
            )
            whole.append(time.perf_counter() - start)
    print(f"site: {args.hosts} hosts, {size_kb:.0f} KiB; repeat {args.repeat}, median shown")
    print(
        f"load_site (parse, schema, checks, merge): {statistics.median(in_process) * 1000:.0f} ms"
    )
    print(f"`localai validate` command (new process):  {statistics.median(whole) * 1000:.0f} ms")


if __name__ == "__main__":
    main()
