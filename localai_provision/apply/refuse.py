"""What stops a host before anything on it is touched: what the tool cannot fix (the plan's
FAIL changes), and mistakes in the site that would otherwise fail half-way on the host."""

from __future__ import annotations

from localai_provision.apply.context import HostContext
from localai_provision.errors import HostError
from localai_provision.layout import SERVER_PACKAGE
from localai_provision.lock import Lock
from localai_provision.plan import (
    FAIL,
    LAUNCHD_DOMAIN,
    LOCK,
    MACOS,
    PULL_TIMER,
    PYTHON,
    ROOT_HELPER,
    SECRET,
    SYSTEM,
    VENV,
    Change,
)
from localai_provision.services.launchd import LaunchdService
from localai_provision.site.model import HostSpec

# What the admin does about each kind of change the tool cannot carry out itself.
FAIL_HINTS = {
    SYSTEM: "install it on the host, then run apply again",
    PYTHON: "install Python 3 on the host or fix `python`",
    LOCK: "run `localai lock SITE`, commit the lock files, then apply again",
    SECRET: "set the variable in the environment of the shell that runs localai",
    PULL_TIMER: "install cron on the host, or leave `pull` out of its settings",
    ROOT_HELPER: "run the setup command above once, then apply again (docs/macos.md)",
    LAUNCHD_DOMAIN: "set `launchd: {domain: system}` for this host (docs/macos.md)",
    MACOS: "fix the setting in the site file",
    VENV: "move that folder away (or delete it yourself if it is not needed), or choose "
    "another `prefix` for this host, then run apply again",
}
# The step such a failure is reported under, where it is not the change's kind.
FAIL_STEPS = {
    SYSTEM: "system-packages",
    PYTHON: "python",
    LOCK: "lock-file",
    ROOT_HELPER: "root-helper",
    LAUNCHD_DOMAIN: "service",
}


def refuse_failures(host: HostContext, changes: list[Change]) -> None:
    """The first change the tool cannot carry out ends the host's apply, with its fix."""
    for change in changes:
        if change.action == FAIL:
            if change.kind == ROOT_HELPER:
                # The one step only the admin can do: leave the installer ready on the host.
                LaunchdService(host.connector, host.spec, host.layout, host.facts).write_installer()
            raise HostError(
                host=host.name,
                step=FAIL_STEPS.get(change.kind, change.kind),
                message=change.reason,
                hint=FAIL_HINTS.get(change.kind, ""),
            )


def refuse_unusable(spec: HostSpec, lock: Lock | None) -> None:
    """Mistakes in the site that validate may let through and that would otherwise end in a
    traceback on the host, after things were changed: refused before anything is touched.
    A NUL cannot be part of a process's argument or environment (the launch would fail with
    `embedded null byte`); a site without mlx-omni-server has no server to start."""
    server = spec.server
    for name, value in server.env.items():
        if "\0" in name or "\0" in value:
            raise HostError(
                host=spec.name,
                step="server-config",
                message=f"server.env.{name.replace(chr(0), '<NUL>')} holds a NUL character: "
                "no process's environment can hold one",
                hint="remove the NUL (\\0, \\x00) from that value in the site file",
            )
    for number, arg in enumerate(server.extra_args):
        if "\0" in arg:
            raise HostError(
                host=spec.name,
                step="server-config",
                message=f"server.extra_args[{number}] holds a NUL character: no process's "
                "argument can hold one",
                hint="remove the NUL (\\0, \\x00) from that argument in the site file",
            )
    locked = lock is not None and SERVER_PACKAGE in lock.packages
    if SERVER_PACKAGE not in spec.packages and not locked:
        raise HostError(
            host=spec.name,
            step="packages",
            message=f"the site installs no {SERVER_PACKAGE}: there is no server to start",
            hint=f"pin it under `packages:` (for example `{SERVER_PACKAGE}: 0.5.1`)",
        )
