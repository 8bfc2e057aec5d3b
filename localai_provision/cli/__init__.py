"""The command line: the only package that prints or exits.

Everything else is a library returning results or raising LocalAIError. Each command imports
what only it needs (apply, status, doctor) when it runs: `drift` on 100 hosts should not pay
for them. Here results become a human table or `--json`, and exit codes, which are an API:
  validate  0 valid / 1 invalid
  plan, drift  0 nothing to do / 2 changes or drift / 1 error
  apply  0 converged / 1 a host failed
  doctor  0 every host ready / 1 a host blocked or unreachable
  any command  64 a usage error (an unknown option, a missing argument: EX_USAGE)

The rooms: main (run a command, errors to exit codes), parser (the grammar), exits (the
codes), render (escaping every host text with `clean`, tables, warnings), hostjson (the one
per-host JSON object), progress, junit, sites (which hosts), pullreport (pull mode's report),
and one module per command group: validate (validate, hosts), plan (plan, drift), apply,
status (status, stop, doctor), lock (lock, root-helper).
"""

from __future__ import annotations

from localai_provision.cli.exits import (
    EXIT_CHANGES,
    EXIT_ERROR,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_TERMINATED,
    EXIT_USAGE,
)
from localai_provision.cli.main import Terminated, entry_point, main
from localai_provision.cli.parser import build_parser
from localai_provision.cli.render import Output, clean

__all__ = [
    "EXIT_CHANGES",
    "EXIT_ERROR",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_TERMINATED",
    "EXIT_USAGE",
    "Output",
    "Terminated",
    "build_parser",
    "clean",
    "entry_point",
    "main",
]
