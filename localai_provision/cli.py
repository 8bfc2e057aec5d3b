"""The command line: the only module that prints or exits.

Everything else is a library returning results or raising LocalAIError. Each command imports
what only it needs (apply, status) when it runs: `drift` on 100 hosts should not pay for them.
Here results become a human table or `--json`, and exit codes, which are an API:
  validate  0 valid / 1 invalid
  plan, drift  0 nothing to do / 2 changes or drift / 1 error
  apply  0 converged / 1 a host failed
  doctor  0 every host ready / 1 a host blocked or unreachable
  any command  64 a usage error (an unknown option, a missing argument: EX_USAGE)
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import getpass
import json
import os
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn, TextIO

import yaml

from localai_provision import __version__, pull
from localai_provision.errors import LocalAIError, Problem, SiteError, UsageError
from localai_provision.fleet import (
    DEFAULT_FORKS,
    DRIFT,
    IN_SYNC,
    SKIPPED,
    HostResult,
    check_hosts,
)
from localai_provision.lock import PLATFORMS, compile_lock, parse_lock, plan_locks, platform_of
from localai_provision.plan import Change
from localai_provision.site import load_site, select_hosts
from localai_provision.site.model import HostSpec

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_CHANGES = 2
# argparse exits 2 on a mistyped command line, the code plan and drift use for "changes": a
# script running `localai drift --limt x` would have read drift. EX_USAGE (sysexits.h).
EXIT_USAGE = 64


class _Parser(argparse.ArgumentParser):
    """argparse, with its usage errors exiting EXIT_USAGE (subcommands' parsers too: they
    are made of the parent's class)."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


# Characters a host's text may carry that act on a terminal rather than show: C0 and C1
# controls (ESC starts the sequences that clear the screen, move the cursor, set the title;
# \r returns to the line's start to overwrite it), bidirectional overrides (U+202E shows
# text backwards), and Unicode's line and paragraph separators.
_BIDI = "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
_UNSAFE = {
    c: f"\\x{c:02x}" if c < 0x100 else f"\\u{c:04x}"
    for c in [*range(0x20), 0x7F, *range(0x80, 0xA0), *map(ord, _BIDI), 0x2028, 0x2029]
    if chr(c) not in "\n\t"
}
_UNSAFE_ONE_LINE = {**_UNSAFE, ord("\n"): "\\n"}


def clean(text: str, one_line: bool = False) -> str:
    """``text`` safe to print: every control character, bidirectional override and line
    separator is shown escaped (ESC as \\x1b) instead of acting on the terminal. Everything
    the CLI prints passes here (Output.line, Output.error): text from hosts (a pull report,
    a command's output, status fields) can neither clear the screen nor fake a line.
    ``one_line`` also escapes newlines, for a table cell or a one-line message."""
    return text.translate(_UNSAFE_ONE_LINE if one_line else _UNSAFE)


class Output:
    """Where the CLI writes; tests pass their own streams instead of patching sys."""

    def __init__(self, out: TextIO | None = None, err: TextIO | None = None) -> None:
        self.out = out or sys.stdout
        self.err = err or sys.stderr

    def line(self, text: str = "") -> None:
        print(clean(text), file=self.out)

    def error(self, text: str) -> None:
        print(clean(text), file=self.err)

    def json(self, data: Any) -> None:
        json.dump(data, self.out, indent=2, sort_keys=False, default=str)
        self.out.write("\n")


# --- validate --------------------------------------------------------------------------------


def cmd_validate(args: argparse.Namespace, io: Output) -> int:
    reports: list[dict[str, Any]] = []
    failed = False
    for file in args.files:
        try:
            site = load_site(file)
        except SiteError as exc:
            failed = True
            reports.append(
                {"file": file, "valid": False, "errors": [p.as_dict() for p in exc.problems]}
            )
            if not args.json:
                for problem in exc.problems:
                    io.error(problem.render())
                count = len(exc.problems)
                io.error(f"{file}: {count} error{'s' if count != 1 else ''}")
            continue
        summary = {
            "hosts": len(site.hosts),
            "groups": len(site.groups),
            "models": len(site.model_ids),
        }
        reports.append({"file": file, "valid": True, "errors": [], **summary})
        if not args.json:
            io.line(
                f"{file}: valid: {_count(summary['hosts'], 'host')}, "
                f"{_count(summary['groups'], 'group')}, {_count(summary['models'], 'model')}"
            )
    if args.json:
        io.json({"valid": not failed, "files": reports})
    return EXIT_ERROR if failed else EXIT_OK


def _count(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


# --- hosts -----------------------------------------------------------------------------------


def cmd_hosts(args: argparse.Namespace, io: Output) -> int:
    site = load_site(args.file)
    hosts = select_hosts(site, args.limit)
    if args.json:
        io.json({"file": args.file, "hosts": [h.to_dict() for h in hosts]})
        return EXIT_OK
    for i, host in enumerate(hosts):
        if i:
            io.line()
        data = host.to_dict()
        name = data.pop("name")
        io.line(f"{name}:")
        text = yaml.safe_dump(data, sort_keys=False, default_flow_style=False, width=100)
        for line in text.rstrip().splitlines():
            io.line("  " + line)
    return EXIT_OK


# --- plan and drift ----------------------------------------------------------------------

_ACTION_MARK = {
    "create": "+",
    "update": "~",
    "remove": "-",
    "start": ">",
    "restart": ">",
    "fail": "!",
}


def _site_hosts(args: argparse.Namespace) -> tuple[str, list[HostSpec]]:
    """The site file and the hosts to work on: `FILE [--limit P]` from a controller, or
    `--local FILE --host NAME` on a host itself (pull mode): that one host, reached with the
    local connector instead of SSH; everything else about it is as the file says."""
    local = getattr(args, "local", None)
    host = getattr(args, "host", None)
    if local is None:
        if host is not None:
            raise UsageError(
                "--host goes with --local FILE (pull mode, run on the host itself); "
                "from a controller, choose hosts with --limit"
            )
        if args.file is None:
            raise UsageError(
                "no site file given: localai COMMAND FILE, or --local FILE --host NAME"
            )
        return args.file, select_hosts(load_site(args.file), args.limit)
    if args.file is not None:
        raise UsageError(f"give the site file once: {args.file} or --local {local}, not both")
    if host is None:
        raise UsageError(
            "--local needs --host NAME: which host of the file this machine is "
            f"(see `localai hosts {local}`)"
        )
    if args.limit is not None:
        raise UsageError("--limit does not go with --local: --host names the one host")
    site = load_site(local)
    spec = site.hosts.get(host)
    if spec is None:
        raise UsageError(
            f"--host {host!r} is not a host of {local} (hosts: {', '.join(site.hosts)})"
        )
    return local, [dataclasses.replace(spec, connection="local")]


def _check(args: argparse.Namespace, io: Output) -> list[HostResult]:
    _file, hosts = _site_hosts(args)
    return check_hosts(hosts, forks=args.forks)


def _exit_for(results: list[HostResult]) -> int:
    if any(r.failed for r in results):
        return EXIT_ERROR
    if any(r.changes for r in results):
        return EXIT_CHANGES
    return EXIT_OK


def _summary(results: list[HostResult]) -> dict[str, int]:
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


def _error_dict(result: HostResult) -> dict[str, Any] | None:
    return result.error.as_dict() if result.error else None


def cmd_plan(args: argparse.Namespace, io: Output) -> int:
    results = _check(args, io)
    summary = _summary(results)
    if args.json:
        io.json(
            {
                "hosts": [
                    {
                        "name": r.name,
                        "status": r.status,
                        "changes": [c.as_dict() for c in r.changes],
                        "warnings": r.warnings,
                        "error": _error_dict(r),
                        "elapsed_ms": round(r.elapsed_ms, 1),
                        "cost": r.cost(),
                    }
                    for r in results
                ],
                "summary": summary,
            }
        )
        return _exit_for(results)
    for r in results:
        if r.failed:
            io.line(f"{r.name}: {r.status.upper()}")
            io.line(_indent(str(r.error)))
        elif not r.changes:
            io.line(f"{r.name}: no changes")
        else:
            io.line(f"{r.name}: {_count(len(r.changes), 'change')}")
            io.line(_indent(_change_table(r.changes)))
    _print_warnings(io, results)
    io.line(
        f"{_count(summary['hosts'], 'host')}: {summary['changed']} to change "
        f"({_count(summary['changes'], 'change')}), {summary['in_sync']} in sync, "
        f"{summary['failed']} failed"
    )
    return _exit_for(results)


def _print_warnings(io: Output, results: list[HostResult]) -> None:
    """Each warning once, with the hosts it concerns (a lab of 30 hosts says it once)."""
    hosts_by_warning: dict[str, list[str]] = {}
    for r in results:
        for warning in r.warnings:
            hosts_by_warning.setdefault(warning, []).append(r.name)
    for warning, names in hosts_by_warning.items():
        who = names[0] if len(names) == 1 else f"{len(names)} hosts ({_short_list(names)})"
        io.line(clean(f"warning: {who}: {warning}", one_line=True))


def _short_list(names: list[str], most: int = 5) -> str:
    shown = ", ".join(names[:most])
    return shown + (", ..." if len(names) > most else "")


def _change_table(changes: list[Change], most_packages: int = 12) -> str:
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
        mark = _ACTION_MARK.get(c.action, "?")
        reason = clean(c.reason, one_line=True)
        rows.append(f"{mark} {c.resource.ljust(width)}  {c.action.ljust(7)}  {reason}")
        if c.kind == "package" and len(shown) < len(changes) and c is packages[most_packages - 1]:
            rows.append(
                f"  ... and {len(packages) - most_packages} more packages (--json lists all)"
            )
    return "\n".join(rows)


def _indent(text: str, by: str = "  ") -> str:
    return "\n".join(by + line for line in text.splitlines())


def _differences(result: HostResult) -> list[dict[str, Any]]:
    return [
        {"resource": c.resource, "expected": c.after, "actual": c.before, "reason": c.reason}
        for c in result.changes
    ]


def cmd_drift(args: argparse.Namespace, io: Output) -> int:
    results = _check(args, io)
    summary = _summary(results)
    if args.junit:
        write_junit(Path(args.junit), results)
    if args.json:
        io.json(
            {
                "hosts": [
                    {
                        "name": r.name,
                        "status": r.status,
                        "differences": _differences(r),
                        "warnings": r.warnings,
                        "last_pull": _last_pull(r),
                        "error": _error_dict(r),
                        "elapsed_ms": round(r.elapsed_ms, 1),
                        "cost": r.cost(),
                    }
                    for r in results
                ],
                "summary": summary,
            }
        )
        return _exit_for(results)
    width = max(len(r.name) for r in results)
    for r in results:
        detail = ""
        if r.failed and r.error:
            detail = r.error.message
        elif r.changes:
            detail = "; ".join(f"{c.resource}: {c.reason}" for c in r.changes[:3])
            if len(r.changes) > 3:
                detail += f"; and {len(r.changes) - 3} more"
        detail = clean(detail, one_line=True)
        io.line(f"{r.name.ljust(width)}  {r.status.ljust(11)}  {r.elapsed_ms:6.0f} ms  {detail}")
    # Warnings (a failed or stale pull among them) never change drift's exit code: that
    # says whether hosts differ from the site, and nothing else.
    _print_warnings(io, results)
    io.line(
        f"{_count(summary['hosts'], 'host')}: {summary['in_sync']} in sync, "
        f"{summary['changed']} drifted, {summary['failed']} failed"
    )
    return _exit_for(results)


def _last_pull(result: HostResult) -> dict[str, Any] | None:
    report = result.facts.pull_report if result.facts else None
    return report.as_dict() if report else None


def _xml_text(text: str) -> str:
    """``text`` as XML 1.0 may hold it: the characters XML forbids (controls but tab, newline
    and carriage return; lone surrogates; U+FFFE, U+FFFF) would make the file unreadable,
    so they are shown escaped like everything else a host sends (clean)."""
    cleaned = clean(text)
    return "".join(
        ch
        if ch in "\t\n"
        or ("\x20" <= ch <= "\ud7ff")
        or ("\ue000" <= ch <= "\ufffd")
        or ch > "\uffff"
        else f"\\u{ord(ch):04x}"
        for ch in cleaned
    )


def write_junit(path: Path, results: list[HostResult]) -> None:
    """One test case per host, so any CI or dashboard can show the fleet's state. Every
    text in it passes _xml_text: a host's output could otherwise make it invalid XML."""
    from xml.etree import ElementTree as ET

    failures = sum(1 for r in results if r.status == DRIFT)
    errors = sum(1 for r in results if r.failed)
    suite = ET.Element(
        "testsuite",
        name="localai drift",
        tests=str(len(results)),
        failures=str(failures),
        errors=str(errors),
        time=f"{max((r.elapsed_ms for r in results), default=0) / 1000:.3f}",
    )
    for r in results:
        case = ET.SubElement(
            suite,
            "testcase",
            classname="localai.drift",
            name=_xml_text(r.name),
            time=f"{r.elapsed_ms / 1000:.3f}",
        )
        if r.status == DRIFT:
            failure = ET.SubElement(
                case,
                "failure",
                message=f"{_count(len(r.changes), 'difference')}",
                type="drift",
            )
            failure.text = _xml_text("\n".join(f"{c.resource}: {c.reason}" for c in r.changes))
        elif r.failed and r.error:
            error = ET.SubElement(
                case, "error", message=_xml_text(clean(r.error.message, True)), type=r.status
            )
            error.text = _xml_text(str(r.error))
        assert r.status in (DRIFT, IN_SYNC) or r.failed
    tree = ET.ElementTree(suite)
    ET.indent(tree)
    tmp = path.with_name(f".{path.name}.tmp")
    tree.write(tmp, encoding="utf-8", xml_declaration=True)
    tmp.replace(path)


# --- apply -----------------------------------------------------------------------------------


class Progress:
    """One live line per host with its current step: redrawn in place on a terminal, plain
    `host: step` lines otherwise (CI logs keep every step)."""

    def __init__(self, io: Output, hosts: list[str], live: bool) -> None:
        self.io = io
        self.hosts = hosts
        self.live = live
        self.state = {h: "waiting" for h in hosts}
        self.lock = threading.Lock()
        self.drawn = False
        self.width = max((len(h) for h in hosts), default=0)

    def __call__(self, host: str, step: str) -> None:
        with self.lock:
            self.state[host] = step
            if not self.live:
                self.io.error(f"{host}: {step}")
                return
            if self.drawn:
                self.io.err.write(f"\x1b[{len(self.hosts)}F")
            for name in self.hosts:
                self.io.err.write(f"\x1b[2K{name.ljust(self.width)}  {self.state[name]}\n")
            self.io.err.flush()
            self.drawn = True


def cmd_apply(args: argparse.Namespace, io: Output) -> int:
    if args.local is None and (args.git_pull or args.report):
        raise UsageError("--git-pull and --report go with --local FILE --host NAME (pull mode)")
    if args.dry_run:
        return cmd_plan(args, io)
    if args.local is not None:
        return _apply_pull(args, io)
    file, hosts = _site_hosts(args)
    return _apply(args, io, file, hosts)


def _apply_pull(args: argparse.Namespace, io: Output) -> int:
    """Pull mode: this host converges itself, by the same apply as a push, and leaves a
    report for the controller's drift and status (docs/pull.md)."""
    started = pull.now()
    site_file = Path(args.local)
    git = pull.git_pull(site_file) if args.git_pull else None
    if git is not None and not git.ok:
        io.error(f"warning: git pull failed ({git.error}); applying {site_file} as it is")
    try:
        file, hosts = _site_hosts(args)
    except (SiteError, UsageError) as exc:
        if args.report:
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
        raise
    [spec] = hosts
    me = getpass.getuser()
    if spec.user and spec.user != me:
        io.error(
            f"warning: {spec.name}'s `user` is {spec.user}, but this runs as {me}: what it "
            f"installs belongs to {me}; run it as {spec.user}"
        )
    report_path = args.report or pull.default_report_path(spec)
    results = _run_apply(args, io, file, hosts)
    try:
        code = _render_apply(args, io, results, {"pull_report": report_path})
    finally:
        # Written even when printing fails (a closed pipe): the report is what the
        # controller sees of this run.
        _write_pull_report(spec, results[0], site_file, started, git, report_path)
    return code


def _write_pull_report(
    spec: HostSpec,
    result: HostResult,
    site_file: Path,
    started: str,
    git: pull.GitOutcome | None,
    report_path: str,
) -> None:
    from localai_provision.apply import CHANGED

    failed = result.failed or result.status == SKIPPED
    outcome = (
        pull.FAILED if failed else pull.CHANGED if result.status == CHANGED else pull.CONVERGED
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


def _apply(args: argparse.Namespace, io: Output, file: str, hosts: list[HostSpec]) -> int:
    return _render_apply(args, io, _run_apply(args, io, file, hosts))


def _run_apply(
    args: argparse.Namespace, io: Output, file: str, hosts: list[HostSpec]
) -> list[HostResult]:
    from localai_provision.apply import ApplyOptions, apply_hosts, site_hash

    options = ApplyOptions(site_hash=site_hash(Path(file)), lock_wait_s=args.lock_wait)
    live = not args.json and io.err.isatty()
    progress = Progress(io, [h.name for h in hosts], live) if not args.quiet else None
    results = apply_hosts(
        hosts,
        options,
        forks=args.forks,
        max_fail=args.max_fail,
        serial=args.serial,
        progress=progress,
    )
    return results


def _render_apply(
    args: argparse.Namespace,
    io: Output,
    results: list[HostResult],
    extra: dict[str, Any] | None = None,
) -> int:
    failed = any(r.failed or r.status == SKIPPED for r in results)
    if args.json:
        io.json(
            {
                "hosts": [
                    {
                        "name": r.name,
                        "status": r.status,
                        "changes": [c.as_dict() for c in r.changes],
                        "failed_step": r.error.step if r.error else None,
                        "error": _error_dict(r),
                        "elapsed_ms": round(r.elapsed_ms, 1),
                        "cost": r.cost(),
                        "verify": r.details.get("verify", {}),
                        "prewarm": r.details.get("prewarm", []),
                        "steps": r.details.get("steps", []),
                        "warnings": r.warnings,
                    }
                    for r in results
                ],
                "summary": _apply_summary(results),
                **(extra or {}),
            }
        )
        return EXIT_ERROR if failed else EXIT_OK
    rows = [("HOST", "STATUS", "CHANGES", "ELAPSED", "VERIFY", "PREWARM")]
    for r in results:
        verify = r.details.get("verify", {})
        models_ms = verify.get("/v1/models")
        prewarm = ", ".join(
            f"{p['model'].split('/')[-1]} {p['ms']:.0f} ms" for p in r.details.get("prewarm", [])
        )
        rows.append(
            (
                r.name,
                r.status,
                str(len(r.changes)),
                f"{r.elapsed_ms / 1000:.1f} s",
                f"/v1/models {models_ms:.0f} ms" if models_ms is not None else "-",
                prewarm or "-",
            )
        )
    _table(io, rows)
    _print_warnings(io, results)
    for r in results:
        if r.error and (r.failed or r.status == SKIPPED):
            io.line()
            io.line(str(r.error))
    summary = _apply_summary(results)
    io.line()
    io.line(
        f"{_count(summary['hosts'], 'host')}: {summary['ok']} unchanged, {summary['changed']} "
        f"changed, {summary['failed']} failed, {summary['skipped']} skipped"
    )
    return EXIT_ERROR if failed else EXIT_OK


def _apply_summary(results: list[HostResult]) -> dict[str, int]:
    from localai_provision.apply import CHANGED, SKIPPED

    summary = {"hosts": len(results), "ok": 0, "changed": 0, "failed": 0, "skipped": 0}
    for r in results:
        if r.status == SKIPPED:
            summary["skipped"] += 1
        elif r.failed:
            summary["failed"] += 1
        elif r.status == CHANGED:
            summary["changed"] += 1
        else:
            summary["ok"] += 1
    return summary


# --- lock ------------------------------------------------------------------------------------


def cmd_lock(args: argparse.Namespace, io: Output) -> int:
    site = load_site(args.file)
    hosts = [h for h in select_hosts(site, args.limit) if h.lock]
    if not hosts:
        raise UsageError(
            f"no host in {args.file} has a `lock` setting; add one, for example "
            "`lock: locks/omni` under `defaults:`"
        )
    if args.platform:
        platforms = {h.name: [(p, args.python_version) for p in args.platform] for h in hosts}
    else:
        # Learn each host's platform and Python from the host itself (one round trip).
        platforms = {}
        failed = []
        for result in check_hosts(hosts, forks=args.forks):
            if result.facts is None:
                failed.append(result.name)
                continue
            python = args.python_version or result.facts.python.short_version
            platforms[result.name] = [(platform_of(result.facts), python)]
        if failed:
            raise UsageError(
                f"cannot learn the platform of {', '.join(failed)} (unreachable); name it: "
                f"--platform {' --platform '.join(PLATFORMS)}"
            )
    written = []
    for job in plan_locks(hosts, platforms):
        start = time.perf_counter()
        path = compile_lock(job.spec, job.platform, job.python_version or "3.11")
        count = len(parse_lock(path.read_text()))
        elapsed = time.perf_counter() - start
        written.append(
            {
                "file": str(path),
                "platform": job.platform,
                "packages": count,
                "hosts": list(job.hosts),
                "seconds": round(elapsed, 1),
            }
        )
        if not args.json:
            io.line(
                f"{path}: {count} packages for {job.platform} "
                f"({_count(len(job.hosts), 'host')}, {elapsed:.1f} s)"
            )
    if args.json:
        io.json({"locks": written})
    return EXIT_OK


# --- status and stop -------------------------------------------------------------------------


def cmd_status(args: argparse.Namespace, io: Output) -> int:
    site = load_site(args.file)
    from localai_provision.status import status_hosts

    results = status_hosts(select_hosts(site, args.limit), forks=args.forks)
    if args.json:
        _details_json(io, results)
        return EXIT_ERROR if any(r.failed for r in results) else EXIT_OK
    rows = [
        (
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
        )
    ]
    for r in results:
        d = r.details
        if r.failed:
            rows.append((r.name, r.status, "-", "-", "-", "-", "-", "-", "-", "-"))
            continue
        last_pull = d.get("last_pull")
        server = next(
            (f"{n} {v}" for n, v in d["packages"].items() if n == "mlx-omni-server" and v),
            "not installed",
        )
        loaded = d["models_loaded"]
        latency = d["latency_ms"].get("/v1/models")
        rows.append(
            (
                r.name,
                r.status,
                str(d["pid"] or "-"),
                _duration(d["uptime_s"]),
                str(d["port"]),
                server,
                ", ".join(d["models_listed"]) or "-",
                "n/a" if loaded is None else (", ".join(loaded) or "none"),
                f"{latency:.0f} ms" if latency is not None else "-",
                f"{last_pull['result']} {last_pull['finished_at']}" if last_pull else "-",
            )
        )
    _table(io, rows)
    _print_warnings(io, results)
    for r in results:
        if r.error:
            io.line()
            io.line(str(r.error))
    return EXIT_ERROR if any(r.failed for r in results) else EXIT_OK


def cmd_doctor(args: argparse.Namespace, io: Output) -> int:
    site = load_site(args.file)
    from localai_provision.doctor import READY, doctor_hosts

    results = doctor_hosts(select_hosts(site, args.limit), forks=args.forks)
    if args.json:
        _details_json(io, results)
    else:
        for r in results:
            if r.failed:
                io.line(str(r.error))
                continue
            io.line(f"{r.name}: {r.status}")
            for check in r.details["checks"]:
                mark = "ok" if check["ok"] else ("BLOCKS" if check["blocking"] else "warn")
                io.line(f"  {mark:<6} {check['name']}: {check['detail']}")
                if check["fix"] and not check["ok"]:
                    io.line(f"         fix: {check['fix']}")
    ready = all(r.status == READY for r in results)
    return EXIT_OK if ready else EXIT_ERROR


def cmd_root_helper(args: argparse.Namespace, io: Output) -> int:
    site = load_site(args.file)
    from localai_provision import roothelper
    from localai_provision.layout import launchd_daemons_dir

    spec = site.hosts.get(args.host)
    if spec is None:
        raise UsageError(f"{args.file}: no host named {args.host!r}")
    if spec.user is None:
        raise UsageError(
            f"{args.file}: host {args.host} names no `user`; the helper is per account"
        )
    daemons = launchd_daemons_dir(spec)
    if not daemons.startswith("/"):
        raise UsageError(f"{args.file}: `launchd.plist_dir` of {args.host} must be absolute here")
    io.out.write(roothelper.installer(spec.user, daemons))
    return EXIT_OK


def cmd_stop(args: argparse.Namespace, io: Output) -> int:
    site = load_site(args.file)
    from localai_provision.status import stop_hosts

    results = stop_hosts(select_hosts(site, args.limit), forks=args.forks)
    if args.json:
        _details_json(io, results)
    else:
        for r in results:
            if r.failed:
                io.line(str(r.error))
            else:
                was = "was running" if r.details.get("was_running") else "was not running"
                io.line(f"{r.name}: {r.status} ({was})")
    failed = any(r.failed or r.status != "stopped" for r in results)
    return EXIT_ERROR if failed else EXIT_OK


def _details_json(io: Output, results: list[HostResult]) -> None:
    """status and stop: each host's result with its details, as JSON."""
    io.json(
        {
            "hosts": [
                {"name": r.name, "status": r.status, **r.details, "error": _error_dict(r)}
                for r in results
            ]
        }
    )


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


def _table(io: Output, rows: Sequence[tuple[str, ...]]) -> None:
    rows = _one_line_rows(rows)
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        io.line("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())


def _one_line_rows(rows: Sequence[tuple[str, ...]]) -> list[tuple[str, ...]]:
    """Table cells hold host text (a pull report's time, a model's name): one line each."""
    return [tuple(clean(cell, one_line=True) for cell in row) for row in rows]


# --- plumbing --------------------------------------------------------------------------------

Command = Callable[[argparse.Namespace, Output], int]


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="localai",
        description="Declarative provisioning of MLX Omni Server across a fleet of Macs.",
    )
    parser.add_argument("--version", action="version", version=f"localai {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("validate", help="check site files; exit 0 valid, 1 invalid")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("hosts", help="show each host's settings after merging")
    p.add_argument("file", metavar="FILE")
    _add_limit(p)
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=cmd_hosts)

    p = sub.add_parser("plan", help="show what apply would change; exit 0 none, 2 changes, 1 error")
    _add_site(p)
    _add_limit(p)
    _add_forks(p)
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=cmd_plan)

    p = sub.add_parser(
        "drift", help="which hosts differ from the site; exit 0 in sync, 2 drift, 1 error"
    )
    _add_site(p)
    _add_limit(p)
    _add_forks(p)
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.add_argument("--junit", metavar="FILE", help="also write a JUnit XML report, a case per host")
    p.set_defaults(func=cmd_drift)

    p = sub.add_parser("apply", help="make every host match the site; exit 0 converged, 1 failed")
    _add_site(p)
    _add_limit(p)
    _add_forks(p)
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.add_argument("--dry-run", action="store_true", help="only show the plan (same as `plan`)")
    p.add_argument("--max-fail", type=int, metavar="N", help="start no new host after N failed")
    p.add_argument(
        "--serial",
        type=int,
        metavar="N",
        help="work on N hosts at a time; stop when a batch fails (rolling update)",
    )
    p.add_argument(
        "--lock-wait",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="how long to wait for another apply on the same host (default 10)",
    )
    p.add_argument("--quiet", "-q", action="store_true", help="no progress lines")
    p.add_argument(
        "--git-pull",
        action="store_true",
        help="with --local: `git pull --ff-only` where FILE is, first (a failure is reported, "
        "and the checkout is applied as it is)",
    )
    p.add_argument(
        "--report",
        metavar="FILE",
        help="with --local: where to write the pull report (default "
        "PREFIX/state/pull-report.json); also written when FILE cannot be read",
    )
    p.set_defaults(func=cmd_apply)

    p = sub.add_parser("lock", help="resolve each package set, with hashes, into lock files")
    p.add_argument("file", metavar="FILE")
    _add_limit(p)
    _add_forks(p)
    p.add_argument(
        "--platform",
        action="append",
        choices=sorted(PLATFORMS),
        help="lock for this platform instead of asking the hosts (repeatable)",
    )
    p.add_argument(
        "--python-version",
        default=None,
        metavar="X.Y",
        help="Python version to resolve for (default: the hosts'; 3.11 with --platform)",
    )
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=cmd_lock)
    p = sub.add_parser("status", help="what runs on each host, live")
    p.add_argument("file", metavar="FILE")
    _add_limit(p)
    _add_forks(p)
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=cmd_status)

    p = sub.add_parser(
        "doctor", help="what would block or degrade an apply on each host, with the fix"
    )
    p.add_argument("file", metavar="FILE")
    _add_limit(p)
    _add_forks(p)
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=cmd_doctor)

    p = sub.add_parser(
        "root-helper",
        help="print the root helper's installer for a Mac (run it there with sudo sh)",
    )
    p.add_argument("file", metavar="FILE")
    p.add_argument("--host", required=True, help="the host (its `user` is granted)")
    p.set_defaults(func=cmd_root_helper)

    p = sub.add_parser("stop", help="stop the server on each host; apply starts it again")
    p.add_argument("file", metavar="FILE")
    _add_limit(p)
    _add_forks(p)
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=cmd_stop)
    return parser


