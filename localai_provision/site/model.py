"""The resolved site: one fully merged HostSpec per host, exactly what plan and apply use."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_ENDPOINTS = ("/v1/models", "/anthropic/v1/models")
SECRET_MASK = "<secret>"
HUB_PREFIX = "hf:"  # a model `source` the controller downloads from the Hugging Face hub


def canonical_package_name(name: str) -> str:
    """PEP 503 normalisation, keeping extras: `MLX_LM` -> `mlx-lm`, `mlx[CPU]` -> `mlx[cpu]`."""
    base, bracket, extras = name.partition("[")
    base = re.sub(r"[-_.]+", "-", base).lower()
    return base + (bracket + extras.lower() if bracket else "")


def package_base_name(name: str) -> str:
    """The distribution name without extras: `mlx[cpu]` -> `mlx`."""
    return canonical_package_name(name).partition("[")[0]


@dataclass(frozen=True)
class ServerSettings:
    host: str = "127.0.0.1"
    port: int = 10240
    log_level: str = "info"
    workers: int = 1
    env: dict[str, str] = field(default_factory=dict)
    extra_args: tuple[str, ...] = ()
    # Names in `env` whose values are secrets ({from_env: VAR}): never printed, and every
    # file that holds them is mode 0600.
    secret_env: tuple[str, ...] = ()
    # {from_env: VAR} entries whose VAR is not set on the controller: NAME -> VAR.
    missing_env: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class PackageIndex:
    index_url: str | None = None
    extra_index_urls: tuple[str, ...] = ()
    find_links: tuple[str, ...] = ()
    no_index: bool = False
    # The controller downloads the locked wheels once and sends each host those it lacks;
    # hosts then install with no index at all (an offline lab, or one download for many Macs).
    push: bool = False

    def arguments(self) -> list[str]:
        """The same options for pip, `uv pip install|sync` and `uv pip compile`."""
        options: list[str] = ["--no-index"] if self.no_index else []
        if self.index_url:
            options += ["--index-url", self.index_url]
        for url in self.extra_index_urls:
            options += ["--extra-index-url", url]
        for link in self.find_links:
            options += ["--find-links", link]
        return options


def cache_dir_name(model_id: str) -> str:
    """The folder huggingface_hub uses for a model repo: ORG/NAME -> models--ORG--NAME."""
    return "models--" + model_id.replace("/", "--")


@dataclass(frozen=True)
class ModelSpec:
    id: str
    revision: str = "main"
    prewarm: bool = True
    # Where the host gets the model instead of downloading it itself: an absolute folder on
    # the controller (relative paths in the site file are taken from the site file's
    # folder), `builtin:NAME`, or `hf:ORG/NAME`, which the controller downloads once into its
    # own Hugging Face cache.
    source: str | None = None

    @property
    def cache_dir_name(self) -> str:
        """The folder huggingface_hub uses for this repo: models--ORG--NAME."""
        return cache_dir_name(self.id)


@dataclass(frozen=True)
class LinuxSettings:
    # PyPI's torch for Linux is a CUDA build of several GB; mlx-omni-server needs only the
    # CPU build. 2.13.0+cpu is the one that resolves with mlx-omni-server 0.5.1.
    torch: str = "2.13.0+cpu"
    shim: bool = True


@dataclass(frozen=True)
class LaunchdSettings:
    # `system`: a LaunchDaemon, runs at boot with no one logged in (a Mac mini that rebooted
    # for an update waits at the login window). `user`: a LaunchAgent, only while logged in.
    domain: str = "system"
    label: str | None = None  # default: com.localai-provision.server.PORT
    plist_dir: str | None = None  # default: /Library/LaunchDaemons or ~/Library/LaunchAgents


@dataclass(frozen=True)
class MacosSettings:
    never_sleep: bool | None = None  # None: leave the Mac's setting alone
    restart_after_power_failure: bool | None = None
    gpu_wired_limit_mb: int | None = None


@dataclass(frozen=True)
class TransferSettings:
    # Hosts that already hold a large file pass it on to the next ones (a doubling tree), so
    # sending it to N hosts costs the controller one upload and time growing with log N.
    peers: bool = True
    peer_ports: tuple[int, int] = (49152, 65535)  # where a host may listen to pass a file on
    peer_address: str | None = None  # how other hosts reach this one; default: `address`
    # Bytes/s this host sends at most when it passes files on; the controller keeps all its
    # uploads together within the max_rate of the hosts it sends to. None: no cap.
    max_rate: int | None = None


@dataclass(frozen=True)
class PullSettings:
    """Pull mode: a timer on the host runs `COMMAND apply --local CHECKOUT/SITE --host NAME`.
    ``checkout`` None means the site declares no timer for this host."""

    checkout: str | None = None  # a git work tree on the host (`~/` expanded there)
    site: str | None = None  # the site file, relative to the checkout
    command: str = "localai"
    interval_s: int = 900
    git_pull: bool = True
    enabled: bool = True

    @property
    def declared(self) -> bool:
        return self.enabled and self.checkout is not None and self.site is not None


@dataclass(frozen=True)
class VerifySettings:
    endpoints: tuple[str, ...] = DEFAULT_ENDPOINTS
    timeout_s: float = 60.0
    # After a change that restarted the server, measure it (`localai bench`) and keep the
    # figures in state.json; off by default: it costs seconds per host per apply.
    bench: bool = False


@dataclass(frozen=True)
class MemorySettings:
    # Beyond the weights: the KV cache and activations. An 8B model's fp16 KV cache for 8k
    # tokens is 8192 x 32 layers x 8 KV heads x 128 x 2 (K, V) x 2 bytes = 1 GiB.
    headroom_mb: int = 1024


@dataclass(frozen=True)
class GenerationSettings:
    keep: int = 2  # the current generation and one to roll back to


@dataclass(frozen=True)
class ServerLogSettings:
    """Size-based rotation of the server's log (scripts/logrotate.py): at each start of the
    server and, while it runs, by the start-up shim. 50 MiB x (1 + 3 kept) bounds the log at
    200 MiB: field reports of launchd crash loops show 0.6-1.8 GB logs, and a day of a busy
    server at `info` is a few MiB, so 3 kept files hold days of history."""

    max_mb: float = 50.0
    keep: int = 3

    @property
    def max_bytes(self) -> int:
        return max(1, int(self.max_mb * 1024 * 1024))


@dataclass(frozen=True)
class HostSpec:
    name: str
    address: str
    groups: tuple[str, ...] = ()
    connection: str = "ssh"
    user: str | None = None
    ssh_port: int = 22
    identity_file: str | None = None
    # An OpenSSH client config (`ssh_config: true` is ~/.ssh/config) whose HostName, User,
    # Port, IdentityFile and ProxyJump apply where the site does not set its own.
    ssh_config: str | None = None
    # Which of address, user, ssh_port, identity_file the site file set (only filled in with
    # ssh_config: the site's values win, so the connector must tell them from defaults).
    ssh_set_by_site: tuple[str, ...] = ()
    host_key_checking: str = "accept-new"
    known_hosts_file: str = "~/.ssh/known_hosts"  # on the controller
    connect_timeout_s: float = 10.0
    # `openssh`: the system's `ssh`, a master per host kept ssh_persist_s and reused by the
    # next run; `paramiko`: in this process. `auto`: openssh for the read-only checks (plan,
    # drift), paramiko for the rest: a master outlives a controller killed with SIGKILL and
    # keeps its apply's step running on the host, holding the host's lock (paramiko's
    # connection dies with the process). docs/BENCHMARKS.md "Drift at the floor" says why.
    ssh_client: str = "auto"
    ssh_persist_s: int = 60
    prefix: str = "~/.localai"
    python: str = "python3"
    hf_home: str = "~/.cache/huggingface"
    service: str = "auto"
    installer: str = "auto"  # uv when it can be had on the host, else pip
    offline: bool = False  # no model hub from the host: HF_HUB_OFFLINE=1 for the server
    # Stem of the lock files, e.g. /site/locks/omni -> omni.macos-arm64.txt; None: pins only.
    lock: str | None = None
    linux: LinuxSettings = field(default_factory=LinuxSettings)
    launchd: LaunchdSettings = field(default_factory=LaunchdSettings)
    macos: MacosSettings = field(default_factory=MacosSettings)
    server: ServerSettings = field(default_factory=ServerSettings)
    # Canonical distribution name (with extras) -> exact version, without "==".
    packages: dict[str, str] = field(default_factory=dict)
    package_index: PackageIndex = field(default_factory=PackageIndex)
    models: tuple[ModelSpec, ...] = ()
    transfer: TransferSettings = field(default_factory=TransferSettings)
    verify: VerifySettings = field(default_factory=VerifySettings)
    pull: PullSettings = field(default_factory=PullSettings)
    generations: GenerationSettings = field(default_factory=GenerationSettings)
    memory: MemorySettings = field(default_factory=MemorySettings)
    # Remove what the site does not declare from the model cache (only a cache the tool
    # made). False by default: the default hf_home is the user's own, shared cache.
    models_prune: bool = False
    server_log: ServerLogSettings = field(default_factory=ServerLogSettings)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for name in self.server.secret_env:
            data["server"]["env"][name] = SECRET_MASK
        # Tuples become lists so that the JSON and YAML renderings look like the site file.
        return _listify(data)  # type: ignore[no-any-return]


def _listify(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _listify(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_listify(v) for v in value]
    return value


@dataclass(frozen=True)
class Site:
    file: Path
    hosts: dict[str, HostSpec]  # in file order
    groups: dict[str, tuple[str, ...]]  # group -> member host names, in file order

    @property
    def model_ids(self) -> set[str]:
        return {m.id for h in self.hosts.values() for m in h.models}
