"""What JSON Schema cannot say about a site file: references between its parts, addresses,
settings that need each other once merged, and characters no value may hold.

These run even when the schema failed, so they must tolerate any shape: whatever is not the
expected type was already reported by the schema and is skipped here.
"""

from __future__ import annotations

import ipaddress
import json
import re
import socket
from typing import Any

from localai_provision.errors import Problem
from localai_provision.site.document import Document
from localai_provision.site.merge import merge_settings
from localai_provision.site.model import HUB_PREFIX, HostSpec, PullSettings, package_base_name
from localai_provision.tinymodel import BUILTIN_MODELS, BUILTIN_PREFIX

# Characters no value of a site file may hold, keys included: C0 controls (NUL, newline, tab,
# ESC...), DEL, C1 controls, Unicode's line and paragraph separators, and the invisible marks
# that reorder text on screen. A value is one line of text that reaches a command, a file or a
# terminal: a newline there ends a line early, a NUL cuts it (or stops apply with a traceback),
# ESC acts on the terminal, U+202E shows it backwards. No value legitimately needs one; a
# multi-line setting does not exist in the format.
_CONTROL = re.compile(
    "[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]"
)


def control_characters(doc: Document, value: Any, path: tuple[str | int, ...]) -> list[Problem]:
    problems: list[Problem] = []
    if isinstance(value, str):
        found = _CONTROL.search(value)
        if found:
            problems.append(doc.problem(path, _control_message(value, found.start())))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            problems += control_characters(doc, item, (*path, i))
    elif isinstance(value, dict):
        for key, item in value.items():
            found = _CONTROL.search(key) if isinstance(key, str) else None
            if found:
                problems.append(
                    doc.problem((*path, key), _control_message(key, found.start()), key=True)
                )
            problems += control_characters(doc, item, (*path, str(key)))
    return problems


def _control_message(text: str, index: int) -> str:
    code = ord(text[index])
    return (
        f"{json.dumps(text[:40])} holds the control character U+{code:04X} "
        f"(character {index + 1}); a value is one line of printable text: remove it"
    )


def cross_checks(doc: Document) -> list[Problem]:
    """What JSON Schema cannot say: references between parts of the file."""
    data: dict[str, Any] = doc.data
    groups = data.get("groups")
    groups = groups if isinstance(groups, dict) else {}
    hosts = data.get("hosts")
    if not isinstance(hosts, dict):
        return []
    problems: list[Problem] = []
    if isinstance(data.get("defaults"), dict):
        problems += _check_builtin_sources(doc, ("defaults",), data["defaults"])
    for group_name, group in groups.items():
        if isinstance(group, dict):
            problems += _check_builtin_sources(doc, ("groups", group_name), group)
    seen_endpoints: dict[tuple[str, int], str] = {}
    unpinned: list[str] = []
    for name, host in hosts.items():
        if isinstance(host, dict):
            problems += _check_host(doc, name, host, groups, seen_endpoints, unpinned)
    problems += _unpinned_server(doc, unpinned, len(hosts))
    return problems


def _check_host(
    doc: Document,
    name: str,
    host: dict[str, Any],
    groups: dict[str, Any],
    seen_endpoints: dict[tuple[str, int], str],
    unpinned: list[str],
) -> list[Problem]:
    """Every rule for one host, in the order they are reported. ``seen_endpoints`` and
    ``unpinned`` collect what the rules across hosts need."""
    problems = _check_groups_known(doc, name, host, groups)
    problems += _check_builtin_sources(doc, ("hosts", name), host)
    problems += _check_push_needs_lock(doc, name)
    address = host.get("address", name)
    if not isinstance(address, str):
        return problems
    problems += _check_address(doc, name, host, address)
    try:
        merged = merge_settings(doc.data, name)
    except (TypeError, AttributeError, KeyError):
        return problems  # a malformed group or defaults, already reported by the schema
    problems += _check_pull_complete(doc, name, host, merged)
    if _lacks_server_pin(merged):
        unpinned.append(name)
    problems += _check_endpoint_unique(doc, name, host, address, merged, seen_endpoints)
    return problems


