"""What every command prints through: the escaping of host text, the output streams, tables,
warnings and the small words (counts, durations)."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from localai_provision.fleet import HostResult

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

    def json(self, data: object) -> None:
        json.dump(data, self.out, indent=2, sort_keys=False, default=str)
        self.out.write("\n")


def count(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def indent(text: str, by: str = "  ") -> str:
    return "\n".join(by + line for line in text.splitlines())


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


def table_lines(rows: Sequence[tuple[str, ...]]) -> list[str]:
    """Columns padded to their widest cell; every cell one line (they hold host text: a
    pull report's time, a model's name)."""
    cells = [tuple(clean(cell, one_line=True) for cell in row) for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(cells[0]))]
    return [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in cells
    ]


def table(io: Output, rows: Sequence[tuple[str, ...]]) -> None:
    for line in table_lines(rows):
        io.line(line)


def warning_lines(results: Sequence[HostResult]) -> list[str]:
    """Each warning once, with the hosts it concerns (a lab of 30 hosts says it once)."""
    hosts_by_warning: dict[str, list[str]] = {}
    for r in results:
        for warning in r.warnings:
            hosts_by_warning.setdefault(warning, []).append(r.name)
    lines = []
    for warning, names in hosts_by_warning.items():
        who = names[0] if len(names) == 1 else f"{len(names)} hosts ({short_list(names)})"
        lines.append(clean(f"warning: {who}: {warning}", one_line=True))
    return lines


def print_warnings(io: Output, results: Sequence[HostResult]) -> None:
    for line in warning_lines(results):
        io.line(line)


def print_errors(io: Output, results: Sequence[HostResult]) -> None:
    """Each host's error in full (host, step, command, output tail, hint), after the table."""
    for r in results:
        if r.error:
            io.line()
            io.line(str(r.error))


def short_list(names: list[str], most: int = 5) -> str:
    shown = ", ".join(names[:most])
    return shown + (", ..." if len(names) > most else "")
