"""`localai status`, `localai stop` and `localai doctor`: per host, live, over one facts
command each; each imports its library module only when it runs."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from localai_provision.cli.exits import EXIT_ERROR, EXIT_OK
from localai_provision.cli.hostjson import host_json
from localai_provision.cli.render import Output, duration, print_errors, print_warnings, table
from localai_provision.fleet import HostResult
from localai_provision.results import DoctorReport, HostStatus, ServerStatus, StopReport
from localai_provision.site import load_site, select_hosts
from localai_provision.site.model import HostSpec

STATUS_HEADER = (
    "HOST",
    "STATE",
    "PID",
    "UPTIME",
    "PORT",
    "SERVER",
    "MODELS LISTED",
    "LOADED",
    "/v1/models",
    "LAST PULL",
    "GENERATION",
    "MEMORY FREE",
)


def details_json(io: Output, results: Sequence[HostResult]) -> None:
    """status, stop and doctor: each host's result with its details, as JSON."""
    io.json({"hosts": [host_json(r, "details") for r in results]})


def status_row(r: HostResult) -> tuple[str, ...]:
    """One host's row of the status table."""
    d = r.details
    if r.failed or not isinstance(d, ServerStatus):
        return (r.name, r.status, "-", "-", "-", "-", "-", "-", "-", "-", "-", "-")
    version = d.server_version
    loaded = d.models_loaded
    latency = d.latency_ms.get("/v1/models")
    last_pull = d.last_pull
    return (
        r.name,
        r.status,
        str(d.pid or "-"),
        duration(d.uptime_s),
        str(d.port),
        f"mlx-omni-server {version}" if version else "not installed",
        ", ".join(d.models_listed) or "-",
        "n/a" if loaded is None else (", ".join(loaded) or "none"),
        f"{latency:.0f} ms" if latency is not None else "-",
        f"{last_pull.result} {last_pull.finished_at}" if last_pull else "-",
        d.generation or "-",
        _memory(d),
    )


def _memory(d: ServerStatus) -> str:
    """ "6.9 of 16.0 GB": what a new process can have, of the host's memory."""
    total, free = d.memory_total_bytes, d.memory_available_bytes
    if total is None or free is None:
        return "-"
    return f"{free / 1024**3:.1f} of {total / 1024**3:.1f} GB"


def cmd_status(args: argparse.Namespace, io: Output) -> int:
    site = load_site(args.file)
    hosts = select_hosts(site, args.limit)
    if getattr(args, "html", None):
        results = write_status_page(args.file, args.html, hosts, args.forks)
    else:
        from localai_provision.status import status_hosts

        results = status_hosts(hosts, forks=args.forks)
    if args.json:
        details_json(io, results)
        return EXIT_ERROR if any(r.failed for r in results) else EXIT_OK
    table(io, [STATUS_HEADER, *(status_row(r) for r in results)])
    print_warnings(io, results)
    print_errors(io, results)
    return EXIT_ERROR if any(r.failed for r in results) else EXIT_OK


def write_status_page(
    site_file: str, out: str, hosts: Sequence[HostSpec], forks: int
) -> list[HostResult]:
    """`status --html OUT`: the same status, with each host's drift from the same facts
    command, written as one self-contained page; the table or --json is printed as ever."""
    import datetime as dt

    from localai_provision.cli.fleetview import fleet_views
    from localai_provision.cli.html import status_page
    from localai_provision.cli.outfile import write_atomically
    from localai_provision.status import observe_hosts

    results = observe_hosts(hosts, forks=forks)
    page = status_page(site_file, fleet_views(hosts, results), dt.datetime.now(dt.UTC))
    write_atomically(out, page, "status page")
    return results


def doctor_lines(r: HostResult) -> list[str]:
    """One host's checks, blocking ones first, each failing one with its fix."""
    if r.failed:
        return [str(r.error)]
    lines = [f"{r.name}: {r.status}"]
    checks = r.details.checks if isinstance(r.details, DoctorReport) else ()
    for check in checks:
        lines.append(f"  {check.mark:<6} {check.name}: {check.detail}")
        if check.fix and not check.ok:
            lines.append(f"         fix: {check.fix}")
    return lines


def cmd_doctor(args: argparse.Namespace, io: Output) -> int:
    site = load_site(args.file)
    from localai_provision.doctor import READY, doctor_hosts

    results = doctor_hosts(select_hosts(site, args.limit), forks=args.forks)
    if args.json:
        details_json(io, results)
    else:
        for r in results:
            for line in doctor_lines(r):
                io.line(line)
    ready = all(r.status == READY for r in results)
    return EXIT_OK if ready else EXIT_ERROR


def stop_line(r: HostResult) -> str:
    if r.failed:
        return str(r.error)
    was_running = isinstance(r.details, StopReport) and r.details.was_running
    was = "was running" if was_running else "was not running"
    return f"{r.name}: {r.status} ({was})"


def cmd_stop(args: argparse.Namespace, io: Output) -> int:
    site = load_site(args.file)
    from localai_provision.status import stop_hosts

    results = stop_hosts(select_hosts(site, args.limit), forks=args.forks)
    if args.json:
        details_json(io, results)
    else:
        for r in results:
            io.line(stop_line(r))
    failed = any(r.failed or r.status != HostStatus.STOPPED for r in results)
    return EXIT_ERROR if failed else EXIT_OK
