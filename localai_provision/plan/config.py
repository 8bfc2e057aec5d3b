"""The server's configuration file (PREFIX/server.json) and the start-up shim in the venv."""

from __future__ import annotations

import hashlib

from localai_provision import scripts
from localai_provision.facts.model import Facts, ServerConfigFacts
from localai_provision.layout import (
    SERVER_PACKAGE,
    SHIM_MODULE,
    config_hash,
    env_digest,
    expand_home,
    server_config,
)
from localai_provision.plan.change import Action, Change, Kind, layout_for
from localai_provision.site.model import HostSpec


def desired_config(
    spec: HostSpec, facts: Facts, generation: str | None = None
) -> dict[str, object]:
    """server.json as the site wants it; its argv names the server of ``generation`` (the
    package set's own venv), so that moving to another generation is a new configuration."""
    layout = layout_for(facts, generation)
    config = server_config(spec, layout, expand_home(spec.hf_home, facts.system.home))
    return {**config, "hash": config_hash(config)}


def desired_shim() -> dict[str, str]:
    """The start-up shim's files in site-packages, by name -> sha256."""
    source = scripts.load("server_shim").encode("utf-8")
    return {
        f"{SHIM_MODULE}.py": hashlib.sha256(source).hexdigest(),
        f"{SHIM_MODULE}.pth": hashlib.sha256(shim_pth().encode("utf-8")).hexdigest(),
    }


def shim_pth() -> str:
    return f"import {SHIM_MODULE}\n"


def config_changes(spec: HostSpec, facts: Facts, generation: str | None = None) -> list[Change]:
    """server.json written when missing, unreadable or other than the site's."""
    wanted = desired_config(spec, facts, generation)
    wanted_hash = str(wanted["hash"])
    actual = facts.server_config

    def change(action: Action, before: str | None, reason: str) -> list[Change]:
        return [Change(spec.name, Kind.SERVER_CONFIG, "", action, before, wanted_hash, reason)]

    if actual is None:
        return change(Action.CREATE, None, "the server has no configuration file yet")
    if not actual.readable:
        return change(
            Action.UPDATE,
            "unreadable",
            "the configuration file is not the JSON apply writes (damaged?); it is rewritten",
        )
    if actual.hash != wanted_hash:
        return change(Action.UPDATE, str(actual.hash), _config_difference(actual, wanted))
    return []


def shim_changes(
    spec: HostSpec, facts: Facts, *, venv_rebuilt: bool, generation: str | None = None
) -> list[Change]:
    """The start-up shim: defers Metal-kernel failures on Linux and applies the model-cache
    settings on mlx-omni-server releases that do not read them (see scripts/server_shim.py).
    In the venv that serves, or in ``generation`` (as its meta file recorded it)."""
    if SERVER_PACKAGE not in spec.packages or not spec.linux.shim:
        return []
    target = facts.generations.get(generation) if generation else None
    present = {} if venv_rebuilt else target.shims if target else facts.venv.shims
    if all(present.get(name) == digest for name, digest in desired_shim().items()):
        return []
    return [
        Change(
            spec.name,
            Kind.SHIM,
            "",
            Action.CREATE if not present else Action.UPDATE,
            "absent" if not present else "outdated",
            SHIM_MODULE,
            "the start-up shim (model-cache settings; Metal kernels deferred on Linux) "
            + ("is not installed" if not present else "is outdated"),
        )
    ]


def _config_difference(actual: ServerConfigFacts, wanted: dict[str, object]) -> str:
    """Which parts of the configuration differ. The host sends no environment values (they
    may be secrets), only a salted digest of each: a variable differs when the digest of the
    value wanted does not match. Values are never shown, plain ones neither (a token pasted
    into the site file as a plain value is a secret all the same); arguments are (secrets
    are never arguments)."""
    parts = []
    wanted_argv = wanted.get("argv")
    if isinstance(wanted_argv, list) and actual.argv and actual.argv[0] != wanted_argv[0]:
        parts.append(f"the server's program: {_clip(actual.argv[0])} -> {_clip(wanted_argv[0])}")
    if (
        isinstance(wanted_argv, list)
        and actual.argv != tuple(wanted_argv)
        and (actual.argv is None or actual.argv[1:] != tuple(wanted_argv[1:]))
    ):
        before = " ".join(actual.argv[1:]) if actual.argv is not None else "unknown"
        parts.append(
            f"the server's arguments: {_clip(before)} -> {_clip(' '.join(wanted_argv[1:]))}"
        )
    wanted_env = wanted.get("env") if isinstance(wanted.get("env"), dict) else {}
    assert isinstance(wanted_env, dict)
    env = []
    for name in sorted(set(actual.env) | set(wanted_env)):
        if name not in wanted_env:
            env.append(f"{name} removed")
        elif name not in actual.env:
            env.append(f"{name} added")
        elif actual.env[name] != env_digest(actual.salt, name, str(wanted_env[name])):
            env.append(f"{name} changed")
    if env:
        parts.append("environment " + ", ".join(env))
    return ("changed: " + "; ".join(parts)) if parts else "the configuration file differs"


def _clip(text: str, most: int = 120) -> str:
    return text if len(text) <= most else text[: most - 3] + "..."
