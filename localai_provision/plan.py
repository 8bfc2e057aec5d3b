"""plan(desired, observed) -> changes: a pure function, the heart of the reconciler.

Given a host's resolved settings (HostSpec) and what the host looks like now (Facts), list
exactly the changes that make it match, each with the reason in words. No I/O: tests drive it
with tables, and apply executes its output and nothing else.
"""

from __future__ import annotations

import hashlib
import posixpath
from dataclasses import dataclass

from localai_provision import roothelper, scripts
from localai_provision.facts.model import Facts, MacosFacts, ServerConfigFacts
from localai_provision.layout import (
    SERVER_PACKAGE,
    SHIM_MODULE,
    SOURCE_ONLY_PACKAGES,
    WIRED_LIMIT_LABEL,
    Layout,
    config_hash,
    env_digest,
    expand_home,
    launchd_daemons_dir,
    launchd_label,
    launchd_plist,
    pull_cron_block,
    pull_plist,
    same_plist,
    server_config,
    service_kind,
    wired_limit_plist,
)
from localai_provision.linux import linux_additions
from localai_provision.lock import TOOLS, Lock, LockError
from localai_provision.site.model import HostSpec, MacosSettings, package_base_name

# Actions, in the order apply carries them out.
CREATE = "create"
UPDATE = "update"
REMOVE = "remove"
START = "start"
RESTART = "restart"
FAIL = "fail"  # something the tool cannot fix; apply stops this host with the reason
# A package change's `before` when the package is at its version but files of it are gone:
# apply reinstalls it (an installer would otherwise find it already satisfied).
HALF_INSTALLED = "half-installed"

# Resource kinds (a Change's resource is "KIND" or "KIND NAME").
SYSTEM = "system"
LOCK = "lock"
SECRET = "secret"
CLOCK_TOLERANCE_S = 300.0
PYTHON = "python"
VENV = "venv"
PACKAGE = "package"
SERVER_CONFIG = "server-config"
SHIM = "shim"
SERVICE_DEFINITION = "service-definition"
MACOS = "macos"
MODEL = "model"
SERVICE = "service"
PULL_TIMER = "pull-timer"
ROOT_HELPER = "root-helper"
LAUNCHD_DOMAIN = "launchd-domain"
MIN_MACOS = (14, 0)  # torch, onnxruntime and av publish macosx_14_0 wheels only
STALE_PULL_INTERVALS = 3  # a pull older than this many intervals is a warning


@dataclass(frozen=True)
class Change:
    host: str
    resource: str  # e.g. "venv", "package mlx-lm", "model org/name", "service"
    action: str
    before: str | None
    after: str | None
    reason: str

    @property
    def kind(self) -> str:
        return self.resource.split(" ", 1)[0]

    @property
    def name(self) -> str:
        return self.resource.split(" ", 1)[1] if " " in self.resource else ""

    def as_dict(self) -> dict[str, object]:
        return {
            "host": self.host,
            "resource": self.resource,
            "action": self.action,
            "before": self.before,
            "after": self.after,
            "reason": self.reason,
        }


def layout_for(facts: Facts) -> Layout:
    return Layout(prefix=facts.prefix)


def desired_config(spec: HostSpec, facts: Facts) -> dict[str, object]:
    layout = layout_for(facts)
    config = server_config(spec, layout, expand_home(spec.hf_home, facts.system.home))
    return {**config, "hash": config_hash(config)}


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


def desired_shim() -> dict[str, str]:
    """The start-up shim's files in site-packages, by name -> sha256."""
    source = scripts.load("server_shim").encode("utf-8")
    return {
        f"{SHIM_MODULE}.py": hashlib.sha256(source).hexdigest(),
        f"{SHIM_MODULE}.pth": hashlib.sha256(shim_pth().encode("utf-8")).hexdigest(),
    }


def shim_pth() -> str:
    return f"import {SHIM_MODULE}\n"


