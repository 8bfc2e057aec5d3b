"""Memory fit: do the models a host loads at start fit its memory? A pure check, from the
site, the host's memory facts and the models' sizes (the controller's, before anything is
sent, or the host's cache).

Each server worker is a process of its own that loads every prewarmed model, so the need is
their size times `server.workers`, plus `memory.headroom_mb` for the KV cache and
activations. The ceiling is the GPU's wired-memory limit on a Mac (MLX's weights live in
wired memory: past it the load fails or the kernel kills the server, mlx-omni-server #75),
the memory on Linux.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from localai_provision.facts.memory import MB, default_wired_bytes
from localai_provision.facts.model import Facts
from localai_provision.plan.change import Action, Change, Kind
from localai_provision.site.model import HostSpec


def size_text(size: int) -> str:
    """Bytes for people: "512 MB", "14.2 GB"."""
    if size < 1024 * MB:
        return f"{size / MB:.0f} MB" if size >= MB else f"{size / 1024:.0f} KB"
    return f"{size / (1024 * MB):.1f} GB"


@dataclass(frozen=True)
class Ceiling:
    bytes: int
    what: str  # in words: "this Mac's GPU wired-memory limit (iogpu.wired_limit_mb 0: ...)"


def ceiling(spec: HostSpec, facts: Facts) -> Ceiling | None:
    """The most the host's models may take, or None when its memory is not known."""
    memory = facts.memory
    total = memory.total_bytes
    if total is None:
        return None
    if facts.system.os != "macos":
        return Ceiling(total, f"this host's memory ({size_text(total)})")
    wanted = spec.macos.gpu_wired_limit_mb
    limit = wanted if wanted is not None else memory.wired_limit_mb
    if limit:  # the site's (apply sets it first) or the Mac's own setting
        whose = "the site's" if wanted is not None else "this Mac's"
        return Ceiling(limit * MB, f"{whose} GPU wired-memory limit ({limit} MB)")
    share = default_wired_bytes(total)
    return Ceiling(
        share,
        f"macOS's default GPU share of this Mac's {size_text(total)} "
        f"(about {size_text(share)}; iogpu.wired_limit_mb is 0)",
    )


def model_size(spec_id: str, sizes: Mapping[str, int], facts: Facts) -> int | None:
    """A model's size: the controller's (what will be sent), else the host's complete copy."""
    if spec_id in sizes:
        return sizes[spec_id]
    found = next((m for m in facts.models if m.id == spec_id and m.complete), None)
    return found.size_bytes if found else None


def memory_changes(spec: HostSpec, facts: Facts, sizes: Mapping[str, int]) -> list[Change]:
    """FAIL the host, before anything moves, when its prewarmed models do not fit."""
    top = ceiling(spec, facts)
    prewarmed = [m.id for m in spec.models if m.prewarm]
    if top is None or not prewarmed:
        return []
    known = {m: s for m in prewarmed if (s := model_size(m, sizes, facts)) is not None}
    workers = spec.server.workers
    headroom = spec.memory.headroom_mb * MB
    need = sum(known.values()) * workers + headroom
    if need <= top.bytes:
        return []
    models = ", ".join(f"{m} {size_text(s)}" for m, s in known.items())
    times = f" x {workers} workers" if workers > 1 else ""
    unknown = [m for m in prewarmed if m not in known]
    return [
        Change(
            spec.name,
            Kind.MEMORY,
            "",
            Action.FAIL,
            size_text(top.bytes),
            size_text(need),
            f"the prewarmed models do not fit: {models}{times} + "
            f"{spec.memory.headroom_mb} MB headroom = {size_text(need)}, "
            f"{size_text(need - top.bytes)} more than {top.what}"
            + (f" (and the size of {', '.join(unknown)} is not known yet)" if unknown else "")
            + "; prewarm fewer models (`prewarm: false`), use smaller ones (a lower "
            "quantization), lower `server.workers` or `memory.headroom_mb`"
            + (", or raise `macos.gpu_wired_limit_mb`" if facts.system.os == "macos" else ""),
        )
    ]
