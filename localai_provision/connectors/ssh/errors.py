"""What went wrong while connecting, in the project's own words: paramiko's and the socket's
exceptions translated into errors.py's tree, each with what to do about it."""

from __future__ import annotations

import errno
import socket

import paramiko

from localai_provision.connectors.ssh.hostkeys import (
    _fingerprint,
    _host_entry_name,
    _known_hosts_lines,
    _UnknownHostKey,
    known_hosts_path,
)
from localai_provision.errors import (
    AuthenticationError,
    ConnectError,
    ConnectionRefused,
    ConnectTimeout,
    HostKeyError,
    NameNotResolved,
)
from localai_provision.site.model import HostSpec


def connect_error(host: HostSpec, exc: BaseException) -> ConnectError | None:
    """The project's own error, with a hint, for what paramiko or the socket raised while
    connecting; None for anything else (raised as it is)."""
    where = f"{host.address}:{host.ssh_port}"
    entry = _host_entry_name(host.address, host.ssh_port)
    path = known_hosts_path(host)
    if isinstance(exc, _UnknownHostKey):
        return HostKeyError(
            host=host.name,
            step="connect",
            message=f"the host key of {entry} ({_fingerprint(exc.key)}) is not in {path} "
            "and host_key_checking is `strict`",
            hint=f"check the fingerprint on the host, then add it: ssh-keyscan -p "
            f"{host.ssh_port} {host.address} >> {path} (or use `accept-new`)",
        )
    if isinstance(exc, paramiko.BadHostKeyException):
        lines = _known_hosts_lines(path, entry)
        at = f" (line {', '.join(map(str, lines))})" if lines else ""
        return HostKeyError(
            host=host.name,
            step="connect",
            message=f"the host key of {entry} CHANGED: {path}{at} has "
            f"{_fingerprint(exc.expected_key)}, the host now offers "
            f"{_fingerprint(exc.key)}. Refused: this could be another machine "
            "pretending to be this host",
            hint=f"if the host was reinstalled, remove the old key with "
            f"ssh-keygen -R '{entry}' -f {path} and connect again",
        )
    if isinstance(exc, paramiko.AuthenticationException):
        key = host.identity_file or "the keys in ~/.ssh and the SSH agent"
        return AuthenticationError(
            host=host.name,
            step="connect",
            message=f"{where} refused the login of user `{host.user}` with {key}",
            hint=f"add the public key to ~{host.user}/.ssh/authorized_keys on the host "
            f"(ssh-copy-id -p {host.ssh_port} {host.user}@{host.address}), or fix "
            "`user`/`identity_file` in the site file",
        )
    if isinstance(exc, socket.gaierror):
        return NameNotResolved(
            host=host.name,
            step="connect",
            message=f"the name {host.address} does not resolve: {exc.strerror}",
            hint="check `address` in the site file, or use the host's IP address",
        )
    if isinstance(exc, paramiko.ssh_exception.NoValidConnectionsError):
        codes = {getattr(e, "errno", None) for e in exc.errors.values()}
        if codes & {errno.ECONNREFUSED}:
            return ConnectionRefused(
                host=host.name,
                step="connect",
                message=f"connection to {where} refused: nothing listens there",
                hint="check that Remote Login (sshd) is on and that `ssh_port` is right",
            )
        return ConnectError(
            host=host.name, step="connect", message=f"cannot connect to {where}: {exc}"
        )
    if isinstance(exc, (TimeoutError, socket.timeout)):
        return ConnectTimeout(
            host=host.name,
            step="connect",
            message=f"no answer from {where} within {host.connect_timeout_s:g} s",
            hint="check that the host is on and reachable; raise `connect_timeout_s` "
            "for a slow network",
        )
    if isinstance(exc, OSError):
        reason = exc.strerror or str(exc)
        return ConnectError(
            host=host.name,
            step="connect",
            message=f"cannot connect to {where}: {reason}",
            hint="check that the host is on, reachable, and `address`/`ssh_port` are right",
        )
    if isinstance(exc, paramiko.SSHException):
        return ConnectError(
            host=host.name,
            step="connect",
            message=f"SSH handshake with {where} failed: {exc}",
            hint="check that an SSH server (not another program) listens on that port",
        )
    return None
