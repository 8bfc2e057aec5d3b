"""What every step of an apply works with: the host (one object), the options, the log.

A step takes one ``HostContext`` (connector, spec, facts, layout, log) instead of loose
parameters, so every step reads the same way and a new value reaches them all in one place.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from typing import Any

from localai_provision import shell
from localai_provision.connectors.base import Connector
from localai_provision.errors import CommandError
from localai_provision.facts.model import Facts
from localai_provision.layout import Layout
from localai_provision.lock import Lock
from localai_provision.plan import Change, generation_id, layout_for
from localai_provision.results import HostStatus
from localai_provision.site.model import HostSpec

# Apply statuses.
OK = HostStatus.OK  # nothing to do
CHANGED = HostStatus.CHANGED
FAILED = HostStatus.FAILED
UNREACHABLE = HostStatus.UNREACHABLE
SKIPPED = HostStatus.SKIPPED

INSTALL_TIMEOUT_S = 1800.0  # the real server's packages are several GB
VENV_TIMEOUT_S = 300.0


@dataclass
class ApplyOptions:
    lock_wait_s: float = 10.0
    site_hash: str = ""
    prewarm_timeout_s: float = 300.0
    retry_failed: bool = False  # build again a generation that failed with the same settings


@dataclass
class StepLog:
    """What a host's apply did, step by step, for the summary and --json."""

    steps: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    verify: dict[str, Any] = field(default_factory=dict)
    prewarm: list[dict[str, Any]] = field(default_factory=list)
    current: str = ""  # the step running now: a failure without a step of its own is its
    # The changes carried out so far: a failed apply reports these, not "nothing changed".
    done: list[Change] = field(default_factory=list)


@dataclass
class HostContext:
    """One host as the steps see it: how to reach it, what the site wants, what it is."""

    connector: Connector
    spec: HostSpec
    facts: Facts
    layout: Layout
    log: StepLog = field(default_factory=StepLog)
    # The generation (package set) the site wants; the layout's venv paths point into it.
    generation: str | None = None
    lock: Lock | None = None  # the host's locked set, if the site locks one

    @classmethod
    def of(
        cls,
        connector: Connector,
        spec: HostSpec,
        facts: Facts,
        log: StepLog | None = None,
        lock: Lock | None = None,
    ) -> HostContext:
        generation = generation_id(spec, facts, lock)
        layout = layout_for(facts, generation)
        return cls(connector, spec, facts, layout, log or StepLog(), generation, lock)

    @property
    def name(self) -> str:
        return self.spec.name

    def with_facts(self, facts: Facts) -> HostContext:
        """The same host (and log) as the facts read later describe it."""
        layout = layout_for(facts, self.generation)
        return HostContext(
            self.connector, self.spec, facts, layout, self.log, self.generation, self.lock
        )

    def for_generation(self, generation: str) -> HostContext:
        """The same host, its venv paths pointing into another generation."""
        layout = self.layout.for_generation(generation)
        return HostContext(
            self.connector, self.spec, self.facts, layout, self.log, generation, self.lock
        )

    def run_step(
        self,
        step: str,
        argv: list[str],
        message: str,
        timeout: float = 120.0,
        env: dict[str, str] | None = None,
    ) -> str:
        """Run ``argv`` (with ``env`` assignments before it); a failure is a CommandError."""
        command = env_prefix(env) + shell.join(argv)
        result = self.connector.run(command, timeout=timeout)
        if not result.ok:
            raise CommandError.of(self.spec.name, step, message, command, result)
        return result.stdout


def env_prefix(env: dict[str, str] | None) -> str:
    return "".join(f"{k}={shell.quote(v)} " for k, v in (env or {}).items())


def with_vars(script: str, **values: str) -> str:
    """A shell script preceded by its variables' assignments, each value quoted."""
    assignments = "; ".join(f"{k}={shell.quote(v)}" for k, v in values.items())
    return f"{assignments}; {script}"


def now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
