"""The server as a launchd job on macOS: a LaunchDaemon (domain `system`: runs at boot with no
one logged in) or a LaunchAgent (domain `user`: only while the user is logged in).

Modern launchctl only: bootstrap, bootout, enable, kickstart -k, print. `bootout` returns
before the job is gone, and bootstrapping it again too early fails with "5: Input/output
error": after a bootout we poll `print` until the label disappears. The plist is written to
a temporary file, checked with `plutil -lint`, given its owner and mode, then renamed into
place. Root's part (system domain) goes through `sudo -n`; when sudo wants a password the
host fails with the sudoers line to add (docs/macos.md).
"""

from __future__ import annotations

import posixpath
import time
from typing import Any

from localai_provision import shell
from localai_provision.connectors.base import CommandResult, Connector
from localai_provision.errors import CommandError, HostError
from localai_provision.facts.model import Facts
from localai_provision.layout import (
    WIRED_LIMIT_LABEL,
    Layout,
    expand_home,
    launchd_label,
    launchd_plist,
    launchd_plist_path,
    server_config,
    wired_limit_plist,
    wired_limit_plist_path,
)
from localai_provision.plan import Change
from localai_provision.services.base import ServiceManager
from localai_provision.site.model import HostSpec

BOOTOUT_WAIT_S = 15.0
EXIT_ALREADY_LOADED = 5  # "Bootstrap failed: 5: Input/output error"
SUDO_COMMANDS = "/bin/launchctl, /usr/bin/plutil, /bin/cp, /bin/mv, /usr/sbin/chown, /bin/chmod"


def sudoers_line(user: str) -> str:
    return f"{user} ALL=(root) NOPASSWD: {SUDO_COMMANDS}, /usr/bin/pmset, /usr/sbin/sysctl"


