"""Turn a checked site file into one fully resolved HostSpec per host.

Every default is the model's own (the dataclass field's default): a setting the file leaves
out gets exactly the value a HostSpec built without it would have.
"""

from __future__ import annotations

import getpass
import os
import re
from pathlib import Path
from typing import Any

from localai_provision.site.document import Document
from localai_provision.site.merge import merge_models, merge_settings
from localai_provision.site.model import (
    HUB_PREFIX,
    GenerationSettings,
    HostSpec,
    LaunchdSettings,
    LinuxSettings,
    MacosSettings,
    MemorySettings,
    ModelSpec,
    PackageIndex,
    PullSettings,
    ServerLogSettings,
    ServerSettings,
    Site,
    TransferSettings,
    VerifySettings,
    canonical_package_name,
)
from localai_provision.tinymodel import BUILTIN_PREFIX


def resolve(doc: Document, base_dir: Path) -> Site:
    data: dict[str, Any] = doc.data
    hosts: dict[str, HostSpec] = {}
    for name in data["hosts"]:
        raw = data["hosts"][name] or {}
        hosts[name] = _host_spec(name, raw, merge_settings(data, name), base_dir)
    groups = {
        g: tuple(h.name for h in hosts.values() if g in h.groups)
        for g in (data.get("groups") or {})
    }
    return Site(file=Path(doc.file), hosts=hosts, groups=groups)


def _controller_path(path: str, base_dir: Path) -> str:
    """A path on the controller: `~` expanded here, relative to the site file's folder."""
    return str((base_dir / os.path.expanduser(path)).resolve())


def _ssh_config(value: bool | str | None, base_dir: Path) -> str | None:
    if value is True:
        return _controller_path("~/.ssh/config", base_dir)
    return _controller_path(value, base_dir) if isinstance(value, str) else None


def _ssh_set_by_site(raw: dict[str, Any], s: dict[str, Any]) -> tuple[str, ...]:
    if not s.get("ssh_config"):
        return ()
    given = [key for key in ("user", "ssh_port", "identity_file") if key in s]
    return (*(["address"] if "address" in raw else []), *given)


def _server_env(entries: dict[str, Any]) -> dict[str, Any]:
    """Plain values, and {from_env: VAR} taken from this controller's environment (secret
    unless `secret: false`)."""
    env: dict[str, str] = {}
    secret: list[str] = []
    missing: dict[str, str] = {}
    for name, value in entries.items():
        if isinstance(value, dict):
            variable = str(value["from_env"])
            found = os.environ.get(variable)
            if found is None:
                missing[name] = variable
            env[name] = found or ""
            if value.get("secret", True):
                secret.append(name)
        else:
            env[name] = _env_value(value)
    return {"env": env, "secret_env": tuple(secret), "missing_env": missing}


def _env_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _host_spec(name: str, raw: dict[str, Any], s: dict[str, Any], base_dir: Path) -> HostSpec:
    connection = s.get("connection", HostSpec.connection)
    identity = s.get("identity_file")
    return HostSpec(
        name=name,
        address=raw.get("address", name),
        groups=tuple(raw.get("groups", ())),
        connection=connection,
        user=s.get("user") or (getpass.getuser() if connection == "ssh" else None),
        ssh_port=s.get("ssh_port", HostSpec.ssh_port),
        identity_file=_controller_path(identity, base_dir) if identity else None,
        ssh_config=_ssh_config(s.get("ssh_config"), base_dir),
        ssh_set_by_site=_ssh_set_by_site(raw, s),
        host_key_checking=s.get("host_key_checking", HostSpec.host_key_checking),
        known_hosts_file=_controller_path(
            s.get("known_hosts_file", HostSpec.known_hosts_file), base_dir
        ),
        connect_timeout_s=float(s.get("connect_timeout_s", HostSpec.connect_timeout_s)),
        ssh_client=s.get("ssh_client", HostSpec.ssh_client),
        ssh_persist_s=int(s.get("ssh_persist_s", HostSpec.ssh_persist_s)),
        prefix=s.get("prefix", HostSpec.prefix),
        python=s.get("python", HostSpec.python),
        hf_home=s.get("hf_home", HostSpec.hf_home),
        service=s.get("service", HostSpec.service),
        installer=s.get("installer", HostSpec.installer),
        offline=bool(s.get("offline", HostSpec.offline)),
        lock=_controller_path(s["lock"], base_dir) if s.get("lock") else None,
        launchd=LaunchdSettings(**s.get("launchd", {})),
        macos=MacosSettings(**s.get("macos", {})),
        linux=_linux(s.get("linux", {})),
        server=_server(s.get("server", {})),
        packages={
            canonical_package_name(k): str(v).removeprefix("==")
            for k, v in s.get("packages", {}).items()
        },
        package_index=_package_index(s.get("package_index", {})),
        transfer=_transfer(s.get("transfer", {})),
        models=_models(s.get("models", []), base_dir),
        verify=_verify(s.get("verify", {})),
        pull=PullSettings(**s.get("pull", {})),
        generations=GenerationSettings(**s.get("generations", {})),
        memory=MemorySettings(**s.get("memory", {})),
        models_prune=bool(s.get("models_prune", HostSpec.models_prune)),
        server_log=_server_log(s.get("server_log", {})),
    )


