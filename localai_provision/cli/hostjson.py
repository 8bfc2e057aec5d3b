"""One host's result as JSON: the one place that builds the per-host objects of `--json`.

Each command shows a view of the same result: the fields it lists, in its order (the order
is part of the output, kept byte for byte). ``*details`` stands for what the command itself
reports about the host (status, stop, doctor), spread into the object.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

from localai_provision.fleet import HostResult
from localai_provision.results import ApplyReport

View = Literal["plan", "drift", "apply", "details"]

VIEWS: dict[View, tuple[str, ...]] = {
    "plan": ("name", "status", "changes", "warnings", "error", "elapsed_ms", "cost"),
    "drift": (
        "name",
        "status",
        "differences",
        "warnings",
        "last_pull",
        "error",
        "elapsed_ms",
        "cost",
    ),
    "apply": (
        "name",
        "status",
        "changes",
        "failed_step",
        "error",
        "elapsed_ms",
        "cost",
        "verify",
        "prewarm",
        "steps",
        "warnings",
    ),
    # status, stop and doctor
    "details": ("name", "status", "*details", "error"),
}


def _differences(r: HostResult) -> list[dict[str, object]]:
    return [
        {"resource": c.resource, "expected": c.after, "actual": c.before, "reason": c.reason}
        for c in r.changes
    ]


def _last_pull(r: HostResult) -> dict[str, object] | None:
    report = r.facts.pull_report if r.facts else None
    return report.as_dict() if report else None


def apply_report(r: HostResult) -> ApplyReport:
    """apply's report of a host; empty for a host it did not reach or start."""
    return r.details if isinstance(r.details, ApplyReport) else ApplyReport()


FIELDS: dict[str, Callable[[HostResult], object]] = {
    "name": lambda r: r.name,
    "status": lambda r: r.status,
    "changes": lambda r: [c.as_dict() for c in r.changes],
    "differences": _differences,
    "warnings": lambda r: r.warnings,
    "last_pull": _last_pull,
    "failed_step": lambda r: r.error.step if r.error else None,
    "error": lambda r: r.error.as_dict() if r.error else None,
    "elapsed_ms": lambda r: round(r.elapsed_ms, 1),
    "cost": lambda r: r.cost(),
    "verify": lambda r: apply_report(r).as_json()["verify"],
    "prewarm": lambda r: apply_report(r).as_json()["prewarm"],
    "steps": lambda r: apply_report(r).as_json()["steps"],
}


def host_json(result: HostResult, view: View) -> dict[str, object]:
    """``result`` as the object ``view``'s `--json` lists for each host."""
    data: dict[str, object] = {}
    for key in VIEWS[view]:
        if key == "*details":
            if result.details is not None:
                data.update(result.details.as_json())
        else:
            data[key] = FIELDS[key](result)
    return data
