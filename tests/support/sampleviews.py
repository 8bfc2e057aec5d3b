"""A small fleet as the operator's views see it, built by hand: one host of each kind the page
and the metrics must show (running in sync, drifted, stopped, unreachable, a Mac with its
memory), for the browser and metrics tests and the README's screenshot."""

from __future__ import annotations

from localai_provision.cli.fleetview import HostView
from localai_provision.facts.model import PullReport
from localai_provision.results import HostStatus

S = HostStatus
PINS = {"mlx-omni-server": "0.5.1", "mlx-lm": "0.28.2"}
PULL_OK = PullReport(
    finished_at="2026-12-01T20:00:00Z", finished_epoch=1796155200.0, result="converged"
)

SAMPLE_VIEWS = (
    HostView(
        name="studio-01",
        status=S.RUNNING,
        groups=("studios",),
        package_set="omni",
        generation="3f2a9c0d11aa22bb",
        server_version="0.5.1",
        packages=PINS,
        models_listed=("mlx-community/Qwen3-8B-4bit",),
        models_loaded=("mlx-community/Qwen3-8B-4bit",),
        latency_ms=11.8,
        memory_bytes=192 * 1024**3,
        memory_available_bytes=120 * 1024**3,
        last_apply="2026-12-01T19:00:00Z",
        last_pull=PULL_OK,
        elapsed_ms=240.0,
    ),
    HostView(
        name="studio-02",
        status=S.RUNNING,
        groups=("studios",),
        package_set="omni",
        server_version="0.5.1",
        packages=PINS,
        models_listed=("mlx-community/Qwen3-8B-4bit",),
        latency_ms=42.5,
        memory_bytes=96 * 1024**3,
        drift={"package": 2, "model": 1},
        last_apply="2026-11-30T08:12:00Z",
        elapsed_ms=310.0,
    ),
    HostView(
        name="mini-03",
        status=S.STOPPED,
        groups=("minis",),
        server_version="0.5.1",
        packages=PINS,
        drift={"service": 1},
        elapsed_ms=190.0,
    ),
    HostView(
        name="mini-04",
        status=S.UNREACHABLE,
        groups=("minis",),
        error="connection refused by 10.0.0.14:22 <script>alert(1)</script>",
        elapsed_ms=5000.0,
    ),
)
