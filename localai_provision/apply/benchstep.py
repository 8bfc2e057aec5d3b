"""`verify.bench: true`: after a change that (re)started the server, and after verify and
prewarm, measure it as `localai bench` does and keep the figures for the state file.

A failed measurement is a warning, not a failed apply: the server started, answered verify
and loaded its prewarmed models, so the host serves; failing it (and, after a generation
switch, rolling it back) because a benchmark could not run would take a working host out of
service for a measurement. A host that got much slower is a warning too: a slower release
may be the one wanted, and only the operator can judge.
"""

from __future__ import annotations

from localai_provision.apply.context import HostContext
from localai_provision.benchresults import BenchRecord
from localai_provision.errors import HostError
from localai_provision.fleet import Fleet

# Generation tokens/s below this share of the last recorded figure is reported: a 2-core
# loopback stand-in moves by up to ~10 % between runs; a real regression is larger.
SLOWER_SHARE = 0.8


def bench_after_change(fleet: Fleet, host: HostContext) -> BenchRecord | None:
    """The new figures, or None (not asked for, the server was not restarted, or the
    measurement failed: then a warning says why)."""
    if not host.spec.verify.bench or not host.log.verify:
        return None
    from localai_provision.bench import measure

    fleet.progress(host.name, "measuring the server (verify.bench)")
    host.log.current = "bench"
    try:
        report = measure(host.connector, host.spec)
    except HostError as exc:
        host.log.warnings.append(
            f"verify.bench: the server could not be measured ({exc.message}); the apply "
            "itself succeeded"
        )
        return None
    record = report.current
    host.log.steps.append({"step": "bench", **record.as_json()})
    warning = slower_warning(record, report.previous)
    if warning:
        host.log.warnings.append(warning)
    return record


def slower_warning(new: BenchRecord, old: BenchRecord | None) -> str | None:
    """`generation 12.0 tok/s, was 41.2 on generation abc123 (2026-12-01): 71 % slower`."""
    if old is None or old.model != new.model:
        return None
    now, then = new.figures.gen_tps, old.figures.gen_tps
    if now is None or not then or now >= then * SLOWER_SHARE:
        return None
    return (
        f"{new.model}: generation {now:,.1f} tok/s, was {then:,.1f} on generation "
        f"{old.generation or '-'} ({old.measured_at[:10]}): {100 * (1 - now / then):.0f} % "
        "slower"
    )
