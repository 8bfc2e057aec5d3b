"""A read site document: plain data, and where each of its paths was in the file.

Apart from yamlread.py (which imports PyYAML): a site read back from the validated-site
cache (cache.py) is a Document too, without positions, and needs no YAML parser at all.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from localai_provision.errors import Problem

Path = tuple[str | int, ...]

MAX_FILE_BYTES = 8 * 1024 * 1024


@dataclass(frozen=True)
class Mark:
    line: int  # 1-based
    column: int  # 1-based


@dataclass
class Document:
    """A parsed YAML document: plain data plus the position of each path."""

    file: str
    data: Any
    value_marks: dict[Path, Mark] = field(default_factory=dict)
    key_marks: dict[Path, Mark] = field(default_factory=dict)

    def mark_of(self, path: Path, *, key: bool = False) -> Mark:
        """Position of the value at ``path`` (or its key), else of the nearest ancestor."""
        marks = self.key_marks if key else self.value_marks
        probe = tuple(path)
        while probe:
            if probe in marks:
                return marks[probe]
            if not key and probe in self.key_marks:
                return self.key_marks[probe]
            probe = probe[:-1]
        return self.value_marks.get((), Mark(1, 1))

    def problem(self, path: Path, message: str, *, key: bool = False) -> Problem:
        mark = self.mark_of(path, key=key)
        return Problem(self.file, mark.line, mark.column, message, dotted(path))


def dotted(path: Path) -> str:
    return ".".join(f"[{p}]" if isinstance(p, int) else str(p) for p in path).replace(".[", "[")
