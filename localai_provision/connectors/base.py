"""The connector interface: run a command, put a file, get a file. Nothing more.

Operations are written against this interface, so the same code converges a Mac over SSH,
this machine directly, or a test host; tests pass a connector in rather than patching one.
"""

from __future__ import annotations

import abc
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import BinaryIO, cast

from localai_provision import shell
from localai_provision.scripts.pacing import MIN_RATE, PIECE
from localai_provision.site.model import HostSpec

# How long one command may run before the host is reported as hanging. Installing the real
# server's packages takes minutes, so steps that install pass a larger timeout explicitly.
DEFAULT_COMMAND_TIMEOUT_S = 60.0

# Told the size of each piece of an upload just before it is sent; it may sleep, which paces
# the upload (transfer.max_rate), and it counts the bytes (progress).
Meter = Callable[[int], None]


class _MeteredReader:
    """A file read in pieces of at most ``piece`` bytes, each told to ``meter`` first."""

    def __init__(self, raw: BinaryIO, meter: Meter, piece: int) -> None:
        self.raw = raw
        self.meter = meter
        self.piece = piece

    def read(self, n: int = -1) -> bytes:
        data = self.raw.read(self.piece if n < 0 else min(n, self.piece))
        if data:
            self.meter(len(data))
        return data


def upload_timeout(size: int, paced: bool) -> float:
    """How long an upload through a command's stdin may take before the host counts as
    hanging: 1 MB/s at least, or, paced (transfer.max_rate, the controller's pace shared by
    its uploads), the lowest rate a site may set."""
    return max(DEFAULT_COMMAND_TIMEOUT_S, size / (MIN_RATE if paced else 1e6))


def metered(raw: BinaryIO, meter: Meter | None, piece: int = PIECE) -> BinaryIO:
    """``raw`` as the uploads read it (``.read(n)`` only), metered when ``meter`` is given.
    A short read is fine for every reader here: they loop until b""."""
    if meter is None:
        return raw
    return cast(BinaryIO, _MeteredReader(raw, meter, piece))


@dataclass(frozen=True)
class CommandResult:
    command: str
    exit_status: int
    stdout: str
    stderr: str
    duration_s: float

    @property
    def ok(self) -> bool:
        return self.exit_status == 0

    def tail(self, lines: int = 20) -> str:
        """The last lines of the output, stderr after stdout, for error messages."""
        text = (self.stdout.rstrip() + "\n" + self.stderr.rstrip()).strip()
        return "\n".join(text.splitlines()[-lines:])


class Connector(abc.ABC):
    """A live channel to one host. Open it once, use it for every command, close it."""

    def __init__(self, host: HostSpec) -> None:
        self.host = host
        self.commands_run = 0  # counted for the benchmarks: round trips per host
        self.bytes_sent = 0  # file bytes this machine uploaded to the host (put, put_file)
        # New SSH connections this connector made: 0 when it reused one kept open by an
        # earlier run (the OpenSSH connector's master), for the benchmarks and --json cost.
        self.connections_made = 1

    @abc.abstractmethod
    def open(self) -> None:
        """Connect (and log in). Raises a ConnectError subclass that says what to do."""

    @abc.abstractmethod
    def close(self) -> None: ...

    @abc.abstractmethod
    def run(
        self,
        command: str,
        *,
        timeout: float = DEFAULT_COMMAND_TIMEOUT_S,
        stdin: bytes | None = None,
    ) -> CommandResult:
        """Run ``command`` with the host's POSIX shell. A non-zero exit is returned, not
        raised; a timeout or a lost connection raises a HostError subclass."""

    @abc.abstractmethod
    def put(self, data: bytes, path: str, mode: int = 0o644) -> None:
        """Write ``data`` to the absolute ``path`` atomically: a temporary file beside it,
        then a rename, so a reader never sees half a file."""

    @abc.abstractmethod
    def put_file(self, local_path: Path, path: str, mode: int = 0o644) -> None:
        """Like put, streaming a local file (models are gigabytes: never read them whole)."""

    @abc.abstractmethod
    def append_file(
        self, local_path: Path, path: str, offset: int = 0, meter: Meter | None = None
    ) -> None:
        """Write ``local_path`` from byte ``offset`` on into ``path`` at that same offset:
        resumes an interrupted transfer of a large file. Not atomic by design: the caller
        writes to a partial name, checks the content's hash on the host, then renames.
        ``meter`` is told each piece before it is sent (it may sleep: pacing)."""

    @abc.abstractmethod
    def get(self, path: str) -> bytes: ...

    def file_transfer_problem(self) -> str | None:
        """Why files cannot be sent to the host (None: they can). `localai doctor` asks."""
        return None

    def __enter__(self) -> Connector:
        self.open()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def connector_for(host: HostSpec, *, read_only: bool = False) -> Connector:
    """The connector a host's `connection` (and `ssh_client`) setting asks for; ``read_only``
    for the checks (plan, drift), which `ssh_client: auto` sends over OpenSSH. Each is
    imported only here: paramiko alone costs 0.45 s of start-up, which a run over the system
    `ssh` never pays."""
    if host.connection == "local":
        from localai_provision.connectors.local import LocalConnector

        return LocalConnector(host)
    if host.ssh_client == "openssh" or (host.ssh_client == "auto" and read_only):
        from localai_provision.connectors.openssh import OpenSSHConnector

        return OpenSSHConnector(host)
    from localai_provision.connectors.ssh import SSHConnector

    return SSHConnector(host)


def check_connector(host: HostSpec) -> Connector:
    """The connector of the read-only checks (plan, drift)."""
    return connector_for(host, read_only=True)


class RemoteShellConnector(Connector):
    """A connector whose commands come back as bytes (the SSH connectors): ``run`` decodes
    them and times the command, once for both clients."""

    def run(
        self,
        command: str,
        *,
        timeout: float = DEFAULT_COMMAND_TIMEOUT_S,
        stdin: bytes | None = None,
    ) -> CommandResult:
        start = time.perf_counter()
        exit_status, out, err = self._run_raw(command, timeout, stdin)
        return CommandResult(
            command=command,
            exit_status=exit_status,
            stdout=out.decode("utf-8", "replace"),
            stderr=err.decode("utf-8", "replace"),
            duration_s=time.perf_counter() - start,
        )

    def _free_bytes(self, folder: str) -> int | None:
        """Bytes free to us in ``folder`` on the host (POSIX df, in KiB)."""
        # Imported here: base.py is imported by every command, errors' tree by few.
        from localai_provision.errors import CommandError, ConnectError

        try:
            result = self.run(f"df -Pk {shell.quote(folder)}", timeout=30)
            return int(result.stdout.splitlines()[-1].split()[3]) * 1024
        except (CommandError, ConnectError, IndexError, ValueError):
            return None

    @abc.abstractmethod
    def _run_raw(
        self, command: str, timeout: float, stdin: bytes | BinaryIO | None
    ) -> tuple[int, bytes, bytes]:
        """Run ``command``: its exit status, stdout and stderr as bytes."""
