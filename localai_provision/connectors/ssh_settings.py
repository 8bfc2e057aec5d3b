"""What both SSH connectors agree on about known_hosts, without importing either client."""

from __future__ import annotations

import os
from pathlib import Path

from localai_provision.errors import AuthenticationError, HostKeyError, UnreadableFile
from localai_provision.files import MAX_KEY_BYTES, MAX_KNOWN_HOSTS_BYTES, check_small_regular_file
from localai_provision.site.model import HostSpec


def known_hosts_path(host: HostSpec) -> Path:
    return Path(os.path.expanduser(host.known_hosts_file))


def host_entry_name(address: str, port: int) -> str:
    """How known_hosts names a host: `addr` on port 22, `[addr]:port` otherwise."""
    return address if port == 22 else f"[{address}]:{port}"


def unreadable_known_hosts(host: HostSpec, path: object, exc: object) -> HostKeyError:
    return HostKeyError(
        host=host.name,
        step="connect",
        message=f"cannot read known_hosts file {path}: {exc}",
        hint="fix or move that file",
    )


def check_local_files(host: HostSpec) -> None:
    """The site's identity_file and known_hosts_file, checked before any connection: missing,
    /dev/zero, a FIFO or a huge file is an error that names the setting (an SSH client would
    read such a file whole, or hang on it)."""
    if host.identity_file and not os.path.exists(host.identity_file):
        raise AuthenticationError(
            host=host.name,
            step="connect",
            message=f"identity_file {host.identity_file} does not exist on this machine",
            hint="fix `identity_file` in the site file, or create the key with "
            f"ssh-keygen -t ed25519 -f {host.identity_file}",
        )
    if host.identity_file:
        try:
            check_small_regular_file(host.identity_file, MAX_KEY_BYTES, "identity_file")
        except UnreadableFile as exc:
            raise AuthenticationError(
                host=host.name, step="connect", message=str(exc), hint=exc.hint
            ) from None
    path = known_hosts_path(host)
    if host.host_key_checking != "off" and path.exists():
        try:
            check_small_regular_file(path, MAX_KNOWN_HOSTS_BYTES, "known_hosts_file")
        except (OSError, UnreadableFile) as exc:
            raise unreadable_known_hosts(host, path, exc) from None


def host_key_checking_warning(host: HostSpec) -> str | None:
    if host.host_key_checking != "off":
        return None
    return (
        f"host key checking is off for {host.name}: a machine pretending to be it "
        "would not be noticed; use `accept-new` or `strict`"
    )
