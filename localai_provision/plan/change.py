"""What a planner returns: a Change of a kind of resource, with an action and its reason."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from localai_provision.facts.model import Facts
from localai_provision.layout import Layout


class Action(StrEnum):
    """What apply does to a resource, in the order it carries the actions out. Each is
    equal to its string ("create"), the word the JSON output shows."""

    CREATE = "create"
    UPDATE = "update"
    REMOVE = "remove"
    START = "start"
    RESTART = "restart"
    FAIL = "fail"  # something the tool cannot fix; apply stops this host with the reason


class Kind(StrEnum):
    """The kinds of resource a host has; a Change's resource reads "KIND" or "KIND NAME"."""

    SYSTEM = "system"  # what only the host's admin installs: `system libportaudio2`
    LOCK = "lock"
    SECRET = "secret"  # `secret NAME`: a server.env value from the controller's environment
    PYTHON = "python"
    VENV = "venv"
    PACKAGE = "package"  # `package NAME`
    SERVER_CONFIG = "server-config"
    SHIM = "shim"
    SERVICE_DEFINITION = "service-definition"
    MACOS = "macos"  # `macos SETTING`: pmset and sysctl
    MODEL = "model"  # `model ORG/NAME`
    SERVICE = "service"
    PULL_TIMER = "pull-timer"
    ROOT_HELPER = "root-helper"
    LAUNCHD_DOMAIN = "launchd-domain"
    GENERATION = "generation"  # `generation ID`: a package set's own venv beside the others
    MEMORY = "memory"  # the prewarmed models against the host's memory (only ever a FAIL)
    # `model-files ORG/NAME`: snapshots of revisions the site does not declare, and blobs
    # only they use (a served model's files: removing them restarts nothing)
    MODEL_FILES = "model-files"


@dataclass(frozen=True)
class Change:
    host: str
    kind: Kind
    name: str  # "" for a host's one resource of its kind (venv, service, ...)
    action: Action
    before: str | None
    after: str | None
    reason: str

    @property
    def resource(self) -> str:
        """As the output shows it: "venv", "package mlx-lm", "model org/name", ..."""
        return f"{self.kind.value} {self.name}" if self.name else self.kind.value

    def as_dict(self) -> dict[str, object]:
        return {
            "host": self.host,
            "resource": self.resource,
            "action": self.action.value,
            "before": self.before,
            "after": self.after,
            "reason": self.reason,
        }


@dataclass(frozen=True)
class Changed:
    """What the earlier planners change, the service's reasons to restart: a running server
    has loaded the venv, its packages, its configuration and the models it lists."""

    venv: bool = False  # rebuilt: every package goes in again
    packages: bool = False  # a package or the start-up shim
    configuration: bool = False  # server.json or the launchd job's plist
    models: bool = False
    generation: bool = False  # the server moves to another generation (package set)

    @classmethod
    def by(cls, changes: Iterable[Change]) -> Changed:
        """Read from the changes themselves; a FAIL changes nothing."""
        changes = list(changes)
        kinds = {c.kind for c in changes if c.action != Action.FAIL}
        return cls(
            venv=Kind.VENV in kinds,
            packages=bool(kinds & {Kind.PACKAGE, Kind.SHIM}),
            configuration=bool(kinds & {Kind.SERVER_CONFIG, Kind.SERVICE_DEFINITION}),
            models=Kind.MODEL in kinds,
            generation=any(
                c.kind == Kind.GENERATION and c.action in (Action.CREATE, Action.UPDATE)
                for c in changes
            ),
        )

    def words(self) -> list[str]:
        return [
            word
            for word, changed in (
                ("the venv", self.venv),
                ("packages", self.packages),
                ("the configuration", self.configuration),
                ("models", self.models),
                ("the generation", self.generation),
            )
            if changed
        ]


def layout_for(facts: Facts, generation: str | None = None) -> Layout:
    """The host's layout; ``generation`` names the venv its paths point into (None: the one
    that serves now, as the facts found it)."""
    return Layout(prefix=facts.prefix, generation=generation or facts.generations.current)
