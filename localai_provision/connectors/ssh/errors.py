"""What went wrong while connecting, in the project's own words: paramiko's and the socket's
exceptions translated into errors.py's tree, each with what to do about it."""

from __future__ import annotations

import errno
import socket

import paramiko

from localai_provision.connectors import connect_errors as errors
from localai_provision.connectors.ssh.hostkeys import (
    _fingerprint,
    _host_entry_name,
    _known_hosts_lines,
    _UnknownHostKey,
    known_hosts_path,
)
from localai_provision.errors import ConnectError
from localai_provision.site.model import HostSpec


def connect_error(host: HostSpec, exc: BaseException) -> ConnectError | None:
    """The project's own error, with a hint, for what paramiko or the socket raised while
    connecting; None for anything else (raised as it is). The words: connect_errors.py."""
    if isinstance(exc, _UnknownHostKey):
        return errors.unknown_host_key(host, _fingerprint(exc.key))
    if isinstance(exc, paramiko.BadHostKeyException):
        lines = _known_hosts_lines(
            known_hosts_path(host), _host_entry_name(host.address, host.ssh_port)
        )
        expected, offered = _fingerprint(exc.expected_key), _fingerprint(exc.key)
        return errors.changed_host_key(host, lines, expected, offered)
    if isinstance(exc, paramiko.AuthenticationException):
        return errors.login_refused(host)
    if isinstance(exc, socket.gaierror):
        return errors.name_not_resolved(host, str(exc.strerror))
    if isinstance(exc, paramiko.ssh_exception.NoValidConnectionsError):
        codes = {getattr(e, "errno", None) for e in exc.errors.values()}
        if codes & {errno.ECONNREFUSED}:
            return errors.connection_refused(host)
        return errors.cannot_connect(host, exc, hint=False)
    if isinstance(exc, (TimeoutError, socket.timeout)):
        return errors.no_answer(host)
    if isinstance(exc, OSError):
        return errors.cannot_connect(host, exc.strerror or str(exc))
    if isinstance(exc, paramiko.SSHException):
        return errors.handshake_failed(host, exc)
    return None


def jump_error(
    host: HostSpec, hop: HostSpec, target: tuple[str, int], exc: BaseException
) -> ConnectError:
    """A ProxyJump hop that could not be reached, or could not open the way on to
    ``target``: said as the hop's failure, so the user fixes the right line of ssh_config."""
    where = f"jump host {hop.address}:{hop.ssh_port}"
    if isinstance(exc, paramiko.ChannelException):
        return ConnectError(
            host=host.name,
            step="connect",
            message=f"{where} could not open a connection on to {target[0]}:{target[1]}: "
            f"{exc.text or exc}",
            hint="check the next hop's address and port in ssh_config, and that the jump "
            "host allows TCP forwarding (AllowTcpForwarding)",
        )
    translated = connect_error(hop, exc) if not isinstance(exc, ConnectError) else exc
    reason = translated.message if translated else f"{type(exc).__name__}: {exc}"
    return type(translated or ConnectError(host.name, ""))(
        host=host.name,
        step="connect",
        message=f"through {where}: {reason}",
        hint=translated.hint if translated else "check the ProxyJump line of ssh_config",
    )
