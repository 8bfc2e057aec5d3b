"""The host's model cache beyond the models the site declares, as its facts describe it:
whether the tool made the cache (its marker), the folders of models the site does not
declare, and with `models_prune` each declared model's snapshots and blobs. Typed here,
parsed from the facts script's raw output (pure)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

MODEL_DIR_PREFIX = "models--"


def model_id(folder: str) -> str:
    """`models--org--name` -> `org/name` (huggingface_hub's folder name for a model repo)."""
    return folder.removeprefix(MODEL_DIR_PREFIX).replace("--", "/", 1)


@dataclass(frozen=True)
class CachedModel:
    folder: str  # models--ORG--NAME
    size_bytes: int
    link: bool = False  # the folder is a symbolic link (never removed: it is not ours)

    @property
    def id(self) -> str:
        return model_id(self.folder)


@dataclass(frozen=True)
class ModelFiles:
    """A declared model's snapshots (commit -> the blobs its files link to) and blobs."""

    snapshots: dict[str, tuple[str, ...]] = field(default_factory=dict)
    blobs: dict[str, int] = field(default_factory=dict)  # name -> size

    def stale(self, keep: str | None) -> tuple[tuple[str, ...], dict[str, int]]:
        """The snapshots other than ``keep`` and the blobs ``keep`` does not use (a blob
        still arriving, NAME.incomplete, is never stale)."""
        if keep is None or keep not in self.snapshots:
            return (), {}
        used = set(self.snapshots[keep])
        snapshots = tuple(sorted(c for c in self.snapshots if c != keep))
        blobs = {
            name: size
            for name, size in self.blobs.items()
            if name not in used and not name.endswith(".incomplete")
        }
        return snapshots, blobs


@dataclass(frozen=True)
class CacheFacts:
    exists: bool = False  # HF_HOME/hub is there
    owned: bool = False  # ... and carries the tool's marker: only then is anything removed
    undeclared: tuple[CachedModel, ...] = ()
    leftovers: tuple[str, ...] = ()  # models a cut-short removal left renamed
    declared: dict[str, ModelFiles] = field(default_factory=dict)  # folder -> files


def parse_cache(raw: Any) -> CacheFacts:
    if not isinstance(raw, dict):
        return CacheFacts()
    undeclared = []
    for folder, info in sorted((raw.get("undeclared") or {}).items()):
        info = info if isinstance(info, dict) else {}
        size = info.get("bytes")
        undeclared.append(
            CachedModel(
                folder=str(folder),
                size_bytes=size if isinstance(size, int) else 0,
                link=bool(info.get("link")),
            )
        )
    declared = {}
    for folder, files in (raw.get("declared") or {}).items():
        if not isinstance(files, dict):
            continue
        declared[str(folder)] = ModelFiles(
            snapshots={
                str(c): tuple(str(b) for b in used)
                for c, used in (files.get("snapshots") or {}).items()
                if isinstance(used, list)
            },
            blobs={str(n): s for n, s in (files.get("blobs") or {}).items() if isinstance(s, int)},
        )
    return CacheFacts(
        exists=bool(raw.get("exists")),
        owned=bool(raw.get("owned")),
        undeclared=tuple(undeclared),
        leftovers=tuple(str(n) for n in raw.get("leftovers") or ()),
        declared=declared,
    )
