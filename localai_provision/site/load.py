"""Load a site file: read, validate against the schema, check what the schema cannot, merge.

``load_site`` either returns a Site whose every host is fully resolved, or raises one SiteError
holding every problem found (not just the first), each with file, line and column.
"""

from __future__ import annotations

import getpass
import ipaddress
import json
import os
import re
import socket
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from localai_provision.errors import Problem, SiteError, UnreadableFile
from localai_provision.files import read_small_regular_file
from localai_provision.site.model import (
    DEFAULT_ENDPOINTS,
    HUB_PREFIX,
    HostSpec,
    LaunchdSettings,
    LinuxSettings,
    MacosSettings,
    ModelSpec,
    PackageIndex,
    PullSettings,
    ServerSettings,
    Site,
    TransferSettings,
    VerifySettings,
    canonical_package_name,
    package_base_name,
)
from localai_provision.site.schema import problems_from_schema
from localai_provision.site.yamlread import MAX_FILE_BYTES, Document, read_yaml
from localai_provision.tinymodel import BUILTIN_MODELS, BUILTIN_PREFIX


def read_site_text(path: Path) -> str:
    # Kind and size first: /dev/zero, a FIFO or a file of gigabytes is refused before a byte
    # of it is read (reading /dev/zero whole ended in MemoryError).
    try:
        raw = read_small_regular_file(path, MAX_FILE_BYTES, "site file")
    except UnreadableFile as exc:
        raise SiteError([Problem(str(path), 1, 1, f"{exc.reason}; {exc.hint}")]) from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        # Point at the offending byte: count lines up to it.
        before = raw[: exc.start]
        line = before.count(b"\n") + 1
        col = exc.start - (before.rfind(b"\n") + 1) + 1
        raise SiteError(
            [Problem(str(path), line, col, "the file is not valid UTF-8; save it as UTF-8")]
        ) from None


def load_site(path: str | Path) -> Site:
    path = Path(path)
    text = read_site_text(path)
    return parse_site(text, str(path), base_dir=path.resolve().parent)


def parse_site(text: str, file: str, base_dir: Path | None = None) -> Site:
    doc, reading_problems = read_yaml(text, file)
    if doc.data is None and reading_problems:
        raise SiteError(reading_problems)  # nothing was read (syntax error, empty, too big)
    if not isinstance(doc.data, dict):
        raise SiteError(
            [
                *reading_problems,
                doc.problem((), "the top level must be a mapping with `version` and `hosts`"),
            ]
        )
    # `mini-01:` with nothing under it is a host with no settings of its own.
    for section in ("hosts", "groups"):
        entries = doc.data.get(section)
        if isinstance(entries, dict):
            for key, value in entries.items():
                if value is None:
                    entries[key] = {}
    # Repeated keys and refused tags do not stop the schema check: the user gets every
    # mistake at once. A refused value (read as null) would fail the schema at the same spot,
    # so the schema's word on a spot already reported is dropped.
    reading_problems += _control_characters(doc, doc.data, ())
    reported = {(p.line, p.column) for p in reading_problems}
    problems = reading_problems + [
        p for p in problems_from_schema(doc) if (p.line, p.column) not in reported
    ]
    problems += _cross_checks(doc)
    if problems:
        raise SiteError(problems)
    return _resolve(doc, base_dir or Path.cwd())


# Characters no value of a site file may hold, keys included: C0 controls (NUL, newline, tab,
# ESC...), DEL, C1 controls, Unicode's line and paragraph separators, and the invisible marks
# that reorder text on screen. A value is one line of text that reaches a command, a file or a
# terminal: a newline there ends a line early, a NUL cuts it (or stops apply with a traceback),
# ESC acts on the terminal, U+202E shows it backwards. No value legitimately needs one; a
# multi-line setting does not exist in the format.
_CONTROL = re.compile(
    "[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]"
)


def _control_characters(doc: Document, value: Any, path: tuple[str | int, ...]) -> list[Problem]:
    problems: list[Problem] = []
    if isinstance(value, str):
        found = _CONTROL.search(value)
        if found:
            problems.append(doc.problem(path, _control_message(value, found.start())))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            problems += _control_characters(doc, item, (*path, i))
    elif isinstance(value, dict):
        for key, item in value.items():
            found = _CONTROL.search(key) if isinstance(key, str) else None
            if found:
                problems.append(
                    doc.problem((*path, key), _control_message(key, found.start()), key=True)
                )
            problems += _control_characters(doc, item, (*path, str(key)))
    return problems


def _control_message(text: str, index: int) -> str:
    code = ord(text[index])
    return (
        f"{json.dumps(text[:40])} holds the control character U+{code:04X} "
        f"(character {index + 1}); a value is one line of printable text: remove it"
    )


