"""Writing a file the user named (a status page, a metrics textfile): whole or not at all."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from localai_provision.errors import UsageError


def write_atomically(path: str | os.PathLike[str], text: str, what: str) -> None:
    """``text`` into ``path`` through a temporary file beside it and a rename, so a reader
    (a browser, node_exporter's textfile collector) sees the old file or the new one, never
    half of one. The temporary name does not end in .prom or .html: a collector that globs
    *.prom skips it."""
    target = Path(path)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(target)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise UsageError(
            f"cannot write the {what} {str(target)!r}: {exc.strerror or exc}; "
            "give a path in a folder that exists and that you may write to"
        ) from None
