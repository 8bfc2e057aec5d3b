"""Typed facts about one host, as the pure parsers produce them from the remote script's output."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from localai_provision.facts.cache import CacheFacts
from localai_provision.facts.generations import GenerationsFacts
from localai_provision.facts.memory import MemoryFacts


@dataclass(frozen=True)
class SystemFacts:
    os: str  # "macos" or "linux" (or the raw uname sysname, lower-cased)
    os_version: str  # "14.5" on macOS, "12" on Debian 12
    kernel: str
    arch: str  # "arm64", "x86_64"
    hostname: str
    user: str
    uid: int
    home: str
    clock: float  # the host's time.time(), to spot a wrong clock
    portaudio: bool = True  # Linux: PortAudio's library is installed (macOS: not needed)


@dataclass(frozen=True)
class PythonFacts:
    requested: str
    executable: str
    version: tuple[int, int, int]
    found: bool  # False when the site's `python` was missing and a fallback ran the script

    @property
    def short_version(self) -> str:
        return f"{self.version[0]}.{self.version[1]}"


@dataclass(frozen=True)
class VenvFacts:
    path: str
    exists: bool
    python_exists: bool
    complete: bool  # the tool's marker: False after an interrupted build
    python_version: str | None  # from pyvenv.cfg, e.g. "3.11.7"
    packages: dict[str, str]  # canonical name -> version, from *.dist-info folder names
    site_packages: tuple[str, ...] = ()
    shims: dict[str, str] = field(default_factory=dict)  # localai_* file -> sha256
    # canonical name -> a file its RECORD lists that is gone (a half-installed package)
    half_installed: dict[str, str] = field(default_factory=dict)
    # The tool made this venv (its marker, or the completeness marker of older versions):
    # only then may apply delete it to rebuild it.
    owned: bool = True
    empty: bool = False

    @property
    def usable(self) -> bool:
        return self.exists and self.python_exists


@dataclass(frozen=True)
class ServerConfigFacts:
    """PREFIX/server.json as the host describes it. Never the environment's values (they
    may be secrets): each is a digest salted with ``salt``, which the controller computes
    for the value it wants (layout.env_digest) to tell which variables differ."""

    readable: bool  # False: the file is there but is not the JSON apply writes
    hash: str | None = None  # layout.config_hash of argv and env, as apply wrote it
    argv: tuple[str, ...] | None = None
    salt: str = ""
    env: dict[str, str | None] = field(default_factory=dict)  # name -> digest of its value


@dataclass(frozen=True)
class ProcessFacts:
    pid: int
    alive: bool
    command: str  # the command line, space-joined
    config_hash: str | None  # LOCALAI_CONFIG_HASH from its environment
    uptime_s: float | None


@dataclass(frozen=True)
class ServerProcess:
    pid: int
    command: str


@dataclass(frozen=True)
class EndpointFacts:
    path: str
    status: int | None  # None: no HTTP answer at all
    ms: float | None
    error: str | None
    body: Any = None  # parsed JSON, when the answer was JSON
    model_ids: tuple[str, ...] = ()  # for model-listing endpoints

    @property
    def ok(self) -> bool:
        return self.status == 200


@dataclass(frozen=True)
class ModelFacts:
    id: str
    revision: str  # the revision the site asks for
    present: bool
    complete: bool
    commit: str | None  # the snapshot the revision points at
    size_bytes: int
    files: int
    problem: str | None  # why it is not complete, in words


@dataclass(frozen=True)
class LaunchdFacts:
    target: str  # DOMAIN/LABEL, e.g. system/com.localai-provision.server.10240
    loaded: bool  # `launchctl print` knows the job
    state: str | None  # "running", "not running", ...
    pid: int | None
    runs: int | None
    last_exit_code: int | None  # None: never exited (or ended by a signal)
    plist_path: str
    plist: str | None  # the plist on disk, as text
    last_exit_name: str | None = None  # "EX_CONFIG" in `last exit code = 78: EX_CONFIG`
    last_signal: int | None = None  # 9 in `last terminating signal = Killed: 9`
    last_signal_name: str | None = None  # "Killed"
    last_exit_reason: str | None = None  # `last exit reason = ...`, when launchd gives one

    @property
    def running(self) -> bool:
        return self.loaded and self.state == "running"

    @property
    def crashed(self) -> bool:
        """The job's process ended with an error or a signal and is not running (launchd
        restarts a KeepAlive job, no sooner than its ThrottleInterval)."""
        return not self.running and (
            self.last_exit_code not in (None, 0) or self.last_signal is not None
        )

    def how_it_ended(self) -> str:
        """The last end of the job's process in words: "exited with 78: EX_CONFIG", "was
        killed by signal 9 (Killed: 9)"."""
        if self.last_signal is not None:
            name = self.last_signal_name
            text = f"was killed by signal {self.last_signal}"
            text += f" ({name}: {self.last_signal})" if name else ""
            if self.last_signal == 9:
                text += ", often the memory limit (the kernel kills on memory pressure)"
        elif self.last_exit_code is not None:
            name = f": {self.last_exit_name}" if self.last_exit_name else ""
            text = f"exited with {self.last_exit_code}{name}"
        else:
            return "has not exited"
        if self.last_exit_reason:
            text += f"; launchd says: {self.last_exit_reason}"
        return text

    def crash_summary(self) -> str:
        """ "keeps exiting with 78: EX_CONFIG after 14 runs"."""
        runs = self.runs or 0
        ended = self.how_it_ended()
        if runs > 1:
            return f"keeps ending: it {ended}, after {runs} runs"
        return f"does not stay up: it {ended}"


