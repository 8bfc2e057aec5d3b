"""Where things live on a host, and the server configuration the site asks for.

Everything the tool owns sits under the host's `prefix` (default ~/.localai):

    prefix/generations/ID/  one venv per package set (generation), ID its digest
    prefix/current        a link to the generation the server runs (generations/ID)
    prefix/previous       a link to the one before: what `rollback` returns to
    prefix/venv/          the single venv of versions before generations (left until pruned)
    prefix/server.json.previous  the previous generation's server.json, for rollback
    prefix/server.json    the server's arguments and environment (mode 0600: may hold secrets)
    prefix/state.json     what the last successful apply did, and when
    prefix/lock           held while an apply runs
    prefix/run/server.pid the `process` service's pid file
    prefix/logs/server.log  the server's output, rotated by size (server.log.1, ...)
    prefix/state/loaded-models.json  the models the server has loaded (the shim writes it)
    prefix/state/pull-report.json  what the last pull (`apply --local`) did (docs/pull.md)
    prefix/logs/pull.log  the output of the last run of the pull timer
"""

from __future__ import annotations

import hashlib
import json
import posixpath
from dataclasses import dataclass
from typing import Any

from localai_provision import scripts, shell
from localai_provision.site.model import HostSpec

SERVER_PACKAGE = "mlx-omni-server"
# Packages of the server's set that publish only an sdist for macOS arm64, so a Mac compiles
# them and needs Xcode's Command Line Tools (PyPI, checked 2026-12: webrtcvad 2.0.10).
SOURCE_ONLY_PACKAGES = ("webrtcvad",)
PULL_REPORT = "pull-report.json"
SHIM_MODULE = "localai_server_shim"
# Markers the tool writes into what it makes: only a folder that carries one is ever deleted.
OWNED_MARKER = ".localai-owned"  # written first, into the empty folder
COMPLETE_MARKER = ".localai-complete"  # written last (older versions wrote only this one)
# In HF_HOME/hub when the tool made the model cache (or its admin gave it to the site): only
# then does `models_prune` remove anything from it.
CACHE_MARKER = ".localai-cache"
# A model being removed is first renamed so (atomic): a reader never finds it half deleted.
REMOVING_PREFIX = ".localai-removing-"


GENERATIONS_DIR = "generations"
LEGACY_VENV = "venv"  # the one venv of versions before generations: a generation named so
# Written into a generation when its packages and shim are in (its last step): only a
# generation that has it is switched to without building it again. Holds what `generations`
# lists (created, Python, packages, size).
GENERATION_META = ".localai-generation.json"
# Written into a generation that failed to start, verify or prewarm and was rolled back.
FAILED_MARKER = ".localai-failed.json"