def plan(spec: HostSpec, facts: Facts, lock: Lock | LockError | None = None) -> list[Change]:
    """The changes that make the host match ``spec``. ``lock`` is the host's locked set (its
    platform's lock file), the error met reading it, or None when the site locks nothing."""
    host = spec.name
    changes: list[Change] = []

    def add(resource: str, action: str, before: str | None, after: str | None, reason: str) -> None:
        changes.append(Change(host, resource, action, before, after, reason))

    # 0. What the tool cannot install itself.
    if (
        facts.system.os == "linux"
        and SERVER_PACKAGE in spec.packages
        and not facts.system.portaudio
    ):
        add(
            f"{SYSTEM} libportaudio2",
            FAIL,
            None,
            "installed",
            "mlx-omni-server imports sounddevice at start, which needs PortAudio: install it "
            "on the host (Debian/Ubuntu: sudo apt-get install libportaudio2)",
        )

    for name, variable in spec.server.missing_env.items():
        add(
            f"{SECRET} {name}",
            FAIL,
            None,
            variable,
            f"server.env.{name} comes from the controller's environment variable {variable}, "
            "which is not set here: set it (export it in the shell that runs localai)",
        )

    if isinstance(lock, LockError):
        add(LOCK, FAIL, None, spec.lock, str(lock).removeprefix(f"{host}: "))
        lock = None

    changes += prerequisite_changes(spec, facts, lock)

    # 1. The interpreter the venv is built from.
    if not facts.python.found:
        add(
            PYTHON,
            FAIL,
            None,
            spec.python,
            f"`{spec.python}` is not on the host; install it or fix `python` in the site file",
        )

    # 2. The venv.
    venv = facts.venv
    wanted_python = facts.python.short_version if facts.python.found else None
    rebuild_venv = False
    if venv.exists and not venv.owned and not venv.empty:
        # Never delete what the tool did not make: a venv of someone else's where ours goes.
        add(
            VENV,
            FAIL,
            "not made by localai",
            venv.path,
            f"{venv.path} exists but was not made by localai-provision (it has no "
            ".localai-owned marker): refused, apply would have to delete it",
        )
    elif not venv.exists:
        add(VENV, CREATE, None, venv.path, "there is no venv yet")
        rebuild_venv = True
    elif not venv.python_exists:
        add(
            VENV,
            UPDATE,
            "broken",
            venv.path,
            "the venv's Python is gone (deleted or upgraded under it); the venv is rebuilt",
        )
        rebuild_venv = True
    elif not venv.complete:
        add(
            VENV,
            UPDATE,
            "incomplete",
            venv.path,
            "the venv is incomplete (an earlier build was interrupted); it is rebuilt",
        )
        rebuild_venv = True
    elif (
        wanted_python
        and venv.python_version
        and not _same_minor(venv.python_version, wanted_python)
    ):
        add(
            VENV,
            UPDATE,
            f"Python {venv.python_version}",
            f"Python {wanted_python}",
            f"the venv was made with Python {venv.python_version}, `{spec.python}` is "
            f"{wanted_python}; the venv is rebuilt",
        )
        rebuild_venv = True

    # 3. Packages: the pinned set, exactly. A package already at its version is left alone.
    package_changed = False
    wanted_packages = desired_packages(spec, facts, lock)
    for name, (version, why) in wanted_packages.items():
        base = package_base_name(name)
        installed = None if rebuild_venv else venv.packages.get(base)
        because = f" ({why})" if why else ""
        if installed is None:
            add(
                f"{PACKAGE} {name}",
                CREATE,
                None,
                version,
                f"{name} is not installed, {version} wanted{because}",
            )
            package_changed = True
        elif base in venv.half_installed:
            add(
                f"{PACKAGE} {name}",
                UPDATE,
                HALF_INSTALLED,
                version,
                f"{name} {installed} is half-installed ({venv.half_installed[base]} is "
                "missing); it is reinstalled",
            )
            package_changed = True
        elif not _same_version(installed, version):
            add(
                f"{PACKAGE} {name}",
                UPDATE,
                installed,
                version,
                f"{name} {installed} installed, {version} wanted{because}",
            )
            package_changed = True

    if lock is not None and not rebuild_venv:
        # A locked set is exact: what the lock does not name goes.
        wanted_bases = {package_base_name(n) for n in wanted_packages}
        for name, installed in sorted(venv.packages.items()):
            if name not in wanted_bases and name not in TOOLS:
                add(
                    f"{PACKAGE} {name}",
                    REMOVE,
                    installed,
                    None,
                    f"{name} {installed} is installed but not in {lock.path.name}",
                )
                package_changed = True

    # The start-up shim: defers Metal-kernel failures on Linux and applies the model-cache
    # settings on mlx-omni-server releases that do not read them (see scripts/server_shim.py).
    shim_changed = False
    if SERVER_PACKAGE in spec.packages and spec.linux.shim:
        wanted_shim = desired_shim()
        present = {} if rebuild_venv else facts.venv.shims
        if any(present.get(name) != digest for name, digest in wanted_shim.items()):
            add(
                SHIM,
                CREATE if not present else UPDATE,
                "absent" if not present else "outdated",
                SHIM_MODULE,
                "the start-up shim (model-cache settings; Metal kernels deferred on Linux) "
                + ("is not installed" if not present else "is outdated"),
            )
            shim_changed = True

    # 4. The server's configuration file.
    wanted = desired_config(spec, facts)
    wanted_hash = str(wanted["hash"])
    actual = facts.server_config
    config_changed = False
    if actual is None:
        add(SERVER_CONFIG, CREATE, None, wanted_hash, "the server has no configuration file yet")
        config_changed = True
    elif not actual.readable:
        add(
            SERVER_CONFIG,
            UPDATE,
            "unreadable",
            wanted_hash,
            "the configuration file is not the JSON apply writes (damaged?); it is rewritten",
        )
        config_changed = True
    elif actual.hash != wanted_hash:
        add(
            SERVER_CONFIG,
            UPDATE,
            str(actual.hash),
            wanted_hash,
            _config_difference(actual, wanted),
        )
        config_changed = True

    # 5. Models in the cache.
    models_changed = False
    for model_spec, model in zip(spec.models, facts.models, strict=True):
        if not model.complete:
            how = f"copied from {model_spec.source}" if model_spec.source else "downloaded"
            add(
                f"{MODEL} {model.id}",
                CREATE if not model.present else UPDATE,
                model.problem,
                model.revision,
                f"{model.id}@{model.revision}: {model.problem}; it will be {how}",
            )
            models_changed = True

    # Mac settings for a headless inference host (only those the site names).
    changes += macos_changes(spec, facts)
    # Pull mode's timer: installed, changed or removed; never a reason to restart the server.
    changes += pull_timer_changes(spec, facts)

    # 6. The service: started when stopped, restarted once when anything above changed or
    #    the running server is not the one the site describes.
    definition_changed = False
    job = facts.service.launchd
    if service_kind(spec, facts) == "launchd":
        wanted_plist = launchd_plist(spec, layout_for(facts), facts.system.user, facts.system.home)
        actual_plist = job.plist if job else None
        if not same_plist(actual_plist, wanted_plist):
            add(
                SERVICE_DEFINITION,
                CREATE if actual_plist is None else UPDATE,
                job.plist_path if job and actual_plist else None,
                launchd_label(spec),
                "the launchd job's plist "
                + ("is not installed" if actual_plist is None else "differs from the site's"),
            )
            definition_changed = True
    process = facts.service.process
    running = facts.service.running and process is not None
    if job is not None and not job.running:
        running = False
    if not running:
        if facts.port_open:
            holders = [p for p in facts.service.server_processes]
            who = f" (pid {holders[0].pid}: {holders[0].command[:80]})" if holders else ""
            reason = (
                f"not running, and port {spec.server.port} is held by another program{who}; "
                "apply will fail until it is stopped or `server.port` is changed"
            )
        elif job is not None and job.crashed:
            reason = f"the launchd job {job.crash_summary()}; see the server's log"
        elif job is not None and not job.loaded:
            reason = f"the launchd job {job.target} is not loaded"
        elif job is not None:
            reason = f"the launchd job {job.target} is loaded but {job.state or 'not running'}"
        else:
            reason = "the server is not running"
        add(SERVICE, START, "stopped", "running", reason)
    else:
        assert process is not None
        restart = _restart_reason(
            spec,
            facts,
            rebuild_venv,
            package_changed or shim_changed,
            config_changed or definition_changed,
            models_changed,
            process.config_hash,
            wanted_hash,
        )
        if restart:
            add(SERVICE, RESTART, f"pid {process.pid}", "running", restart)
    return changes


