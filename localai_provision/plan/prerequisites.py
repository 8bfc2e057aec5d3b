"""What blocks an apply and only the host's admin (or the site's author) can fix: each a
FAIL whose reason says the fix, found before anything moves (also what `localai doctor`
reports)."""

from __future__ import annotations

import posixpath

from localai_provision import roothelper
from localai_provision.facts.model import Facts, MacFacts
from localai_provision.layout import (
    SERVER_PACKAGE,
    SOURCE_ONLY_PACKAGES,
    expand_home,
    launchd_daemons_dir,
    launchd_label,
    service_kind,
)
from localai_provision.lock import Lock, LockError
from localai_provision.plan.change import Action, Change, Kind, layout_for
from localai_provision.site.model import HostSpec

MIN_MACOS = (14, 0)  # torch, onnxruntime and av publish macosx_14_0 wheels only


def _fail(spec: HostSpec, kind: Kind, wanted: str | None, reason: str, name: str = "") -> Change:
    return Change(spec.name, kind, name, Action.FAIL, None, wanted, reason)


def system_changes(spec: HostSpec, facts: Facts) -> list[Change]:
    """What the tool cannot install itself: PortAudio on a Linux host."""
    if facts.system.os != "linux" or SERVER_PACKAGE not in spec.packages:
        return []
    if facts.system.portaudio:
        return []
    return [
        _fail(
            spec,
            Kind.SYSTEM,
            "installed",
            "mlx-omni-server imports sounddevice at start, which needs PortAudio: install it "
            "on the host (Debian/Ubuntu: sudo apt-get install libportaudio2)",
            name="libportaudio2",
        )
    ]


def secret_changes(spec: HostSpec) -> list[Change]:
    """server.env values the site takes from an environment variable the controller lacks."""
    return [
        _fail(
            spec,
            Kind.SECRET,
            variable,
            f"server.env.{name} comes from the controller's environment variable {variable}, "
            "which is not set here: set it (export it in the shell that runs localai)",
            name=name,
        )
        for name, variable in spec.server.missing_env.items()
    ]


def lock_changes(spec: HostSpec, lock: Lock | LockError | None) -> list[Change]:
    """The host's lock file could not be read."""
    if not isinstance(lock, LockError):
        return []
    return [_fail(spec, Kind.LOCK, spec.lock, str(lock).removeprefix(f"{spec.name}: "))]


def python_changes(spec: HostSpec, facts: Facts) -> list[Change]:
    """The interpreter the venv is built from is not on the host."""
    if facts.python.found:
        return []
    return [
        _fail(
            spec,
            Kind.PYTHON,
            spec.python,
            f"`{spec.python}` is not on the host; install it or fix `python` in the site file",
        )
    ]


def prerequisite_changes(spec: HostSpec, facts: Facts, lock: Lock | None) -> list[Change]:
    """The Python the lock was resolved for, then the Mac's own prerequisites."""
    changes: list[Change] = []
    locked = lock.python_version if lock is not None else None
    mismatch = facts.python.found and facts.python.short_version != locked
    if lock is not None and locked and mismatch:
        changes.append(
            _fail(
                spec,
                Kind.PYTHON,
                locked,
                f"{lock.path.name} was resolved for Python {locked}, but `{spec.python}` is "
                f"{facts.python.short_version}: install Python {locked} on the host (macOS: "
                f"`brew install python@{locked}`) and name it in `python`",
            )
        )
    if facts.system.os == "macos":
        changes += macos_prerequisites(spec, facts)
    return changes