@dataclass(frozen=True)
class MacosFacts:
    pmset: dict[str, str]  # `pmset -g` settings: sleep, disksleep, autorestart, ...
    wired_limit_mb: int | None
    boot_plist: str | None = None  # the daemon that reapplies the wired limit at boot


@dataclass(frozen=True)
class MacFacts:
    """What a Mac needs before an apply can work (facts/remote.py `mac_section`)."""

    memsize_bytes: int | None
    wired_limit_mb: int | None = None  # iogpu.wired_limit_mb: 0 is macOS's default share
    helper_sha256: str | None = None  # the installed root helper; None: not installed
    helper_conf: dict[str, str] = field(default_factory=dict)  # its settings for this account
    helper_checked: bool = False  # the site needed root, so the helper was looked at
    console_uid: int | None = None  # who is logged in at the console (0: nobody)
    clt_checked: bool = False
    clt_path: str | None = None  # `xcode-select -p`; None: no Command Line Tools
    clt_error: str | None = None
    filevault: str | None = None  # `fdesetup status` (doctor only)
    sudo_checked: bool = False
    sudo_ok: bool = False  # `sudo -n -l HELPER` allows it (doctor only)
    sudo_output: str | None = None


@dataclass(frozen=True)
class PullReport:
    """PREFIX/state/pull-report.json: what the last `localai apply --local` on the host did."""

    finished_at: str | None  # ISO 8601, UTC, the host's clock
    finished_epoch: float | None  # the same, as seconds (None when unreadable)
    result: str  # converged, changed, failed (or `unreadable` for a damaged file)
    failed_step: str | None = None
    error: str | None = None
    changes: int = 0
    site_file: str | None = None
    site_hash: str | None = None
    git_commit: str | None = None
    git_error: str | None = None  # `git pull` failed: the site applied was the checkout as is
    interval_s: int | None = None  # the timer's interval the host's site file declares

    @property
    def failed(self) -> bool:
        return self.result not in ("converged", "changed")

    def as_dict(self) -> dict[str, Any]:
        return {
            "finished_at": self.finished_at,
            "result": self.result,
            "failed_step": self.failed_step,
            "error": self.error,
            "changes": self.changes,
            "site_file": self.site_file,
            "site_hash": self.site_hash,
            "git_commit": self.git_commit,
            "git_error": self.git_error,
            "interval_s": self.interval_s,
        }


