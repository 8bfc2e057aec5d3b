"""`localai apply`: push (every host over SSH) or pull (`--local`, this host converges itself)."""

from __future__ import annotations

import argparse
import getpass
from collections.abc import Sequence
from pathlib import Path

from localai_provision import pull
from localai_provision.cli.exits import EXIT_ERROR, EXIT_OK
from localai_provision.cli.hostjson import apply_report, host_json
from localai_provision.cli.progress import Progress
from localai_provision.cli.pullreport import report_unreadable_site, write_pull_report
from localai_provision.cli.render import Output, count, print_warnings, table
from localai_provision.cli.sites import site_hosts
from localai_provision.errors import SiteError, UsageError
from localai_provision.fleet import SKIPPED, HostResult
from localai_provision.results import HostStatus
from localai_provision.site.model import HostSpec


def cmd_apply(args: argparse.Namespace, io: Output) -> int:
    if args.local is None and (args.git_pull or args.report):
        raise UsageError("--git-pull and --report go with --local FILE --host NAME (pull mode)")
    if args.dry_run:
        from localai_provision.cli.plan import cmd_plan

        return cmd_plan(args, io)
    if args.local is not None:
        return apply_pull(args, io)
    file, hosts = site_hosts(args)
    return render_apply(args, io, run_apply(args, io, file, hosts))


def apply_pull(args: argparse.Namespace, io: Output) -> int:
    """Pull mode: this host converges itself, by the same apply as a push, and leaves a
    report for the controller's drift and status (docs/pull.md)."""
    started = pull.now()
    site_file = Path(args.local)
    git = pull.git_pull(site_file) if args.git_pull else None
    if git is not None and not git.ok:
        io.error(f"warning: git pull failed ({git.error}); applying {site_file} as it is")
    try:
        file, hosts = site_hosts(args)
    except (SiteError, UsageError) as exc:
        report_unreadable_site(args, exc, site_file, started, git)
        raise
    [spec] = hosts
    me = getpass.getuser()
    if spec.user and spec.user != me:
        io.error(
            f"warning: {spec.name}'s `user` is {spec.user}, but this runs as {me}: what it "
            f"installs belongs to {me}; run it as {spec.user}"
        )
    report_path = args.report or pull.default_report_path(spec)
    results = run_apply(args, io, file, hosts)
    try:
        code = render_apply(args, io, results, {"pull_report": report_path})
    finally:
        # Written even when printing fails (a closed pipe): the report is what the
        # controller sees of this run.
        write_pull_report(spec, results[0], site_file, started, git, report_path)
    return code


def run_apply(
    args: argparse.Namespace, io: Output, file: str, hosts: list[HostSpec]
) -> list[HostResult]:
    from localai_provision.apply import ApplyOptions, apply_hosts, site_hash

    options = ApplyOptions(
        site_hash=site_hash(Path(file)),
        lock_wait_s=args.lock_wait,
        retry_failed=getattr(args, "retry_failed", False),
    )
    live = not args.json and io.err.isatty()
    progress = Progress(io, [h.name for h in hosts], live) if not args.quiet else None
    return apply_hosts(
        hosts,
        options,
        forks=args.forks,
        max_fail=args.max_fail,
        serial=args.serial,
        progress=progress,
        transfer_progress=progress.transfer if progress is not None and live else None,
    )


def apply_row(r: HostResult) -> tuple[str, ...]:
    """One host's row of apply's table."""
    report = apply_report(r)
    models_ms = report.verify.get("/v1/models")
    prewarm = ", ".join(f"{p.model.split('/')[-1]} {p.ms:.0f} ms" for p in report.prewarm)
    return (
        r.name,
        r.status,
        str(len(r.changes)),
        f"{r.elapsed_ms / 1000:.1f} s",
        f"/v1/models {models_ms:.0f} ms" if models_ms is not None else "-",
        prewarm or "-",
    )


def render_apply(
    args: argparse.Namespace,
    io: Output,
    results: list[HostResult],
    extra: dict[str, str] | None = None,
) -> int:
    failed = any(r.failed or r.status == SKIPPED for r in results)
    summary = apply_summary(results)
    if args.json:
        io.json(
            {
                "hosts": [host_json(r, "apply") for r in results],
                "summary": summary,
                **(extra or {}),
            }
        )
        return EXIT_ERROR if failed else EXIT_OK
    rows: list[tuple[str, ...]] = [("HOST", "STATUS", "CHANGES", "ELAPSED", "VERIFY", "PREWARM")]
    rows += [apply_row(r) for r in results]
    table(io, rows)
    print_warnings(io, results)
    for r in results:
        if r.error and (r.failed or r.status == SKIPPED):
            io.line()
            io.line(str(r.error))
    io.line()
    io.line(
        f"{count(summary['hosts'], 'host')}: {summary['ok']} unchanged, {summary['changed']} "
        f"changed, {summary['failed']} failed, {summary['skipped']} skipped"
        + (f" ({summary['rolled_back']} rolled back)" if summary["rolled_back"] else "")
    )
    return EXIT_ERROR if failed else EXIT_OK


def apply_summary(results: Sequence[HostResult]) -> dict[str, int]:
    summary = {"hosts": len(results), "ok": 0, "changed": 0, "failed": 0, "skipped": 0}
    # Of the failed: hosts whose new generation failed and that serve the one before again.
    summary["rolled_back"] = sum(1 for r in results if r.status == HostStatus.ROLLED_BACK)
    for r in results:
        if r.status == SKIPPED:
            summary["skipped"] += 1
        elif r.failed:
            summary["failed"] += 1
        elif r.status == HostStatus.CHANGED:
            summary["changed"] += 1
        else:
            summary["ok"] += 1
    return summary
