"""`localai plan` and `localai drift`: read-only, one facts command per host, then the plan."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from localai_provision.cli.exits import EXIT_CHANGES, EXIT_ERROR, EXIT_OK
from localai_provision.cli.hostjson import host_json
from localai_provision.cli.render import Output, clean, count, indent, print_warnings
from localai_provision.cli.sites import site_hosts
from localai_provision.fleet import HostResult, check_hosts
from localai_provision.plan import Change

ACTION_MARK = {
    "create": "+",
    "update": "~",
    "remove": "-",
    "start": ">",
    "restart": ">",
    "fail": "!",
}


def check(args: argparse.Namespace) -> list[HostResult]:
    _file, hosts = site_hosts(args)
    return check_hosts(hosts, forks=args.forks)


def exit_for(results: Sequence[HostResult]) -> int:
    if any(r.failed for r in results):
        return EXIT_ERROR
    if any(r.changes for r in results):
        return EXIT_CHANGES
    return EXIT_OK


def summary_of(results: Sequence[HostResult]) -> dict[str, int]:
    counts = {"hosts": len(results), "in_sync": 0, "changed": 0, "changes": 0, "failed": 0}
    for r in results:
        if r.failed:
            counts["failed"] += 1
        elif r.changes:
            counts["changed"] += 1
            counts["changes"] += len(r.changes)
        else:
            counts["in_sync"] += 1
    return counts


def cmd_plan(args: argparse.Namespace, io: Output) -> int:
    results = check(args)
    summary = summary_of(results)
    if args.json:
        io.json({"hosts": [host_json(r, "plan") for r in results], "summary": summary})
        return exit_for(results)
    for r in results:
        if r.failed:
            io.line(f"{r.name}: {r.status.upper()}")
            io.line(indent(str(r.error)))
        elif not r.changes:
            io.line(f"{r.name}: no changes")
        else:
            io.line(f"{r.name}: {count(len(r.changes), 'change')}")
            io.line(indent(change_table(r.changes)))
    print_warnings(io, results)
    io.line(
        f"{count(summary['hosts'], 'host')}: {summary['changed']} to change "
        f"({count(summary['changes'], 'change')}), {summary['in_sync']} in sync, "
        f"{summary['failed']} failed"
    )
    return exit_for(results)


def change_table(changes: list[Change], most_packages: int = 12) -> str:
    """One row per change; a long run of package changes (a fresh host with a locked set of
    200 packages) is cut after ``most_packages`` rows: --json lists them all."""
    packages = [c for c in changes if c.kind == "package"]
    shown = changes
    if len(packages) > most_packages:
        hidden = {id(c) for c in packages[most_packages:]}
        shown = [c for c in changes if id(c) not in hidden]
    width = max(len(c.resource) for c in shown)
    rows = []
    for c in shown:
        mark = ACTION_MARK.get(c.action, "?")
        reason = clean(c.reason, one_line=True)
        rows.append(f"{mark} {c.resource.ljust(width)}  {c.action.ljust(7)}  {reason}")
        if c.kind == "package" and len(shown) < len(changes) and c is packages[most_packages - 1]:
            rows.append(
                f"  ... and {len(packages) - most_packages} more packages (--json lists all)"
            )
    return "\n".join(rows)


def drift_line(r: HostResult, width: int) -> str:
    """One host's line of the drift table: name, status, time, and what differs."""
    detail = ""
    if r.failed and r.error:
        detail = r.error.message
    elif r.changes:
        detail = "; ".join(f"{c.resource}: {c.reason}" for c in r.changes[:3])
        if len(r.changes) > 3:
            detail += f"; and {len(r.changes) - 3} more"
    detail = clean(detail, one_line=True)
    return f"{r.name.ljust(width)}  {r.status.ljust(11)}  {r.elapsed_ms:6.0f} ms  {detail}"


def cmd_drift(args: argparse.Namespace, io: Output) -> int:
    results = check(args)
    summary = summary_of(results)
    if args.junit:
        from localai_provision.cli.junit import write_junit

        write_junit(Path(args.junit), results)
    if args.json:
        io.json({"hosts": [host_json(r, "drift") for r in results], "summary": summary})
        return exit_for(results)
    width = max(len(r.name) for r in results)
    for r in results:
        io.line(drift_line(r, width))
    # Warnings (a failed or stale pull among them) never change drift's exit code: that
    # says whether hosts differ from the site, and nothing else.
    print_warnings(io, results)
    io.line(
        f"{count(summary['hosts'], 'host')}: {summary['in_sync']} in sync, "
        f"{summary['changed']} drifted, {summary['failed']} failed"
    )
    return exit_for(results)