def desired_pull_timer(spec: HostSpec, facts: Facts) -> str | None:
    """The timer's definition as the site asks for it on this host (the tool's crontab lines
    on Linux, the plist on macOS), or None when the site declares no timer."""
    if not spec.pull.declared:
        return None
    if facts.system.os == "macos":
        layout = layout_for(facts)
        return pull_plist(spec, layout, facts.system.user, facts.system.home).decode("utf-8")
    return pull_cron_block(spec)


def pull_timer_changes(spec: HostSpec, facts: Facts) -> list[Change]:
    """Resource `pull-timer`: create or update it to the site's definition, remove one the
    site no longer declares (only the tool's own: its crontab markers, its plist label)."""
    wanted = desired_pull_timer(spec, facts)
    timer = facts.pull_timer
    actual = timer.definition if timer else None
    kind = "launchd job" if facts.system.os == "macos" else "crontab entry"

    def change(action: str, before: str | None, after: str | None, reason: str) -> Change:
        return Change(spec.name, PULL_TIMER, action, before, after, reason)

    if wanted is None:
        if actual is None:
            return []
        return [
            change(
                REMOVE,
                "installed",
                None,
                f"the pull timer ({kind}) is installed but the site declares no `pull`",
            )
        ]
    every = f"every {spec.pull.interval_s} s"
    if timer is not None and timer.kind == "cron" and not timer.available:
        return [
            change(
                FAIL,
                None,
                every,
                "`pull` asks for a timer, which is a crontab entry on Linux, but `crontab` "
                "is not on the host: install cron (Debian/Ubuntu: sudo apt-get install cron)",
            )
        ]
    if actual == wanted or (
        facts.system.os == "macos" and same_plist(actual, wanted.encode("utf-8"))
    ):
        return []
    if actual is None:
        return [change(CREATE, None, every, f"the pull timer ({kind}) is not installed")]
    return [change(UPDATE, "differs", every, f"the pull timer ({kind}) differs from the site's")]