def _add_site(p: argparse.ArgumentParser) -> None:
    """FILE from a controller, or `--local FILE --host NAME` on a host itself (pull mode)."""
    p.add_argument("file", metavar="FILE", nargs="?")
    p.add_argument(
        "--local",
        metavar="FILE",
        help="pull mode, run on a host: work on this machine as host NAME of FILE, "
        "without SSH (needs --host)",
    )
    p.add_argument("--host", metavar="NAME", help="with --local: which host of FILE this is")


def _add_forks(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--forks",
        "-f",
        type=int,
        default=DEFAULT_FORKS,
        metavar="N",
        help=f"hosts worked on at once (default {DEFAULT_FORKS})",
    )


def _add_limit(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--limit",
        "-l",
        metavar="PATTERN",
        help="hosts by name, group or glob, comma-separated; !PATTERN excludes",
    )


def main(argv: Sequence[str] | None = None, io: Output | None = None) -> int:
    io = io or Output()
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help(io.err)
        return EXIT_USAGE
    func: Command = args.func
    try:
        return _run_command(func, args, io)
    except BrokenPipeError:
        # `localai hosts site.yaml | head` closes our stdout early; that is not an error.
        with contextlib.suppress(OSError):
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - silence the flush at exit
        return EXIT_OK


def _run_command(func: Command, args: argparse.Namespace, io: Output) -> int:
    try:
        return func(args, io)
    except SiteError as exc:
        _report_site_error(exc.problems, args, io)
        return EXIT_ERROR
    except UsageError as exc:
        io.error(f"localai: error: {exc}")
        return EXIT_ERROR
    except LocalAIError as exc:
        io.error(f"localai: error: {exc}")
        return EXIT_ERROR
    except KeyboardInterrupt as exc:
        terminated = isinstance(exc, Terminated)
        io.error("localai: terminated" if terminated else "localai: interrupted")
        # Worker threads may sit in a host's connect or command timeout; the connections were
        # closed, and a host's lock left behind is taken over by the next apply. Exit now
        # rather than let the interpreter wait for those threads.
        with contextlib.suppress(OSError):
            io.out.flush()
            io.err.flush()
        code = EXIT_TERMINATED if terminated else EXIT_INTERRUPTED
        if io.out is sys.stdout:
            os._exit(code)
        return code
    except BrokenPipeError:
        raise
    except Exception as exc:  # noqa: BLE001 - the last line of defence against tracebacks
        if os.environ.get("LOCALAI_DEBUG"):
            traceback.print_exc(file=io.err)
        io.error(
            f"localai: internal error: {type(exc).__name__}: {exc}\n"
            "This is a bug in localai-provision; rerun with LOCALAI_DEBUG=1 for the traceback "
            "and report it."
        )
        return EXIT_ERROR


def _report_site_error(problems: list[Problem], args: argparse.Namespace, io: Output) -> None:
    if getattr(args, "json", False):
        io.json({"valid": False, "errors": [p.as_dict() for p in problems]})
        return
    for problem in problems:
        io.error(problem.render())


EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report it
EXIT_TERMINATED = 143  # 128 + SIGTERM


class Terminated(KeyboardInterrupt):
    """SIGTERM (a service manager stopping us, `kill`, a CI timeout): handled as Ctrl-C is,
    the hosts' connections closed and every lock left to be taken over, exit 143."""


def _on_sigterm(signum: int, frame: object) -> None:
    raise Terminated


def entry_point() -> None:
    # Only for the command: a library caller keeps its own SIGTERM handling.
    signal.signal(signal.SIGTERM, _on_sigterm)
    raise SystemExit(main())


if __name__ == "__main__":  # pragma: no cover
    entry_point()


__all__ = ["Output", "Path", "build_parser", "main"]
