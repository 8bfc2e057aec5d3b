"""The state file: what the last successful apply did, and when (prefix/state.json)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from localai_provision import __version__
from localai_provision.apply.context import ApplyOptions, HostContext, now


def site_hash(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def state_document(host: HostContext, options: ApplyOptions, applied_at: str) -> dict[str, Any]:
    facts = host.facts
    return {
        "applied_at": applied_at,
        "tool_version": __version__,
        "site_hash": options.site_hash,
        "packages": host.spec.packages,
        "models": {m.id: m.commit for m in facts.models},
        "config_hash": facts.server_config.hash if facts.server_config else None,
        "prewarm": host.log.prewarm,
    }


def write_state(host: HostContext, options: ApplyOptions) -> None:
    state = state_document(host, options, now())
    data = (json.dumps(state, indent=2, sort_keys=True) + "\n").encode("utf-8")
    host.connector.put(data, host.layout.state)
