"""A host's memory as its facts describe it: the total, what is available now, and on a Mac
the GPU's wired-memory limit, the ceiling for MLX's weights. Typed here, parsed from the
facts script's raw text (pure; tested on recorded /proc/meminfo and `vm_stat` output)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

MB = 1024 * 1024
GB = 1024 * MB
# macOS lets the GPU wire about two thirds of the memory up to 36 GB and three quarters
# above when iogpu.wired_limit_mb is 0 (Metal's recommendedMaxWorkingSetSize, as reported
# for M1-M4 Macs in llama.cpp's and MLX's issue trackers; not documented by Apple). INFERRED:
# docs/macos-acceptance.md asks to read it on the first real Mac.
SMALL_MAC_BYTES = 36 * GB
SMALL_MAC_SHARE = (2, 3)
LARGE_MAC_SHARE = (3, 4)


@dataclass(frozen=True)
class MemoryFacts:
    total_bytes: int | None  # hw.memsize on a Mac, MemTotal on Linux
    available_bytes: int | None  # what a new process can have without swapping
    # A Mac's iogpu.wired_limit_mb: 0 is macOS's default share; None: not a Mac, or unread.
    wired_limit_mb: int | None = None

    @property
    def used_bytes(self) -> int | None:
        if self.total_bytes is None or self.available_bytes is None:
            return None
        return max(0, self.total_bytes - self.available_bytes)


def default_wired_bytes(total_bytes: int) -> int:
    """The GPU's share of a Mac's memory when iogpu.wired_limit_mb is 0."""
    num, den = SMALL_MAC_SHARE if total_bytes <= SMALL_MAC_BYTES else LARGE_MAC_SHARE
    return total_bytes * num // den


def parse_meminfo(text: str | None) -> MemoryFacts:
    """/proc/meminfo: `MemTotal:  24683584 kB`; MemAvailable is the kernel's own estimate
    of what can be allocated without swapping (Linux 3.14+)."""
    values: dict[str, int] = {}
    for line in (text or "").splitlines():
        key, _, rest = line.partition(":")
        parts = rest.split()
        if parts and parts[0].isdigit():
            values[key.strip()] = int(parts[0]) * (1024 if parts[1:] == ["kB"] else 1)
    return MemoryFacts(
        total_bytes=values.get("MemTotal"),
        available_bytes=values.get("MemAvailable", values.get("MemFree")),
    )


_PAGE_SIZE = re.compile(r"page size of (\d+) bytes")


def parse_vm_stat(text: str | None, total_bytes: int | None) -> int | None:
    """Available bytes from `vm_stat`: (Pages free + Pages inactive) x the page size, as
    psutil computes a Mac's available memory (vm_stat's "Pages free" already leaves out the
    speculative pages). tests/fixtures/macos/SOURCES.md [e10] has the format."""
    if not text:
        return None
    size = _PAGE_SIZE.search(text)
    pages: dict[str, int] = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        value = value.strip().rstrip(".")
        if value.isdigit():
            pages[key.strip().strip('"')] = int(value)
    if size is None or "Pages free" not in pages:
        return None
    available = (pages["Pages free"] + pages.get("Pages inactive", 0)) * int(size.group(1))
    return min(available, total_bytes) if total_bytes else available


def parse_memory(raw: Any, memsize_bytes: int | None, wired_limit_mb: int | None) -> MemoryFacts:
    """The `memory` section; on a Mac with the total and the wired limit of the `mac`
    section's sysctl."""
    raw = raw if isinstance(raw, dict) else {}
    if "meminfo" in raw:
        return parse_meminfo(raw.get("meminfo"))
    return MemoryFacts(
        total_bytes=memsize_bytes,
        available_bytes=parse_vm_stat(raw.get("vm_stat"), memsize_bytes),
        wired_limit_mb=wired_limit_mb,
    )
