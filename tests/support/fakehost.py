"""A fake connector for fast tests, in the manner of httpx's MockTransport.

A handler function receives every call (a command run, a file put, appended or read) and
returns what the host would answer; the connector records every call, so a test asserts on
the exact commands a step sent. No process, no SSH, no file system: a step's whole
conversation with a host in microseconds.

    def handler(call: Call) -> Reply | None:
        if call.is_run and call.command.startswith("test -x"):
            return Reply(exit_status=1)
        return None  # anything else: exit 0, no output

    connector = FakeConnector(handler)
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from localai_provision.connectors.base import (
    DEFAULT_COMMAND_TIMEOUT_S,
    CommandResult,
    Connector,
    Meter,
)
from localai_provision.site import parse_site
from localai_provision.site.model import HostSpec


@dataclass(frozen=True)
class Call:
    """One thing a step asked of the host."""

    kind: str  # "run", "put", "put_file", "append_file" or "get"
    command: str = ""  # run: the command line
    path: str = ""  # put/put_file/append_file/get: the host path
    data: bytes = b""  # put: the content; append_file: the bytes from offset on
    mode: int | None = None
    offset: int = 0
    timeout: float | None = None
    stdin: bytes | None = None

    @property
    def is_run(self) -> bool:
        return self.kind == "run"


@dataclass(frozen=True)
class Reply:
    """What the host answers a command (files that are put need no reply)."""

    stdout: str = ""
    stderr: str = ""
    exit_status: int = 0
    data: bytes = b""  # for get


Handler = Callable[[Call], Reply | None]


def answer_all_ok(call: Call) -> Reply | None:
    return None


def rules(*table: tuple[str, Reply]) -> Handler:
    """A handler from a table: the first pattern found in a command answers it."""
    compiled = [(re.compile(p), r) for p, r in table]

    def handler(call: Call) -> Reply | None:
        if call.is_run:
            for pattern, reply in compiled:
                if pattern.search(call.command):
                    return reply
        return None

    return handler


DEFAULT_SITE = """
version: 1
hosts:
  fake-01:
    connection: ssh
    address: 127.0.0.1
    prefix: /h/.localai
    hf_home: /h/hf
    python: /usr/bin/python3
    packages: {mlx-omni-server: 0.5.1}
"""


def fake_spec(site: str = DEFAULT_SITE, name: str = "fake-01") -> HostSpec:
    return parse_site(site, "s.yaml").hosts[name]


@dataclass(eq=False)  # compared and hashed by identity, as Fleet keeps its live connectors
class FakeConnector(Connector):
    handler: Handler = answer_all_ok
    spec: HostSpec | None = None
    calls: list[Call] = field(default_factory=list)
    files: dict[str, bytes] = field(default_factory=dict)  # what was put, by host path

    def __post_init__(self) -> None:
        super().__init__(self.spec or fake_spec())
        self.opened = False

    # --- what tests read -------------------------------------------------------------------

    @property
    def commands(self) -> list[str]:
        return [c.command for c in self.calls if c.is_run]

    def puts(self) -> dict[str, Call]:
        return {c.path: c for c in self.calls if c.kind in ("put", "put_file", "append_file")}

    # --- the connector ---------------------------------------------------------------------

    def open(self) -> None:
        self.opened = True

    def close(self) -> None:
        self.opened = False

    def _ask(self, call: Call) -> Reply:
        self.calls.append(call)
        return self.handler(call) or Reply()

    def run(
        self,
        command: str,
        *,
        timeout: float = DEFAULT_COMMAND_TIMEOUT_S,
        stdin: bytes | None = None,
    ) -> CommandResult:
        self.commands_run += 1
        reply = self._ask(Call("run", command=command, timeout=timeout, stdin=stdin))
        return CommandResult(command, reply.exit_status, reply.stdout, reply.stderr, 0.0)

    def put(self, data: bytes, path: str, mode: int = 0o644) -> None:
        self._ask(Call("put", path=path, data=data, mode=mode))
        self.files[path] = data
        self.bytes_sent += len(data)

    def put_file(self, local_path: Path, path: str, mode: int = 0o644) -> None:
        self.put(local_path.read_bytes(), path, mode)

    def append_file(
        self, local_path: Path, path: str, offset: int = 0, meter: Meter | None = None
    ) -> None:
        data = local_path.read_bytes()[offset:]
        if meter is not None and data:
            meter(len(data))
        self._ask(Call("append_file", path=path, data=data, offset=offset))
        self.files[path] = self.files.get(path, b"")[:offset] + data
        self.bytes_sent += len(data)

    def get(self, path: str) -> bytes:
        reply = self._ask(Call("get", path=path))
        return reply.data or self.files.get(path, b"")
