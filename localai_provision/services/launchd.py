"""The server as a launchd job on macOS: a LaunchDaemon (domain `system`: runs at boot with no
one logged in) or a LaunchAgent (domain `gui/UID`: only while the user is logged in at the
console).

Modern launchctl only, in the order Homebrew's `brew services` uses on real Macs:
`enable` before `bootstrap` (a disabled label fails bootstrap with 5), never `bootstrap` on a
loaded label (5: Input/output error), `kickstart -k` for a new process with the same
definition. `bootout` returns before the job is gone, and even after `print` no longer shows
it, bootstrap can fail with 5 (or 37 on older releases) for a few seconds (field reports): so
after a bootout we wait until the label is gone, then bootstrap with backoff for up to
BOOTSTRAP_RETRY_S.

Root's part (the `system` domain, pmset, the GPU wired limit) goes through the root helper
(roothelper.py) alone; the user domain needs no root. The commands are built by the pure
functions below and run by the class.
"""

from __future__ import annotations

import posixpath
import time
from typing import Any

from localai_provision import roothelper, shell
from localai_provision.connectors.base import CommandResult, Connector
from localai_provision.errors import CommandError, HostError
from localai_provision.facts.model import Facts
from localai_provision.layout import (
    Layout,
    expand_home,
    launchd_daemons_dir,
    launchd_label,
    launchd_plist,
    launchd_plist_path,
)
from localai_provision.plan import Change
from localai_provision.services.base import ServiceManager
from localai_provision.site.model import HostSpec

BOOTOUT_WAIT_S = 15.0
BOOTSTRAP_RETRY_S = 20.0
# Bootstrap's "not yet": 5 (Input/output error) on current releases, 37 (Operation already in
# progress) on older ones, while launchd still tears the previous instance down.
BOOTSTRAP_BUSY = frozenset({5, 37})
HELPER_REFUSED = 64  # the root helper's own refusals (usage, a label or plist it will not take)


def launchctl_argv(verb: str, domain: str, label: str, plist: str | None = None) -> list[str]:
    """One launchctl call, as modern launchctl spells it."""
    if verb == "bootstrap":
        assert plist is not None
        return ["launchctl", "bootstrap", domain, plist]
    if verb == "kickstart":
        return ["launchctl", "kickstart", "-k", f"{domain}/{label}"]
    return ["launchctl", verb, f"{domain}/{label}"]


def domain_command(system: bool, verb: str, domain: str, label: str, plist: str) -> str:
    """A job verb in its domain: through the root helper for `system`, as the user else."""
    if system:
        return roothelper.command(verb, label)
    return shell.join(launchctl_argv(verb, domain, label, plist))


def macos_setting_command(change: Change) -> str | None:
    """The root helper verb that applies one `macos NAME` change (None: nothing to run)."""
    name, value = change.name, str(change.after)
    if name == "never_sleep":
        return roothelper.command("never-sleep")
    if name == "restart_after_power_failure":
        return roothelper.command("autorestart", value)
    if name == "gpu_wired_limit_mb":
        return roothelper.command("wired-limit", value)
    if name == "gpu_wired_limit_at_boot":
        return roothelper.command("wired-limit-at-boot", value)
    return None


def sudo_refused(result: CommandResult) -> bool:
    text = result.stderr
    return (
        "password is required" in text
        or "terminal is required" in text
        or ("not allowed to execute" in text)
    )


