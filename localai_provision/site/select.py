"""`--limit`: choose hosts by name, group name or glob, as Ansible's --limit does.

Patterns are comma-separated; a pattern starting with `!` removes what it matches. A pattern
that matches nothing is a mistake (a typo would otherwise silently select no host).
"""

from __future__ import annotations

from fnmatch import fnmatchcase

from localai_provision.errors import UsageError
from localai_provision.site.model import HostSpec, Site


def select_hosts(site: Site, limit: str | None) -> list[HostSpec]:
    if not limit or not limit.strip():
        return list(site.hosts.values())
    include: set[str] = set()
    exclude: set[str] = set()
    any_include = False
    unmatched: list[str] = []
    for raw in limit.split(","):
        pattern = raw.strip()
        if not pattern:
            continue
        negate = pattern.startswith("!")
        if negate:
            pattern = pattern[1:]
        else:
            any_include = True
        matched = _match(site, pattern)
        if not matched and pattern in site.groups:
            raise UsageError(f"--limit: group `{pattern}` has no hosts in {site.file}")
        if not matched:
            unmatched.append(raw.strip())
        (exclude if negate else include).update(matched)
    if unmatched:
        raise UsageError(
            f"--limit: {', '.join(repr(u) for u in unmatched)} matches no host or group "
            f"in {site.file} (hosts: {_short(list(site.hosts))}; "
            f"groups: {_short(list(site.groups)) or 'none'})"
        )
    chosen = include if any_include else set(site.hosts)
    chosen -= exclude
    if not chosen:
        raise UsageError(f"--limit {limit!r} leaves no host to work on")
    return [h for name, h in site.hosts.items() if name in chosen]


def _match(site: Site, pattern: str) -> set[str]:
    names = {name for name in site.hosts if fnmatchcase(name, pattern)}
    for group, members in site.groups.items():
        if fnmatchcase(group, pattern):
            names.update(members)
    return names


def _short(names: list[str], most: int = 10) -> str:
    shown = ", ".join(names[:most])
    return shown + (f", ... ({len(names)} in all)" if len(names) > most else "")