@dataclass(frozen=True)
class Layout:
    prefix: str  # absolute, as the host expanded it
    # The generation the paths of the venv name (None: the single venv of older versions).
    generation: str | None = None

    def for_generation(self, generation: str | None) -> Layout:
        return Layout(self.prefix, generation)

    @property
    def venv(self) -> str:
        if self.generation is None or self.generation == LEGACY_VENV:
            return posixpath.join(self.prefix, LEGACY_VENV)
        return posixpath.join(self.generations_dir, self.generation)

    @property
    def generations_dir(self) -> str:
        return posixpath.join(self.prefix, GENERATIONS_DIR)

    @property
    def current_link(self) -> str:
        return posixpath.join(self.prefix, "current")

    @property
    def previous_link(self) -> str:
        return posixpath.join(self.prefix, "previous")

    @property
    def current_python(self) -> str:
        """The Python of whatever generation runs: what the launchd job starts, so that its
        plist stays the same across generations."""
        return posixpath.join(self.current_link, "bin", "python")

    @property
    def generation_meta(self) -> str:
        return posixpath.join(self.venv, GENERATION_META)

    @property
    def failed_marker(self) -> str:
        return posixpath.join(self.venv, FAILED_MARKER)

    @property
    def server_config_previous(self) -> str:
        return self.server_config + ".previous"

    @property
    def venv_python(self) -> str:
        return posixpath.join(self.venv, "bin", "python")

    def venv_bin(self, name: str) -> str:
        return posixpath.join(self.venv, "bin", name)

    @property
    def server_bin(self) -> str:
        return self.venv_bin("mlx-omni-server")

    def site_packages(self, python_short_version: str) -> str:
        """The venv's site-packages for Python MAJOR.MINOR."""
        return posixpath.join(self.venv, "lib", f"python{python_short_version}", "site-packages")

    @property
    def requirements_lock(self) -> str:
        """The locked set the packages step installs from (`lock:`)."""
        return posixpath.join(self.prefix, "requirements.lock.txt")

    @staticmethod
    def model_cache(hf_home: str, cache_dir_name: str) -> str:
        """A model's folder in the host's Hugging Face cache (HF_HOME is not under prefix)."""
        return posixpath.join(hf_home, "hub", cache_dir_name)

    @property
    def tools(self) -> str:
        """Where uv is installed (pip --target): outside the venv, so that installing the
        server's exact package set never removes it."""
        return posixpath.join(self.prefix, "tools")

    @property
    def wheels(self) -> str:
        """Wheels the controller sent (`package_index: {push: true}`), named as on PyPI."""
        return posixpath.join(self.prefix, "wheels")

    @property
    def uv(self) -> str:
        return posixpath.join(self.tools, "bin", "uv")

    @property
    def server_config(self) -> str:
        return posixpath.join(self.prefix, "server.json")

    @property
    def state(self) -> str:
        return posixpath.join(self.prefix, "state.json")

    @property
    def lock(self) -> str:
        return posixpath.join(self.prefix, "lock")

    @property
    def run_dir(self) -> str:
        return posixpath.join(self.prefix, "run")

    @property
    def pid_file(self) -> str:
        return posixpath.join(self.run_dir, "server.pid")

    @property
    def work_dir(self) -> str:
        """The server's working folder (it writes ./logs at import time)."""
        return posixpath.join(self.prefix, "work")

    @property
    def lock_owner(self) -> str:
        return posixpath.join(self.lock, "owner.json")

    @property
    def log_dir(self) -> str:
        return posixpath.join(self.prefix, "logs")

    @property
    def server_log(self) -> str:
        return posixpath.join(self.log_dir, "server.log")

    @property
    def libexec(self) -> str:
        """Programs the tool leaves for the admin (the root helper's installer)."""
        return posixpath.join(self.prefix, "libexec")

    @property
    def state_dir(self) -> str:
        return posixpath.join(self.prefix, "state")

    @property
    def pull_report(self) -> str:
        return posixpath.join(self.state_dir, PULL_REPORT)

    @property
    def loaded_models(self) -> str:
        """Which models the server has loaded: written by the start-up shim (LOADED_MODELS_ENV)."""
        return posixpath.join(self.state_dir, "loaded-models.json")

    @property
    def pull_cron_marker(self) -> str:
        """Present while the tool's crontab entry is installed: only then (or when the site
        declares a timer) do facts run `crontab -l`, which costs a process per host."""
        return posixpath.join(self.state_dir, "pull-cron")

    @property
    def pull_log(self) -> str:
        return posixpath.join(self.log_dir, "pull.log")


def relative_layout() -> dict[str, str]:
    """The host paths the facts script reads, relative to the prefix (which only the host
    can expand), and the markers: the script joins them, it keeps no copy of its own."""
    rel = Layout("")
    return {
        "venv": rel.venv,
        "generations": GENERATIONS_DIR,
        "current": "current",
        "previous": "previous",
        "generation_meta": GENERATION_META,
        "failed_marker": FAILED_MARKER,
        "server_config": rel.server_config,
        "state": rel.state,
        "lock_owner": rel.lock_owner,
        "pid_file": rel.pid_file,
        "pull_report": rel.pull_report,
        "pull_cron_marker": rel.pull_cron_marker,
        "server_log": rel.server_log,
        "loaded_models": rel.loaded_models,
        "owned_marker": OWNED_MARKER,
        "complete_marker": COMPLETE_MARKER,
    }


