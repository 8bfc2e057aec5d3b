"""The one exception tree of localai-provision.

Every error the tool raises on purpose is a ``LocalAIError``. Third-party errors (PyYAML,
paramiko, httpx, OSError from subprocess) are translated into these where they enter the
program, so that callers catch one family and the CLI can always print a message that says
what went wrong and what to do, never a traceback.

    LocalAIError
    +-- SiteError            the site file is wrong: a list of Problems, each with file:line:col
    +-- UsageError           a command-line mistake (bad --limit pattern, missing file)
    +-- UnreadableFile       a file named by the user is missing, not a file, or too large
    +-- HostError            something failed on one host: host, step, command, output tail
        +-- ConnectError     the host could not be reached or logged into
        |   +-- AuthenticationError, HostKeyError, ConnectTimeout, ConnectionRefused,
        |       NameNotResolved
        +-- CommandError     a command ran and failed (non-zero exit, timeout)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # only for the annotation: the connectors import this module's errors
    from localai_provision.connectors.base import CommandResult


class LocalAIError(Exception):
    """Base of every error localai-provision raises deliberately."""


@dataclass(frozen=True, order=True)
class Problem:
    """One mistake in a site file, located precisely enough for an editor to jump to it."""

    file: str
    line: int  # 1-based
    column: int  # 1-based
    message: str
    path: str = ""  # dotted path of the offending key, e.g. hosts.mini-01.server.port

    def render(self) -> str:
        where = f"{self.path}: " if self.path else ""
        return f"{self.file}:{self.line}:{self.column}: error: {where}{self.message}"

    def as_dict(self) -> dict[str, object]:
        return {
            "file": self.file,
            "line": self.line,
            "column": self.column,
            "path": self.path,
            "message": self.message,
        }


class SiteError(LocalAIError):
    """The site file cannot be used. Carries every problem found, sorted by position."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = sorted(problems)
        super().__init__("\n".join(p.render() for p in self.problems))


class UsageError(LocalAIError):
    """The command line asks for something impossible; the message says what to type instead."""


class UnreadableFile(LocalAIError):
    """A file on this machine named by the user (the site file, identity_file,
    known_hosts_file) cannot be used: missing, not a regular file, or larger than such a
    file can be. Callers turn it into their own error (a SiteError with a position, a
    ConnectError for one host)."""

    def __init__(self, path: str, what: str, reason: str, hint: str) -> None:
        self.path = path
        self.what = what
        self.reason = reason
        self.hint = hint
        super().__init__(f"{what} {path} {reason}; {hint}")


@dataclass(eq=False)
class HostError(LocalAIError):
    """A failure on one host. It never stops the other hosts; it ends up in that host's result."""

    host: str
    message: str
    step: str = ""
    command: str = ""
    exit_status: int | None = None
    output_tail: str = ""
    hint: str = ""
    details: dict[str, object] = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__init__(self.render())

    def __str__(self) -> str:
        return self.render()

    def render(self) -> str:
        parts = [f"{self.host}"]
        if self.step:
            parts.append(f"[{self.step}]")
        text = " ".join(parts) + f": {self.message}"
        if self.command:
            text += f"\n  command: {self.command}"
        if self.exit_status is not None:
            text += f"\n  exit status: {self.exit_status}"
        if self.output_tail:
            tail = "\n".join("  | " + line for line in self.output_tail.rstrip().splitlines())
            text += f"\n  output (last lines):\n{tail}"
        if self.hint:
            text += f"\n  what to do: {self.hint}"
        return text

    def as_dict(self) -> dict[str, object]:
        return {
            "host": self.host,
            "kind": type(self).__name__,
            "message": self.message,
            "step": self.step,
            "command": self.command,
            "exit_status": self.exit_status,
            "output_tail": self.output_tail,
            "hint": self.hint,
        }


class ConnectError(HostError):
    """The host could not be reached or refused us before any command ran."""


class RolledBack(HostError):
    """A new generation failed to start, verify or prewarm; the host went back to the one it
    served before, which serves again. The apply failed all the same (exit 1)."""


class AuthenticationError(ConnectError):
    pass


class HostKeyError(ConnectError):
    """The host's key is unknown under `strict`, or differs from the recorded one."""


class ConnectTimeout(ConnectError):
    pass


class ConnectionRefused(ConnectError):
    pass


class NameNotResolved(ConnectError):
    pass


class CommandError(HostError):
    """A command on the host exited non-zero or ran past its timeout."""

    @classmethod
    def of(
        cls, host: str, step: str, message: str, command: str, result: CommandResult, hint: str = ""
    ) -> CommandError:
        """The error for ``result``, a failed run of ``command`` (given apart: a long script
        may be named rather than shown), with its exit status and the tail of its output."""
        return cls(
            host=host,
            step=step,
            message=message,
            command=command,
            exit_status=result.exit_status,
            output_tail=result.tail(),
            hint=hint,
        )
