"""What `ssh` printed when it could not connect (exit 255 before the command started),
translated into the same errors, messages and hints as the paramiko connector's."""

from __future__ import annotations

import re

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

# OpenSSH 9.x wording (sshconnect.c, sshconnect2.c, ssh.c); checked against the real client
# by tests/ssh/test_openssh_connector.py.
_UNKNOWN = re.compile(r"No (\S+) host key is known for|Host key verification failed")
_CHANGED = re.compile(r"REMOTE HOST IDENTIFICATION HAS CHANGED")
_NEW_FINGERPRINT = re.compile(
    r"The fingerprint for the (\S+) key sent by the remote host is\s+(\S+?)\.?\s*$", re.M
)
_OFFENDING = re.compile(r"Offending \S+ key in .*:(\d+)")
_AUTH = re.compile(r"Permission denied \(|Too many authentication failures|Load key .*: ")
_REFUSED = re.compile(r"Connection refused")
_TIMEOUT = re.compile(r"timed out|Connection timed out|Operation timed out")
_NAME = re.compile(r"Could not resolve hostname \S+: (.*)")
_HANDSHAKE = re.compile(
    r"kex_exchange_identification|banner exchange|Unable to negotiate|invalid format"
)


def _last_line(stderr: str) -> str:
    lines = [line.strip() for line in stderr.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "ssh exited 255 with no message"


def translate(host: HostSpec, stderr: str) -> ConnectError:
    """The error for a connection `ssh` could not make (its exit status 255)."""
    where = f"{host.address}:{host.ssh_port}"
    entry = host_entry_name(host.address, host.ssh_port)
    path = known_hosts_path(host)
    if _CHANGED.search(stderr):
        lines = _OFFENDING.findall(stderr)
        at = f" (line {', '.join(lines)})" if lines else ""
        new = _NEW_FINGERPRINT.search(stderr)
        offered = f"{new.group(1).lower()} {new.group(2)}" if new else "another key"
        return HostKeyError(
            host=host.name,
            step="connect",
            message=f"the host key of {entry} CHANGED: {path}{at} has another key, the host "
            f"now offers {offered}. Refused: this could be another machine pretending to be "
            "this host",
            hint=f"if the host was reinstalled, remove the old key with "
            f"ssh-keygen -R '{entry}' -f {path} and connect again",
        )
    if _UNKNOWN.search(stderr):
        return HostKeyError(
            host=host.name,
            step="connect",
            message=f"the host key of {entry} is not in {path} and host_key_checking is `strict`",
            hint=f"check the fingerprint on the host, then add it: ssh-keyscan -p "
            f"{host.ssh_port} {host.address} >> {path} (or use `accept-new`)",
        )
    if _AUTH.search(stderr):
        key = host.identity_file or "the keys in ~/.ssh and the SSH agent"
        return AuthenticationError(
            host=host.name,
            step="connect",
            message=f"{where} refused the login of user `{host.user}` with {key}",
            hint=f"add the public key to ~{host.user}/.ssh/authorized_keys on the host "
            f"(ssh-copy-id -p {host.ssh_port} {host.user}@{host.address}), or fix "
            "`user`/`identity_file` in the site file",
        )
    name = _NAME.search(stderr)
    if name:
        return NameNotResolved(
            host=host.name,
            step="connect",
            message=f"the name {host.address} does not resolve: {name.group(1).strip()}",
            hint="check `address` in the site file, or use the host's IP address",
        )
    if _REFUSED.search(stderr):
        return ConnectionRefused(
            host=host.name,
            step="connect",
            message=f"connection to {where} refused: nothing listens there",
            hint="check that Remote Login (sshd) is on and that `ssh_port` is right",
        )
    if _TIMEOUT.search(stderr):
        return ConnectTimeout(
            host=host.name,
            step="connect",
            message=f"no answer from {where} within {host.connect_timeout_s:g} s",
            hint="check that the host is on and reachable; raise `connect_timeout_s` "
            "for a slow network",
        )
    if _HANDSHAKE.search(stderr):
        return ConnectError(
            host=host.name,
            step="connect",
            message=f"SSH handshake with {where} failed: {_last_line(stderr)}",
            hint="check that an SSH server (not another program) listens on that port",
        )
    return ConnectError(
        host=host.name,
        step="connect",
        message=f"cannot connect to {where}: {_last_line(stderr)}",
        hint="check that the host is on, reachable, and `address`/`ssh_port` are right",
    )