def _check_groups_known(
    doc: Document, name: str, host: dict[str, Any], groups: dict[str, Any]
) -> list[Problem]:
    host_groups = host.get("groups", [])
    problems = []
    for i, group in enumerate(host_groups if isinstance(host_groups, list) else []):
        if isinstance(group, str) and group not in groups:
            known = ", ".join(sorted(groups)) or "none are defined"
            problems.append(
                doc.problem(
                    ("hosts", name, "groups", i),
                    f"unknown group `{group}` (groups: {known}); define it under `groups:`",
                )
            )
    return problems


def _check_address(doc: Document, name: str, host: dict[str, Any], address: str) -> list[Problem]:
    bad_ip = _bad_ip(address)
    if not bad_ip:
        return []
    # Without `address` the host's name is its address, so the name must be one too.
    where = ("hosts", name, "address") if "address" in host else ("hosts", name)
    return [doc.problem(where, bad_ip, key="address" not in host)]


def _check_pull_complete(
    doc: Document, name: str, host: dict[str, Any], merged: dict[str, Any]
) -> list[Problem]:
    pull = merged.get("pull")
    if not isinstance(pull, dict) or not pull.get("enabled", PullSettings.enabled):
        return []
    missing = [k for k in ("checkout", "site") if not pull.get(k)]
    if not missing:
        return []
    where = ("hosts", name, "pull") if "pull" in host else ("hosts", name)
    return [
        doc.problem(
            where,
            f"`pull` needs {' and '.join(f'`{k}`' for k in missing)} (after "
            "merging defaults and groups): where the git checkout is on the host, "
            "and the site file in it",
            key=True,
        )
    ]


def _lacks_server_pin(merged: dict[str, Any]) -> bool:
    # layout imports the site model, which imports this package: import it when used.
    from localai_provision.layout import SERVER_PACKAGE

    packages = merged.get("packages", {})
    return isinstance(packages, dict) and not any(
        isinstance(k, str) and package_base_name(k) == SERVER_PACKAGE for k in packages
    )


def _check_endpoint_unique(
    doc: Document,
    name: str,
    host: dict[str, Any],
    address: str,
    merged: dict[str, Any],
    seen_endpoints: dict[tuple[str, int], str],
) -> list[Problem]:
    """Two hosts on one SSH server are one machine, provisioned twice."""
    port = merged.get("ssh_port", HostSpec.ssh_port)
    if merged.get("connection", HostSpec.connection) != "ssh" or not isinstance(port, int):
        return []
    endpoint = (_machine_address(address), port)
    if endpoint not in seen_endpoints:
        seen_endpoints[endpoint] = name
        return []
    path = ("hosts", name, "address") if "address" in host else ("hosts", name)
    first = seen_endpoints[endpoint]
    first_address = doc.data["hosts"][first].get("address", first)
    return [
        doc.problem(
            path,
            f"host `{name}` has the same address and SSH port "
            f"({_endpoint_text(address, port)}) as `{first}` "
            f"({_endpoint_text(first_address, port)}); "
            "each host must be a different machine",
            key="address" not in host,
        )
    ]


def _unpinned_server(doc: Document, unpinned: list[str], host_count: int) -> list[Problem]:
    """Every host needs the server's exact version: without it there is nothing to install
    (plan passed, and apply stopped with a traceback)."""
    from localai_provision.layout import SERVER_PACKAGE

    pin = f"add `{SERVER_PACKAGE}: VERSION` (such as 0.5.1) under `packages:`"
    if unpinned and len(unpinned) == host_count:
        return [
            doc.problem(
                ("hosts",),
                f"no host pins `{SERVER_PACKAGE}`, the server to install; {pin} "
                "in `defaults:` (for every host)",
                key=True,
            )
        ]
    return [
        doc.problem(
            ("hosts", name),
            f"host `{name}` has no `{SERVER_PACKAGE}` in `packages` (after merging defaults "
            f"and groups); {pin} of the host, one of its groups, or `defaults:`",
            key=True,
        )
        for name in unpinned
    ]


