"""The OpenSSH connector: every command one `ssh` process (a client of the host's master when
one is open), files over the command channel (`cat` writing a temporary file, then a rename)."""

from __future__ import annotations

import contextlib
import os
import posixpath
import re
import secrets
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from localai_provision import shell
from localai_provision.connectors.base import (
    Meter,
    RemoteShellConnector,
    metered,
    upload_timeout,
)
from localai_provision.connectors.openssh.control import control_dir, control_path, ssh_argv
from localai_provision.connectors.openssh.errors import translate
from localai_provision.connectors.openssh.mux import (
    MuxLost,
    MuxResult,
    MuxUnavailable,
    run_via_master,
)
from localai_provision.connectors.ssh_settings import (
    check_local_files,
    host_key_checking_warning,
)
from localai_provision.errors import CommandError, ConnectError
from localai_provision.site.model import HostSpec

SSH_FAILED = 255  # ssh's own exit status when it could not connect or lost the connection
# What ssh prints when the connection goes away under a running command.
_LOST = re.compile(
    r"closed by remote host|Connection reset|Broken pipe|mux_client|Timeout, server .* not "
    r"responding|client_loop: send disconnect"
)
_DISK_FULL_BYTES = 1 << 20  # less than this free after a failed upload: the disk is full


class OpenSSHConnector(RemoteShellConnector):
    def __init__(self, host: HostSpec) -> None:
        super().__init__(host)
        folder = control_dir() if host.ssh_persist_s > 0 else None
        self._control = control_path(host, folder) if folder is not None else None
        self._argv = ssh_argv(host, self._control)
        # Printed by each command first, on both streams: what comes before it is a login
        # shell's chatter (a banner in ~/.bashrc) and is dropped, as the paramiko connector does.
        self._start_mark = f"--localai-start-{secrets.token_hex(8)}--"
        self._procs: set[subprocess.Popen[bytes]] = set()
        self._killed: set[subprocess.Popen[bytes]] = set()  # cut by close()
        self._mux_calls: list[list[bool]] = []  # commands through the master: close() cuts
        self._lock = threading.Lock()
        self.warnings: list[str] = []

    # --- connecting -----------------------------------------------------------------------

    def open(self) -> None:
        """Check the site's local files; the connection itself is made (or a live master
        reused) by the first command: one process and one round trip less per host."""
        check_local_files(self.host)
        warning = host_key_checking_warning(self.host)
        if warning and warning not in self.warnings:
            self.warnings.append(warning)
        self.connections_made = 0 if self.master_alive() else 1

    def master_alive(self) -> bool:
        """Is a master for this host listening? (A connect to its socket: ~0.1 ms.)"""
        if self._control is None or not self._control.exists():
            return False
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.connect(str(self._control))
        except OSError:
            return False
        finally:
            probe.close()
        return True

    def _master_lost(self) -> bool:
        """After an exit 255 through a master: did the master go with it? (It leaves a moment
        after its client is told; a command's own 255 leaves it up.)"""
        if self._control is None:
            return False
        for _ in range(5):
            if not self.master_alive():
                return True
            time.sleep(0.1)
        return False

    def close(self) -> None:
        """End this connector's running commands (Ctrl-C, SIGTERM): and then the master too,
        as closing paramiko's connection did, so that the commands end on the host as well
        (a master keeps a cut session's command running there, holding the host's lock).
        With nothing running the master stays ControlPersist seconds, for the next run."""
        with self._lock:
            running = list(self._procs)
            self._killed.update(running)
            cut = bool(running or self._mux_calls)
            for flag in self._mux_calls:
                flag[0] = True
        for proc in running:
            with contextlib.suppress(OSError):
                proc.kill()
        if cut:
            self.end_master()

    def end_master(self) -> None:
        """Close the host's master now (`ssh -O exit`): its sessions end on the host."""
        if self._control is None or not self._control.exists():
            return
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            subprocess.run(
                ["ssh", "-o", f"ControlPath={self._control}", "-O", "exit", "localai-host"],
                capture_output=True,
                check=False,
                timeout=10,
                start_new_session=True,
            )

    # --- commands -------------------------------------------------------------------------

    def _run_raw(
        self, command: str, timeout: float, stdin: bytes | BinaryIO | None
    ) -> tuple[int, bytes, bytes]:
        self.commands_run += 1
        mark = shell.quote(self._start_mark)
        sent = f"printf '%s\\n' {mark}; printf '%s\\n' {mark} >&2; {command}"
        if self._control is not None:
            try:
                return self._through_master(command, sent, timeout, stdin)
            except MuxUnavailable:
                pass  # no master (yet): `ssh` connects and leaves one for the next command
        feed = subprocess.PIPE if isinstance(stdin, bytes) else stdin or subprocess.DEVNULL
        # A session of its own: the terminal's Ctrl-C reaches us, not ssh; close() ends it.
        proc = subprocess.Popen(
            [*self._argv, sent],
            stdin=feed,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        with self._lock:
            self._procs.add(proc)
        try:
            out, err, timed_out = self._collect(proc, stdin, max(1, round(timeout)))
        finally:
            with self._lock:
                self._procs.discard(proc)
                self._killed.discard(proc)
        if timed_out:
            self.end_master()  # the command may still run there: end it, as paramiko did
            raise CommandError(
                host=self.host.name,
                message=f"the command did not finish within {timeout:g} s",
                command=command,
                output_tail=_tail(self._after_mark(out) + b"\n" + self._after_mark(err)),
                hint="the host may be overloaded or the step may hang; check it by hand",
            )
        started = self._start_mark.encode("ascii") in out
        message = err.decode("utf-8", "replace")
        if proc.returncode == SSH_FAILED and not started and message.strip():
            raise translate(self.host, message)  # ssh could not connect: it says why
        # Killed (close(), Ctrl-C), or 255 with ssh's word of a lost connection, or with not
        # even the start mark through (the host's session died before sending it).
        if proc.returncode < 0 or (
            proc.returncode == SSH_FAILED
            and (not started or _LOST.search(message) or self._master_lost())
        ):
            raise ConnectError(
                host=self.host.name,
                message="the SSH connection was lost during a command (the host stopped "
                "answering or the connection was cut)",
                command=command,
                output_tail=_tail(self._after_mark(err)),
                hint="run again; if it repeats, check the host's network and sshd",
            )
        return proc.returncode, self._after_mark(out), self._after_mark(err)

    def _through_master(
        self, command: str, sent: str, timeout: float, stdin: bytes | BinaryIO | None
    ) -> tuple[int, bytes, bytes]:
        cancelled = [False]
        with self._lock:
            self._mux_calls.append(cancelled)
        try:
            result = run_via_master(
                self._control_path(),
                sent,
                stdin,
                time.monotonic() + max(1, round(timeout)),
                cancelled,
            )
        except MuxLost:
            result = MuxResult(None, b"", b"")
            cancelled[0] = True
        finally:
            with self._lock:
                self._mux_calls.remove(cancelled)
        out, err = self._after_mark(result.stdout), self._after_mark(result.stderr)
        if result.exit_status is not None:
            return result.exit_status, out, err
        if cancelled[0]:
            raise ConnectError(
                host=self.host.name,
                message="the SSH connection was lost during a command (the host stopped "
                "answering or the connection was cut)",
                command=command,
                output_tail=_tail(err),
                hint="run again; if it repeats, check the host's network and sshd",
            )
        self.end_master()  # the command may still run there: end it, as paramiko did
        raise CommandError(
            host=self.host.name,
            message=f"the command did not finish within {timeout:g} s",
            command=command,
            output_tail=_tail(out + b"\n" + err),
            hint="the host may be overloaded or the step may hang; check it by hand",
        )

    def _control_path(self) -> Path:
        assert self._control is not None
        return self._control

    def _collect(
        self, proc: subprocess.Popen[bytes], stdin: bytes | BinaryIO | None, limit: int
    ) -> tuple[bytes, bytes, bool]:
        """The command's stdout and stderr, and whether it ran past ``limit`` seconds.

        A client of a master hands its pipes to the master (SCM_RIGHTS), which holds them
        until the remote command ends: killing the client (a timeout, close()) does not end
        the output. So the wait wakes every second to see whether it was cut, and then takes
        what arrived and lets the pipes go."""
        deadline = time.monotonic() + limit
        feed = stdin if isinstance(stdin, bytes) else None
        while True:
            left = deadline - time.monotonic()
            try:
                out, err = proc.communicate(feed, timeout=max(0.05, min(1.0, left)))
                return out or b"", err or b"", False
            except subprocess.TimeoutExpired as exc:
                with self._lock:
                    cut = proc in self._killed
                if not cut and left > 0:
                    continue
                proc.kill()
                proc.wait()
                for pipe in (proc.stdin, proc.stdout, proc.stderr):
                    if pipe is not None:
                        with contextlib.suppress(OSError):
                            pipe.close()
                return exc.output or b"", exc.stderr or b"", not cut

    def _after_mark(self, data: bytes) -> bytes:
        mark = self._start_mark.encode("ascii") + b"\n"
        at = data.find(mark)
        return data[at + len(mark) :] if at >= 0 else data

    # --- files (over the command channel: no SFTP session to open) ---------------------------

    def put(self, data: bytes, path: str, mode: int = 0o644) -> None:
        self._put(path, mode, data, len(data))

    def put_file(self, local_path: Path, path: str, mode: int = 0o644) -> None:
        size = local_path.stat().st_size
        with open(local_path, "rb") as src:
            self._put(path, mode, src, size)

    def _put(self, path: str, mode: int, source: bytes | BinaryIO, size: int) -> None:
        """The bytes are the stdin of `cat` writing a temporary file beside the target,
        created 0600 (umask 077) from its first byte, then given its mode and renamed over
        the target: a reader never sees half a file, nor a secret readable by others."""
        tmp = shell.quote(
            posixpath.join(posixpath.dirname(path), f".localai-tmp-{secrets.token_hex(6)}")
        )
        command = (
            f"umask 077 && cat > {tmp} && chmod {mode:o} {tmp} && "
            f"mv -f {tmp} {shell.quote(path)} || {{ rm -f {tmp}; exit 1; }}"
        )
        self._send(path, command, source, size)

    def append_file(
        self, local_path: Path, path: str, offset: int = 0, meter: Meter | None = None
    ) -> None:
        """The file is cut at ``offset`` (dd with no input truncates its output there), then
        the rest appended: resumes an interrupted transfer."""
        target = shell.quote(path)
        cut = f"dd if=/dev/null of={target} bs=1 seek={offset} 2>/dev/null && " if offset else ""
        command = f"umask 077 && {cut}cat {'>>' if offset else '>'} {target}"
        size = local_path.stat().st_size - offset
        with open(local_path, "rb") as src:
            src.seek(offset)
            # A lost connection keeps the partial file (the next apply resumes it); on a
            # full disk it goes: it would only hold the space the host needs.
            if meter is None:
                self._send(path, command, src, size, partial=path)
                return
            with _fed_pipe(metered(src, meter)) as piped:
                self._send(path, command, piped, size, partial=path, paced=True)

    def _send(
        self,
        path: str,
        command: str,
        source: bytes | BinaryIO,
        size: int,
        partial: str | None = None,
        paced: bool = False,
    ) -> None:
        """Run ``command`` with ``source`` as its stdin; a failure on a full disk removes
        ``partial`` (put's temporary file is removed by its own command)."""
        exit_status, _, err = self._run_raw(command, upload_timeout(size, paced), source)
        if exit_status == 0:
            self.bytes_sent += size
            return
        folder = posixpath.dirname(path)
        free = self._free_bytes(folder)
        if free is not None and free < _DISK_FULL_BYTES:
            if partial is not None:
                self._run_raw(f"rm -f {shell.quote(partial)}", 30.0, None)
                free = self._free_bytes(folder)
            raise CommandError(
                host=self.host.name,
                message=f"disk full on {self.host.name} writing {path}: the partial "
                f"file was removed; {_megabytes(free)} free there now",
                command=f"cat > {path}",
                exit_status=exit_status,
                hint="free space on the host (or point `hf_home`/`prefix` at a larger "
                "disk), then run apply again",
            )
        raise CommandError(
            host=self.host.name,
            message=f"cannot write {path}",
            command=f"cat > {path}",
            exit_status=exit_status,
            output_tail=_tail(err),
            hint="check that the folder exists and is writable and the disk is not full; "
            "run apply again",
        )

    def get(self, path: str) -> bytes:
        exit_status, out, err = self._run_raw(f"cat {shell.quote(path)}", 600.0, None)
        if exit_status != 0:
            reason = err.decode("utf-8", "replace").strip()
            raise CommandError(host=self.host.name, message=f"cannot read {path}: {reason}")
        return out


def _megabytes(size: int | None) -> str:
    return "unknown space" if size is None else f"{size / 1e6:.1f} MB"


def _tail(data: bytes, lines: int = 20) -> str:
    return "\n".join(data.decode("utf-8", "replace").rstrip().splitlines()[-lines:])


@contextlib.contextmanager
def _fed_pipe(source: BinaryIO) -> Iterator[BinaryIO]:
    """A pipe a thread fills from ``source``: `ssh` takes its stdin as a file descriptor, so
    a metered (paced) upload reaches it through a pipe. The thread ends with the source, or
    when the reader closes (a command that failed early: the write meets EPIPE)."""
    read_fd, write_fd = os.pipe()

    def feed() -> None:
        try:
            for piece in iter(lambda: source.read(1 << 16), b""):
                view = memoryview(piece)
                while view:
                    view = view[os.write(write_fd, view) :]
        except OSError:
            pass  # the command ended before reading everything; it reports why
        finally:
            os.close(write_fd)

    feeder = threading.Thread(target=feed, name="upload-feed", daemon=True)
    feeder.start()
    reader = os.fdopen(read_fd, "rb")
    try:
        yield reader
    finally:
        reader.close()
        feeder.join()
