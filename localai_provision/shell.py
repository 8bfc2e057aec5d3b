"""Building shell command lines from values that may come from a site file.

Every value that reaches a remote shell goes through ``quote`` or ``join`` here, so there is
one place to audit for injection (issue: hostile input). Paths that start with `~/` are
expanded by the remote shell through "$HOME", never by the controller.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence


def quote(value: str) -> str:
    """One literal shell word, whatever the value holds (quotes, newlines, `;`, a leading -)."""
    return shlex.quote(value)


def join(argv: Sequence[str]) -> str:
    return " ".join(quote(a) for a in argv)


def path_word(path: str) -> str:
    """A path as a shell word, with a leading `~/` expanded on the host rather than here."""
    if path == "~":
        return '"$HOME"'
    if path.startswith("~/"):
        return '"$HOME"/' + quote(path[2:])
    return quote(path)
