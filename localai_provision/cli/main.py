"""Running a command: parse, dispatch, and turn every error into a message and an exit code."""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import traceback
from collections.abc import Callable, Sequence

from localai_provision.cli.exits import (
    EXIT_ERROR,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_TERMINATED,
    EXIT_USAGE,
)
from localai_provision.cli.parser import build_parser
from localai_provision.cli.render import Output
from localai_provision.errors import LocalAIError, Problem, SiteError, UsageError

Command = Callable[[argparse.Namespace, Output], int]


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
        return _interrupted(io, isinstance(exc, Terminated))
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


def _interrupted(io: Output, terminated: bool) -> int:
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


def _report_site_error(problems: list[Problem], args: argparse.Namespace, io: Output) -> None:
    if getattr(args, "json", False):
        io.json({"valid": False, "errors": [p.as_dict() for p in problems]})
        return
    for problem in problems:
        io.error(problem.render())


class Terminated(KeyboardInterrupt):
    """SIGTERM (a service manager stopping us, `kill`, a CI timeout): handled as Ctrl-C is,
    the hosts' connections closed and every lock left to be taken over, exit 143."""


def _on_sigterm(signum: int, frame: object) -> None:
    raise Terminated


def entry_point() -> None:
    # Only for the command: a library caller keeps its own SIGTERM handling.
    signal.signal(signal.SIGTERM, _on_sigterm)
    raise SystemExit(main())
