"""A host's generations as its facts describe them: each package set in its own venv under
PREFIX/generations/ID, the `current` and `previous` links, and what each generation's meta
and failure files say. Typed here, parsed from the facts script's raw text (pure)."""

from __future__ import annotations

import json
import posixpath
from dataclasses import dataclass, field
from typing import Any

from localai_provision.layout import LEGACY_VENV


@dataclass(frozen=True)
class GenerationFailure:
    """Why a generation was rolled back (its .localai-failed.json)."""

    failed_at: str
    step: str
    message: str
    # The digest of the host's settings when it failed: the same settings do not retry it.
    settings: str = ""
    log_tail: str = ""


@dataclass(frozen=True)
class Generation:
    name: str  # the package set's digest, or "venv" for the single venv of older versions
    owned: bool  # the tool made it (its marker): only then may it delete it
    complete: bool  # its venv was built to the end
    ready: bool  # packages and shim in: its meta file is there
    created: str = ""
    python: str = ""
    packages: dict[str, str] = field(default_factory=dict)
    size_kb: int | None = None
    shims: dict[str, str] = field(default_factory=dict)  # the start-up shim's files, digests
    failure: GenerationFailure | None = None
    mtime: int = 0

    @property
    def legacy(self) -> bool:
        return self.name == LEGACY_VENV


@dataclass(frozen=True)
class GenerationsFacts:
    current: str | None = None  # the generation the `current` link names (or "venv")
    previous: str | None = None
    items: tuple[Generation, ...] = ()

    def get(self, name: str | None) -> Generation | None:
        return next((g for g in self.items if g.name == name), None)

    @property
    def serving(self) -> Generation | None:
        return self.get(self.current)


def _link_name(target: Any) -> str | None:
    if not isinstance(target, str) or not target:
        return None
    return posixpath.basename(target.rstrip("/")) or None


def _json_dict(text: Any) -> dict[str, Any]:
    if not isinstance(text, str):
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


def _str_dict(value: Any) -> dict[str, str]:
    return {str(k): str(v) for k, v in value.items()} if isinstance(value, dict) else {}


def parse_failure(text: Any) -> GenerationFailure | None:
    if not isinstance(text, str):
        return None
    data = _json_dict(text)
    return GenerationFailure(
        failed_at=str(data.get("failed_at", "")),
        step=str(data.get("step", "")),
        message=str(data.get("message", "")) or "failed (its failure file is unreadable)",
        settings=str(data.get("settings", "")),
        log_tail=str(data.get("log_tail", "")),
    )


def parse_generation(raw: dict[str, Any]) -> Generation:
    meta = _json_dict(raw.get("meta"))
    packages = meta.get("packages")
    size = meta.get("size_kb")
    return Generation(
        name=str(raw.get("name", "")),
        owned=bool(raw.get("owned")),
        complete=bool(raw.get("complete")),
        ready=bool(meta),
        created=str(meta.get("created", "")),
        python=str(meta.get("python", "")),
        packages=_str_dict(packages),
        size_kb=size if isinstance(size, int) else None,
        shims=_str_dict(meta.get("shims")),
        failure=parse_failure(raw.get("failed")),
        mtime=int(raw.get("mtime") or 0),
    )


def parse_generations(raw: Any, legacy_venv_usable: bool) -> GenerationsFacts:
    """``legacy_venv_usable``: the facts found a usable venv at PREFIX/venv. With no
    `current` link, that venv (of a version before generations) is what serves."""
    if not isinstance(raw, dict):
        raw = {}
    items = tuple(parse_generation(i) for i in raw.get("items") or [] if isinstance(i, dict))
    current = _link_name(raw.get("current"))
    if current is None and legacy_venv_usable:
        current = LEGACY_VENV
    return GenerationsFacts(current=current, previous=_link_name(raw.get("previous")), items=items)
