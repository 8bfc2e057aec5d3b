"""Pure parsers of what the facts script reads about the running server beyond its process:
its log (a stat of each file and, when it is down, the tail) and the loaded-models file the
start-up shim writes. No I/O here."""

from __future__ import annotations

import json
import re
from typing import Any

from localai_provision.facts.model import LoadedModels, ServerLogFacts

TAIL_LINES = 10  # of a crashed server's log, what status shows
_ROTATED_RE = re.compile(r"^server\.log\.[1-9][0-9]*$")


def _size(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def parse_server_log(raw: Any) -> ServerLogFacts | None:
    """The facts script's `server_log`: {"path", "sizes": {file name: bytes}, "tail"}."""
    if not isinstance(raw, dict) or not isinstance(raw.get("path"), str):
        return None
    found = raw.get("sizes")
    sizes: dict[str, Any] = found if isinstance(found, dict) else {}
    rotated = [
        s for n, v in sizes.items() if _ROTATED_RE.match(str(n)) and (s := _size(v)) is not None
    ]
    tail = raw.get("tail")
    lines = tail.splitlines() if isinstance(tail, str) else []
    if lines and isinstance(raw.get("tail_from"), int) and raw["tail_from"] > 0:
        lines = lines[1:]  # read from the middle of a line: the first one is cut
    return ServerLogFacts(
        path=raw["path"],
        size_bytes=_size(sizes.get("server.log")),
        rotated_files=len(rotated),
        rotated_bytes=sum(rotated),
        tail=tuple(line for line in lines if line.strip())[-TAIL_LINES:],
    )


def _model_ids(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list):
        return ()
    return tuple(sorted({v for v in value if isinstance(v, str) and v}))


def parse_loaded_models(text: str | None) -> LoadedModels | None:
    """PREFIX/state/loaded-models.json: {"pid", "updated", "loaded": [...], "loading": [...]}.
    A file that is not that JSON is None: the server cannot say."""
    if not text:
        return None
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("loaded"), list):
        return None
    pid = data.get("pid")
    updated = data.get("updated")
    return LoadedModels(
        pid=pid if isinstance(pid, int) and not isinstance(pid, bool) and pid > 0 else None,
        loaded=_model_ids(data.get("loaded")),
        loading=_model_ids(data.get("loading")),
        updated=float(updated) if isinstance(updated, (int, float)) else None,
    )
