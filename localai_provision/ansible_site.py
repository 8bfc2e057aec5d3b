"""`localai import ansible`: an Ansible inventory as a site file (YAML text) that validates.

Ansible's connection variables become the site's keys; every other variable is named in a
comment above where it was set, and in the warnings, never dropped silently, and its value
is never written (it may be a password: ansible_become_pass). Ansible's `children` become
each host's `groups`, ancestors first, so that a child group's settings override its
parent's as in Ansible; the `all` group's vars become `defaults`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import yaml

from localai_provision.ansible_inventory import Inventory

# Ansible's variable -> the site's key (and the older ansible_ssh_* spellings).
KEYS = {
    "ansible_host": "address",
    "ansible_ssh_host": "address",
    "ansible_port": "ssh_port",
    "ansible_ssh_port": "ssh_port",
    "ansible_user": "user",
    "ansible_ssh_user": "user",
    "ansible_ssh_private_key_file": "identity_file",
    "ansible_private_key_file": "identity_file",
    "ansible_python_interpreter": "python",
    "ansible_connection": "connection",
}
CONNECTIONS = {"ssh": "ssh", "paramiko": "ssh", "smart": "ssh", "local": "local"}
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
SKIPPED_GROUPS = ("all", "ungrouped")


@dataclass(frozen=True)
class Entry:
    """One mapping of the site file (defaults, a group or a host) and what was left out."""

    settings: dict[str, Any]
    not_imported: tuple[str, ...] = ()


@dataclass(frozen=True)
class Imported:
    defaults: Entry
    groups: dict[str, Entry]
    hosts: dict[str, Entry]
    warnings: tuple[str, ...] = field(default=())


def convert(variables: dict[str, Any], host: bool) -> Entry:
    settings: dict[str, Any] = {}
    left: list[str] = []
    for name, value in variables.items():
        key = KEYS.get(name)
        if key == "address" and not host:
            key = None  # the site has an address per host only
        if key == "connection":
            value = CONNECTIONS.get(str(value))
            key = key if value else None
        if key is None:
            left.append(name)
        elif key == "ssh_port":
            settings[key] = int(value)
        else:
            settings[key] = str(value)
    return Entry(settings, tuple(left))


def ancestry(inv: Inventory) -> dict[str, list[str]]:
    """Each group's ancestors (parents first, then theirs), from `children`."""
    parents: dict[str, list[str]] = {}
    for name, group in inv.groups.items():
        for child in group.children:
            parents.setdefault(child, []).append(name)

    def up(name: str, seen: tuple[str, ...]) -> list[str]:
        found: list[str] = []
        for parent in parents.get(name, []):
            if parent in seen:
                continue  # a loop of children: Ansible refuses it; here it ends the walk
            for g in [*up(parent, (*seen, name)), parent]:
                if g not in found:
                    found.append(g)
        return found

    return {name: up(name, ()) for name in inv.groups}


def host_groups(inv: Inventory, host: str, ancestors: dict[str, list[str]]) -> list[str]:
    ordered: list[str] = []
    for name, group in inv.groups.items():
        if host in group.hosts:
            for g in [*ancestors.get(name, []), name]:
                if g not in ordered and g not in SKIPPED_GROUPS:
                    ordered.append(g)
    return ordered


def import_inventory(inv: Inventory, file: str, server_version: str) -> Imported:
    warnings: list[str] = []
    names = {g: site_name(g) for g in inv.groups if g not in SKIPPED_GROUPS}
    all_vars = convert(inv.group("all").vars, host=False)
    defaults = Entry(
        {**all_vars.settings, "packages": {"mlx-omni-server": server_version}},
        all_vars.not_imported,
    )
    groups = {names[g]: convert(inv.groups[g].vars, host=False) for g in names}
    ancestors = ancestry(inv)
    hosts: dict[str, Entry] = {}
    for host, variables in inv.hosts.items():
        entry = convert(variables, host=True)
        settings = dict(entry.settings)
        name = site_name(host)
        if name != host and "address" not in settings:
            settings["address"] = host
        member_of = [names[g] for g in host_groups(inv, host, ancestors)]
        if member_of:
            settings["groups"] = member_of
        hosts[name] = Entry(settings, entry.not_imported)
        if name != host:
            warnings.append(
                f"{file}: host {host!r} is named {name!r} (a site name is letters, "
                "digits, '.', '_', '-')"
            )
    for where, entry in [("all", defaults), *groups.items(), *hosts.items()]:
        if entry.not_imported:
            warnings.append(
                f"{file}: {where}: not imported (no site setting): {', '.join(entry.not_imported)}"
            )
    return Imported(defaults, groups, hosts, tuple(warnings))


def site_name(name: str) -> str:
    if _NAME.match(name):
        return name
    cleaned = re.sub(r"[^A-Za-z0-9._-]", "-", name).strip("-._")[:63] or "host"
    return cleaned if cleaned[0].isalnum() else f"h{cleaned}"[:63]


def _flow(value: Any) -> str:
    return yaml.safe_dump(value, default_flow_style=True, width=10_000, sort_keys=False).strip()


def _entry_lines(name: str, entry: Entry, indent: str) -> list[str]:
    lines = []
    if entry.not_imported:
        lines.append(f"{indent}# not imported (no site setting): {', '.join(entry.not_imported)}")
    lines.append(f"{indent}{_flow({name: entry.settings})[1:-1]}")
    return lines


def site_text(imported: Imported, source: str) -> str:
    """The site file: one line per group and host, comments where variables were left."""
    lines = [
        f"# Imported from the Ansible inventory {source} by `localai import ansible`.",
        "# Check the package pins and add models: docs/site-format.md.",
        "version: 1",
    ]
    lines += _entry_lines("defaults", imported.defaults, "")
    if imported.groups:
        lines.append("groups:")
        for name, entry in imported.groups.items():
            lines += _entry_lines(name, entry, "  ")
    lines.append("hosts:")
    for name, entry in imported.hosts.items():
        lines += _entry_lines(name, entry, "  ")
    return "\n".join(lines) + "\n"