def _cross_checks(doc: Document) -> list[Problem]:
    """What JSON Schema cannot say: references between parts of the file."""
    # layout imports the site model, which imports this package: import it when used.
    from localai_provision.layout import SERVER_PACKAGE

    # These run even when the schema failed, so they must tolerate any shape: whatever is
    # not the expected type was already reported by the schema and is skipped here.
    data: dict[str, Any] = doc.data
    problems: list[Problem] = []
    groups = data.get("groups")
    groups = groups if isinstance(groups, dict) else {}
    hosts = data.get("hosts")
    if not isinstance(hosts, dict):
        return problems
    seen_endpoints: dict[tuple[str, int], str] = {}
    unpinned: list[str] = []
    for section in ("defaults",):
        if isinstance(data.get(section), dict):
            problems += _check_builtin_sources(doc, (section,), data[section])
    for group_name, group in groups.items():
        if isinstance(group, dict):
            problems += _check_builtin_sources(doc, ("groups", group_name), group)
    for name, host in hosts.items():
        if not isinstance(host, dict):
            continue
        host_groups = host.get("groups", [])
        for i, group in enumerate(host_groups if isinstance(host_groups, list) else []):
            if isinstance(group, str) and group not in groups:
                known = ", ".join(sorted(groups)) or "none are defined"
                problems.append(
                    doc.problem(
                        ("hosts", name, "groups", i),
                        f"unknown group `{group}` (groups: {known}); define it under `groups:`",
                    )
                )
        problems += _check_builtin_sources(doc, ("hosts", name), host)
        problems += _check_push_needs_lock(doc, name)
        address = host.get("address", name)
        if not isinstance(address, str):
            continue
        bad_ip = _bad_ip(address)
        if bad_ip:
            # Without `address` the host's name is its address, so the name must be one too.
            where = ("hosts", name, "address") if "address" in host else ("hosts", name)
            problems.append(doc.problem(where, bad_ip, key="address" not in host))
        try:
            merged = _merge_settings(data, name)
        except (TypeError, AttributeError, KeyError):
            continue  # a malformed group or defaults, already reported by the schema
        pull = merged.get("pull")
        if isinstance(pull, dict) and pull.get("enabled", True):
            missing = [k for k in ("checkout", "site") if not pull.get(k)]
            if missing:
                where = ("hosts", name, "pull") if "pull" in host else ("hosts", name)
                problems.append(
                    doc.problem(
                        where,
                        f"`pull` needs {' and '.join(f'`{k}`' for k in missing)} (after "
                        "merging defaults and groups): where the git checkout is on the host, "
                        "and the site file in it",
                        key=True,
                    )
                )
        packages = merged.get("packages", {})
        if isinstance(packages, dict) and not any(
            isinstance(k, str) and package_base_name(k) == SERVER_PACKAGE for k in packages
        ):
            unpinned.append(name)
        port = merged.get("ssh_port", 22)
        if merged.get("connection", "ssh") != "ssh" or not isinstance(port, int):
            continue
        endpoint = (_machine_address(address), port)
        if endpoint in seen_endpoints:
            path = ("hosts", name, "address") if "address" in host else ("hosts", name)
            first = seen_endpoints[endpoint]
            problems.append(
                doc.problem(
                    path,
                    f"host `{name}` has the same address and SSH port "
                    f"({_endpoint_text(address, port)}) as `{first}` "
                    f"({_endpoint_text(data['hosts'][first].get('address', first), port)}); "
                    "each host must be a different machine",
                    key="address" not in host,
                )
            )
        else:
            seen_endpoints[endpoint] = name
    problems += _unpinned_server(doc, unpinned, len(hosts))
    return problems


def _unpinned_server(doc: Document, unpinned: list[str], host_count: int) -> list[Problem]:
    """Every host needs the server's exact version: without it there is nothing to install
    (plan passed, and apply stopped with a traceback)."""
    from localai_provision.layout import SERVER_PACKAGE

    pin = f"add `{SERVER_PACKAGE}: VERSION` (such as 0.5.1) under `packages:`"
    if unpinned and len(unpinned) == host_count:
        return [
            doc.problem(
                ("hosts",),
                f"no host pins `{SERVER_PACKAGE}`, the server to install; {pin} "
                "in `defaults:` (for every host)",
                key=True,
            )
        ]
    return [
        doc.problem(
            ("hosts", name),
            f"host `{name}` has no `{SERVER_PACKAGE}` in `packages` (after merging defaults "
            f"and groups); {pin} of the host, one of its groups, or `defaults:`",
            key=True,
        )
        for name in unpinned
    ]


def _endpoint_text(address: str, port: int) -> str:
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


