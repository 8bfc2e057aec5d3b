"""The state file: what the last successful apply did, and when (prefix/state.json)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from localai_provision import __version__
from localai_provision.apply.context import ApplyOptions, HostContext, now
from localai_provision.benchresults import BenchRecord


def site_hash(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def state_document(
    host: HostContext, options: ApplyOptions, applied_at: str, bench: BenchRecord | None = None
) -> dict[str, Any]:
    facts = host.facts
    return {
        "applied_at": applied_at,
        "tool_version": __version__,
        "site_hash": options.site_hash,
        "packages": host.spec.packages,
        "models": {m.id: m.commit for m in facts.models},
        "config_hash": facts.server_config.hash if facts.server_config else None,
        "prewarm": host.log.prewarm,
        **bench_entries(facts.state or {}, bench),
    }


def bench_entries(old: dict[str, Any], bench: BenchRecord | None) -> dict[str, Any]:
    """`verify.bench`'s figures (apply/benchstep.py): the new ones, with those they replace
    as `bench_previous`; an apply that measured nothing keeps what the file held."""
    if bench is None:
        return {k: old[k] for k in ("bench", "bench_previous") if k in old}
    entries: dict[str, Any] = {"bench": bench.as_json()}
    if isinstance(old.get("bench"), dict):
        entries["bench_previous"] = old["bench"]
    return entries


def write_state(host: HostContext, options: ApplyOptions, bench: BenchRecord | None = None) -> None:
    state = state_document(host, options, now(), bench)
    data = (json.dumps(state, indent=2, sort_keys=True) + "\n").encode("utf-8")
    host.connector.put(data, host.layout.state)
