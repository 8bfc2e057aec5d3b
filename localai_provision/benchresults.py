"""`localai bench`'s figures, typed, and the pure arithmetic that makes them from the timings
the host's script recorded (scripts/bench.py). No I/O here: tested on recorded timings."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum


class TokenSource(StrEnum):
    """Where the token counts came from."""

    USAGE = "usage"  # the server's `usage` (stream_options.include_usage)
    CHUNKS = "chunks"  # counted stream chunks: a server that reports no usage when streaming


@dataclass(frozen=True)
class RunTimings:
    """One timed request, seconds from sending it, as the host's script recorded it."""

    first_s: float | None  # the first token's chunk arrived (None: no token at all)
    last_s: float | None  # the last token's chunk arrived
    total_s: float  # the stream ended
    chunks: int  # token chunks received
    prompt_tokens: int | None  # the server's usage (None: it gave none)
    cached_tokens: int  # of those, served from its prompt cache
    completion_tokens: int | None

    @classmethod
    def from_script(cls, run: Mapping[str, object]) -> RunTimings:
        usage = run.get("usage")
        usage = usage if isinstance(usage, Mapping) else {}
        details = usage.get("prompt_tokens_details")
        cached = details.get("cached_tokens") if isinstance(details, Mapping) else None
        return cls(
            first_s=_float_or_none(run.get("first_s")),
            last_s=_float_or_none(run.get("last_s")),
            total_s=_float_or_none(run.get("total_s")) or 0.0,
            chunks=_int_or_none(run.get("chunks")) or 0,
            prompt_tokens=_int_or_none(usage.get("prompt_tokens")),
            cached_tokens=_int_or_none(cached) or 0,
            completion_tokens=_int_or_none(usage.get("completion_tokens")),
        )


@dataclass(frozen=True)
class Figures:
    """What a host delivers: the median over the runs of each figure."""

    prompt_tokens: int | None  # processed, i.e. not served from the prompt cache
    completion_tokens: int
    prompt_tps: float | None  # prompt tokens / time to the first token
    gen_tps: float | None  # tokens after the first / time from the first to the last
    first_token_ms: float
    total_ms: float
    tokens_from: TokenSource

    def as_json(self) -> dict[str, object]:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "prompt_tps": self.prompt_tps,
            "gen_tps": self.gen_tps,
            "first_token_ms": self.first_token_ms,
            "total_ms": self.total_ms,
            "tokens_from": str(self.tokens_from),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> Figures:
        return cls(
            prompt_tokens=_int_or_none(data.get("prompt_tokens")),
            completion_tokens=_int_or_none(data.get("completion_tokens")) or 0,
            prompt_tps=_float_or_none(data.get("prompt_tps")),
            gen_tps=_float_or_none(data.get("gen_tps")),
            first_token_ms=_float_or_none(data.get("first_token_ms")) or 0.0,
            total_ms=_float_or_none(data.get("total_ms")) or 0.0,
            tokens_from=TokenSource(str(data.get("tokens_from", TokenSource.USAGE))),
        )


class NoTokens(ValueError):
    """A run produced no token: nothing to measure."""


def run_figures(run: RunTimings) -> Figures:
    """One run's figures. Prompt tokens/s counts only what the server processed (its prompt
    cache serves a shared prefix), over the time to the first token, which also holds the
    first token's own step and the HTTP round trip on loopback: a lower bound, the figure
    clients feel."""
    if run.first_s is None or run.last_s is None or run.first_s <= 0:
        raise NoTokens("the server streamed no token")
    usage = run.completion_tokens is not None
    completion = run.completion_tokens if run.completion_tokens is not None else run.chunks
    processed = None if run.prompt_tokens is None else run.prompt_tokens - run.cached_tokens
    span = run.last_s - run.first_s
    return Figures(
        prompt_tokens=processed,
        completion_tokens=completion,
        prompt_tps=processed / run.first_s if processed else None,
        gen_tps=(completion - 1) / span if completion >= 2 and span > 0 else None,
        first_token_ms=run.first_s * 1000,
        total_ms=run.total_s * 1000,
        tokens_from=TokenSource.USAGE if usage else TokenSource.CHUNKS,
    )


def median_figures(runs: Sequence[RunTimings]) -> Figures:
    """The median of each figure over the runs (each its own median: one slow run moves
    none of them)."""
    import statistics  # here, not at the top: 5.6 ms of every command's start-up

    each = [run_figures(r) for r in runs]
    if not each:
        raise NoTokens("no run was measured")

    def med(values: Sequence[float | None]) -> float | None:
        known = [v for v in values if v is not None]
        return round(statistics.median(known), 2) if known else None

    prompt = [f.prompt_tokens for f in each if f.prompt_tokens is not None]
    return Figures(
        prompt_tokens=round(statistics.median(prompt)) if prompt else None,
        completion_tokens=round(statistics.median(f.completion_tokens for f in each)),
        prompt_tps=med([f.prompt_tps for f in each]),
        gen_tps=med([f.gen_tps for f in each]),
        first_token_ms=med([f.first_token_ms for f in each]) or 0.0,
        total_ms=med([f.total_ms for f in each]) or 0.0,
        tokens_from=each[0].tokens_from,
    )


@dataclass(frozen=True)
class Memory:
    """The server process's memory, KiB: resident now, and its peak (Linux's VmHWM; macOS's
    `ps` has no peak: None)."""

    rss_kb: int | None
    peak_kb: int | None

    def as_json(self) -> dict[str, object]:
        return {"rss_kb": self.rss_kb, "peak_kb": self.peak_kb}

    @classmethod
    def from_json(cls, data: object) -> Memory | None:
        if not isinstance(data, Mapping):
            return None
        return cls(_int_or_none(data.get("rss_kb")), _int_or_none(data.get("peak_kb")))


@dataclass(frozen=True)
class BenchRecord:
    """One host's measurement: what `bench` prints and what apply keeps in state.json."""

    model: str
    generation: str | None  # the package-set generation that served
    measured_at: str  # ISO 8601, UTC, the controller's clock
    figures: Figures
    memory: Memory | None
    runs: int

    def as_json(self) -> dict[str, object]:
        return {
            "model": self.model,
            "generation": self.generation,
            "measured_at": self.measured_at,
            "runs": self.runs,
            **self.figures.as_json(),
            "memory": self.memory.as_json() if self.memory else None,
        }

    @classmethod
    def from_json(cls, data: object) -> BenchRecord | None:
        """A record read back from a host's state.json; None if it is not one (an older
        tool's file, or a damaged one: never a reason to fail)."""
        if not isinstance(data, Mapping) or not isinstance(data.get("model"), str):
            return None
        try:
            figures = Figures.from_json(data)
        except ValueError:
            return None
        generation = data.get("generation")
        return cls(
            model=str(data["model"]),
            generation=generation if isinstance(generation, str) else None,
            measured_at=str(data.get("measured_at", "")),
            figures=figures,
            memory=Memory.from_json(data.get("memory")),
            runs=_int_or_none(data.get("runs")) or 0,
        )


@dataclass(frozen=True)
class BenchReport:
    """`localai bench` for one host: the new figures and the ones the last apply recorded."""

    current: BenchRecord
    previous: BenchRecord | None
    pid: int | None

    def as_json(self) -> dict[str, object]:
        return {
            **self.current.as_json(),
            "pid": self.pid,
            "previous": self.previous.as_json() if self.previous else None,
        }


def _int_or_none(value: object) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return int(value)


def _float_or_none(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)