def _machine_address(address: str) -> str:
    """One spelling of an address, so that two hosts on one SSH server are found however the
    address is written: letter case and a final dot (`Mini.lab.` is `mini.lab`), IPv6 in any
    form (`0:0:0:0:0:0:0:1` is `::1`), an IPv4 address mapped into IPv6, and the IPv4 forms
    ssh accepts (`127.1`, `0x7f.0.0.1`). Names are not resolved: two names of one machine are
    not found."""
    text = address.lower().rstrip(".")
    host, percent, zone = text.partition("%")
    ip: ipaddress.IPv4Address | ipaddress.IPv6Address | None = None
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        if re.fullmatch(r"[0-9][0-9a-fx.]*", host):
            try:
                ip = ipaddress.IPv4Address(socket.inet_aton(host))
            except OSError:
                ip = None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return (str(ip) if ip is not None else host) + percent + zone


_MODEL_ID = re.compile(
    r"^(?!.*(--|\.\.))[A-Za-z0-9][A-Za-z0-9._-]{0,95}/[A-Za-z0-9][A-Za-z0-9._-]{0,95}$"
)


def _check_push_needs_lock(doc: Document, name: str) -> list[Problem]:
    """`package_index.push` sends the locked wheels: without a lock there is no exact set
    (and no hashes) to send."""
    data: dict[str, Any] = doc.data
    try:
        merged = _merge_settings(data, name)
    except (TypeError, AttributeError, KeyError):
        return []  # a shape the schema already reported
    index = merged.get("package_index")
    if not isinstance(index, dict) or index.get("push") is not True or merged.get("lock"):
        return []
    host = data["hosts"][name] or {}
    places: list[tuple[Any, ...]] = [("hosts", name)]
    places += [("groups", g) for g in reversed(host.get("groups", []))]
    places.append(("defaults",))
    for place in places:
        section: Any = data
        for key in place:
            section = section.get(key) if isinstance(section, dict) else None
        index = section.get("package_index") if isinstance(section, dict) else None
        if isinstance(index, dict) and "push" in index:
            return [
                doc.problem(
                    (*place, "package_index", "push"),
                    f"host `{name}`: `push` sends the locked wheels, but the host has no "
                    "`lock`; add `lock:` (and run `localai lock`) or remove `push`",
                )
            ]
    return []


def _check_builtin_sources(
    doc: Document, path: tuple[str, ...], settings: dict[str, Any]
) -> list[Problem]:
    problems = []
    entries = settings.get("models")
    for i, entry in enumerate(entries if isinstance(entries, list) else []):
        source = entry.get("source") if isinstance(entry, dict) else None
        if (
            isinstance(source, str)
            and source.startswith(HUB_PREFIX)
            and not _MODEL_ID.match(source.removeprefix(HUB_PREFIX))
        ):
            problems.append(
                doc.problem(
                    (*path, "models", i, "source"),
                    f"`{source}` is not `{HUB_PREFIX}ORG/NAME`, a model id the controller "
                    "downloads, such as hf:mlx-community/Qwen3-4B-4bit",
                )
            )
        if isinstance(source, str) and source.startswith(BUILTIN_PREFIX):
            name = source.removeprefix(BUILTIN_PREFIX)
            if name not in BUILTIN_MODELS:
                problems.append(
                    doc.problem(
                        (*path, "models", i, "source"),
                        f"unknown built-in model `{name}`; built in: "
                        + ", ".join(f"{BUILTIN_PREFIX}{m}" for m in BUILTIN_MODELS),
                    )
                )
    return problems


def _bad_ip(address: str) -> str | None:
    parts = address.split(".")
    if len(parts) == 4 and all(p.isdigit() for p in parts):
        try:
            ipaddress.IPv4Address(address)
        except ValueError:
            return f"{address} is not a valid IPv4 address (each part is 0-255)"
    if ":" in address:
        try:
            ipaddress.IPv6Address(address.split("%")[0])
        except ValueError:
            return f"{address} is not a valid IPv6 address"
    return None


def _deep_merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """Mappings merge key by key, `models` merge by id, everything else is replaced."""
    result = dict(base)
    for key, value in over.items():
        if key == "packages" and isinstance(value, Mapping):
            # `MLX_LM` and `mlx-lm` are one distribution: compare them by canonical name, or
            # a differently spelt pin would escape the precedence order.
            value = {canonical_package_name(str(k)): v for k, v in value.items()}
        if key == "models" and isinstance(value, list) and isinstance(result.get(key), list):
            result[key] = _merge_models(result[key], value)
        elif isinstance(value, Mapping) and isinstance(result.get(key), Mapping):
            result[key] = _deep_merge(result[key], value)
        else:
            result[key] = value
    return result


def _model_id(entry: Any) -> str:
    return entry if isinstance(entry, str) else str(entry["id"])


