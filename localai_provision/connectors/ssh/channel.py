"""One command on an SSH channel (streams drained, a timeout that keeps the output) and the
private file created 0600 by the SFTP open itself."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import BinaryIO

import paramiko


def _create_private(sftp: paramiko.SFTPClient, path: str) -> paramiko.SFTPFile:
    """sftp.open(path, "wb"), except that the file is created with mode 0600 and must not
    exist yet. paramiko's open() sends no mode, so the server creates the file 0666 less its
    umask (0644): readable by everyone until a chmod, with the secrets of server.json in it.
    The mode goes in the open request itself, as the SFTP protocol allows (OpenSSH's
    sftp-server honours it); EXCL refuses a file or link planted at the name beforehand."""
    attrs = paramiko.SFTPAttributes()
    attrs.st_mode = 0o600
    flags = (
        paramiko.sftp.SFTP_FLAG_WRITE
        | paramiko.sftp.SFTP_FLAG_CREATE
        | paramiko.sftp.SFTP_FLAG_TRUNC
        | paramiko.sftp.SFTP_FLAG_EXCL
    )
    # What SFTPClient.open does, with the attributes filled in (paramiko keeps it private).
    request: Callable[..., tuple[int, paramiko.Message | None]] = sftp._request  # type: ignore[attr-defined]
    kind, msg = request(paramiko.sftp.CMD_OPEN, path, flags, attrs)
    if kind != paramiko.sftp.CMD_HANDLE or msg is None:
        raise paramiko.SFTPError("Expected handle")
    return paramiko.SFTPFile(sftp, msg.get_binary(), "wb")


# Less than this free after a failed upload: the upload filled the disk.
_DISK_FULL_BYTES = 1 << 20


def _megabytes(size: int | None) -> str:
    return "unknown space" if size is None else f"{size / 1e6:.1f} MB"


class _CommandTimeout(Exception):
    pass


_POLL_S = 0.2  # how often stderr is drained while stdout is quiet


def _exec(
    channel: paramiko.Channel,
    command: str,
    stdin: bytes | BinaryIO | None,
    deadline: float,
    out: list[bytes],
    err: list[bytes],
) -> int:
    """Run ``command`` on a fresh session channel, collect its output into ``out`` and
    ``err``, return its exit status. No threads: stdout is read blocking (woken by each
    packet), stderr drained between reads."""
    channel.settimeout(max(1.0, deadline - time.monotonic()))
    channel.exec_command(command)
    if isinstance(stdin, bytes):
        channel.sendall(stdin)
    elif stdin is not None:  # a file (an upload without SFTP): streamed, never read whole
        for chunk in iter(lambda: stdin.read(1 << 20), b""):
            channel.sendall(chunk)
    channel.shutdown_write()  # EOF: a command that reads stdin gets no more
    channel.settimeout(_POLL_S)
    for recv, into in ((channel.recv, out), (channel.recv_stderr, err)):
        while True:
            while channel.recv_stderr_ready():
                err.append(channel.recv_stderr(1 << 16))
            try:
                chunk = recv(1 << 16)
            except TimeoutError:
                if time.monotonic() > deadline:
                    raise _CommandTimeout from None
                continue
            if not chunk:
                break
            into.append(chunk)
    if not channel.status_event.wait(max(0.0, deadline - time.monotonic())):
        raise _CommandTimeout
    if channel.exit_status == -1 and not _still_connected(channel.get_transport()):
        raise EOFError("the connection closed before the command's exit status came")
    return channel.recv_exit_status()


# How long a connection is watched after a channel closed without an exit status.
_PROBE_S = 2.0


def _still_connected(transport: paramiko.Transport | None) -> bool:
    """A channel that closed without an exit status: its command was killed by a signal on a
    live connection, or the connection is going down. When a dropped session kills the
    command and the sshd process serving it, sshd may close the channel before it dies and
    the socket ends (the CI run of 2026-12-02 read that as a failed command with no output).
    So the connection is watched for _PROBE_S: a keepalive is sent (no reply asked; on a
    dead socket the send fails or the reader sees the end), and the transport must stay up.
    A reply would not do: sshd can answer in the moment before it is killed. The 2 s are
    paid only by a command killed by a signal."""
    if transport is None or not transport.is_active():
        return False
    try:
        transport.global_request("keepalive@openssh.com", wait=False)
    except (paramiko.SSHException, OSError, EOFError):
        return False
    deadline = time.monotonic() + _PROBE_S
    while time.monotonic() < deadline:
        if not transport.is_active():
            return False
        time.sleep(0.02)
    return transport.is_active()


def _text(chunks: list[bytes]) -> str:
    return b"".join(chunks).decode("utf-8", "replace")


def _tail(text: str, lines: int = 20) -> str:
    return "\n".join(text.rstrip().splitlines()[-lines:])
