"""The models' sizes as the controller has them, before anything is sent: what the memory
check of `plan` weighs (plan/memory.py). A stat per file, no hashing: a no-op plan stays
cheap."""

from __future__ import annotations

import os
from pathlib import Path

from localai_provision import tinymodel
from localai_provision.site.model import HUB_PREFIX, HostSpec, ModelSpec, cache_dir_name


def source_bytes(model: ModelSpec) -> int | None:
    """The size of a model's files as the controller has them, before anything is sent (no
    hashing: a stat per file), or None when it cannot tell (no `source`, a hub model not in
    this machine's cache yet, a folder that is not there: copying it says why)."""
    if not model.source:
        return None
    if model.source.startswith(HUB_PREFIX):
        return _hub_cache_bytes(model.source.removeprefix(HUB_PREFIX), model.revision)
    try:
        folder = (
            tinymodel.materialize(model.source)
            if model.source.startswith(tinymodel.BUILTIN_PREFIX)
            else Path(model.source)
        )
        return sum(
            path.stat().st_size
            for path in folder.rglob("*")
            if path.is_file() and not any(p.startswith(".") for p in path.relative_to(folder).parts)
        )
    except (OSError, ValueError):
        return None


def _hub_cache_bytes(repo_id: str, revision: str) -> int | None:
    """A hub model's size in the controller's own cache (huggingface_hub's layout), if there."""
    home = Path(os.environ.get("HF_HOME") or Path.home() / ".cache" / "huggingface")
    base = Path(os.environ.get("HF_HUB_CACHE") or home / "hub") / cache_dir_name(repo_id)
    try:
        commit = (base / "refs" / revision).read_text().strip()
    except OSError:
        commit = revision
    snapshot = base / "snapshots" / commit
    if not snapshot.is_dir():
        return None
    try:
        return sum(p.stat().st_size for p in snapshot.rglob("*") if p.is_file())
    except OSError:
        return None


def source_sizes(spec: HostSpec) -> dict[str, int]:
    """Model id -> size, for the host's models whose size the controller knows."""
    sizes = {m.id: source_bytes(m) for m in spec.models}
    return {name: size for name, size in sizes.items() if size is not None}