def _merge_models(base: list[Any], over: list[Any]) -> list[Any]:
    merged: dict[str, Any] = {_model_id(m): m for m in base}
    for entry in over:
        merged[_model_id(entry)] = entry  # the later entry wins, keeping the first's place
    return list(merged.values())


def _merge_settings(data: dict[str, Any], host_name: str) -> dict[str, Any]:
    """defaults < each of the host's groups, in the order listed < the host itself."""
    host = data["hosts"][host_name] or {}
    merged = _deep_merge({}, data.get("defaults") or {})
    groups = data.get("groups") or {}
    for group in host.get("groups", []):
        if isinstance(groups.get(group), Mapping):
            merged = _deep_merge(merged, groups[group])
    own = {k: v for k, v in host.items() if k not in ("address", "groups")}
    return _deep_merge(merged, own)


def _resolve(doc: Document, base_dir: Path) -> Site:
    data: dict[str, Any] = doc.data
    hosts: dict[str, HostSpec] = {}
    for name in data["hosts"]:
        raw = data["hosts"][name] or {}
        hosts[name] = _host_spec(name, raw, _merge_settings(data, name), base_dir)
    groups = {
        g: tuple(h.name for h in hosts.values() if g in h.groups)
        for g in (data.get("groups") or {})
    }
    return Site(file=Path(doc.file), hosts=hosts, groups=groups)


def _controller_path(path: str, base_dir: Path) -> str:
    """A path on the controller: `~` expanded here, relative to the site file's folder."""
    return str((base_dir / os.path.expanduser(path)).resolve())


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
    server = s.get("server", {})
    index = s.get("package_index", {})
    verify = s.get("verify", {})
    transfer = s.get("transfer", {})
    connection = s.get("connection", "ssh")
    models = []
    for entry in _merge_models([], s.get("models", [])):
        if isinstance(entry, str):
            models.append(ModelSpec(id=entry))
            continue
        source = entry.get("source")
        if source is not None and not source.startswith((BUILTIN_PREFIX, HUB_PREFIX)):
            source = str((base_dir / os.path.expanduser(source)).resolve())
        models.append(
            ModelSpec(
                id=entry["id"],
                revision=entry.get("revision", "main"),
                prewarm=entry.get("prewarm", True),
                source=source,
            )
        )
    identity = s.get("identity_file")
    return HostSpec(
        name=name,
        address=raw.get("address", name),
        groups=tuple(raw.get("groups", ())),
        connection=connection,
        user=s.get("user") or (getpass.getuser() if connection == "ssh" else None),
        ssh_port=s.get("ssh_port", 22),
        identity_file=_controller_path(identity, base_dir) if identity else None,
        host_key_checking=s.get("host_key_checking", "accept-new"),
        known_hosts_file=_controller_path(
            s.get("known_hosts_file", "~/.ssh/known_hosts"), base_dir
        ),
        connect_timeout_s=float(s.get("connect_timeout_s", 10.0)),
        prefix=s.get("prefix", "~/.localai"),
        python=s.get("python", "python3"),
        hf_home=s.get("hf_home", "~/.cache/huggingface"),
        service=s.get("service", "auto"),
        installer=s.get("installer", "auto"),
        offline=bool(s.get("offline", False)),
        lock=_controller_path(s["lock"], base_dir) if s.get("lock") else None,
        launchd=LaunchdSettings(**s.get("launchd", {})),
        macos=MacosSettings(**s.get("macos", {})),
        linux=LinuxSettings(
            torch=str(s.get("linux", {}).get("torch", LinuxSettings.torch)).removeprefix("=="),
            shim=bool(s.get("linux", {}).get("shim", True)),
        ),
        server=ServerSettings(
            host=server.get("host", "127.0.0.1"),
            port=server.get("port", 10240),
            log_level=server.get("log_level", "info"),
            workers=server.get("workers", 1),
            **_server_env(server.get("env", {})),
            extra_args=tuple(server.get("extra_args", ())),
        ),
        packages={
            canonical_package_name(k): str(v).removeprefix("==")
            for k, v in s.get("packages", {}).items()
        },
        package_index=PackageIndex(
            index_url=index.get("index_url"),
            extra_index_urls=tuple(index.get("extra_index_urls", ())),
            find_links=tuple(index.get("find_links", ())),
            no_index=index.get("no_index", False),
            push=bool(index.get("push", False)),
        ),
        transfer=TransferSettings(
            peers=bool(transfer.get("peers", True)),
            peer_ports=tuple(sorted(transfer.get("peer_ports", TransferSettings.peer_ports))),
            peer_address=transfer.get("peer_address"),
        ),
        models=tuple(models),
        verify=VerifySettings(
            endpoints=tuple(verify.get("endpoints", DEFAULT_ENDPOINTS)),
            timeout_s=float(verify.get("timeout_s", 60.0)),
        ),
        pull=PullSettings(**s.get("pull", {})),
    )
