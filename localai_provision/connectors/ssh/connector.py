"""The SSH connector: connect (errors translated into the project's own), run, send and
fetch files (over SFTP, or the command channel where a host has none)."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import posixpath
import secrets
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO, NoReturn

import paramiko

from localai_provision import shell
from localai_provision.connectors.base import (
    Meter,
    RemoteShellConnector,
    metered,
    upload_timeout,
)
from localai_provision.connectors.ssh.channel import (
    _DISK_FULL_BYTES,
    _CommandTimeout,
    _create_private,
    _exec,
    _megabytes,
    _tail,
    _text,
)
from localai_provision.connectors.ssh.errors import connect_error
from localai_provision.connectors.ssh.hostkeys import (
    _AcceptNewPolicy,
    _host_entry_name,
    _known_keys,
    _StrictPolicy,
    known_hosts_path,
)
from localai_provision.connectors.ssh.sshconfig import route_for, through_jumps
from localai_provision.connectors.ssh_settings import check_local_files, unreadable_known_hosts
from localai_provision.errors import (
    CommandError,
    ConnectError,
    UnreadableFile,
)
from localai_provision.files import (
    MAX_KNOWN_HOSTS_BYTES,
    check_small_regular_file,
)
from localai_provision.site.model import HostSpec


def _transport(sock: Any, **kwargs: Any) -> paramiko.Transport:
    """paramiko's transport, preferring AES-GCM to AES-CTR with HMAC-SHA2 (both still offered;
    the server's list decides as before): an AEAD cipher needs no separate MAC pass, which cut
    the controller's CPU for sending a 200 MB model by a quarter (0.83 to 0.62 s)."""
    transport = paramiko.Transport(sock, **kwargs)
    options = transport.get_security_options()
    ciphers = tuple(options.ciphers)
    gcm = tuple(c for c in ciphers if c.endswith("-gcm@openssh.com"))
    options.ciphers = gcm + tuple(c for c in ciphers if c not in gcm)
    return transport