def expand_home(path: str, home: str) -> str:
    """Expand a leading `~` with the host's home, as the host's shell would."""
    if path == "~":
        return home
    if path.startswith("~/"):
        return posixpath.join(home, path[2:])
    return path


def server_config(spec: HostSpec, layout: Layout, hf_home: str) -> dict[str, Any]:
    """The exact command and environment the server runs with. Its hash is what drift
    compares, so every setting that changes how the server runs belongs in here."""
    server = spec.server
    argv = [
        layout.server_bin,
        "--host",
        server.host,
        "--port",
        str(server.port),
        "--workers",
        str(server.workers),
        "--log-level",
        server.log_level,
        *server.extra_args,
    ]
    env = {"HF_HOME": hf_home}
    if spec.offline:
        env["HF_HUB_OFFLINE"] = "1"
    if SERVER_PACKAGE in spec.packages:
        # Prewarmed models must stay loaded: mlx-omni-server unloads a model idle for 300 s
        # and keeps 3 at most. Releases after 0.5.2 read these; for 0.5.1 the shim the tool
        # installs applies them (scripts/server_shim.py). TTL 0 = never unload.
        prewarmed = sum(1 for m in spec.models if m.prewarm)
        env["MLX_OMNI_MODEL_CACHE_TTL"] = "0"
        env["MLX_OMNI_MODEL_CACHE_SIZE"] = str(max(3, prewarmed))
    env.update(server_log_env(spec, layout))
    env.update(server.env)  # the site's own values win
    config: dict[str, Any] = {"argv": argv, "env": env}
    if spec.macos.gpu_wired_limit_mb is not None:
        # MLX reads the limit once per process: a new limit means a new server process (it is
        # in the hash), and at boot the launchd job waits for it (scripts/launchd_exec.py).
        config["wired_limit_mb"] = spec.macos.gpu_wired_limit_mb
    return config


# Read by the launchers and the start-up shim (scripts/logrotate.py, scripts/server_shim.py).
LOG_PATH_ENV = "LOCALAI_LOG_PATH"
LOG_MAX_BYTES_ENV = "LOCALAI_LOG_MAX_BYTES"
LOG_KEEP_ENV = "LOCALAI_LOG_KEEP"
LOADED_MODELS_ENV = "LOCALAI_LOADED_MODELS"


def server_log_env(spec: HostSpec, layout: Layout) -> dict[str, str]:
    """The log's rotation (docs/site-format.md `server_log`) and where the shim publishes the
    loaded models: in the server's environment, so a change is a change of its configuration."""
    return {
        LOG_PATH_ENV: layout.server_log,
        LOG_MAX_BYTES_ENV: str(spec.server_log.max_bytes),
        LOG_KEEP_ENV: str(spec.server_log.keep),
        LOADED_MODELS_ENV: layout.loaded_models,
    }


