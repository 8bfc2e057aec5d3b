"""What `ssh` printed when it could not connect (exit 255 before the command started),
translated into the same errors, messages and hints as the paramiko connector's."""

from __future__ import annotations

import re

from localai_provision.connectors import connect_errors as errors
from localai_provision.errors import ConnectError
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
    """The error for a connection `ssh` could not make (its exit status 255), in the same
    words as the paramiko connector's (connect_errors.py)."""
    if _CHANGED.search(stderr):
        new = _NEW_FINGERPRINT.search(stderr)
        offered = f"{new.group(1).lower()} {new.group(2)}" if new else "another key"
        return errors.changed_host_key(host, _OFFENDING.findall(stderr), "another key", offered)
    if _UNKNOWN.search(stderr):
        return errors.unknown_host_key(host)
    if _AUTH.search(stderr):
        return errors.login_refused(host)
    name = _NAME.search(stderr)
    if name:
        return errors.name_not_resolved(host, name.group(1).strip())
    if _REFUSED.search(stderr):
        return errors.connection_refused(host)
    if _TIMEOUT.search(stderr):
        return errors.no_answer(host)
    if _HANDSHAKE.search(stderr):
        return errors.handshake_failed(host, _last_line(stderr))
    return errors.cannot_connect(host, _last_line(stderr))
