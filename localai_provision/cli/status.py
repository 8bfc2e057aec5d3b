"""`localai status`, `localai stop` and `localai doctor`: per host, live, over one facts
command each; each imports its library module only when it runs."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from localai_provision.cli.exits import EXIT_ERROR, EXIT_OK
from localai_provision.cli.hostjson import host_json
from localai_provision.cli.render import (
    Output,
    clean,
    duration,
    print_errors,
    print_warnings,
    table,
)
from localai_provision.fleet import HostResult
from localai_provision.results import (
    DoctorReport,
    HostStatus,
    ServerLog,
    ServerStatus,
    StopReport,
)
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
    "LOG",
)


def details_json(io: Output, results: Sequence[HostResult]) -> None:
    """status, stop and doctor: each host's result with its details, as JSON."""
    io.json({"hosts": [host_json(r, "details") for r in results]})


def status_row(r: HostResult) -> tuple[str, ...]:
    """One host's row of the status table."""
    d = r.details
    if r.failed or not isinstance(d, ServerStatus):
        return (r.name, r.status, *("-",) * (len(STATUS_HEADER) - 2))
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
        _loaded_text(loaded, d.models_loading),
        f"{latency:.0f} ms" if latency is not None else "-",
        f"{last_pull.result} {last_pull.finished_at}" if last_pull else "-",
        d.generation or "-",
        _memory(d),
        log_text(d.log),
    )


def _memory(d: ServerStatus) -> str:
    """ "6.9 of 16.0 GB": what a new process can have, of the host's memory."""
    total, free = d.memory_total_bytes, d.memory_available_bytes
    if total is None or free is None:
        return "-"
    return f"{free / 1024**3:.1f} of {total / 1024**3:.1f} GB"


def _loaded_text(loaded: tuple[str, ...] | None, loading: tuple[str, ...]) -> str:
    if loaded is None:
        return "n/a"
    text = ", ".join(loaded) or "none"
    return text + (f" (loading: {', '.join(loading)})" if loading else "")


def size_text(n: int) -> str:
    """Bytes as the log sizes are set (MiB), or KiB/B when small."""
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"


def log_text(log: ServerLog | None) -> str:
    """`/p/logs/server.log 12.0 MiB (+3 rotated, 150.0 MiB)`: where the log is, its size
    and what its rotation keeps."""
    if log is None:
        return "-"
    text = "none" if log.size_bytes is None else size_text(log.size_bytes)
    if log.rotated_files:
        text += f" (+{log.rotated_files} rotated, {size_text(log.rotated_bytes)})"
    return f"{log.path} {text}"


def print_crash_tails(io: Output, results: Sequence[HostResult]) -> None:
    """The last lines of each crashed server's log: why it does not stay up."""
    for r in results:
        log = r.details.log if isinstance(r.details, ServerStatus) else None
        if log is None or not log.crash_tail:
            continue
        io.line(f"{r.name}: the server has crashed; the last lines of {log.path}:")
        for line in log.crash_tail:
            io.line("  " + clean(line, one_line=True))


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
    print_crash_tails(io, results)
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
