"""Load a site file: read, validate against the schema, check what the schema cannot, merge.

``load_site`` either returns a Site whose every host is fully resolved, or raises one SiteError
holding every problem found (not just the first), each with file, line and column. A file
found valid before (the same text, the same tool: cache.py) is only resolved: the YAML
reader, jsonschema and the checks are imported only when a file has to be checked.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from localai_provision.errors import Problem, SiteError, UnreadableFile
from localai_provision.files import read_small_regular_file
from localai_provision.site import cache
from localai_provision.site.document import MAX_FILE_BYTES, Document
from localai_provision.site.model import Site
from localai_provision.site.resolve import resolve


def read_site_text(path: Path) -> str:
    # Kind and size first: /dev/zero, a FIFO or a file of gigabytes is refused before a byte
    # of it is read (reading /dev/zero whole ended in MemoryError).
    try:
        raw = read_small_regular_file(path, MAX_FILE_BYTES, "site file")
    except UnreadableFile as exc:
        raise SiteError([Problem(str(path), 1, 1, f"{exc.reason}; {exc.hint}")]) from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        # Point at the offending byte: count lines up to it.
        before = raw[: exc.start]
        line = before.count(b"\n") + 1
        col = exc.start - (before.rfind(b"\n") + 1) + 1
        raise SiteError(
            [Problem(str(path), line, col, "the file is not valid UTF-8; save it as UTF-8")]
        ) from None


def load_site(path: str | Path) -> Site:
    path = Path(path)
    text = read_site_text(path)
    base_dir = path.resolve().parent
    key = cache.key_of(text)
    data = cache.lookup(key)
    if data is not None:
        try:
            return resolve(Document(str(path), data), base_dir)
        except Exception:  # noqa: BLE001 - an entry that does not resolve is not trusted
            pass  # the full check below says what is wrong, with its position
    site, checked = _parse(text, str(path), base_dir)
    cache.store(key, checked)
    return site


def parse_site(text: str, file: str, base_dir: Path | None = None) -> Site:
    return _parse(text, file, base_dir)[0]


def _parse(text: str, file: str, base_dir: Path | None) -> tuple[Site, Any]:
    """The site, and its data as checked (before resolving), for the cache."""
    from localai_provision.site.checks import control_characters, cross_checks
    from localai_provision.site.schema import problems_from_schema
    from localai_provision.site.yamlread import read_yaml

    doc, reading_problems = read_yaml(text, file)
    if doc.data is None and reading_problems:
        raise SiteError(reading_problems)  # nothing was read (syntax error, empty, too big)
    if not isinstance(doc.data, dict):
        raise SiteError(
            [
                *reading_problems,
                doc.problem((), "the top level must be a mapping with `version` and `hosts`"),
            ]
        )
    # `mini-01:` with nothing under it is a host with no settings of its own.
    for section in ("hosts", "groups"):
        entries = doc.data.get(section)
        if isinstance(entries, dict):
            for key, value in entries.items():
                if value is None:
                    entries[key] = {}
    # Repeated keys and refused tags do not stop the schema check: the user gets every
    # mistake at once. A refused value (read as null) would fail the schema at the same spot,
    # so the schema's word on a spot already reported is dropped.
    reading_problems += control_characters(doc, doc.data, ())
    reported = {(p.line, p.column) for p in reading_problems}
    problems = reading_problems + [
        p for p in problems_from_schema(doc) if (p.line, p.column) not in reported
    ]
    problems += cross_checks(doc)
    if problems:
        raise SiteError(problems)
    checked = copy.deepcopy(doc.data)  # resolving must not change what is cached
    return resolve(doc, base_dir or Path.cwd()), checked