class LaunchdService(ServiceManager):
    kind = "launchd"

    def __init__(self, connector: Connector, spec: HostSpec, layout: Layout, facts: Facts) -> None:
        super().__init__(connector, spec, layout)
        self.facts = facts
        self.system = spec.launchd.domain == "system"
        self.label = launchd_label(spec)
        self.domain = "system" if self.system else f"gui/{facts.system.uid}"
        self.target = f"{self.domain}/{self.label}"
        self.plist_path = expand_home(launchd_plist_path(spec), facts.system.home)

    # --- running commands -------------------------------------------------------------------

    def _run(
        self, command: str, step: str = "service", check: bool = True, stdin: bytes | None = None
    ) -> CommandResult:
        result = self.connector.run(command, timeout=60, stdin=stdin)
        if command.startswith("sudo ") and sudo_refused(result):
            raise self._helper_missing(command, result, step)
        if check and not result.ok:
            hint = ""
            if result.exit_status == HELPER_REFUSED and command.startswith("sudo "):
                hint = "the root helper refused: run its installer again (docs/macos.md)"
            raise CommandError.of(
                self.spec.name, step, "a launchd command failed", command, result, hint=hint
            )
        return result

    def _helper_missing(self, command: str, result: CommandResult, step: str) -> HostError:
        user = self.facts.system.user
        installer = posixpath.join(self.layout.libexec, roothelper.INSTALLER_NAME)
        return HostError(
            host=self.spec.name,
            step=step,
            message=f"sudo does not let {user} run the root helper without a password "
            f"({roothelper.HELPER_PATH}); the system domain and `macos:` settings need it",
            command=command,
            exit_status=result.exit_status,
            output_tail=result.tail(),
            hint="set it up once on the host: "
            + roothelper.setup_command(user, self.spec.address, installer)
            + " (it installs the helper and the one sudoers line "
            + f"`{roothelper.sudoers_line(user)}`; see docs/macos.md)",
        )

    def write_installer(self) -> str:
        """Put the root helper's installer on the host, for the admin to run once."""
        path = posixpath.join(self.layout.libexec, roothelper.INSTALLER_NAME)
        self.connector.run(shell.join(["mkdir", "-p", self.layout.libexec]))
        text = roothelper.installer(self.facts.system.user, daemons_dir(self.spec, self.facts))
        self.connector.put(text.encode("utf-8"), path, mode=0o644)
        return path

    # --- the job's definition ---------------------------------------------------------------

    def plist(self) -> bytes:
        return launchd_plist(self.spec, self.layout, self.facts.system.user, self.facts.system.home)

    def install(self) -> None:
        self.install_plist(self.plist_path, self.label, self.plist())

    def _make_folders(self) -> None:
        """The job's working and log folders: launchd opens the log for the job before it
        runs, and a log it cannot open ends the job with 78: EX_CONFIG."""
        work = posixpath.join(self.layout.prefix, "work")
        self._run(shell.join(["mkdir", "-p", work, self.layout.log_dir]))

    def install_plist(self, path: str, label: str, data: bytes) -> None:
        """Write a job's plist. A LaunchDaemon through the root helper (which checks it and
        gives it to root); a LaunchAgent as the user: temporary file, `plutil -lint`, rename."""
        if self.system:
            self._run(roothelper.command("install-plist", label), stdin=data)
            return
        folder = posixpath.dirname(path)
        temporary = posixpath.join(folder, f".{label}.plist.localai-tmp")
        self._run(shell.join(["mkdir", "-p", folder]))
        self.connector.put(data, temporary, mode=0o644)
        lint = self.connector.run(shell.join(["plutil", "-lint", temporary]))
        if not lint.ok:
            self.connector.run(shell.join(["rm", "-f", temporary]))
            raise CommandError(
                host=self.spec.name,
                step="service",
                message="plutil -lint refuses the generated plist (a bug: please report it)",
                command=lint.command,
                exit_status=lint.exit_status,
                output_tail=lint.tail(),
            )
        self._run(shell.join(["mv", "-f", temporary, path]))

    def apply_macos_settings(self, changes: list[Change]) -> None:
        """pmset and sysctl need root whatever the job's domain: the root helper's verbs."""
        for change in changes:
            command = macos_setting_command(change)
            if command is not None:
                self._run(command, step="macos")

    # --- jobs: the server's, and the pull timer ---------------------------------------------

    def _verb(self, verb: str, label: str, path: str, check: bool = True) -> CommandResult:
        return self._run(domain_command(self.system, verb, self.domain, label, path), check=check)

    def load_job(self, label: str, path: str) -> None:
        """(Re)load a job from its plist: bootout when loaded (waiting until it is gone),
        enable, then bootstrap with backoff."""
        target = f"{self.domain}/{label}"
        if self.loaded(target):
            self._verb("bootout", label, path, check=False)
            self._wait_gone(target)
        self._bootstrap(label, path)

    def remove_job(self, label: str, path: str) -> None:
        target = f"{self.domain}/{label}"
        if self.loaded(target):
            self._verb("bootout", label, path, check=False)
            self._wait_gone(target)
        if self.system:
            self._run(roothelper.command("remove-plist", label))
        else:
            self._run(shell.join(["rm", "-f", path]))

    def _bootstrap(self, label: str, path: str) -> None:
        """enable, then bootstrap; retried with backoff while launchd still tears down the
        previous instance (5 or 37), for up to BOOTSTRAP_RETRY_S."""
        self._verb("enable", label, path)
        deadline = time.monotonic() + BOOTSTRAP_RETRY_S
        delay = 0.25
        while True:
            result = self._verb("bootstrap", label, path, check=False)
            if result.ok:
                return
            if result.exit_status not in BOOTSTRAP_BUSY or time.monotonic() >= deadline:
                break
            time.sleep(delay)
            delay = min(delay * 2, 2.0)
        raise CommandError.of(
            self.spec.name,
            "service",
            f"launchctl bootstrap {self.domain} failed",
            result.command,
            result,
            hint=self._bootstrap_hint(result),
        )

    def _bootstrap_hint(self, result: CommandResult) -> str:
        if self.system or result.exit_status not in BOOTSTRAP_BUSY:
            return f"look at `launchctl print {self.domain}/{self.label}` on the host"
        return (
            f"gui/{self.facts.system.uid} exists only while {self.facts.system.user} is logged "
            "in at the console; a headless Mac wants `launchd: {domain: system}`"
        )

    # --- the job's state --------------------------------------------------------------------

    def loaded(self, target: str | None = None) -> bool:
        return self.connector.run(shell.join(["launchctl", "print", target or self.target])).ok

    def start(self) -> None:
        """Start the server's job: a new process when it is loaded (a crash loop waiting for
        its next try, or a job stopped by hand), a bootstrap when it is not."""
        self._make_folders()
        if self.loaded():
            self._verb("kickstart", self.label, self.plist_path)
        else:
            self._bootstrap(self.label, self.plist_path)

    def stop(self) -> dict[str, Any]:
        if not self.loaded():
            return {"stopped": False, "note": "not loaded"}
        self._verb("bootout", self.label, self.plist_path, check=False)
        self._wait_gone()
        return {"stopped": True}

    def restart(self) -> None:
        """`kickstart -k`: a new process, the same definition."""
        self.start()

    def reload(self) -> None:
        """A changed definition: bootout (even a loaded job that is not running), wait until
        it is gone, enable and bootstrap."""
        self._make_folders()
        self.load_job(self.label, self.plist_path)

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


def daemons_dir(spec: HostSpec, facts: Facts) -> str:
    """Where the root helper puts LaunchDaemons for this host (expanded)."""
    return expand_home(launchd_daemons_dir(spec), facts.system.home)
