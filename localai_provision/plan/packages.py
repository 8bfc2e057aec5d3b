"""Packages: the pinned set (or the locked one), exactly. A package already at its version
is left alone; a half-installed one is reinstalled; with a lock, what it does not name goes."""

from __future__ import annotations

from localai_provision.facts.model import Facts
from localai_provision.linux import linux_additions
from localai_provision.lock import TOOLS, Lock
from localai_provision.plan.change import Action, Change, Kind
from localai_provision.site.model import HostSpec, package_base_name

# A package change's `before` when the package is at its version but files of it are gone:
# apply reinstalls it (an installer would otherwise find it already satisfied).
HALF_INSTALLED = "half-installed"


def desired_packages(
    spec: HostSpec, facts: Facts, lock: Lock | None = None
) -> dict[str, tuple[str, str | None]]:
    """Every package the venv must hold: name -> (exact version, why the tool added it).

    The site's pins, plus what a Linux host needs to run mlx-omni-server on the CPU
    (linux.linux_additions: MLX's CPU back end, torch's CPU build); with a lock, the lock.
    """
    if lock is not None:
        # The site's own pins first: they are what a reader of `plan` looks for.
        pinned = {package_base_name(n) for n in spec.packages}
        order = sorted(lock.packages, key=lambda name: (name not in pinned, name))
        return {name: (lock.packages[name], f"locked in {lock.path.name}") for name in order}
    wanted: dict[str, tuple[str, str | None]] = {n: (v, None) for n, v in spec.packages.items()}
    if facts.system.os == "linux":
        wanted.update({a.name: (a.version, a.reason) for a in linux_additions(spec)})
    return wanted


def package_changes(
    spec: HostSpec, facts: Facts, lock: Lock | None, *, venv_rebuilt: bool
) -> list[Change]:
    """Each wanted package missing, half-installed or at another version; in a venv that is
    rebuilt, every one. Then, with a lock, the packages it does not name."""
    venv = facts.venv
    wanted = desired_packages(spec, facts, lock)
    changes = [
        change
        for name, (version, why) in wanted.items()
        if (change := _package_change(spec, facts, name, version, why, venv_rebuilt))
    ]
    if lock is not None and not venv_rebuilt:
        # A locked set is exact: what the lock does not name goes.
        wanted_bases = {package_base_name(n) for n in wanted}
        changes += [
            Change(
                spec.name,
                Kind.PACKAGE,
                name,
                Action.REMOVE,
                installed,
                None,
                f"{name} {installed} is installed but not in {lock.path.name}",
            )
            for name, installed in sorted(venv.packages.items())
            if name not in wanted_bases and name not in TOOLS
        ]
    return changes


def _package_change(
    spec: HostSpec, facts: Facts, name: str, version: str, why: str | None, venv_rebuilt: bool
) -> Change | None:
    venv = facts.venv
    base = package_base_name(name)
    installed = None if venv_rebuilt else venv.packages.get(base)
    because = f" ({why})" if why else ""

    def change(action: Action, before: str | None, reason: str) -> Change:
        return Change(spec.name, Kind.PACKAGE, name, action, before, version, reason)

    if installed is None:
        return change(Action.CREATE, None, f"{name} is not installed, {version} wanted{because}")
    if base in venv.half_installed:
        return change(
            Action.UPDATE,
            HALF_INSTALLED,
            f"{name} {installed} is half-installed ({venv.half_installed[base]} is missing); "
            "it is reinstalled",
        )
    if not _same_version(installed, version):
        return change(
            Action.UPDATE, installed, f"{name} {installed} installed, {version} wanted{because}"
        )
    return None


def _same_version(installed: str, wanted: str) -> bool:
    # A wheel's dist-info carries the normalised version; the site may say `0.29.3` for
    # `0.29.3` and `2.13.0+cpu` for `2.13.0+cpu`. Compare case-insensitively, nothing looser.
    return installed.lower() == wanted.lower()
