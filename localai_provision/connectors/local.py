"""Run on this machine, as the current user: `connection: local`."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from localai_provision.connectors.base import (
    DEFAULT_COMMAND_TIMEOUT_S,
    CommandResult,
    Connector,
    Meter,
    metered,
)
from localai_provision.errors import CommandError


class LocalConnector(Connector):
    def open(self) -> None:
        pass

    def close(self) -> None:
        pass

    def run(
        self,
        command: str,
        *,
        timeout: float = DEFAULT_COMMAND_TIMEOUT_S,
        stdin: bytes | None = None,
    ) -> CommandResult:
        self.commands_run += 1
        start = time.perf_counter()
        try:
            proc = subprocess.run(
                ["/bin/sh", "-c", command],
                input=stdin if stdin is not None else b"",
                capture_output=True,
                timeout=timeout,
                check=False,
                # Its own session: a server it starts must not die with our terminal's Ctrl-C.
                start_new_session=True,
            )
        except subprocess.TimeoutExpired as exc:
            out = (exc.stdout or b"").decode("utf-8", "replace")
            raise CommandError(
                host=self.host.name,
                message=f"the command did not finish within {timeout:g} s",
                command=command,
                output_tail="\n".join(out.splitlines()[-20:]),
                hint="the host may be overloaded or the step may hang; check it by hand",
            ) from None
        return CommandResult(
            command=command,
            exit_status=proc.returncode,
            stdout=proc.stdout.decode("utf-8", "replace"),
            stderr=proc.stderr.decode("utf-8", "replace"),
            duration_s=time.perf_counter() - start,
        )

    def put(self, data: bytes, path: str, mode: int = 0o644) -> None:
        self._write_atomic(path, mode, lambda out: out.write(data))
        self.bytes_sent += len(data)

    def put_file(self, local_path: Path, path: str, mode: int = 0o644) -> None:
        def copy(out: BinaryIO) -> None:
            with open(local_path, "rb") as src:
                shutil.copyfileobj(src, out, 1 << 20)

        self._write_atomic(path, mode, copy)
        self.bytes_sent += local_path.stat().st_size

    def append_file(
        self, local_path: Path, path: str, offset: int = 0, meter: Meter | None = None
    ) -> None:
        path = os.path.expanduser(path)
        with open(local_path, "rb") as src, open(path, "r+b" if offset else "wb") as out:
            src.seek(offset)
            out.seek(offset)
            out.truncate()
            shutil.copyfileobj(metered(src, meter), out, 1 << 20)
        self.bytes_sent += local_path.stat().st_size - offset

    @staticmethod
    def _write_atomic(path: str, mode: int, write: Callable[[BinaryIO], object]) -> None:
        """A temporary file beside the target, synced, given its mode, renamed over it."""
        path = os.path.expanduser(path)
        folder = os.path.dirname(path) or "."
        os.makedirs(folder, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".localai-tmp-")
        try:
            with os.fdopen(fd, "wb") as out:
                write(out)
                out.flush()
                os.fsync(out.fileno())
            os.chmod(tmp, mode)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    def get(self, path: str) -> bytes:
        with open(os.path.expanduser(path), "rb") as f:
            return f.read()