def macos_prerequisites(spec: HostSpec, facts: Facts) -> list[Change]:
    changes = []
    version = _version_tuple(facts.system.os_version)
    if version is not None and version < MIN_MACOS:
        changes.append(
            _fail(
                spec,
                Kind.SYSTEM,
                "14.0",
                f"macOS {facts.system.os_version} is too old: the server's packages publish "
                "wheels for macOS 14 and newer; update the Mac to macOS 14 or later",
                name="macos",
            )
        )
    mac = facts.mac
    if mac is None:
        return changes
    if mac.clt_checked and mac.clt_path is None:
        changes.append(
            _fail(
                spec,
                Kind.SYSTEM,
                "installed",
                "Xcode's Command Line Tools are missing: "
                f"{', '.join(SOURCE_ONLY_PACKAGES)} is published only as source and must be "
                "compiled on the Mac; run `xcode-select --install` on the host (or install "
                "them by MDM), then apply again",
                name="xcode-clt",
            )
        )
    changes += _root_helper(spec, facts, mac)
    changes += _launchd(spec, facts, mac)
    limit = spec.macos.gpu_wired_limit_mb
    if limit is not None and mac.memsize_bytes:
        memory_mb = mac.memsize_bytes // (1024 * 1024)
        if limit > memory_mb:
            changes.append(
                _fail(
                    spec,
                    Kind.MACOS,
                    str(limit),
                    f"gpu_wired_limit_mb {limit} is more than this Mac's memory ({memory_mb} "
                    "MB): set it below the memory, leaving room for macOS (for example 75%: "
                    f"{memory_mb * 3 // 4})",
                    name="gpu_wired_limit_mb",
                )
            )
    return changes


def _root_helper(spec: HostSpec, facts: Facts, mac: MacFacts) -> list[Change]:
    """The one root-owned program the tool runs as root: installed, this tool's version,
    set up for this account and for the site's LaunchDaemons folder."""
    if not mac.helper_checked:
        return []
    daemons = expand_home(launchd_daemons_dir(spec), facts.system.home)
    problem = None
    if mac.helper_sha256 is None:
        problem = f"the root helper ({roothelper.HELPER_PATH}) is not installed"
    elif mac.helper_sha256 != roothelper.helper_digest():
        problem = "the root helper on the host is another version than this tool's"
    elif not mac.helper_conf:
        problem = f"the root helper is not set up for {facts.system.user}"
    elif mac.helper_conf.get("DAEMONS") != daemons:
        problem = (
            f"the root helper puts LaunchDaemons in {mac.helper_conf.get('DAEMONS')}, "
            f"the site in {daemons}"
        )
    if not problem:
        return []
    installer = posixpath.join(layout_for(facts).libexec, roothelper.INSTALLER_NAME)
    setup = roothelper.setup_command(facts.system.user, spec.address, installer)
    return [
        _fail(
            spec,
            Kind.ROOT_HELPER,
            roothelper.HELPER_PATH,
            f"{problem}; the system domain and `macos:` settings need it. Set it up once "
            f"(apply puts the installer on the host): {setup}",
        )
    ]


def _launchd(spec: HostSpec, facts: Facts, mac: MacFacts) -> list[Change]:
    """A label the root helper would refuse; a user domain with nobody logged in."""
    changes = []
    label = launchd_label(spec)
    if spec.launchd.domain == "system" and not label.startswith(roothelper.LABEL_PREFIX):
        changes.append(
            _fail(
                spec,
                Kind.SERVICE_DEFINITION,
                roothelper.LABEL_PREFIX + label,
                f"the label {label} is not one of the tool's: the root helper loads only labels "
                f"that start with {roothelper.LABEL_PREFIX}; rename it in `launchd.label`",
            )
        )
    if (
        service_kind(spec, facts) == "launchd"
        and spec.launchd.domain == "user"
        and mac.console_uid is not None
        and mac.console_uid != facts.system.uid
    ):
        changes.append(
            _fail(
                spec,
                Kind.LAUNCHD_DOMAIN,
                f"gui/{facts.system.uid}",
                f"`launchd: {{domain: user}}` needs {facts.system.user} logged in at the Mac's "
                "console: gui/UID exists only then (at the login window, after a reboot, or "
                "with someone else logged in it does not, and FileVault rules out auto-login); "
                "a headless Mac wants `launchd: {domain: system}`",
            )
        )
    return changes


def _version_tuple(text: str) -> tuple[int, int] | None:
    parts = text.split(".")
    try:
        return int(parts[0]), int(parts[1]) if len(parts) > 1 else 0
    except ValueError:
        return None
