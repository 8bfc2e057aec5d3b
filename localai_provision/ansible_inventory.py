"""Reading an Ansible inventory (INI or YAML) for `localai import ansible`.

Only what Ansible's own inventory plugins (`ini`, `yaml`) read is read: hosts (with
`name[01:10]` ranges), groups, `children`, and variables at each level. Nothing of it is run
(no dynamic inventory scripts, no plugins). A mistake names FILE:LINE:COL as every site error
does. Pure: text in, an Inventory out; the site file is made by ansible_site.py.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from typing import Any

import yaml

from localai_provision.errors import Problem, SiteError

_RANGE = re.compile(r"\[([0-9]+|[a-z]):([0-9]+|[a-z])(?::([0-9]+))?\]")


@dataclass
class Group:
    """A group as the inventory declares it (built while reading, so not frozen)."""

    vars: dict[str, Any] = field(default_factory=dict)
    hosts: list[str] = field(default_factory=list)
    children: list[str] = field(default_factory=list)


@dataclass
class Inventory:
    hosts: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> its own vars
    groups: dict[str, Group] = field(default_factory=dict)  # "all" holds the global vars
    lines: dict[str, int] = field(default_factory=dict)  # where each host is first named

    def group(self, name: str) -> Group:
        return self.groups.setdefault(name, Group())

    def add_host(self, name: str, group: str, variables: dict[str, Any], line: int) -> None:
        self.hosts.setdefault(name, {}).update(variables)
        self.lines.setdefault(name, line)
        members = self.group(group).hosts
        if name not in members:
            members.append(name)


def expand(pattern: str) -> list[str]:
    """`mac[01:03].lab` -> mac01.lab, mac02.lab, mac03.lab (Ansible's host ranges: numeric
    with their zero padding, alphabetic, an optional step)."""
    match = _RANGE.search(pattern)
    if not match:
        return [pattern]
    start, end, step = match.group(1), match.group(2), int(match.group(3) or 1)
    head, tail = pattern[: match.start()], pattern[match.end() :]
    if start.isdigit() and end.isdigit():
        width = len(start) if start.startswith("0") else 0
        words = [str(i).zfill(width) for i in range(int(start), int(end) + 1, step)]
    elif start.isalpha() and end.isalpha():
        words = [chr(c) for c in range(ord(start), ord(end) + 1, step)]
    else:
        raise ValueError(f"{pattern}: a range is [0:9] or [a:z]")
    return [name for word in words for name in expand(head + word + tail)]


def _value(text: str) -> Any:
    """An INI value as Ansible's ini plugin types it: a number or a boolean where it looks
    like one (ansible_port=2222 is 2222), a string otherwise."""
    if re.fullmatch(r"-?[0-9]+", text):
        return int(text)
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    return text


def read_ini(text: str, file: str) -> Inventory:
    inv = Inventory()
    inv.group("all")
    section, kind = "ungrouped", "hosts"
    problems: list[Problem] = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("["):
            header = re.fullmatch(r"\[([^\]:]+)(?::(vars|children))?\]", line)
            if not header:
                problems.append(
                    _problem(
                        file, number, raw, "a section is [GROUP], [GROUP:vars] or [GROUP:children]"
                    )
                )
                continue
            section, kind = header.group(1), header.group(2) or "hosts"
            inv.group(section)
            continue
        try:
            _ini_line(inv, section, kind, line, number)
        except ValueError as exc:
            problems.append(_problem(file, number, raw, str(exc)))
    if problems:
        raise SiteError(problems)
    return inv


def _ini_line(inv: Inventory, section: str, kind: str, line: str, number: int) -> None:
    if kind == "vars":
        key, eq, value = line.partition("=")
        if not eq:
            raise ValueError(f"{line!r}: a [{section}:vars] line is NAME=VALUE")
        inv.group(section).vars[key.strip()] = _value(value.strip().strip("'\""))
    elif kind == "children":
        child = line.split()[0]
        inv.group(child)
        if child not in inv.group(section).children:
            inv.group(section).children.append(child)
    else:
        words = shlex.split(line, comments=True)
        variables = {}
        for word in words[1:]:
            key, eq, value = word.partition("=")
            if not eq:
                raise ValueError(f"{word!r}: a host's variable is NAME=VALUE")
            variables[key] = _value(value)
        for name in expand(words[0]):
            inv.add_host(name, section, variables, number)


def _problem(file: str, line: int, raw: str, message: str) -> Problem:
    column = len(raw) - len(raw.lstrip()) + 1
    return Problem(file=file, line=line, column=column, message=message)


def read_yaml_inventory(text: str, file: str) -> Inventory:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        raise SiteError(
            [Problem(file=file, line=line, column=column, message=f"YAML syntax: {exc}")]
        ) from None
    if not isinstance(data, dict):
        raise SiteError(
            [Problem(file=file, line=1, column=1, message="an inventory is a mapping of groups")]
        )
    inv = Inventory()
    inv.group("all")
    for name, body in data.items():
        _yaml_group(inv, str(name), body, file)
    return inv


def _yaml_group(inv: Inventory, name: str, body: Any, file: str) -> None:
    group = inv.group(name)
    if body is None:
        return
    if not isinstance(body, dict):
        raise SiteError([_yaml_problem(file, f"group {name}: expected hosts, vars, children")])
    group.vars.update(body.get("vars") or {})
    for pattern, variables in (body.get("hosts") or {}).items():
        for host in expand(str(pattern)):
            inv.add_host(host, name, dict(variables or {}), 0)
    for child, child_body in (body.get("children") or {}).items():
        if str(child) not in group.children:
            group.children.append(str(child))
        _yaml_group(inv, str(child), child_body, file)


def _yaml_problem(file: str, message: str) -> Problem:
    return Problem(file=file, line=1, column=1, message=message)


def read_inventory(text: str, file: str) -> Inventory:
    """INI or YAML, told apart as Ansible does in practice: a YAML inventory is a mapping
    whose first line is `all:` or `GROUP:`; an INI one has [sections] or bare host lines."""
    first = next((ln for ln in text.splitlines() if ln.strip() and ln.strip()[0] not in "#;"), "")
    if first.strip() == "---" or re.fullmatch(r"[A-Za-z0-9_.-]+:\s*(#.*)?", first.strip()):
        return read_yaml_inventory(text, file)
    return read_ini(text, file)
