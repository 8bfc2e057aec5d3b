"""`ssh_config`: a host's SSH settings as `ssh HOST` would take them from an OpenSSH client
config (~/.ssh/config), read by paramiko's own parser (paramiko.SSHConfig), so that `Host`
aliases, `HostName`, `User`, `Port`, `IdentityFile` and `ProxyJump` mean what they mean to
ssh. The site's own values win: a setting the site file gives is never replaced.

The config is looked up by the host's `address` (its name when the site gives none), the
word a user would type after `ssh`. ProxyJump's hops are looked up the same way (a hop is
often an alias of the same file) and reached one through the other with direct-tcpip
channels, as `ssh -J` does.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import paramiko

from localai_provision.connectors.ssh.errors import jump_error
from localai_provision.errors import ConnectError, UnreadableFile
from localai_provision.files import check_small_regular_file
from localai_provision.site.model import HostSpec

MAX_CONFIG_BYTES = 1 << 20  # an ssh config of a large lab is some KiB


@dataclass(frozen=True)
class Hop:
    """A jump host on the way (ProxyJump), as the config resolves it."""

    address: str
    port: int
    user: str | None
    identity_files: tuple[str, ...] = ()


@dataclass(frozen=True)
class Route:
    """How to reach a host: its settings with the config's applied, and the jump hosts."""

    spec: HostSpec
    identity_files: tuple[str, ...]  # the site's identity_file, or the config's IdentityFile
    jumps: tuple[Hop, ...] = ()


def route_for(spec: HostSpec) -> Route:
    """``spec`` as it is reached: unchanged without `ssh_config`."""
    own = (spec.identity_file,) if spec.identity_file else ()
    if spec.ssh_config is None:
        return Route(spec, own)
    config = read_config(spec)
    found = config.lookup(spec.address)
    site = set(spec.ssh_set_by_site)
    changes: dict[str, object] = {}
    if "address" not in site and found.get("hostname"):
        changes["address"] = found["hostname"]
    if "user" not in site and found.get("user"):
        changes["user"] = found["user"]
    if "ssh_port" not in site and found.get("port"):
        changes["ssh_port"] = _port(spec, found["port"])
    identities = own if "identity_file" in site else _identities(found) or own
    jumps = _jumps(spec, config, found.get("proxyjump"))
    return Route(dataclasses.replace(spec, **changes), identities, jumps)  # type: ignore[arg-type]


def read_config(spec: HostSpec) -> paramiko.SSHConfig:
    path = spec.ssh_config or ""
    try:
        check_small_regular_file(path, MAX_CONFIG_BYTES, "ssh_config")
        return paramiko.SSHConfig.from_path(path)
    except (OSError, UnreadableFile, paramiko.SSHException, ValueError) as exc:
        raise ConnectError(
            host=spec.name,
            step="connect",
            message=f"cannot read ssh_config {path}: {exc}",
            hint="fix that file, or set `ssh_config` to another one (or false)",
        ) from None


def _port(spec: HostSpec, text: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise ConnectError(
            host=spec.name,
            step="connect",
            message=f"ssh_config {spec.ssh_config} gives Port {text!r} for {spec.address}",
            hint="a port is a number from 1 to 65535",
        )
    return int(text)


def _identities(found: paramiko.SSHConfigDict) -> tuple[str, ...]:
    """The config's IdentityFile entries that exist (ssh skips the missing ones too)."""
    files: str | list[str] = found.get("identityfile") or []
    if isinstance(files, str):
        files = [files]
    return tuple(p for p in (os.path.expanduser(f) for f in files) if os.path.isfile(p))


def _jumps(spec: HostSpec, config: paramiko.SSHConfig, proxyjump: str | None) -> tuple[Hop, ...]:
    """ProxyJump's hops, first to last: `[user@]host[:port]`, comma-separated; `none`
    (OpenSSH's word for no jump) is none."""
    if not proxyjump or proxyjump.strip().lower() == "none":
        return ()
    hops = []
    for word in proxyjump.split(","):
        user, _, rest = word.strip().rpartition("@")
        name, port = rest, ""
        if rest.startswith("["):  # [::1]:2222
            name, _, port = rest[1:].partition("]")
            port = port.lstrip(":")
        elif rest.count(":") == 1:
            name, _, port = rest.partition(":")
        found = config.lookup(name)
        hops.append(
            Hop(
                address=found.get("hostname") or name,
                port=_port(spec, port or found.get("port") or "22"),
                user=user or found.get("user") or spec.user,
                identity_files=_identities(found),
            )
        )
    return tuple(hops)


def through_jumps(
    route: Route,
    kwargs: dict[str, Any],
    client_for: Callable[[HostSpec], paramiko.SSHClient],
    opened: list[paramiko.SSHClient],
) -> paramiko.Channel | None:
    """ProxyJump: connect to each hop through the one before (direct-tcpip, as `ssh -J`);
    the last hop's channel to the host is the socket its SSH session runs over."""
    sock: paramiko.Channel | None = None
    hops = route.jumps
    for i, hop in enumerate(hops):
        spec = dataclasses.replace(
            route.spec, address=hop.address, ssh_port=hop.port, user=hop.user
        )
        keys = hop.identity_files or route.identity_files
        hop_kwargs = {**kwargs, **({"key_filename": list(keys)} if keys else {})}
        client = client_for(spec)
        opened.append(client)  # closed with the connector
        target = hops[i + 1] if i + 1 < len(hops) else route.spec
        where = (target.address, target.port if isinstance(target, Hop) else target.ssh_port)
        try:
            client.connect(
                hop.address,
                port=hop.port,
                username=hop.user,
                sock=sock,
                **hop_kwargs,
            )
            transport = client.get_transport()
            assert transport is not None
            sock = transport.open_channel(
                "direct-tcpip", where, ("127.0.0.1", 0), timeout=route.spec.connect_timeout_s
            )
        except Exception as exc:  # noqa: BLE001 - every failure is said as the hop's
            raise jump_error(route.spec, spec, where, exc) from None
    return sock
