"""`localai generations` and `localai rollback`: each host's package-set generations, and the
move back to the previous one."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from localai_provision.cli.exits import EXIT_ERROR, EXIT_OK
from localai_provision.cli.render import Output, print_errors, print_warnings, table
from localai_provision.cli.status import details_json
from localai_provision.fleet import HostResult
from localai_provision.results import GenerationsReport
from localai_provision.site import load_site, select_hosts

HEADER = ("HOST", "GENERATION", "", "CREATED", "SIZE", "DIFFERS FROM CURRENT / FAILED")


def generation_rows(r: HostResult) -> list[tuple[str, ...]]:
    d = r.details
    if r.failed or not isinstance(d, GenerationsReport):
        return [(r.name, str(r.status), "", "-", "-", "-")]
    rows: list[tuple[str, ...]] = []
    for g in d.rows:
        mark = "current" if g.current else "previous" if g.previous else ""
        if g.name == d.wanted and not g.current:
            mark = (mark + " wanted").strip()
        size = f"{g.size_kb / 1024:,.0f} MB" if g.size_kb is not None else "-"
        note = f"FAILED {g.failed}" if g.failed else ", ".join(g.differs) or "-"
        rows.append((r.name, g.name, mark, g.created, size, note))
    return rows or [(r.name, "none", "", "-", "-", "-")]


def _print(io: Output, results: Sequence[HostResult]) -> None:
    table(io, [HEADER, *(row for r in results for row in generation_rows(r))])
    print_warnings(io, results)
    print_errors(io, results)


def cmd_generations(args: argparse.Namespace, io: Output) -> int:
    site = load_site(args.file)
    from localai_provision.rollback import generations_hosts

    results = generations_hosts(select_hosts(site, args.limit), forks=args.forks)
    if args.json:
        details_json(io, results)
    else:
        _print(io, results)
    return EXIT_ERROR if any(r.failed for r in results) else EXIT_OK


def cmd_rollback(args: argparse.Namespace, io: Output) -> int:
    site = load_site(args.file)
    from localai_provision.apply.context import ApplyOptions
    from localai_provision.rollback import rollback_hosts

    options = ApplyOptions(lock_wait_s=args.lock_wait)
    results = rollback_hosts(select_hosts(site, args.limit), options, forks=args.forks)
    if args.json:
        details_json(io, results)
    else:
        for r in results:
            d = r.details
            if isinstance(d, GenerationsReport) and d.rolled_back_from:
                now = next((g.name for g in d.rows if g.current), "-")
                io.line(f"{r.name}: rolled back from {d.rolled_back_from} to {now}")
        _print(io, [r for r in results if r.failed])
    return EXIT_ERROR if any(r.failed for r in results) else EXIT_OK
