"""The command line's grammar: one sub-parser per command, each pointing at its function."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, NoReturn, TypeAlias

from localai_provision import __version__
from localai_provision.cli.exits import EXIT_USAGE
from localai_provision.cli.parser_ops import add_ops_commands
from localai_provision.constants import DEFAULT_FORKS, PLATFORMS

if TYPE_CHECKING:
    from localai_provision.cli.render import Output


def _command(module: str, name: str) -> Callable[[argparse.Namespace, Output], int]:
    """A command's function, imported when it runs: `drift` does not pay for apply's,
    status's or lock's modules, `--help` for none (0.5 s of imports before, issue 19)."""

    def run(args: argparse.Namespace, io: Output) -> int:
        func: Callable[[argparse.Namespace, Output], int] = getattr(
            importlib.import_module(f"localai_provision.cli.{module}"), name
        )
        return func(args, io)

    run.__name__ = name
    return run


class _Parser(argparse.ArgumentParser):
    """argparse, with its usage errors exiting EXIT_USAGE (subcommands' parsers too: they
    are made of the parent's class)."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


Subcommands: TypeAlias = "argparse._SubParsersAction[_Parser]"


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="localai",
        description="Declarative provisioning of MLX Omni Server across a fleet of Macs.",
    )
    parser.add_argument("--version", action="version", version=f"localai {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    _add_site_commands(sub)
    _add_apply(sub)
    _add_host_commands(sub)
    add_ops_commands(sub, _command, _add_limit, _add_forks, _add_json)
    return parser


def _add_site_commands(sub: Subcommands) -> None:
    """validate, hosts, plan and drift."""
    p = sub.add_parser("validate", help="check site files; exit 0 valid, 1 invalid")
    p.add_argument("files", nargs="+", metavar="FILE")
    _add_json(p)
    p.set_defaults(func=_command("validate", "cmd_validate"))

    p = sub.add_parser("hosts", help="show each host's settings after merging")
    p.add_argument("file", metavar="FILE")
    _add_limit(p)
    _add_json(p)
    p.set_defaults(func=_command("validate", "cmd_hosts"))

    p = sub.add_parser("plan", help="show what apply would change; exit 0 none, 2 changes, 1 error")
    _add_site(p)
    _add_limit(p)
    _add_forks(p)
    _add_json(p)
    p.set_defaults(func=_command("plan", "cmd_plan"))

    p = sub.add_parser(
        "drift", help="which hosts differ from the site; exit 0 in sync, 2 drift, 1 error"
    )
    _add_site(p)
    _add_limit(p)
    _add_forks(p)
    _add_json(p)
    p.add_argument("--junit", metavar="FILE", help="also write a JUnit XML report, a case per host")
    p.set_defaults(func=_command("plan", "cmd_drift"))


def _add_apply(sub: Subcommands) -> None:
    p = sub.add_parser("apply", help="make every host match the site; exit 0 converged, 1 failed")
    _add_site(p)
    _add_limit(p)
    _add_forks(p)
    _add_json(p)
    p.add_argument("--dry-run", action="store_true", help="only show the plan (same as `plan`)")
    p.add_argument(
        "--max-fail",
        type=int,
        metavar="N",
        help="start no new host after N failed (0: none may fail, the first failure stops)",
    )
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
    p.add_argument(
        "--retry-failed",
        action="store_true",
        help="build again a generation that failed and was rolled back (same site)",
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
    p.set_defaults(func=_command("apply", "cmd_apply"))


def _add_host_commands(sub: Subcommands) -> None:
    """lock, status, doctor, root-helper and stop (in the order `--help` lists them)."""
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
    _add_json(p)
    p.set_defaults(func=_command("lock", "cmd_lock"))

    for name, help_text, func in (
        ("status", "what runs on each host, live", _command("status", "cmd_status")),
        (
            "doctor",
            "what would block or degrade an apply on each host, with the fix",
            _command("status", "cmd_doctor"),
        ),
    ):
        p = sub.add_parser(name, help=help_text)
        p.add_argument("file", metavar="FILE")
        _add_limit(p)
        _add_forks(p)
        _add_json(p)
        p.set_defaults(func=func)
    sub.choices["status"].add_argument(
        "--html",
        metavar="OUT.html",
        help="also write the fleet as one self-contained page (state, drift, versions, "
        "models, latency, memory), for a browser or a phone",
    )

    p = sub.add_parser(
        "root-helper",
        help="print the root helper's installer for a Mac (run it there with sudo sh)",
    )
    p.add_argument("file", metavar="FILE")
    p.add_argument("--host", required=True, help="the host (its `user` is granted)")
    p.set_defaults(func=_command("lock", "cmd_root_helper"))

    p = sub.add_parser("generations", help="each host's package-set generations")
    p.add_argument("file", metavar="FILE")
    _add_limit(p)
    _add_forks(p)
    _add_json(p)
    p.set_defaults(func=_command("generations", "cmd_generations"))

    p = sub.add_parser(
        "rollback", help="switch hosts back to their previous generation (verified, prewarmed)"
    )
    p.add_argument("file", metavar="FILE")
    _add_limit(p)
    _add_forks(p)
    _add_json(p)
    p.add_argument(
        "--lock-wait",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="how long to wait for an apply on the same host (default 10)",
    )
    p.set_defaults(func=_command("generations", "cmd_rollback"))

    _add_bench(sub)

    p = sub.add_parser("stop", help="stop the server on each host; apply starts it again")
    p.add_argument("file", metavar="FILE")
    _add_limit(p)
    _add_forks(p)
    _add_json(p)
    p.set_defaults(func=_command("status", "cmd_stop"))


def _add_bench(sub: Subcommands) -> None:
    p = sub.add_parser(
        "bench",
        help="each host's prompt and generation tokens/s, first-token latency and memory, "
        "through its server's API; exit 0 all measured, 1 a host failed",
    )
    p.add_argument("file", metavar="FILE")
    _add_limit(p)
    _add_forks(p)
    p.add_argument(
        "--model",
        metavar="ID",
        help="the model to measure (default: the host's first prewarmed model, else its first)",
    )
    _add_json(p)
    p.set_defaults(func=_command("bench", "cmd_bench"))


def _add_json(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print the result as JSON")


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
