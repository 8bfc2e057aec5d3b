"""The validated-site cache: a site file checked once is not checked again while neither it
nor the tool changes.

What a check costs a new process, most of it imports: PyYAML with the position-keeping
reader, jsonschema (0.11 s alone) and the schema's validator, the cross-file rules; 0.3-0.4 s
of the 1.2 s a one-host drift took (issue 19). A drift from cron every minute reads the same
file every time.

What is stored: the file's data as read and checked (plain JSON values), under a digest of
the file's text, the tool's version, the schema and the site package's own source files
(sizes and times: an edited checker never trusts an older verdict). Only a VALID file is ever
stored: an invalid one is checked in full every time, so its errors keep their FILE:LINE:COL.
Each entry carries a digest of its key and data: one changed since it was written is not used.
What is not stored: anything resolved from outside the file (environment values, the
folder it sits in, the user's name): those are resolved afresh on every run.

Where: $XDG_CACHE_HOME/localai-provision/sites (else ~/.cache/...), folder 0700, each entry
0600 and written whole (a temporary file renamed over), at most MAX_ENTRIES of them. An entry
that cannot be read, is not JSON, names another digest or does not resolve is ignored and
the file is checked in full, as if there were no cache.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from localai_provision import __version__
from localai_provision.site.schema_path import schema_path

MAX_ENTRIES = 32
_FORMAT = 1
_SITE_PACKAGE = Path(__file__).resolve().parent


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "localai-provision" / "sites"


def _code_stamp() -> str:
    """The schema's bytes, and each checker source's size and time."""
    parts = [__version__, str(_FORMAT), hashlib.sha256(schema_path().read_bytes()).hexdigest()]
    for source in sorted(_SITE_PACKAGE.glob("*.py")):
        st = source.stat()
        parts.append(f"{source.name}:{st.st_size}:{st.st_mtime_ns}")
    return "\n".join(parts)


def key_of(text: str) -> str:
    digest = hashlib.sha256(_code_stamp().encode())
    digest.update(b"\0")
    digest.update(text.encode("utf-8", "surrogatepass"))
    return digest.hexdigest()


def lookup(key: str) -> dict[str, Any] | None:
    """The checked data stored under ``key``, or None (none, or not to be trusted)."""
    try:
        with open(cache_dir() / f"{key}.json", encoding="utf-8") as f:
            entry = json.load(f)
    except (OSError, ValueError):
        return None
    if not isinstance(entry, dict) or entry.get("key") != key:
        return None
    data = entry.get("data")
    if not isinstance(data, dict) or entry.get("digest") != _digest(key, data):
        return None  # changed since it was written (by hand, a disk, another version)
    return data


def _digest(key: str, data: Any) -> str:
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(f"{key}\0{text}".encode("utf-8", "surrogatepass")).hexdigest()


def store(key: str, data: Any) -> None:
    """Keep ``data`` (a valid file's) under ``key``; never an error: the cache only saves
    time. Data that JSON would not give back equal (a date, a key that is not a string) is
    not stored."""
    try:
        entry = {"key": key, "digest": _digest(key, data), "data": data}
        text = json.dumps(entry, ensure_ascii=False, allow_nan=False)
        if json.loads(text)["data"] != data:
            return
    except (TypeError, ValueError):
        return
    folder = cache_dir()
    with contextlib.suppress(OSError):
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=".json")  # 0600
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(text)
            os.replace(tmp, folder / f"{key}.json")
        except OSError:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        _prune(folder)


def _prune(folder: Path) -> None:
    entries = sorted(folder.glob("*.json"), key=lambda p: p.stat().st_mtime_ns)
    for old in entries[:-MAX_ENTRIES]:
        with contextlib.suppress(OSError):
            old.unlink()
