"""Benchmark: the real mlx-omni-server, installed and run by `localai apply`.

Run from the repo root: python bench/real_server.py [--repeat 20]

Measures, on this machine (connection: local, the demo site moved to a private prefix and
port): a fresh apply (say whether uv's cache was warm), a no-op apply, a no-op drift,
/v1/models and /anthropic/v1/models latency, and the first chat request with and without
prewarm. Prints a Markdown table for docs/BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
MODEL = "localai-test/tiny-llama"


def localai(*argv: str) -> tuple[float, int, Any]:
    start = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "localai_provision", *argv, "--json"],
        capture_output=True,
        text=True,
        check=False,
    )
    elapsed = time.perf_counter() - start
    try:
        data = json.loads(result.stdout)
    except json.JSONDecodeError:
        data = result.stderr
    return elapsed, result.returncode, data


def request(port: int, path: str, body: dict[str, Any] | None = None) -> float:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}",
        data=data,
        headers={
            "Content-Type": "application/json",
            "x-api-key": "none",
            "anthropic-version": "2023-06-01",
        },
    )
    start = time.perf_counter()
    with urllib.request.urlopen(req, timeout=300) as response:
        response.read()
    return (time.perf_counter() - start) * 1000


def chat(port: int) -> float:
    return request(
        port,
        "/v1/chat/completions",
        {"model": MODEL, "messages": [{"role": "user", "content": "hello"}], "max_tokens": 8},
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_site(folder: Path, port: int, prewarm: bool) -> Path:
    site = yaml.safe_load((REPO / "playbooks" / "demo.yaml").read_text())
    host = site["hosts"]["this-machine"]
    host.update(prefix=str(folder / "prefix"), hf_home=str(folder / "hf"))
    host["lock"] = str(REPO / "playbooks" / "locks" / "demo")
    host["server"]["port"] = port
    host["models"][0]["prewarm"] = prewarm
    path = folder / ("site.yaml" if prewarm else "site-cold.yaml")
    path.write_text(yaml.safe_dump(site, sort_keys=False))
    return path


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="localai-bench-real-"))
    port = free_port()
    site = write_site(folder, port, prewarm=True)
    cold_site = write_site(folder, port, prewarm=False)
    uv_cache = Path.home() / ".cache" / "uv"
    warm = uv_cache.exists() and any(uv_cache.iterdir())
    rows: list[tuple[str, str]] = []
    try:
        elapsed, code, data = localai("apply", str(site))
        assert code == 0, data
        rows.append((f"fresh apply (uv cache {'warm' if warm else 'cold'})", f"{elapsed:.1f} s"))
        first = chat(port)
        rows.append(("first chat after apply (prewarmed)", f"{first:.0f} ms"))
        noop = [localai("apply", str(site))[0] for _ in range(5)]
        rows.append(("no-op apply (median of 5, new process)", f"{statistics.median(noop):.2f} s"))
        drift = [localai("drift", str(site))[0] for _ in range(5)]
        rows.append(("no-op drift (median of 5, new process)", f"{statistics.median(drift):.2f} s"))
        for path in ("/v1/models", "/anthropic/v1/models"):
            times = [request(port, path) for _ in range(args.repeat)]
            rows.append(
                (f"GET {path} (median of {args.repeat})", f"{statistics.median(times):.1f} ms")
            )
        warm_chat = [chat(port) for _ in range(args.repeat)]
        rows.append(
            (f"chat, warm (median of {args.repeat})", f"{statistics.median(warm_chat):.0f} ms")
        )
        # Without prewarm: restart the server, then the first request loads the model.
        localai("stop", str(site))
        elapsed, code, data = localai("apply", str(cold_site))
        assert code == 0, data
        cold = chat(port)
        rows.append(("first chat without prewarm (loads the model)", f"{cold:.0f} ms"))
    finally:
        localai("stop", str(site))
        shutil.rmtree(folder, ignore_errors=True)
    print("| what | figure |\n| --- | --- |")
    for name, value in rows:
        print(f"| {name} | {value} |")


if __name__ == "__main__":
    main()
