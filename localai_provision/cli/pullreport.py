"""Pull mode's report (docs/pull.md): what `apply --local` leaves on the host for the
controller's drift and status, written whatever happened, a site file that cannot be read
included."""

from __future__ import annotations

import argparse
from pathlib import Path

from localai_provision import pull
from localai_provision.errors import LocalAIError, SiteError, UsageError
from localai_provision.fleet import SKIPPED, HostResult
from localai_provision.results import HostStatus
from localai_provision.site.model import HostSpec


def report_unreadable_site(
    args: argparse.Namespace,
    exc: SiteError | UsageError,
    site_file: Path,
    started: str,
    git: pull.GitOutcome | None,
) -> None:
    """The site file (or --host) could not be used: say so in the report, if one is asked for."""
    if not args.report:
        return
    error = str(exc)
    if isinstance(exc, SiteError):
        more = len(exc.problems) - 1
        error = exc.problems[0].render() + (f" (and {more} more)" if more else "")
    pull.write_report(
        args.report,
        pull.build_report(
            host=args.host or "",
            site_file=site_file,
            started_at=started,
            result=pull.FAILED,
            failed_step="site",
            error=error,
            git=git,
        ),
    )


def write_pull_report(
    spec: HostSpec,
    result: HostResult,
    site_file: Path,
    started: str,
    git: pull.GitOutcome | None,
    report_path: str,
) -> None:
    failed = result.failed or result.status == SKIPPED
    outcome = (
        pull.FAILED
        if failed
        else pull.CHANGED
        if result.status == HostStatus.CHANGED
        else pull.CONVERGED
    )
    report = pull.build_report(
        host=spec.name,
        site_file=site_file,
        started_at=started,
        result=outcome,
        changes=len(result.changes),
        failed_step=(result.error.step or "apply") if failed and result.error else None,
        error=result.error.message if failed and result.error else None,
        git=git,
        interval_s=spec.pull.interval_s if spec.pull.declared else None,
    )
    try:
        pull.write_report(report_path, report)
    except OSError as exc:
        raise LocalAIError(f"could not write the pull report {report_path}: {exc}") from None
