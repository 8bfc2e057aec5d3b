"""The plot of bench/scale.py: time against host count, per tool (drift) and per scenario.

Run by bench/scale.py with the Python of its own venv (/tmp/bench-venvs/plot, matplotlib
installed there, never in the project's environment): python bench/scaleplot.py RESULTS PNG.
Several RESULTS files (runs of bench/scale.py) may be given: their rows are plotted together,
a later file's row replacing an earlier one of the same scenario, tool and host count.
Imports nothing of the project, so that venv needs matplotlib only.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

DRIFT_TOOLS = [
    ("localai drift", "localai", "o-"),
    ("pyinfra --dry", "pyinfra --dry", "s-"),
    ("ansible-playbook", "ansible-playbook --check", "^-"),
]
SCENARIOS = [
    ("drift", "no-op drift", "o-"),
    ("apply", "no-op apply", "s-"),
    ("package", "one package changed", "^-"),
    ("model", "a model added", "D-"),
]


def _series(rows: list[dict[str, Any]], scenario: str, tool: str) -> tuple[list[int], list[float]]:
    points = sorted(
        (r["hosts"], r["median_s"])
        for r in rows
        if r["ok"] and r["times_s"] and r["scenario"] == scenario and r["tool"] == tool
    )
    return [p[0] for p in points], [p[1] for p in points]


def plot(results: dict[str, Any], png: str) -> None:
    rows = results["rows"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.8))
    hosts: dict[Any, set[int]] = {left: set(), right: set()}
    for tool, label, style in DRIFT_TOOLS:  # bench/drift.py's names for its rows
        xs, ys = _series(rows, "drift", tool)
        if xs:
            left.plot(xs, ys, style, label=label)
            hosts[left].update(xs)
    left.set_title("No-op drift check")
    for scenario, label, style in SCENARIOS:
        # One line per variant: "localai model peers=True" and "... peers=False" apart.
        tools = sorted({r["tool"] for r in rows if r["scenario"] == scenario})
        for tool in (t for t in tools if t.startswith("localai")):
            xs, ys = _series(rows, scenario, tool)
            variant = tool.removeprefix(f"localai {scenario}").strip()
            if xs:
                right.plot(xs, ys, style, label=f"{label} {variant}".strip())
                hosts[right].update(xs)
    right.set_title("localai, by scenario")
    for ax in (left, right):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ticks = sorted(hosts[ax])
        ax.set_xticks(ticks, [str(h) for h in ticks])
        ax.minorticks_off()
        ax.set_xlabel("hosts (loopback sshd, one 2-core machine)")
        ax.set_ylabel("wall time, s (median)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    fig.suptitle(results.get("title", "bench/scale.py"), fontsize=10)
    fig.tight_layout()
    fig.savefig(png, dpi=110)


def merge(paths: list[str]) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    rows: dict[tuple[str, str, int], dict[str, Any]] = {}
    for path in paths:
        with open(path, encoding="utf-8") as f:
            results = json.load(f)
        for row in results.pop("rows"):
            rows[(row["scenario"], row["tool"], row["hosts"])] = row
        merged.update(results)
    if len(paths) > 1:
        merged["title"] = merged.get("title", "") + f" ({len(paths)} runs)"
    return {**merged, "rows": list(rows.values())}


if __name__ == "__main__":
    plot(merge(sys.argv[1:-1]), sys.argv[-1])