class SSHConnector(RemoteShellConnector):
    def __init__(self, host: HostSpec) -> None:
        super().__init__(host)
        self._client: paramiko.SSHClient | None = None
        self._sftp: paramiko.SFTPClient | None = None
        # The host's sshd has no SFTP subsystem: files go over the command channel instead.
        self._sftp_off = False
        # Printed by each command first, on both streams: what comes before it is a login
        # shell's chatter (a banner or greeting in ~/.bashrc, ~/.zshenv) and is dropped.
        self._start_mark = f"--localai-start-{secrets.token_hex(8)}--"
        self.warnings: list[str] = []
        self._jumps: list[paramiko.SSHClient] = []  # ProxyJump's hops, first to last

    # --- connecting -----------------------------------------------------------------------

    def open(self) -> None:
        # The site's settings, with ssh_config's where the site gives none (sshconfig.py).
        route = route_for(self.host)
        host = route.spec
        # Not missing, /dev/zero, a FIFO or a huge file: paramiko would read it whole (the
        # config's IdentityFile entries too).
        for key_file in route.identity_files or (None,):
            check_local_files(dataclasses.replace(host, identity_file=key_file))
        connect_kwargs: dict[str, Any] = {
            "timeout": host.connect_timeout_s,
            "banner_timeout": host.connect_timeout_s,
            "auth_timeout": host.connect_timeout_s,
            "transport_factory": _transport,
        }
        if route.identity_files:
            # Only the named keys: trying every key in ~/.ssh costs round trips and can trip
            # the server's MaxAuthTries before the right one is offered.
            connect_kwargs.update(
                key_filename=list(route.identity_files), look_for_keys=False, allow_agent=False
            )
        client = self._client_for(host)
        # Kept before connecting, so that close() from another thread (Ctrl-C) can cut a
        # handshake that hangs instead of waiting for its timeout.
        self._client = client
        try:
            sock = through_jumps(route, connect_kwargs, self._client_for, self._jumps)
            client.connect(
                host.address,
                port=host.ssh_port,
                username=host.user,
                sock=sock,
                **connect_kwargs,
            )
        except BaseException as exc:
            self._client = None
            with contextlib.suppress(Exception):
                client.close()
            self._close_jumps()
            if isinstance(exc, ConnectError):
                raise
            translated = connect_error(host, exc)
            if translated is None:
                raise
            raise translated from None
        self._give_up_on_silence(client)

    def _client_for(self, host: HostSpec) -> paramiko.SSHClient:
        """A client that checks ``host``'s key as the site says (a jump host's too)."""
        client = paramiko.SSHClient()
        path = known_hosts_path(host)
        if host.host_key_checking == "off":
            client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
            self.warnings.append(
                f"host key checking is off for {host.name}: a machine pretending to be it "
                "would not be noticed; use `accept-new` or `strict`"
            )
            return client
        if path.exists():
            try:
                check_small_regular_file(path, MAX_KNOWN_HOSTS_BYTES, "known_hosts_file")
                entry = _host_entry_name(host.address, host.ssh_port)
                for keytype, key in _known_keys(path, entry):
                    client.get_host_keys().add(entry, keytype, key)
            except (OSError, paramiko.SSHException, UnreadableFile) as exc:
                raise unreadable_known_hosts(host, path, exc) from None
        policy: paramiko.MissingHostKeyPolicy = (
            _StrictPolicy(path) if host.host_key_checking == "strict" else _AcceptNewPolicy(path)
        )
        client.set_missing_host_key_policy(policy)
        return client

    def _close_jumps(self) -> None:
        jumps, self._jumps = self._jumps, []
        for client in reversed(jumps):
            with contextlib.suppress(Exception):
                client.close()

    def _give_up_on_silence(self, client: paramiko.SSHClient) -> None:
        """A host that stops answering mid-run (powered off, its network gone) is given up
        after about 3 x connect_timeout_s, not after TCP's 15 minutes or a step's own
        timeout (30 min for an install): a keepalive every connect_timeout_s makes traffic,
        and TCP_USER_TIMEOUT (Linux) closes the connection when it goes unacknowledged for
        2 x connect_timeout_s. A busy host still acknowledges: its kernel does that."""
        transport = client.get_transport()
        if transport is None:
            return
        interval = max(1, round(self.host.connect_timeout_s))
        transport.set_keepalive(interval)
        option = getattr(socket, "TCP_USER_TIMEOUT", None)
        sock = transport.sock
        if option is not None and isinstance(sock, socket.socket):
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, option, interval * 2000)

    def close(self) -> None:
        client, sftp = self._client, self._sftp
        self._client = self._sftp = None
        if sftp is not None:
            with contextlib.suppress(Exception):
                sftp.close()
        if client is not None:
            with contextlib.suppress(Exception):
                client.close()
        self._close_jumps()

    # --- commands and files -----------------------------------------------------------------

    def _require(self) -> paramiko.SSHClient:
        if self._client is None:
            self.open()
        assert self._client is not None
        return self._client

    def file_transfer_problem(self) -> str | None:
        try:
            self._sftp_client()
        except (paramiko.SSHException, OSError, EOFError) as exc:
            return str(exc) or type(exc).__name__
        return None

    def _sftp_client(self) -> paramiko.SFTPClient:
        """One SFTP session per connection, opened at its first use."""
        if self._sftp is None:
            self._sftp = self._require().open_sftp()
        return self._sftp

    def _has_sftp(self) -> bool:
        """Can files go over SFTP? A host whose sshd has no SFTP subsystem (`Subsystem sftp`
        left out of sshd_config) refuses the session while the connection stays up: files
        then go over the command channel (_put_by_command), as the first byte of a command's
        stdin, with no loss but SFTP's pipelining."""
        if self._sftp is not None:
            return True
        if self._sftp_off:
            return False
        try:
            self._sftp_client()
        except (OSError, EOFError, paramiko.SSHException):
            if not self._transport_alive():
                return True  # a lost connection: the upload reports it as such
            self._sftp_off = True
            return False
        return True

    def _run_raw(
        self, command: str, timeout: float, stdin: bytes | BinaryIO | None
    ) -> tuple[int, bytes, bytes]:
        """Run ``command``: its exit status, stdout and stderr as bytes, a login shell's
        chatter before the command's own output left out."""
        client = self._require()
        self.commands_run += 1
        limit = max(1, round(timeout))
        out: list[bytes] = []
        err: list[bytes] = []
        mark = shell.quote(self._start_mark)
        sent = f"printf '%s\\n' {mark}; printf '%s\\n' {mark} >&2; {command}"
        try:
            transport = client.get_transport()
            if transport is None or not transport.is_active():
                raise paramiko.SSHException("SSH session not active")
            channel = transport.open_session(timeout=limit)
            try:
                exit_status = _exec(channel, sent, stdin, time.monotonic() + limit, out, err)
            finally:
                channel.close()
        except _CommandTimeout:
            self.close()  # the channel may still be busy; never reuse it
            raise CommandError(
                host=self.host.name,
                message=f"the command did not finish within {timeout:g} s",
                command=command,
                output_tail=_tail(_text([self._after_mark(out), self._after_mark(err)])),
                hint="the host may be overloaded or the step may hang; check it by hand",
            ) from None
        except (OSError, EOFError, paramiko.SSHException) as exc:
            self.close()
            raise ConnectError(
                host=self.host.name,
                message="the SSH connection was lost during a command (the host stopped "
                f"answering or the connection was cut): {exc or type(exc).__name__}",
                command=command,
                hint="run again; if it repeats, check the host's network and sshd",
            ) from None
        return exit_status, self._after_mark(out), self._after_mark(err)

    def _after_mark(self, chunks: list[bytes]) -> bytes:
        data = b"".join(chunks)
        mark = self._start_mark.encode("ascii") + b"\n"
        at = data.find(mark)
        return data[at + len(mark) :] if at >= 0 else data

    def put(self, data: bytes, path: str, mode: int = 0o644) -> None:
        if not self._has_sftp():
            self._put_by_command(path, mode, io.BytesIO(data), len(data))
            return

        def write(sftp: paramiko.SFTPClient, tmp: str) -> None:
            with _create_private(sftp, tmp) as f:
                f.set_pipelined(True)
                f.write(data)

        self._upload_atomic(path, mode, write, f"cannot write {path}")
        self.bytes_sent += len(data)

    def put_file(self, local_path: Path, path: str, mode: int = 0o644) -> None:
        size = local_path.stat().st_size
        if not self._has_sftp():
            with open(local_path, "rb") as src:
                self._put_by_command(path, mode, src, size)
            return

        def copy(sftp: paramiko.SFTPClient, tmp: str) -> None:
            with open(local_path, "rb") as src, _create_private(sftp, tmp) as out:
                out.set_pipelined(True)
                for chunk in iter(lambda: src.read(1 << 20), b""):
                    out.write(chunk)
            arrived = sftp.stat(tmp).st_size
            if arrived != size:
                raise OSError(f"{arrived} of {size} bytes arrived")

        self._upload_atomic(path, mode, copy, f"cannot copy {local_path} to {path}")
        self.bytes_sent += size

    def append_file(
        self, local_path: Path, path: str, offset: int = 0, meter: Meter | None = None
    ) -> None:
        if not self._has_sftp():
            with open(local_path, "rb") as src:
                src.seek(offset)
                size = local_path.stat().st_size - offset
                paced = meter is not None
                self._append_by_command(path, offset, metered(src, meter), size, paced)
            return
        sent = 0
        try:
            sftp = self._sftp_client()
            with open(local_path, "rb") as raw, sftp.open(path, "r+b" if offset else "wb") as out:
                out.set_pipelined(True)
                raw.seek(offset)
                out.seek(offset)
                out.truncate(offset)
                pieces = metered(raw, meter)
                # SFTP writes go out in 32 KiB requests; pipelining keeps many in flight.
                for chunk in iter(lambda: pieces.read(1 << 20), b""):
                    out.write(chunk)
                    sent += len(chunk)
        except (OSError, EOFError, paramiko.SSHException) as exc:
            # A lost connection keeps the partial file: the next apply resumes it. On a full
            # disk it goes: it would only hold the space the host needs.
            self._upload_failed(path, exc, f"cannot copy {local_path} to {path}", path)
        finally:
            self.bytes_sent += sent

    def _upload_atomic(
        self,
        path: str,
        mode: int,
        upload: Callable[[paramiko.SFTPClient, str], None],
        failure: str,
    ) -> None:
        """Upload to a temporary name beside the target (created 0600: no moment exists
        when a file that may hold secrets is readable by others), set its mode, rename it
        over."""
        tmp = self._tmp_beside(path)
        try:
            sftp = self._sftp_client()
            upload(sftp, tmp)
            sftp.chmod(tmp, mode)
            sftp.posix_rename(tmp, path)
        except (OSError, EOFError, paramiko.SSHException) as exc:
            self._upload_failed(path, exc, failure, tmp, remove_always=True)

    @staticmethod
    def _tmp_beside(path: str) -> str:
        return posixpath.join(posixpath.dirname(path), f".localai-tmp-{secrets.token_hex(6)}")

    def _put_by_command(self, path: str, mode: int, source: BinaryIO, size: int) -> None:
        """put() without SFTP: the bytes are the stdin of `cat` writing a temporary file
        beside the target, created 0600 (umask 077) from its first byte, then given its mode
        and renamed over the target."""
        tmp = shell.quote(self._tmp_beside(path))
        command = (
            f"umask 077 && cat > {tmp} && chmod {mode:o} {tmp} && "
            f"mv -f {tmp} {shell.quote(path)} || {{ rm -f {tmp}; exit 1; }}"
        )
        self._send_by_command(path, command, source, size)

    def _append_by_command(
        self, path: str, offset: int, source: BinaryIO, size: int, paced: bool
    ) -> None:
        """append_file() without SFTP: the file is cut at ``offset`` (dd with no input
        truncates its output there), then the rest is appended."""
        target = shell.quote(path)
        cut = f"dd if=/dev/null of={target} bs=1 seek={offset} 2>/dev/null && " if offset else ""
        command = f"umask 077 && {cut}cat {'>>' if offset else '>'} {target}"
        self._send_by_command(path, command, source, size, paced)

    def _send_by_command(
        self, path: str, command: str, source: BinaryIO, size: int, paced: bool = False
    ) -> None:
        exit_status, _, err = self._run_raw(command, upload_timeout(size, paced), source)
        if exit_status != 0:
            free = self._free_bytes(posixpath.dirname(path))
            full = free is not None and free < _DISK_FULL_BYTES
            raise CommandError(
                host=self.host.name,
                message=f"cannot write {path} (sent over the command channel: this host's "
                "sshd has no SFTP subsystem)"
                + (f"; the disk is full, {_megabytes(free)} free there" if full else ""),
                command=f"cat > {path}",
                exit_status=exit_status,
                output_tail=_tail(err.decode("utf-8", "replace")),
                hint="check that the folder exists and is writable and the disk is not full; "
                "run apply again",
            )
        self.bytes_sent += size

    def _upload_failed(
        self,
        path: str,
        exc: BaseException,
        failure: str,
        partial: str,
        remove_always: bool = False,
    ) -> NoReturn:
        """Translate a failed upload of ``path`` (written to ``partial``): a lost connection,
        a full disk (the partial file is removed), or another error."""
        if not self._transport_alive():
            self.close()  # a temporary file goes with the next apply's clean-up
            raise ConnectError(
                host=self.host.name,
                message=f"the SSH connection was lost while writing {path}",
                command=f"sftp put {path}",
                hint="run again; if it repeats, check the host's network and sshd",
            ) from None
        full = self._free_bytes(posixpath.dirname(path))  # before the partial file goes
        disk_full = full is not None and full < _DISK_FULL_BYTES
        if remove_always or disk_full:
            with contextlib.suppress(Exception):
                self._sftp_client().remove(partial)
        if disk_full:
            free = self._free_bytes(posixpath.dirname(path))
            raise CommandError(
                host=self.host.name,
                message=f"disk full on {self.host.name} writing {path}: the partial "
                f"file was removed; {_megabytes(free)} free there now",
                command=f"sftp put {path}",
                hint="free space on the host (or point `hf_home`/`prefix` at a larger "
                "disk), then run apply again",
            ) from None
        raise CommandError(
            host=self.host.name,
            message=f"{failure}: {exc or type(exc).__name__}",
            command=f"sftp put {path}",
            hint="check that the folder exists, is writable, and the disk is not full; "
            "run apply again",
        ) from None

    def _transport_alive(self) -> bool:
        transport = self._client.get_transport() if self._client is not None else None
        return bool(transport is not None and transport.is_active())

    def get(self, path: str) -> bytes:
        if not self._has_sftp():
            exit_status, out, err = self._run_raw(f"cat {shell.quote(path)}", 600.0, None)
            if exit_status != 0:
                reason = err.decode("utf-8", "replace").strip()
                raise CommandError(host=self.host.name, message=f"cannot read {path}: {reason}")
            return out
        buffer = io.BytesIO()
        try:
            self._sftp_client().getfo(path, buffer)
        except (OSError, paramiko.SSHException) as exc:
            raise CommandError(host=self.host.name, message=f"cannot read {path}: {exc}") from None
        return buffer.getvalue()