def _models(entries: list[Any], base_dir: Path) -> tuple[ModelSpec, ...]:
    models = []
    for entry in merge_models([], entries):
        if isinstance(entry, str):
            models.append(ModelSpec(id=entry))
            continue
        source = entry.get("source")
        if source is not None and not source.startswith((BUILTIN_PREFIX, HUB_PREFIX)):
            source = str((base_dir / os.path.expanduser(source)).resolve())
        models.append(
            ModelSpec(
                id=entry["id"],
                revision=entry.get("revision", ModelSpec.revision),
                prewarm=entry.get("prewarm", ModelSpec.prewarm),
                source=source,
            )
        )
    return tuple(models)


def _linux(linux: dict[str, Any]) -> LinuxSettings:
    return LinuxSettings(
        torch=str(linux.get("torch", LinuxSettings.torch)).removeprefix("=="),
        shim=bool(linux.get("shim", LinuxSettings.shim)),
    )


def _server(server: dict[str, Any]) -> ServerSettings:
    return ServerSettings(
        host=server.get("host", ServerSettings.host),
        port=server.get("port", ServerSettings.port),
        log_level=server.get("log_level", ServerSettings.log_level),
        workers=server.get("workers", ServerSettings.workers),
        **_server_env(server.get("env", {})),
        extra_args=tuple(server.get("extra_args", ())),
    )


def _package_index(index: dict[str, Any]) -> PackageIndex:
    return PackageIndex(
        index_url=index.get("index_url"),
        extra_index_urls=tuple(index.get("extra_index_urls", ())),
        find_links=tuple(index.get("find_links", ())),
        no_index=index.get("no_index", PackageIndex.no_index),
        push=bool(index.get("push", PackageIndex.push)),
    )


def _transfer(transfer: dict[str, Any]) -> TransferSettings:
    rate = transfer.get("max_rate", TransferSettings.max_rate)
    return TransferSettings(
        peers=bool(transfer.get("peers", TransferSettings.peers)),
        peer_ports=tuple(sorted(transfer.get("peer_ports", TransferSettings.peer_ports))),
        peer_address=transfer.get("peer_address"),
        max_rate=None if rate is None else parse_rate(rate),
    )


_RATE = re.compile(r"^([1-9][0-9]*(?:\.[0-9]+)?) ?(MB|MiB|Mbit|GB|GiB|Gbit)(?:/s)?$")
_RATE_UNITS = {
    "MB": 10**6,
    "MiB": 1 << 20,
    "Mbit": 10**6 // 8,
    "GB": 10**9,
    "GiB": 1 << 30,
    "Gbit": 10**9 // 8,
}


def parse_rate(value: int | str) -> int:
    """`transfer.max_rate` in bytes/s: an integer as is, or "50MB", "400Mbit", "1.5GiB/s"
    (the schema's pattern has already admitted only these shapes)."""
    if isinstance(value, int):
        return value
    found = _RATE.match(value)
    if found is None:
        raise ValueError(f"not a rate: {value!r}")
    return round(float(found.group(1)) * _RATE_UNITS[found.group(2)])


def _verify(verify: dict[str, Any]) -> VerifySettings:
    return VerifySettings(
        endpoints=tuple(verify.get("endpoints", VerifySettings.endpoints)),
        timeout_s=float(verify.get("timeout_s", VerifySettings.timeout_s)),
        bench=bool(verify.get("bench", VerifySettings.bench)),
    )


def _server_log(server_log: dict[str, Any]) -> ServerLogSettings:
    return ServerLogSettings(
        max_mb=float(server_log.get("max_mb", ServerLogSettings.max_mb)),
        keep=int(server_log.get("keep", ServerLogSettings.keep)),
    )
