"""The model cache as the site's own: marked when the tool makes it, and with `models_prune`
rid of what the site does not declare (scripts/prune_models.py does the removing, on the
host, after checking the mark and what the server is loading).

Commands come from pure functions (tested with tables); the steps run them.
"""

from __future__ import annotations

import json
import posixpath
from typing import Any

from localai_provision import scripts, shell
from localai_provision.apply.context import HostContext
from localai_provision.layout import CACHE_MARKER, REMOVING_PREFIX
from localai_provision.plan.change import Action, Change, Kind
from localai_provision.site.model import cache_dir_name

# Exit status of prune_models.py for a cache without the tool's marker.
NOT_OURS = 3


def hub_of(hf_home: str) -> str:
    return posixpath.join(hf_home, "hub")


def mark_new_cache_command(hf_home: str) -> str:
    """Make HF_HOME/hub with the tool's marker, only if there is no hub yet: a cache the
    tool makes is the site's, one that was there before is not (it may be another
    program's). `mkdir` without -p on the hub itself: of two racing makers, one marks."""
    hub = shell.quote(hub_of(hf_home))
    parent = shell.quote(hf_home)
    marker = shell.quote(posixpath.join(hub_of(hf_home), CACHE_MARKER))
    return f"mkdir -p {parent} && if mkdir {hub} 2>/dev/null; then : > {marker}; fi"


def prune_argv(
    python: str, hf_home: str, changes: list[Change], revisions: dict[str, str], loaded: str | None
) -> list[str]:
    """prune_models.py with what the plan removes: whole models (MODEL REMOVE), and stale
    files of declared models or a cut-short removal's leftovers (MODEL_FILES REMOVE)."""
    remove, clean, leftovers = [], [], []
    for change in changes:
        if change.action != Action.REMOVE:
            continue
        if change.kind == Kind.MODEL:
            remove.append(cache_dir_name(change.name))
        elif change.name.startswith(REMOVING_PREFIX):
            leftovers.append(change.name)
        elif change.kind == Kind.MODEL_FILES:
            revision = revisions.get(change.name, "main")
            clean.append({"dir": cache_dir_name(change.name), "revision": revision})
    config = {
        "hub": hub_of(hf_home),
        "marker": CACHE_MARKER,
        "removing": REMOVING_PREFIX,
        "remove": remove,
        "clean": clean,
        "leftovers": leftovers,
        "loaded_file": loaded,
    }
    return [python, "-I", "-S", "-c", scripts.load("prune_models"), json.dumps(config)]


def mark_new_cache(host: HostContext) -> None:
    """Before the first model goes into a host with no cache: the cache is the site's."""
    if host.facts.cache.exists:
        return
    host.run_step(
        "models",
        ["sh", "-c", mark_new_cache_command(host.facts.hf_home)],
        "could not make the cache",
    )


def prune_models(host: HostContext, changes: list[Change], loaded: str | None) -> dict[str, Any]:
    revisions = {m.id: m.revision for m in host.spec.models}
    argv = prune_argv(host.facts.python.executable, host.facts.hf_home, changes, revisions, loaded)
    output = host.run_step("models", argv, "could not remove models from the cache", timeout=600)
    try:
        result = json.loads(output.strip().splitlines()[-1])
    except (ValueError, IndexError):
        result = {}
    return result if isinstance(result, dict) else {}