def pull_warnings(spec: HostSpec, facts: Facts) -> list[str]:
    """What the host's last pull (PREFIX/state/pull-report.json) says: it failed, it could
    not update its checkout, or it is older than 3 of its intervals (the timer stopped, the
    host sleeps or is off). Warnings, not changes: the host's state is what drift compares."""
    report = facts.pull_report
    if report is None:
        return []
    when = report.finished_at or "an unknown time"
    warnings = []
    if report.failed:
        step = f" at step {report.failed_step}" if report.failed_step else ""
        warnings.append(
            f"the last pull (localai apply --local, {when}) failed{step}: "
            f"{report.error or report.result}"
        )
    if report.git_error:
        warnings.append(
            f"the last pull ({when}) could not update its checkout (git pull: "
            f"{report.git_error}); it applied the site file as it was"
        )
    interval = spec.pull.interval_s if spec.pull.declared else report.interval_s
    if interval and report.finished_epoch is not None:
        age = facts.system.clock - report.finished_epoch
        if age > STALE_PULL_INTERVALS * interval:
            warnings.append(
                f"the last pull ran {_ago(age)} ago ({when}), more than "
                f"{STALE_PULL_INTERVALS} times its interval of {interval} s: is its timer "
                "running, is the host asleep?"
            )
    return warnings


