"""The errors of a connection that could not be made, in the project's words, each with what
to do: one vocabulary for both connectors (connectors/ssh/errors.py translates paramiko's
exceptions, connectors/openssh/errors.py what `ssh` printed). Imports neither client."""

from __future__ import annotations

from localai_provision.connectors.ssh_settings import host_entry_name, known_hosts_path
from localai_provision.errors import (
    AuthenticationError,
    ConnectError,
    ConnectionRefused,
    ConnectTimeout,
    HostKeyError,
    NameNotResolved,
)
from localai_provision.site.model import HostSpec

STEP = "connect"


def _where(host: HostSpec) -> str:
    return f"{host.address}:{host.ssh_port}"


def unknown_host_key(host: HostSpec, fingerprint: str | None = None) -> HostKeyError:
    entry = host_entry_name(host.address, host.ssh_port)
    path = known_hosts_path(host)
    shown = f" ({fingerprint})" if fingerprint else ""
    return HostKeyError(
        host=host.name,
        step=STEP,
        message=f"the host key of {entry}{shown} is not in {path} "
        "and host_key_checking is `strict`",
        hint=f"check the fingerprint on the host, then add it: ssh-keyscan -p "
        f"{host.ssh_port} {host.address} >> {path} (or use `accept-new`)",
    )


def changed_host_key(
    host: HostSpec, lines: list[int] | list[str], expected: str, offered: str
) -> HostKeyError:
    """``lines``: where known_hosts has the old key; ``expected``: what it records."""
    entry = host_entry_name(host.address, host.ssh_port)
    path = known_hosts_path(host)
    at = f" (line {', '.join(map(str, lines))})" if lines else ""
    return HostKeyError(
        host=host.name,
        step=STEP,
        message=f"the host key of {entry} CHANGED: {path}{at} has {expected}, the host now "
        f"offers {offered}. Refused: this could be another machine pretending to be this host",
        hint=f"if the host was reinstalled, remove the old key with "
        f"ssh-keygen -R '{entry}' -f {path} and connect again",
    )


def login_refused(host: HostSpec) -> AuthenticationError:
    key = host.identity_file or "the keys in ~/.ssh and the SSH agent"
    return AuthenticationError(
        host=host.name,
        step=STEP,
        message=f"{_where(host)} refused the login of user `{host.user}` with {key}",
        hint=f"add the public key to ~{host.user}/.ssh/authorized_keys on the host "
        f"(ssh-copy-id -p {host.ssh_port} {host.user}@{host.address}), or fix "
        "`user`/`identity_file` in the site file",
    )


def name_not_resolved(host: HostSpec, reason: str) -> NameNotResolved:
    return NameNotResolved(
        host=host.name,
        step=STEP,
        message=f"the name {host.address} does not resolve: {reason}",
        hint="check `address` in the site file, or use the host's IP address",
    )


def connection_refused(host: HostSpec) -> ConnectionRefused:
    return ConnectionRefused(
        host=host.name,
        step=STEP,
        message=f"connection to {_where(host)} refused: nothing listens there",
        hint="check that Remote Login (sshd) is on and that `ssh_port` is right",
    )


def no_answer(host: HostSpec) -> ConnectTimeout:
    return ConnectTimeout(
        host=host.name,
        step=STEP,
        message=f"no answer from {_where(host)} within {host.connect_timeout_s:g} s",
        hint="check that the host is on and reachable; raise `connect_timeout_s` "
        "for a slow network",
    )


def handshake_failed(host: HostSpec, detail: object) -> ConnectError:
    return ConnectError(
        host=host.name,
        step=STEP,
        message=f"SSH handshake with {_where(host)} failed: {detail}",
        hint="check that an SSH server (not another program) listens on that port",
    )


def cannot_connect(host: HostSpec, reason: object, *, hint: bool = True) -> ConnectError:
    return ConnectError(
        host=host.name,
        step=STEP,
        message=f"cannot connect to {_where(host)}: {reason}",
        hint="check that the host is on, reachable, and `address`/`ssh_port` are right"
        if hint
        else "",
    )
