"""The service-manager interface. `process` (a detached process with a pid file) is used on
Linux hosts; `launchd` (macOS) plugs in through the same interface."""

from __future__ import annotations

import abc
import json
from typing import Any

from localai_provision import scripts, shell
from localai_provision.connectors.base import Connector
from localai_provision.errors import CommandError
from localai_provision.facts.model import Facts
from localai_provision.layout import Layout, service_kind
from localai_provision.site.model import HostSpec

STOP_TIMEOUT_S = 15.0


class ServiceManager(abc.ABC):
    kind = ""

    def __init__(self, connector: Connector, spec: HostSpec, layout: Layout) -> None:
        self.connector = connector
        self.spec = spec
        self.layout = layout

    @abc.abstractmethod
    def start(self) -> None: ...

    @abc.abstractmethod
    def stop(self) -> dict[str, Any]: ...

    def restart(self) -> None:
        self.stop()
        self.start()

    def install(self) -> None:  # noqa: B027 - a no-op by default, on purpose
        """Write the service's definition (launchd's plist); nothing for a plain process."""

    def reload(self) -> None:
        """Restart with a changed definition."""
        self.restart()

    def run_script(self, step: str, name: str, *args: str, timeout: float = 60.0) -> str:
        """Run one of localai_provision/scripts with the venv's Python; stdout on success."""
        command = shell.join([self.layout.venv_python, "-I", "-S", "-c", scripts.load(name), *args])
        result = self.connector.run(command, timeout=timeout)
        if not result.ok:
            shown = shell.join([self.layout.venv_python, "-I", "-S", "-c", f"<{name}.py>", *args])
            raise CommandError.of(self.spec.name, step, f"{name} failed", shown, result)
        return result.stdout


class ProcessService(ServiceManager):
    """A detached process started by scripts/launch.py, its pid in prefix/run/server.pid."""

    kind = "process"

    def restart(self) -> None:
        """Stop and start in ONE host command that ignores hang-up and broken pipes: an
        apply cut between the two (Ctrl-C, the controller gone) must not leave the host
        serving nothing. The stop's report is not needed here."""
        python = self.layout.venv_python
        stop = shell.join([python, "-I", "-S", "-c", scripts.load("stop"), *self._stop_args()])
        launch = shell.join(
            [python, "-I", "-S", "-c", scripts.load("launch"), json.dumps(self._paths())]
        )
        command = f"trap '' HUP PIPE; {stop} >/dev/null 2>&1; {launch}"
        result = self.connector.run(command, timeout=STOP_TIMEOUT_S + 90)
        if not result.ok:
            shown = f"trap '' HUP PIPE; <stop.py> ...; {python} -I -S -c <launch.py> ..."
            raise CommandError.of(self.spec.name, "service", "restart failed", shown, result)

    def _paths(self) -> dict[str, object]:
        layout = self.layout
        return {
            "server_config": layout.server_config,
            "pid_file": layout.pid_file,
            "server_log": layout.server_log,
            "work_dir": layout.work_dir,
            "dirs": [layout.run_dir, layout.log_dir, layout.work_dir],
        }

    def _stop_args(self) -> list[str]:
        return [self.layout.pid_file, self.layout.prefix, str(STOP_TIMEOUT_S)]

    def start(self) -> None:
        self.run_script("service", "launch", json.dumps(self._paths()))

    def stop(self) -> dict[str, Any]:
        out = self.run_script("service", "stop", *self._stop_args(), timeout=STOP_TIMEOUT_S + 30)
        try:
            result: dict[str, Any] = json.loads(out)
        except json.JSONDecodeError:
            result = {"note": out.strip()}
        return result


def service_manager_for(
    connector: Connector, spec: HostSpec, layout: Layout, facts: Facts
) -> ServiceManager:
    kind = service_kind(spec, facts)
    if kind == "process":
        return ProcessService(connector, spec, layout)
    if kind == "launchd":
        from localai_provision.services.launchd import LaunchdService

        return LaunchdService(connector, spec, layout, facts)
    raise CommandError(
        host=spec.name,
        step="service",
        message=f"the `{kind}` service manager is not available in this version",
        hint="set `service: process` for this host",
    )