def _ago(seconds: float) -> str:
    minutes = int(seconds // 60)
    if minutes < 120:
        return f"{minutes} min"
    hours = minutes // 60
    return f"{hours} h" if hours < 48 else f"{hours // 24} days"


def macos_changes(spec: HostSpec, facts: Facts) -> list[Change]:
    """pmset and sysctl settings, each a fact compared with the site. Resources are
    `macos NAME`; `after` holds the value apply sets."""
    wanted = spec.macos
    if facts.system.os != "macos" or wanted == MacosSettings():
        return []
    found = facts.macos or MacosFacts(pmset={}, wired_limit_mb=None)
    changes = []

    def add(name: str, before: str | None, after: str, reason: str) -> None:
        changes.append(Change(spec.name, f"{MACOS} {name}", UPDATE, before, after, reason))

    if wanted.never_sleep and (found.pmset.get("sleep"), found.pmset.get("disksleep")) != (
        "0",
        "0",
    ):
        add(
            "never_sleep",
            f"sleep {found.pmset.get('sleep')}",
            "0",
            "the Mac may sleep (pmset sleep/disksleep are not 0): a sleeping host serves nothing",
        )
    if wanted.restart_after_power_failure is not None:
        value = "1" if wanted.restart_after_power_failure else "0"
        if found.pmset.get("autorestart") != value:
            add(
                "restart_after_power_failure",
                found.pmset.get("autorestart"),
                value,
                f"pmset autorestart is {found.pmset.get('autorestart')}, {value} wanted",
            )
    limit = wanted.gpu_wired_limit_mb
    if limit is not None:
        if found.wired_limit_mb != limit:
            add(
                "gpu_wired_limit_mb",
                str(found.wired_limit_mb),
                str(limit),
                f"iogpu.wired_limit_mb is {found.wired_limit_mb}, {limit} wanted",
            )
        if not same_plist(found.boot_plist, wired_limit_plist(limit)):
            add(
                "gpu_wired_limit_at_boot",
                None,
                str(limit),
                f"the limit resets at reboot: a boot daemon sets it again ({WIRED_LIMIT_LABEL})",
            )
    return changes


def prerequisite_changes(spec: HostSpec, facts: Facts, lock: Lock | None) -> list[Change]:
    """What blocks an apply and only the host's admin can fix, found before anything moves:
    each a FAIL whose reason says the fix (also what `localai doctor` reports)."""
    changes: list[Change] = []

    def fail(resource: str, wanted: str | None, reason: str) -> None:
        changes.append(Change(spec.name, resource, FAIL, None, wanted, reason))

    locked = lock.python_version if lock is not None else None
    mismatch = facts.python.found and facts.python.short_version != locked
    if lock is not None and locked and mismatch:
        fail(
            PYTHON,
            locked,
            f"{lock.path.name} was resolved for Python {locked}, but `{spec.python}` is "
            f"{facts.python.short_version}: install Python {locked} on the host (macOS: "
            f"`brew install python@{locked}`) and name it in `python`",
        )
    if facts.system.os != "macos":
        return changes
    version = _version_tuple(facts.system.os_version)
    if version is not None and version < MIN_MACOS:
        fail(
            f"{SYSTEM} macos",
            "14.0",
            f"macOS {facts.system.os_version} is too old: the server's packages publish "
            "wheels for macOS 14 and newer; update the Mac to macOS 14 or later",
        )
    mac = facts.mac
    if mac is None:
        return changes
    if mac.clt_checked and mac.clt_path is None:
        fail(
            f"{SYSTEM} xcode-clt",
            "installed",
            "Xcode's Command Line Tools are missing: "
            f"{', '.join(SOURCE_ONLY_PACKAGES)} is published only as source and must be "
            "compiled on the Mac; run `xcode-select --install` on the host (or install "
            "them by MDM), then apply again",
        )
    if mac.helper_checked:
        installer = posixpath.join(layout_for(facts).libexec, roothelper.INSTALLER_NAME)
        setup = roothelper.setup_command(facts.system.user, spec.address, installer)
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
        if problem:
            fail(
                ROOT_HELPER,
                roothelper.HELPER_PATH,
                f"{problem}; the system domain and `macos:` settings need it. Set it up once "
                f"(apply puts the installer on the host): {setup}",
            )
    label = launchd_label(spec)
    if spec.launchd.domain == "system" and not label.startswith(roothelper.LABEL_PREFIX):
        fail(
            SERVICE_DEFINITION,
            roothelper.LABEL_PREFIX + label,
            f"the label {label} is not one of the tool's: the root helper loads only labels "
            f"that start with {roothelper.LABEL_PREFIX}; rename it in `launchd.label`",
        )
    if (
        service_kind(spec, facts) == "launchd"
        and spec.launchd.domain == "user"
        and mac.console_uid is not None
        and mac.console_uid != facts.system.uid
    ):
        fail(
            LAUNCHD_DOMAIN,
            f"gui/{facts.system.uid}",
            f"`launchd: {{domain: user}}` needs {facts.system.user} logged in at the Mac's "
            "console: gui/UID exists only then (at the login window, after a reboot, or "
            "with someone else logged in it does not, and FileVault rules out auto-login); "
            "a headless Mac wants `launchd: {domain: system}`",
        )
    limit = spec.macos.gpu_wired_limit_mb
    if limit is not None and mac.memsize_bytes:
        memory_mb = mac.memsize_bytes // (1024 * 1024)
        if limit > memory_mb:
            fail(
                f"{MACOS} gpu_wired_limit_mb",
                str(limit),
                f"gpu_wired_limit_mb {limit} is more than this Mac's memory ({memory_mb} MB): "
                "set it below the memory, leaving room for macOS (for example 75%: "
                f"{memory_mb * 3 // 4})",
            )
    return changes


def _version_tuple(text: str) -> tuple[int, int] | None:
    parts = text.split(".")
    try:
        return int(parts[0]), int(parts[1]) if len(parts) > 1 else 0
    except ValueError:
        return None


def _restart_reason(
    spec: HostSpec,
    facts: Facts,
    rebuild_venv: bool,
    package_changed: bool,
    config_changed: bool,
    models_changed: bool,
    running_hash: str | None,
    wanted_hash: str,
) -> str | None:
    what = [
        word
        for word, changed in (
            ("the venv", rebuild_venv),
            ("packages", package_changed),
            ("the configuration", config_changed),
            ("models", models_changed),
        )
        if changed
    ]
    if what:
        return f"{' and '.join(what)} changed"
    if running_hash != wanted_hash:
        return "it runs with another configuration than the site's"
    for path in dict.fromkeys(("/v1/models", *spec.verify.endpoints)):
        endpoint = facts.endpoint(path)
        if endpoint is None or not endpoint.ok:
            problem = endpoint.error if endpoint else "no answer"
            return f"{path} does not answer properly ({problem})"
    listed = facts.listed_models or set()
    unlisted = [m.id for m in spec.models if m.id not in listed]
    if unlisted:
        return (
            f"{unlisted[0]} is in the cache but not listed by the server, which reads the "
            "cache only when it starts"
        )
    return None


def _same_minor(a: str, b: str) -> bool:
    return a.split(".")[:2] == b.split(".")[:2]


def _same_version(installed: str, wanted: str) -> bool:
    # A wheel's dist-info carries the normalised version; the site may say `0.29.3` for
    # `0.29.3` and `2.13.0+cpu` for `2.13.0+cpu`. Compare case-insensitively, nothing looser.
    return installed.lower() == wanted.lower()


def _config_difference(actual: ServerConfigFacts, wanted: dict[str, object]) -> str:
    """Which parts of the configuration differ. The host sends no environment values (they
    may be secrets), only a salted digest of each: a variable differs when the digest of the
    value wanted does not match. Values are never shown, plain ones neither (a token pasted
    into the site file as a plain value is a secret all the same); arguments are (secrets
    are never arguments)."""
    parts = []
    wanted_argv = wanted.get("argv")
    if isinstance(wanted_argv, list) and actual.argv != tuple(wanted_argv):
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


def plan_warnings(spec: HostSpec, facts: Facts) -> list[str]:
    """Things worth saying that are not changes."""
    warnings = []
    process = facts.service.process
    ours = process.pid if process is not None and process.alive else None
    strays = [p for p in facts.service.server_processes if p.pid != ours]
    if strays:
        warnings.append(
            f"{len(strays)} other mlx-omni-server process(es) run as this user "
            f"(pid {', '.join(str(p.pid) for p in strays[:5])}); they are not managed by "
            "localai and may hold memory or ports"
        )
    if spec.server.host in ("0.0.0.0", "::") and "--api-key" not in " ".join(
        spec.server.extra_args
    ):
        warnings.append(
            f"the server listens on all interfaces ({spec.server.host}) with no API key in "
            "front: anyone on the network can use it"
        )
    prewarmed = [m.id for m in spec.models if m.prewarm]
    env = spec.server.env
    size, ttl = env.get("MLX_OMNI_MODEL_CACHE_SIZE"), env.get("MLX_OMNI_MODEL_CACHE_TTL")
    # isdigit() is true of "²" and "٣" too; only ASCII digits are the plain number the
    # server's int() reads as meant (and "²" would make int() raise here).
    if size is not None and size.isascii() and size.isdigit() and len(prewarmed) > int(size):
        warnings.append(
            f"{len(prewarmed)} models are prewarmed but the server keeps {size} loaded "
            "(MLX_OMNI_MODEL_CACHE_SIZE): the first ones will be unloaded again"
        )
    if prewarmed and ttl not in (None, "0"):
        warnings.append(
            f"prewarmed models are unloaded after {ttl} s idle (MLX_OMNI_MODEL_CACHE_TTL); "
            "0 keeps them loaded"
        )
    if spec.lock is None and SERVER_PACKAGE in spec.packages:
        warnings.append(
            "only the pinned packages are fixed: the rest of the server's dependencies "
            "(about 200) are whatever the index offers today; `localai lock` fixes them all"
        )
    if facts.clock_offset_s is not None and abs(facts.clock_offset_s) > CLOCK_TOLERANCE_S:
        warnings.append(
            f"the host's clock is {facts.clock_offset_s:+.0f} s off this machine's: TLS "
            "certificates (downloads) and log times can go wrong; check its time settings"
        )
    if facts.disk_free_bytes is not None and facts.disk_free_bytes < 2 * 1024**3:
        warnings.append(f"only {facts.disk_free_bytes / 1024**3:.1f} GiB free under {facts.prefix}")
    return warnings + pull_warnings(spec, facts)