def config_hash(config: dict[str, Any]) -> str:
    hashed = {"argv": config["argv"], "env": config["env"]}
    if config.get("wired_limit_mb") is not None:
        hashed["wired_limit_mb"] = config["wired_limit_mb"]
    text = json.dumps(hashed, sort_keys=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def env_digest(salt: str, name: str, value: str) -> str:
    """What the facts script sends of a value of the server's environment (its env_digest):
    the controller computes it for the value it wants and compares digests, never values."""
    data = "\0".join((salt, name, value)).encode("utf-8", "surrogatepass")
    return hashlib.sha256(data).hexdigest()


def launchd_label(spec: HostSpec) -> str:
    """Stable and documented: com.localai-provision.server.PORT, unless the site names one."""
    return spec.launchd.label or f"com.localai-provision.server.{spec.server.port}"


def launchd_plist_path(spec: HostSpec) -> str:
    """Where the job's plist lives (a `~` is expanded on the host)."""
    default = (
        "/Library/LaunchDaemons" if spec.launchd.domain == "system" else "~/Library/LaunchAgents"
    )
    folder = (spec.launchd.plist_dir or default).rstrip("/")
    return f"{folder}/{launchd_label(spec)}.plist"


def launchd_job(spec: HostSpec) -> dict[str, str] | None:
    """What the facts script needs to look the job up, when the host may run launchd."""
    if spec.service not in ("auto", "launchd"):
        return None
    return {
        "domain": spec.launchd.domain,
        "label": launchd_label(spec),
        "plist_path": launchd_plist_path(spec),
    }


def launchd_plist(spec: HostSpec, layout: Layout, user: str, home: str) -> bytes:
    """The job's property list. It holds no secret and no server setting: the job runs the
    launcher (scripts/launchd_exec.py), which reads the 0600 server.json and execs the
    server, because `launchctl print` shows a job's environment to any local user. So the
    plist is 0644, readable by facts, and changes only when the tool's launcher does. Every
    path is absolute (launchd expands no `~` or $HOME)."""
    import plistlib  # only for a Mac: 8 ms of drift's start-up (with datetime, pyexpat)

    job: dict[str, Any] = {
        "Label": launchd_label(spec),
        "ProgramArguments": [
            layout.current_python,
            "-I",
            "-S",
            "-c",
            scripts.load("launchd_exec"),
            layout.prefix,
        ],
        # Homebrew's folders first: ffmpeg (for /v1/audio/transcriptions) lives there.
        "EnvironmentVariables": {"HOME": home, "PATH": LAUNCHD_PATH},
        # The server writes ./logs when it starts: a folder of its own, writable.
        "WorkingDirectory": posixpath.join(layout.prefix, "work"),
        "StandardOutPath": layout.server_log,
        "StandardErrorPath": layout.server_log,
        "RunAtLoad": True,
        "KeepAlive": True,
        "ThrottleInterval": 10,
        # Interactive: no background throttling of CPU, I/O or timers for a server people use.
        "ProcessType": "Interactive",
    }
    if spec.launchd.domain == "system":
        job["UserName"] = user
    return plistlib.dumps(job, sort_keys=True)


def same_plist(installed: str | None, wanted: bytes) -> bool:
    """Is the plist on the host the one wanted? Compared parsed: the root helper rewrites a
    LaunchDaemon's plist with `plutil -convert xml1`, whose spelling may differ."""
    import plistlib  # only for a Mac: 8 ms of drift's start-up (with datetime, pyexpat)

    if installed is None:
        return False
    try:
        return bool(plistlib.loads(installed.encode("utf-8")) == plistlib.loads(wanted))
    except (plistlib.InvalidFileException, ValueError, TypeError, OverflowError):
        return False


def service_kind(spec: HostSpec, facts: Any) -> str:
    """`auto` is launchd on macOS and a plain process elsewhere."""
    if spec.service != "auto":
        return spec.service
    return "launchd" if facts.system.os == "macos" else "process"


WIRED_LIMIT_LABEL = "com.localai-provision.wired-limit"


def launchd_daemons_dir(spec: HostSpec) -> str:
    """Where the host's LaunchDaemons go (the root helper's DAEMONS): /Library/LaunchDaemons,
    or the site's `launchd.plist_dir` for a `system` job (the tests' stand-in Macs)."""
    if spec.launchd.domain == "system" and spec.launchd.plist_dir:
        return spec.launchd.plist_dir.rstrip("/")
    return "/Library/LaunchDaemons"


def wired_limit_plist_path(spec: HostSpec) -> str:
    """The boot-time daemon that sets iogpu.wired_limit_mb again (it resets at reboot). A
    LaunchDaemon whatever the server's domain: it must run as root, at boot."""
    return f"{launchd_daemons_dir(spec)}/{WIRED_LIMIT_LABEL}.plist"


def wired_limit_plist(limit_mb: int) -> bytes:
    import plistlib  # only for a Mac: 8 ms of drift's start-up (with datetime, pyexpat)

    job = {
        "Label": WIRED_LIMIT_LABEL,
        "ProgramArguments": ["/usr/sbin/sysctl", f"iogpu.wired_limit_mb={limit_mb}"],
        "RunAtLoad": True,
    }
    return plistlib.dumps(job, sort_keys=True)


# --- pull mode: the timer on the host --------------------------------------------------------

PULL_LABEL = "com.localai-provision.pull"
CRON_BEGIN = "# BEGIN localai-provision pull (written by localai apply; edits are replaced)"
CRON_END = "# END localai-provision pull"
PULL_LOCK_WAIT_S = 300  # a pull that meets the controller's apply waits for it
LAUNCHD_PATH = "/opt/homebrew/bin:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin"


def pull_plist_path(spec: HostSpec) -> str:
    """The pull job's plist, beside the server's (a `~` is expanded on the host)."""
    folder = posixpath.dirname(launchd_plist_path(spec))
    return f"{folder}/{PULL_LABEL}.plist"


def pull_script(spec: HostSpec, home: str | None = None) -> str:
    """The shell command the timer runs: `localai apply --local` on the checkout's site file,
    for this host only, with the report where the controller's facts look for it. With
    ``home``, `~` is expanded here (launchd expands nothing); without, by the shell."""
    pull = spec.pull
    assert pull.checkout is not None and pull.site is not None

    def path(p: str) -> str:
        return shell.quote(expand_home(p, home)) if home else shell.path_word(p)

    report = posixpath.join(spec.prefix, "state", PULL_REPORT)
    argv = [
        "apply",
        "--local",
        pull.site,
        "--host",
        spec.name,
        *(["--git-pull"] if pull.git_pull else []),
        "--lock-wait",
        str(PULL_LOCK_WAIT_S),
        "--quiet",
    ]
    command = pull.command
    program = path(command) if "/" in command else shell.quote(command)
    return f"cd {path(pull.checkout)} && exec {program} {shell.join(argv)} --report {path(report)}"


def cron_schedule(interval_s: int) -> str:
    """The nearest cron schedule not longer than ``interval_s``: every N minutes (N dividing
    an hour) or every N hours (N dividing a day)."""
    minutes = max(1, interval_s // 60)
    if minutes < 60:
        step = max(d for d in range(1, minutes + 1) if 60 % d == 0)
        return "* * * * *" if step == 1 else f"*/{step} * * * *"
    hours = min(24, minutes // 60)
    step = max(d for d in range(1, hours + 1) if 24 % d == 0)
    return "0 * * * *" if step == 1 else ("0 0 * * *" if step == 24 else f"0 */{step} * * *")


def pull_cron_block(spec: HostSpec) -> str:
    """The tool's lines in the host user's crontab, markers included. cron reads `%` as a
    newline: escaped. The output of the last run goes to PREFIX/logs/pull.log."""
    log = shell.path_word(posixpath.join(spec.prefix, "logs", "pull.log"))
    logs = shell.path_word(posixpath.join(spec.prefix, "logs"))
    line = (
        f"{cron_schedule(spec.pull.interval_s)} mkdir -p {logs} && "
        f"{{ {pull_script(spec)} ; }} > {log} 2>&1"
    ).replace("%", "\\%")
    return f"{CRON_BEGIN}\n{line}\n{CRON_END}\n"


def pull_plist(spec: HostSpec, layout: Layout, user: str, home: str) -> bytes:
    """The pull job for launchd: every `interval_s`, not at load (apply from the controller
    has just converged the host), as the host's user."""
    import plistlib  # only for a Mac: 8 ms of drift's start-up (with datetime, pyexpat)

    job: dict[str, Any] = {
        "Label": PULL_LABEL,
        "ProgramArguments": ["/bin/sh", "-c", pull_script(spec, home)],
        "EnvironmentVariables": {"HOME": home, "PATH": LAUNCHD_PATH},
        "StartInterval": spec.pull.interval_s,
        "RunAtLoad": False,
        "StandardOutPath": layout.pull_log,
        "StandardErrorPath": layout.pull_log,
        "ProcessType": "Background",
    }
    if spec.launchd.domain == "system":
        job["UserName"] = user
    return plistlib.dumps(job, sort_keys=True)
