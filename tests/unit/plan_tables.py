"""Facts in, changes out: the hosts the planners' table tests start from (tests/unit/
test_plan_*.py), each a recorded host in sync with the site, changed one part at a time."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable
from typing import Any

from localai_provision.facts.model import Facts
from localai_provision.facts.parse import parse_facts
from localai_provision.plan import Change
from localai_provision.site import parse_site
from localai_provision.site.model import HostSpec
from tests.unit.test_facts_parse import macos_doc
from tests.unit.test_plan import SITE, in_sync_doc


def site(*lines: str, packages: str = "", server: str = "{port: 18999}") -> HostSpec:
    """The test site's one host, with more settings (``lines``, YAML under the host), more
    pins (``packages``, e.g. ", mlx: 0.29.3") and its `server:` (YAML)."""
    text = SITE.replace("mlx-lm: 0.28.2}", f"mlx-lm: 0.28.2{packages}}}")
    text = text.replace("server: {port: 18999}", f"server: {server}")
    text += "".join(f"    {line}\n" for line in lines)
    return parse_site(text, "s.yaml").hosts["mini-01"]


def linux(**parts: Any) -> Facts:
    """The recorded Linux host, in sync with ``site()``; ``parts`` replace Facts fields."""
    spec = site()
    facts = parse_facts("mini-01", json.dumps(in_sync_doc()), spec.models)
    return dataclasses.replace(facts, **parts)


def mac(**parts: Any) -> Facts:
    """The recorded Mac (macOS 14.5, uid 501)."""
    spec = site()
    facts = parse_facts("mini-01", json.dumps(macos_doc()), spec.models)
    return dataclasses.replace(facts, **parts)


def with_system(facts: Facts, **fields: Any) -> Facts:
    return dataclasses.replace(facts, system=dataclasses.replace(facts.system, **fields))


def with_venv(facts: Facts, **fields: Any) -> Facts:
    return dataclasses.replace(facts, venv=dataclasses.replace(facts.venv, **fields))


def rows(changes: Iterable[Change]) -> list[tuple[str, str]]:
    """Each change as (resource, action): what a table row expects."""
    return [(c.resource, c.action) for c in changes]
