"""`localai bench`: what each host's server delivers, measured through its own OpenAI API.

Per host ONE command: scripts/bench.py, run by the site's Python on the host (the server
listens on loopback by default, and timing there keeps the SSH link out of the figures). It
sends one warm-up request and BENCH_RUNS timed ones, streamed, of a fixed prompt; the
controller turns the timings into figures (benchresults.py, pure). Apply runs the same
measurement after a change when the site says `verify.bench: true` (apply/benchstep.py).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from typing import NoReturn

from localai_provision import scripts, shell
from localai_provision.apply.verification import reachable_address
from localai_provision.benchresults import (
    BenchRecord,
    BenchReport,
    Memory,
    NoTokens,
    RunTimings,
    median_figures,
)
from localai_provision.connectors.base import Connector, connector_for
from localai_provision.constants import DEFAULT_FORKS
from localai_provision.errors import HostError
from localai_provision.fleet import ConnectorFactory, Fleet, HostResult
from localai_provision.layout import launchd_job, relative_layout
from localai_provision.results import HostStatus
from localai_provision.site.model import HostSpec

# The fixed workload. The prompt is about 120 words (100-200 tokens with common tokenizers):
# long enough that prompt processing is more than one step, short enough for any model's
# context. 64 tokens out: 63 timed gaps for generation tokens/s, about 2 s at 30 tok/s.
BENCH_PROMPT = (
    "You are helping a small laboratory keep its Mac computers serving language models. "
    "Read the following description and summarise it in plain words. The laboratory has "
    "several Mac minis and one Mac Studio. Each machine runs a server that answers requests "
    "through an interface compatible with OpenAI's. The models are stored in a shared cache "
    "folder and are loaded when the first request names them. A provisioning tool installs "
    "exact package versions into a fresh environment beside the one that serves, switches "
    "to it, restarts the server, checks that it answers, and goes back by itself when the "
    "new environment fails. The operators want to know, after every upgrade, whether each "
    "machine still answers as quickly as before, and how much memory the server uses."
)
BENCH_MAX_TOKENS = 64
BENCH_RUNS = 3  # timed requests after the warm-up; figures are their medians
# The first word of each request (the warm-up's, then each run's): each differs from the one
# before at its first token, so that the server's prompt cache (it reuses the longest prefix
# shared with the previous request) serves only the chat template's opening. Whole words
# apart from punctuation: with "Run 1." and "Run 2." the tiny test model's word-level
# tokenizer saw the same two unknown tokens and the cache served all but one token
# (measured on the real server: 1 prompt token processed).
RUN_LABELS = ("Begin", "one", "two", "three")
# Per request: the warm-up may load a model of tens of GB from disk first.
BENCH_REQUEST_TIMEOUT_S = 300.0
SHOWN_COMMAND = "<python> -I -S -c <bench script>"


def bench_model(spec: HostSpec, wanted: str | None = None) -> str | None:
    """The model to measure: ``wanted``, else the host's first prewarmed model, else its
    first model; None when the host has none."""
    if wanted:
        return wanted
    ordered = [m.id for m in spec.models if m.prewarm] + [m.id for m in spec.models]
    return ordered[0] if ordered else None


def bench_config(spec: HostSpec, model: str) -> dict[str, object]:
    """What scripts/bench.py is given."""
    rel = relative_layout()
    return {
        "host": reachable_address(spec),
        "port": spec.server.port,
        "model": model,
        "prompt": BENCH_PROMPT,
        "max_tokens": BENCH_MAX_TOKENS,
        "labels": list(RUN_LABELS[: BENCH_RUNS + 1]),
        "timeout_s": BENCH_REQUEST_TIMEOUT_S,
        "prefix": spec.prefix,
        "pid_file": rel["pid_file"],
        "state": rel["state"],
        "launchd": launchd_job(spec),
    }


def bench_command(spec: HostSpec, model: str) -> str:
    config = json.dumps(bench_config(spec, model), separators=(",", ":"))
    return shell.join([spec.python, "-I", "-S", "-c", scripts.load("bench"), config])


def measure(connector: Connector, spec: HostSpec, model: str | None = None) -> BenchReport:
    """Bench one host over an open connection (one command); a HostError says why not."""
    chosen = bench_model(spec, model)
    if chosen is None:
        measure_nothing(spec)
    timeout = BENCH_REQUEST_TIMEOUT_S * (BENCH_RUNS + 1) + 30
    result = connector.run(bench_command(spec, chosen), timeout=timeout)
    shown = SHOWN_COMMAND.replace("<python>", spec.python)
    if not result.ok:
        raise HostError(
            host=spec.name,
            step="bench",
            message="the bench script failed",
            command=shown,
            exit_status=result.exit_status,
            output_tail="\n".join(result.stderr.rstrip().splitlines()[-10:]),
            hint=f"check that `{spec.python}` (the site's `python`) runs on the host",
        )
    try:
        out = json.loads(result.stdout)
        if not isinstance(out, dict):
            raise ValueError("not a JSON object")
    except ValueError as exc:
        raise HostError(
            host=spec.name,
            step="bench",
            message=f"the bench script's output is not what it prints ({exc})",
            command=shown,
            hint="something on the host prints to stdout (a shell profile?); keep "
            "non-interactive logins quiet",
        ) from None
    return report_from_script(spec, chosen, out, _now())


def report_from_script(
    spec: HostSpec, model: str, out: dict[str, object], measured_at: str
) -> BenchReport:
    """The host's report from the script's JSON (pure); a HostError for a failed bench."""
    where = f"{reachable_address(spec)}:{spec.server.port}"
    error = out.get("error")
    if error:
        reason = out.get("reason")
        if reason == "no-server":
            message = f"no server answers on {where}"
            hint = "start it with `localai apply FILE` (see `localai status FILE`)"
        else:
            message = f"measuring {model} on {where} failed: {error}"
            hint = (
                "check that the server lists the model (`localai status FILE`) and read "
                "its log on the host"
            )
        raise HostError(host=spec.name, step="bench", message=message, hint=hint)
    runs = out.get("runs")
    listed = runs if isinstance(runs, list) else []
    timings = [RunTimings.from_script(r) for r in listed if isinstance(r, dict)]
    try:
        figures = median_figures(timings)
    except NoTokens as exc:
        raise HostError(
            host=spec.name,
            step="bench",
            message=f"{model} on {where}: {exc}",
            hint="the model ended its answer at once (an end-of-text token first?); "
            "try another model with --model ID",
        ) from None
    generation = out.get("generation")
    pid = out.get("pid")
    current = BenchRecord(
        model=model,
        generation=generation if isinstance(generation, str) else None,
        measured_at=measured_at,
        figures=figures,
        memory=Memory.from_json(out.get("memory")),
        runs=len(timings),
    )
    return BenchReport(
        current=current,
        previous=BenchRecord.from_json(out.get("previous")),
        pid=pid if isinstance(pid, int) else None,
    )


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def bench_hosts(
    hosts: Sequence[HostSpec],
    *,
    model: str | None = None,
    forks: int = DEFAULT_FORKS,
    connector_factory: ConnectorFactory = connector_for,
) -> list[HostResult]:
    """Bench every host in parallel, one connection and one command each."""

    def job(fleet: Fleet, spec: HostSpec) -> HostResult:
        if bench_model(spec, model) is None:
            measure_nothing(spec)
        fleet.progress(spec.name, "measuring")
        connector = fleet.open(spec)
        try:
            report = measure(connector, spec, model)
        finally:
            fleet.release(connector)
        return HostResult(
            name=spec.name, status=HostStatus.MEASURED, connections=1, commands=1, details=report
        )

    return Fleet(hosts, forks=forks, connector_factory=connector_factory).run(job)


def measure_nothing(spec: HostSpec) -> NoReturn:
    """A host with no model fails before anything is sent (no connection made)."""
    raise HostError(
        host=spec.name,
        step="bench",
        message="the host has no model to measure",
        hint="declare a model for it in the site, or pass --model ID",
    )