def _endpoint_text(address: str, port: int) -> str:
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


def _machine_address(address: str) -> str:
    """One spelling of an address, so that two hosts on one SSH server are found however the
    address is written: letter case and a final dot (`Mini.lab.` is `mini.lab`), IPv6 in any
    form (`0:0:0:0:0:0:0:1` is `::1`), an IPv4 address mapped into IPv6, and the IPv4 forms
    ssh accepts (`127.1`, `0x7f.0.0.1`). Names are not resolved: two names of one machine are
    not found."""
    text = address.lower().rstrip(".")
    host, percent, zone = text.partition("%")
    ip: ipaddress.IPv4Address | ipaddress.IPv6Address | None = None
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        if re.fullmatch(r"[0-9][0-9a-fx.]*", host):
            try:
                ip = ipaddress.IPv4Address(socket.inet_aton(host))
            except OSError:
                ip = None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return (str(ip) if ip is not None else host) + percent + zone


_MODEL_ID = re.compile(
    r"^(?!.*(--|\.\.))[A-Za-z0-9][A-Za-z0-9._-]{0,95}/[A-Za-z0-9][A-Za-z0-9._-]{0,95}$"
)


def _check_push_needs_lock(doc: Document, name: str) -> list[Problem]:
    """`package_index.push` sends the locked wheels: without a lock there is no exact set
    (and no hashes) to send."""
    data: dict[str, Any] = doc.data
    try:
        merged = merge_settings(data, name)
    except (TypeError, AttributeError, KeyError):
        return []  # a shape the schema already reported
    index = merged.get("package_index")
    if not isinstance(index, dict) or index.get("push") is not True or merged.get("lock"):
        return []
    host = data["hosts"][name] or {}
    places: list[tuple[Any, ...]] = [("hosts", name)]
    places += [("groups", g) for g in reversed(host.get("groups", []))]
    places.append(("defaults",))
    for place in places:
        section: Any = data
        for key in place:
            section = section.get(key) if isinstance(section, dict) else None
        index = section.get("package_index") if isinstance(section, dict) else None
        if isinstance(index, dict) and "push" in index:
            return [
                doc.problem(
                    (*place, "package_index", "push"),
                    f"host `{name}`: `push` sends the locked wheels, but the host has no "
                    "`lock`; add `lock:` (and run `localai lock`) or remove `push`",
                )
            ]
    return []


def _check_builtin_sources(
    doc: Document, path: tuple[str, ...], settings: dict[str, Any]
) -> list[Problem]:
    problems = []
    entries = settings.get("models")
    for i, entry in enumerate(entries if isinstance(entries, list) else []):
        source = entry.get("source") if isinstance(entry, dict) else None
        if (
            isinstance(source, str)
            and source.startswith(HUB_PREFIX)
            and not _MODEL_ID.match(source.removeprefix(HUB_PREFIX))
        ):
            problems.append(
                doc.problem(
                    (*path, "models", i, "source"),
                    f"`{source}` is not `{HUB_PREFIX}ORG/NAME`, a model id the controller "
                    "downloads, such as hf:mlx-community/Qwen3-4B-4bit",
                )
            )
        if isinstance(source, str) and source.startswith(BUILTIN_PREFIX):
            name = source.removeprefix(BUILTIN_PREFIX)
            if name not in BUILTIN_MODELS:
                problems.append(
                    doc.problem(
                        (*path, "models", i, "source"),
                        f"unknown built-in model `{name}`; built in: "
                        + ", ".join(f"{BUILTIN_PREFIX}{m}" for m in BUILTIN_MODELS),
                    )
                )
    return problems


def _bad_ip(address: str) -> str | None:
    parts = address.split(".")
    if len(parts) == 4 and all(p.isdigit() for p in parts):
        try:
            ipaddress.IPv4Address(address)
        except ValueError:
            return f"{address} is not a valid IPv4 address (each part is 0-255)"
    if ":" in address:
        try:
            ipaddress.IPv6Address(address.split("%")[0])
        except ValueError:
            return f"{address} is not a valid IPv6 address"
    return None
