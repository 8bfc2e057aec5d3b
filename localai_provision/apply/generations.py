"""The generation steps: a generation's meta file once its packages are in, the switch of
the `current`/`previous` links (server.json's previous copy kept for a rollback), the
rollback itself (after a failed start, verify or prewarm, or asked by `localai rollback`),
and the pruning of generations beyond `generations.keep`.

Commands come from pure functions (tested with tables); the steps run them.
"""

from __future__ import annotations

import json

from localai_provision import scripts, shell
from localai_provision.apply.context import ApplyOptions, HostContext, now
from localai_provision.apply.verification import verify
from localai_provision.errors import HostError, RolledBack
from localai_provision.facts.generations import Generation
from localai_provision.layout import (
    COMPLETE_MARKER,
    GENERATIONS_DIR,
    LEGACY_VENV,
    OWNED_MARKER,
    Layout,
)
from localai_provision.plan import desired_packages, desired_shim
from localai_provision.plan.config import shim_changes
from localai_provision.plan.generations import settings_digest
from localai_provision.services.base import service_manager_for

# The steps whose failure, right after a switch, sends the host back to the generation it
# served before: the new one does not start, does not answer, or does not load a model.
ROLLBACK_STEPS = frozenset({"service", "verify", "prewarm"})


def link_target(generation: str) -> str:
    """What PREFIX/current points at, relative to PREFIX."""
    return LEGACY_VENV if generation == LEGACY_VENV else f"{GENERATIONS_DIR}/{generation}"


def switch_argv(
    python: str, layout: Layout, current: str, previous: str | None, *, swap_config: bool
) -> list[str]:
    config = {
        "prefix": layout.prefix,
        "current": link_target(current),
        "previous": link_target(previous) if previous else None,
        "swap_config": swap_config,
    }
    return [python, "-I", "-S", "-c", scripts.load("switch"), json.dumps(config)]


def backup_config_command(layout: Layout) -> str:
    """server.json as the generation that serves wrote it, kept as server.json.previous for
    a rollback (cp -p: its 0600 mode too; renamed into place, never half-written)."""
    config = shell.quote(layout.server_config)
    backup = shell.quote(layout.server_config_previous)
    tmp = shell.quote(layout.server_config_previous + ".localai-tmp")
    return f"if [ -f {config} ]; then cp -p {config} {tmp} && mv -f {tmp} {backup}; fi"


def prune_command(layout: Layout, names: list[str]) -> str:
    """Delete generations, each only if it carries the tool's marker."""
    parts = []
    for name in names:
        folder = shell.quote(layout.for_generation(name).venv)
        parts.append(
            f"if [ -e {folder}/{OWNED_MARKER} ] || [ -e {folder}/{COMPLETE_MARKER} ]; then "
            f"rm -rf {folder}; fi"
        )
    return "; ".join(parts) or "true"


def _python(host: HostContext) -> str:
    facts = host.facts
    return facts.python.executable if facts.python.found else host.layout.venv_python


def write_meta(host: HostContext) -> dict[str, object]:
    """The generation's meta file, written last: from then on it may be switched to."""
    layout = host.layout
    size = host.run_step("generation", ["du", "-sk", layout.venv], "could not size the venv")
    wanted = desired_packages(host.spec, host.facts, host.lock)
    meta: dict[str, object] = {
        "created": now(),
        "python": host.facts.python.short_version,
        "packages": {name: version for name, (version, _why) in wanted.items()},
        "size_kb": int(size.split()[0]) if size.split() and size.split()[0].isdigit() else None,
        # What the shim step put in (shim_changes compares it when switching back to this
        # generation); none when the site runs without it.
        "shims": desired_shim() if shim_changes(host.spec, host.facts, venv_rebuilt=True) else {},
    }
    data = (json.dumps(meta, indent=2, sort_keys=True) + "\n").encode("utf-8")
    host.connector.put(data, layout.generation_meta)
    return meta


def backup_config(host: HostContext) -> None:
    host.run_step(
        "server-config",
        ["sh", "-c", backup_config_command(host.layout)],
        "could not keep the previous server.json",
    )


def switch(host: HostContext, generation: str, previous: str | None) -> None:
    argv = switch_argv(_python(host), host.layout, generation, previous, swap_config=False)
    host.run_step("switch", argv, f"could not switch to generation {generation}")


def prune(host: HostContext, names: list[str]) -> None:
    host.run_step(
        "generations",
        ["sh", "-c", prune_command(host.layout, names)],
        "could not remove old generations",
    )


def mark_failed(host: HostContext, generation: str, step: str, message: str, tail: str) -> None:
    record = {
        "failed_at": now(),
        "step": step,
        "message": message[:2000],
        "settings": settings_digest(host.spec),
        "log_tail": tail[-4000:],
    }
    data = (json.dumps(record, indent=2, sort_keys=True) + "\n").encode("utf-8")
    host.connector.put(data, host.layout.for_generation(generation).failed_marker)


def can_return_to(generation: Generation | None) -> bool:
    if generation is None or generation.failure is not None:
        return False
    return generation.ready or (generation.legacy and generation.complete)


def swap_back(host: HostContext, back_to: str, away_from: str, options: ApplyOptions) -> None:
    """Point `current` at ``back_to`` again (and `previous` at ``away_from``), put its
    server.json back, restart and verify it: it serves as before."""
    argv = switch_argv(_python(host), host.layout, back_to, away_from, swap_config=True)
    host.run_step("rollback", argv, f"could not switch back to generation {back_to}")
    old = host.for_generation(back_to)
    service = service_manager_for(old.connector, old.spec, old.layout, old.facts)
    service.restart()
    verify(old, options, prewarm=True)


def roll_back(host: HostContext, failed: HostError, options: ApplyOptions) -> HostError:
    """After ``failed`` (a step of ROLLBACK_STEPS right after the switch): the new generation
    is marked failed and the host goes back to the one it served. Returns the error to
    raise: RolledBack, or the HostError of a rollback that failed too."""
    new, old = host.generation, host.facts.generations.current
    assert new is not None and old is not None
    tail = failed.output_tail or failed.message
    mark_failed(host, new, failed.step, failed.message, tail)
    try:
        swap_back(host, old, new, options)
    except HostError as again:
        return HostError(
            host=host.name,
            step="rollback",
            message=f"generation {new} failed at {failed.step} ({failed.message}); going "
            f"back to generation {old} failed too: {again.message}",
            command=again.command,
            output_tail=again.output_tail or tail,
            hint=f"the host may serve nothing: read {host.layout.server_log} on the host, fix "
            "the site, then apply again",
        )
    return RolledBack(
        host=host.name,
        step=failed.step,
        message=f"generation {new} failed at {failed.step} ({failed.message}); rolled back "
        f"to generation {old}, which serves again",
        command=failed.command,
        exit_status=failed.exit_status,
        output_tail=tail,
        hint=f"generation {new} is kept for inspection ({host.layout.server_log}); apply "
        "does not try it again until the site changes (or with --retry-failed)",
    )