class LaunchdService(ServiceManager):
    kind = "launchd"

    def __init__(self, connector: Connector, spec: HostSpec, layout: Layout, facts: Facts) -> None:
        super().__init__(connector, spec, layout)
        self.facts = facts
        self.system = spec.launchd.domain == "system"
        self.label = launchd_label(spec)
        domain = "system" if self.system else f"gui/{facts.system.uid}"
        self.domain = domain
        self.target = f"{domain}/{self.label}"
        self.plist_path = expand_home(launchd_plist_path(spec), facts.system.home)

    # --- commands ---------------------------------------------------------------------------

    def _root(self, argv: list[str]) -> str:
        command = shell.join(argv)
        return f"sudo -n {command}" if self.system else command

    def _run(self, command: str, step: str = "service", check: bool = True) -> CommandResult:
        result = self.connector.run(command, timeout=60)
        if "password is required" in result.stderr or "terminal is required" in result.stderr:
            user = self.facts.system.user
            raise HostError(
                host=self.spec.name,
                step=step,
                message=f"sudo asks {user} for a password; the system domain needs root for "
                "launchctl and /Library/LaunchDaemons",
                command=command,
                exit_status=result.exit_status,
                output_tail=result.tail(),
                hint=f"add this line with `sudo visudo -f /etc/sudoers.d/localai` on the host: "
                f"{sudoers_line(user)} (or use `launchd: {{domain: user}}`; see docs/macos.md)",
            )
        if check and not result.ok:
            raise CommandError.of(self.spec.name, step, "a launchd command failed", command, result)
        return result

    # --- the job's definition ---------------------------------------------------------------

    def plist(self) -> bytes:
        config = server_config(self.spec, self.layout, self.facts.hf_home)
        return launchd_plist(
            self.spec, self.layout, config, self.facts.system.user, self.facts.system.home
        )

    def install(self) -> None:
        # The job's environment may hold secrets: then only root (or the user) reads it.
        mode = "600" if self.spec.server.secret_env else "644"
        self.install_plist(self.plist_path, self.label, self.plist(), mode)

    def install_plist(self, path: str, label: str, data: bytes, mode: str = "644") -> None:
        """Write a plist: temporary file, `plutil -lint`, owner and mode, rename in place."""
        staged = posixpath.join(self.layout.run_dir, f"{label}.plist")
        self._run(shell.join(["mkdir", "-p", self.layout.run_dir]))
        self.connector.put(data, staged, mode=int(mode, 8))
        lint = self.connector.run(shell.join(["plutil", "-lint", staged]))
        if not lint.ok:
            raise CommandError(
                host=self.spec.name,
                step="service",
                message="plutil -lint refuses the generated plist (a bug: please report it)",
                command=lint.command,
                exit_status=lint.exit_status,
                output_tail=lint.tail(),
            )
        folder = posixpath.dirname(path)
        temporary = posixpath.join(folder, f".{label}.plist.tmp")
        steps = [
            self._root(["mkdir", "-p", folder]),
            self._root(["cp", staged, temporary]),
            self._root(["chmod", mode, temporary]),
        ]
        if self.system or folder.startswith("/Library/"):
            steps.append(self._root(["chown", "root:wheel", temporary]))
        steps.append(self._root(["mv", temporary, path]))
        self._run(" && ".join(steps))

    def apply_macos_settings(self, changes: list[Change]) -> None:
        """pmset and sysctl need root whatever the job's domain."""
        for change in changes:
            name = change.name
            if name == "never_sleep":
                argv = ["pmset", "-a", "sleep", "0", "disksleep", "0"]
            elif name == "restart_after_power_failure":
                argv = ["pmset", "-a", "autorestart", str(change.after)]
            elif name == "gpu_wired_limit_mb":
                argv = ["sysctl", f"iogpu.wired_limit_mb={change.after}"]
            elif name == "gpu_wired_limit_at_boot":
                limit = int(str(change.after))
                path = expand_home(wired_limit_plist_path(self.spec), self.facts.system.home)
                self.install_plist(path, WIRED_LIMIT_LABEL, wired_limit_plist(limit))
                continue
            else:
                continue
            self._run("sudo -n " + shell.join(argv), step="macos")

    # --- another job of the tool's: the pull timer ------------------------------------------

    def load_job(self, label: str, path: str) -> None:
        """(Re)load a job from its plist: bootout when loaded (waiting until it is gone),
        then bootstrap."""
        target = f"{self.domain}/{label}"
        if self.loaded(target):
            self._run(self._root(["launchctl", "bootout", target]), check=False)
            self._wait_gone(target)
        self._run(self._root(["launchctl", "bootstrap", self.domain, path]))

    def remove_job(self, label: str, path: str) -> None:
        target = f"{self.domain}/{label}"
        if self.loaded(target):
            self._run(self._root(["launchctl", "bootout", target]), check=False)
            self._wait_gone(target)
        # Moved into the prefix, where the user may delete it: sudoers needs no `rm`.
        aside = posixpath.join(self.layout.run_dir, f".removed-{label}.plist")
        self._run(
            " && ".join(
                [
                    shell.join(["mkdir", "-p", self.layout.run_dir]),
                    f"if [ -e {shell.quote(path)} ]; then "
                    + self._root(["mv", path, aside])
                    + "; fi",
                    shell.join(["rm", "-f", aside]),
                ]
            )
        )

    # --- the job's state --------------------------------------------------------------------

    def loaded(self, target: str | None = None) -> bool:
        return self.connector.run(shell.join(["launchctl", "print", target or self.target])).ok

    def start(self) -> None:
        self._run(
            shell.join(
                ["mkdir", "-p", posixpath.join(self.layout.prefix, "work"), self.layout.log_dir]
            )
        )
        result = self._run(
            self._root(["launchctl", "bootstrap", self.domain, self.plist_path]), check=False
        )
        if result.exit_status == EXIT_ALREADY_LOADED:
            # Loaded already (an earlier bootout still finishing): wait, then once more.
            self._wait_gone()
            result = self._run(
                self._root(["launchctl", "bootstrap", self.domain, self.plist_path]), check=False
            )
        if not result.ok:
            raise CommandError.of(
                self.spec.name,
                "service",
                f"launchctl bootstrap {self.domain} failed",
                result.command,
                result,
            )
        self._run(self._root(["launchctl", "enable", self.target]))

    def stop(self) -> dict[str, Any]:
        if not self.loaded():
            return {"stopped": False, "note": "not loaded"}
        self._run(self._root(["launchctl", "bootout", self.target]), check=False)
        self._wait_gone()
        return {"stopped": True}

    def restart(self) -> None:
        """`kickstart -k`: a new process, the same definition."""
        if not self.loaded():
            self.start()
            return
        self._run(self._root(["launchctl", "kickstart", "-k", self.target]))

    def reload(self) -> None:
        """A changed definition: bootout, wait until it is gone, bootstrap."""
        self.stop()
        self.start()

    def _wait_gone(self, target: str | None = None) -> None:
        target = target or self.target
        deadline = time.monotonic() + BOOTOUT_WAIT_S
        while time.monotonic() < deadline:
            if not self.loaded(target):
                return
            time.sleep(0.2)
        raise HostError(
            host=self.spec.name,
            step="service",
            message=f"{target} is still loaded {BOOTOUT_WAIT_S:g} s after bootout",
            hint=f"check it with `launchctl print {target}` on the host",
        )