@dataclass(frozen=True)
class PullTimerFacts:
    kind: str  # "cron" or "launchd"
    definition: str | None  # the tool's crontab lines or the plist, as installed; None: none
    available: bool = True  # cron: the `crontab` program exists
    path: str | None = None  # launchd: the plist's path


@dataclass(frozen=True)
class ServiceFacts:
    kind: str
    pid: int | None  # from the pid file
    process: ProcessFacts | None
    server_processes: tuple[ServerProcess, ...]  # every mlx-omni-server of the host's user
    launchd: LaunchdFacts | None = None

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.alive


@dataclass(frozen=True)
class Facts:
    host: str
    system: SystemFacts
    python: PythonFacts
    prefix: str  # absolute, expanded on the host
    prefix_exists: bool
    hf_home: str  # absolute
    venv: VenvFacts
    server_config: ServerConfigFacts | None  # prefix/server.json, as the last apply wrote it
    service: ServiceFacts
    port_open: bool
    endpoints: tuple[EndpointFacts, ...]
    models: tuple[ModelFacts, ...]
    hub_dirs: tuple[str, ...]
    state: dict[str, Any] | None
    lock: str | None
    disk_free_bytes: int | None
    script_ms: float
    errors: dict[str, str] = field(default_factory=dict)
    macos: MacosFacts | None = None
    mac: MacFacts | None = None
    # The host's clock minus the controller's, measured around the facts command (seconds).
    clock_offset_s: float | None = None
    pull_report: PullReport | None = None
    pull_timer: PullTimerFacts | None = None
    generations: GenerationsFacts = field(default_factory=GenerationsFacts)
    memory: MemoryFacts = field(default_factory=lambda: MemoryFacts(None, None))
    cache: CacheFacts = field(default_factory=CacheFacts)
    server_log: ServerLogFacts | None = None
    # None: no file (a server without the shim, or one that never wrote it).
    loaded_models: LoadedModels | None = None

    @property
    def published_models(self) -> LoadedModels | None:
        """The shim's loaded-models file, if the server running now wrote it (a file left
        by a server that has died since is stale)."""
        published, process = self.loaded_models, self.service.process
        if published is None or process is None or not self.service.running:
            return None
        return published if published.current(process.pid) else None

    def endpoint(self, path: str) -> EndpointFacts | None:
        return next((e for e in self.endpoints if e.path == path), None)

    @property
    def listed_models(self) -> set[str] | None:
        """Models the running server lists on /v1/models, or None if it did not answer."""
        listing = self.endpoint("/v1/models")
        if listing is None or not listing.ok:
            return None
        return set(listing.model_ids)


# --- the server's log and its loaded models (issue 17) ---------------------------------------


@dataclass(frozen=True)
class ServerLogFacts:
    """PREFIX/logs/server.log and the files its rotation kept (server.log.1, .2, ...)."""

    path: str
    size_bytes: int | None  # None: there is no log yet
    rotated_files: int = 0
    rotated_bytes: int = 0
    # The log's last lines, read only when the server is not running (a crash says why there).
    tail: tuple[str, ...] = ()


@dataclass(frozen=True)
class LoadedModels:
    """PREFIX/state/loaded-models.json, which the start-up shim in the server (and the tests'
    stand-in server) rewrites whenever the set of loaded models changes. A file left by a
    server that has since died is stale: ``current`` tells."""

    pid: int | None  # the server process that wrote it
    loaded: tuple[str, ...]
    loading: tuple[str, ...]  # being loaded right now (a request is waiting for them)
    updated: float | None  # epoch seconds, the host's clock

    def current(self, server_pid: int | None) -> bool:
        """Was it written by the server running now (pid ``server_pid``)?"""
        return server_pid is not None and self.pid == server_pid
