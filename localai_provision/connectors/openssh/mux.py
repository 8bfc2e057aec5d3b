"""A command through a live OpenSSH master without starting `ssh`: the client side of the
master's control protocol (OpenSSH's PROTOCOL.mux: a hello, a new-session request, the three
standard streams passed as file descriptors, then the exit message).

Why: an `ssh` client process per command costs 9.5 ms of controller CPU here (exec, reading
its configuration, the same protocol), this about 1 ms; a repeated drift of 100 hosts paid
almost a second of CPU for those processes alone (issue 19). Anything unexpected before the
session is open raises MuxUnavailable, and the connector starts `ssh` instead.
"""

from __future__ import annotations

import array
import contextlib
import os
import selectors
import socket
import struct
import time
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

MUX_VERSION = 4
MSG_HELLO = 0x00000001
C_NEW_SESSION = 0x10000002
S_PERMISSION_DENIED = 0x80000002
S_FAILURE = 0x80000003
S_EXIT_MESSAGE = 0x80000004
S_SESSION_OPENED = 0x80000006
S_TTY_ALLOC_FAIL = 0x80000008
NO_ESCAPE = 0xFFFFFFFF
_MAX_PACKET = 256 * 1024


class MuxUnavailable(Exception):
    """The master could not take the session: start `ssh` instead (nothing ran)."""


class MuxLost(Exception):
    """The session was open and the master went away before its exit status."""


@dataclass(frozen=True)
class MuxResult:
    exit_status: int | None  # None: cut by the deadline or by ``cancelled``
    stdout: bytes
    stderr: bytes


def _string(data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + data


def _send(sock: socket.socket, *fields: int | bytes) -> None:
    body = b"".join(struct.pack(">I", f) if isinstance(f, int) else _string(f) for f in fields)
    sock.sendall(_string(body))


def _recv_exact(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise EOFError("the master closed the control connection")
        data += chunk
    return data


def _recv(sock: socket.socket) -> tuple[int, bytes]:
    (size,) = struct.unpack(">I", _recv_exact(sock, 4))
    if not 4 <= size <= _MAX_PACKET:
        raise EOFError(f"a control packet of {size} bytes")
    body = _recv_exact(sock, size)
    return struct.unpack(">I", body[:4])[0], body[4:]


def _open_session(sock: socket.socket, command: str, fds: tuple[int, int, int]) -> None:
    """Hello, the session request and the three descriptors, then the master's word."""
    try:
        _send(sock, MSG_HELLO, MUX_VERSION)
        kind, body = _recv(sock)
        if kind != MSG_HELLO or struct.unpack(">I", body[:4])[0] != MUX_VERSION:
            raise MuxUnavailable("the master speaks another protocol version")
        # reserved, tty, X11, agent, subsystem, escape char, terminal type, command
        _send(sock, C_NEW_SESSION, 1, b"", 0, 0, 0, 0, NO_ESCAPE, b"", command.encode())
        for fd in fds:  # one byte each, with the descriptor (monitor_fdpass.c)
            sock.sendmsg([b"\0"], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [fd]))])
        kind, body = _recv(sock)
    except (OSError, EOFError, struct.error) as exc:
        raise MuxUnavailable(str(exc) or type(exc).__name__) from None
    if kind != S_SESSION_OPENED:
        raise MuxUnavailable(f"the master refused the session ({kind:#x})")


def run_via_master(
    control: Path,
    command: str,
    stdin: bytes | BinaryIO | None,
    deadline: float,
    cancelled: list[bool],
) -> MuxResult:
    """Run ``command`` through the master listening on ``control``."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    feed_w: int | None = None
    if isinstance(stdin, bytes):
        in_r, feed_w = os.pipe()
    elif stdin is not None:
        in_r = os.dup(stdin.fileno())
    else:
        in_r = os.open(os.devnull, os.O_RDONLY)
    ours = [out_r, err_r]
    try:
        try:
            sock.connect(str(control))
        except OSError as exc:
            raise MuxUnavailable(str(exc)) from None
        try:
            _open_session(sock, command, (in_r, out_w, err_w))
        finally:
            for fd in (in_r, out_w, err_w):  # the master holds its own copies now
                os.close(fd)
        return _pump(
            sock,
            out_r,
            err_r,
            feed_w,
            stdin if isinstance(stdin, bytes) else b"",
            deadline,
            cancelled,
        )
    finally:
        sock.close()
        for fd in ours:
            with contextlib.suppress(OSError):
                os.close(fd)


def _pump(
    sock: socket.socket,
    out_r: int,
    err_r: int,
    feed_w: int | None,
    feed: bytes,
    deadline: float,
    cancelled: list[bool],
) -> MuxResult:
    """Stream stdin in, both outputs out, and wait for the exit message (polls once a
    second for ``cancelled``: close() from another thread)."""
    chunks: dict[int, list[bytes]] = {out_r: [], err_r: []}
    selector = selectors.DefaultSelector()
    for fd in (out_r, err_r):
        selector.register(fd, selectors.EVENT_READ)
    selector.register(sock, selectors.EVENT_READ)
    if feed_w is not None:
        os.set_blocking(feed_w, False)
        selector.register(feed_w, selectors.EVENT_WRITE)
    status: int | None = None
    control_open = True
    sent = 0
    try:
        while control_open or any(fd in selector.get_map() for fd in (out_r, err_r)):
            if cancelled[0] or time.monotonic() > deadline:
                return MuxResult(None, b"".join(chunks[out_r]), b"".join(chunks[err_r]))
            wait = min(1.0, max(0.0, deadline - time.monotonic()))
            for key, _ in selector.select(timeout=wait):
                if key.fd == feed_w:
                    sent += _write_some(feed_w, feed, sent)
                    if sent >= len(feed):
                        selector.unregister(feed_w)
                        os.close(feed_w)
                        feed_w = None
                elif key.fd in chunks:
                    data = os.read(key.fd, 1 << 16)
                    if data:
                        chunks[key.fd].append(data)
                    else:
                        selector.unregister(key.fd)
                else:
                    status = _exit_status(sock)
                    selector.unregister(sock)
                    control_open = False
    finally:
        selector.close()
        if feed_w is not None:
            os.close(feed_w)
    if status is None:
        raise MuxLost("the master went away before the command's exit status")
    return MuxResult(status, b"".join(chunks[out_r]), b"".join(chunks[err_r]))


def _write_some(fd: int, data: bytes, offset: int) -> int:
    try:
        return os.write(fd, data[offset : offset + (1 << 16)])
    except BlockingIOError:
        return 0
    except BrokenPipeError:  # the command does not read its stdin: the rest is dropped
        return len(data) - offset


def _exit_status(sock: socket.socket) -> int | None:
    """The exit message's status; None when the master closed without one (lost)."""
    try:
        while True:
            kind, body = _recv(sock)
            if kind == S_EXIT_MESSAGE:
                return int(struct.unpack(">II", body[:8])[1])
            if kind in (S_FAILURE, S_PERMISSION_DENIED):
                return None
            # S_TTY_ALLOC_FAIL and anything newer: not ours, read on
    except (OSError, EOFError, struct.error):
        return None
