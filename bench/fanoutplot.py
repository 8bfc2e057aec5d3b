"""The plot of bench/fanout.py: a large file to N hosts on loopback and on rate-limited links.

Run with the Python of the bench's plot venv (matplotlib there, never in the project's
environment; bench/scale.py makes it on first use):
  /tmp/bench-venvs/plot/bin/python bench/fanoutplot.py OUT.png LABEL=RESULTS.json ...
Each RESULTS is a --json-out of bench/fanout.py; LABEL names its runs in the legend. Left:
seconds against hosts; right: the same as a multiple of one host's time, with the issue's
goal for links (1.5x). Imports nothing of the project.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

GOAL = 1.5


def series(rows: list[dict[str, Any]], peers: bool) -> tuple[list[int], list[float]]:
    points = sorted((r["hosts"], r["seconds"]) for r in rows if r["peers"] == peers)
    return [p[0] for p in points], [p[1] for p in points]


def main(png: str, runs: list[str]) -> None:
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.8))
    ticks: set[int] = set()
    for run in runs:
        label, _, path = run.partition("=")
        with open(path, encoding="utf-8") as f:
            rows = json.load(f)
        for peers, style in ((True, "o-"), (False, "s--")):
            xs, ys = series(rows, peers)
            if not xs:
                continue
            name = f"{label}, peers {'on' if peers else 'off'}"
            left.plot(xs, ys, style, label=name)
            right.plot(xs, [y / ys[0] for y in ys], style, label=name)
            ticks.update(xs)
    right.axhline(GOAL, color="grey", linestyle=":", label=f"goal on links: {GOAL}x")
    left.set_title("A large file to N hosts: wall time")
    left.set_ylabel("seconds (median)")
    right.set_title("Relative to one host")
    right.set_ylabel("x the time of one host")
    right.set_yscale("log")
    for ax in (left, right):
        ax.set_xscale("log")
        ax.set_xticks(sorted(ticks), [str(t) for t in sorted(ticks)])
        ax.minorticks_off()
        ax.set_xlabel("hosts (real sshd each; one 2-core machine)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("bench/fanout.py: loopback against rate-limited links (tc tbf)", fontsize=10)
    fig.tight_layout()
    fig.savefig(png, dpi=110)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
