"""`localai bench FILE`: per host, what its server delivers (tokens/s, first token, memory),
next to what the last apply recorded, so that a host that got slower is seen."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from localai_provision.benchresults import BenchRecord, BenchReport
from localai_provision.cli.exits import EXIT_ERROR, EXIT_OK
from localai_provision.cli.render import Output, print_errors, print_warnings, table
from localai_provision.cli.status import details_json
from localai_provision.fleet import HostResult
from localai_provision.site import load_site, select_hosts

HEADER = (
    "HOST",
    "MODEL",
    "PROMPT TOK/S",
    "GEN TOK/S",
    "FIRST TOKEN",
    "MEMORY",
    "LAST RECORDED",
)


def _tps(value: float | None) -> str:
    return "-" if value is None else f"{value:,.1f}"


def memory_text(record: BenchRecord) -> str:
    """Resident (and peak) memory, MiB: `812 MiB (peak 901)`."""
    memory = record.memory
    if memory is None or memory.rss_kb is None:
        return "-"
    text = f"{memory.rss_kb / 1024:,.0f} MiB"
    if memory.peak_kb is not None:
        text += f" (peak {memory.peak_kb / 1024:,.0f})"
    return text


def was_text(previous: BenchRecord | None) -> str:
    """`was 41.2 tok/s (generation abc123, 2026-12-01)`, from the last apply's record."""
    if previous is None:
        return "-"
    day = previous.measured_at[:10] or "?"
    return (
        f"was {_tps(previous.figures.gen_tps)} tok/s "
        f"(generation {previous.generation or '-'}, {day})"
    )


def bench_row(r: HostResult) -> tuple[str, ...]:
    d = r.details
    if r.failed or not isinstance(d, BenchReport):
        return (r.name, str(r.status), "-", "-", "-", "-", "-")
    f = d.current.figures
    return (
        r.name,
        d.current.model,
        _tps(f.prompt_tps),
        _tps(f.gen_tps),
        f"{f.first_token_ms:,.0f} ms",
        memory_text(d.current),
        was_text(d.previous),
    )


def notes(results: Sequence[HostResult]) -> list[str]:
    """What the table cannot say: counted chunks instead of the server's usage."""
    lines = []
    for r in results:
        d = r.details
        if isinstance(d, BenchReport) and d.current.figures.tokens_from == "chunks":
            lines.append(
                f"note: {r.name}: the server reported no token usage; tokens were counted "
                "as stream chunks"
            )
    return lines


def print_bench(io: Output, results: Sequence[HostResult]) -> None:
    table(io, [HEADER, *(bench_row(r) for r in results)])
    for line in notes(results):
        io.line(line)
    print_warnings(io, results)
    print_errors(io, results)


def cmd_bench(args: argparse.Namespace, io: Output) -> int:
    site = load_site(args.file)
    from localai_provision.bench import bench_hosts

    results = bench_hosts(select_hosts(site, args.limit), model=args.model, forks=args.forks)
    if args.json:
        details_json(io, results)
    else:
        print_bench(io, results)
    return EXIT_ERROR if any(r.failed for r in results) else EXIT_OK
