"""Pure parsers: the remote script's raw output in, typed Facts out. No I/O here.

Each parser takes text exactly as a host produced it (a `ps` line, pyvenv.cfg, a dist-info
folder name, Apple's SystemVersion.plist) so that tests can feed recorded outputs from Linux
and macOS without either machine.
"""

from __future__ import annotations

import datetime
import itertools
import json
import re
from collections.abc import Sequence
from typing import Any

from localai_provision.facts.cache import parse_cache
from localai_provision.facts.generations import parse_generations
from localai_provision.facts.memory import parse_memory
from localai_provision.facts.model import (
    EndpointFacts,
    Facts,
    ModelFacts,
    ProcessFacts,
    PullReport,
    PullTimerFacts,
    PythonFacts,
    ServerConfigFacts,
    ServerProcess,
    ServiceFacts,
    SystemFacts,
    VenvFacts,
)
from localai_provision.facts.parse_mac import (
    parse_exit_code,
    parse_helper_conf,
    parse_launchctl_print,
    parse_launchd,
    parse_mac,
    parse_macos_settings,
    parse_macos_version,
    parse_pmset,
    parse_signal,
    parse_sw_vers,
    parse_sysctl,
)
from localai_provision.facts.parse_server import parse_loaded_models, parse_server_log
from localai_provision.site.model import ModelSpec, canonical_package_name

__all__ = [  # the Mac's parsers, re-exported: callers import every parser from here
    "parse_exit_code",
    "parse_helper_conf",
    "parse_launchctl_print",
    "parse_launchd",
    "parse_mac",
    "parse_macos_settings",
    "parse_macos_version",
    "parse_pmset",
    "parse_signal",
    "parse_sw_vers",
    "parse_sysctl",
]

_COMMIT_RE = re.compile(r"^[0-9a-f]{40}$")
# The lines facts/remote.py prints around its JSON (its BEGIN and END).
FRAME_BEGIN = "--- localai facts begin ---"
FRAME_END = "--- localai facts end ---"


class FactsFormatError(ValueError):
    """The remote script's output is not what this version of the tool expects."""


def parse_dist_info_name(name: str) -> tuple[str, str] | None:
    """`mlx_lm-0.28.2.dist-info` -> (`mlx-lm`, `0.28.2`). Wheel installers escape `-` in the
    name as `_`, so the first `-` separates name and version."""
    if not name.endswith(".dist-info"):
        return None
    stem = name[: -len(".dist-info")]
    dist, sep, version = stem.partition("-")
    if not sep or not dist or not version:
        return None
    return canonical_package_name(dist), version


def parse_packages(dist_infos: Sequence[str]) -> dict[str, str]:
    packages: dict[str, str] = {}
    for name in dist_infos:
        parsed = parse_dist_info_name(name)
        if parsed:
            packages[parsed[0]] = parsed[1]
    return packages


def parse_half_installed(raw: dict[str, str]) -> dict[str, str]:
    """{dist-info folder: missing file} -> {canonical name: missing file}."""
    found: dict[str, str] = {}
    for dist_info, missing in raw.items():
        parsed = parse_dist_info_name(dist_info)
        if parsed:
            found[parsed[0]] = str(missing)
    return found


def parse_pyvenv_cfg(text: str | None) -> str | None:
    """The Python version a venv was made with: `version` (venv) or `version_info` (uv)."""
    if not text:
        return None
    values: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            values[key.strip().lower()] = value.strip()
    raw = values.get("version") or values.get("version_info")
    if not raw:
        return None
    match = re.match(r"(\d+)\.(\d+)(?:\.(\d+))?", raw)
    if not match:
        return None
    return ".".join(g for g in match.groups() if g is not None)


def parse_os_release(text: str | None) -> str:
    """VERSION_ID from /etc/os-release (`12` on Debian 12), or "" when absent."""
    for line in (text or "").splitlines():
        key, _, value = line.partition("=")
        if key.strip() == "VERSION_ID":
            return value.strip().strip('"')
    return ""


def parse_etime(text: str) -> float | None:
    """BSD/procps `etime`: `[[dd-]hh:]mm:ss` -> seconds."""
    text = text.strip()
    match = re.fullmatch(r"(?:(\d+)-)?(?:(\d+):)?(\d+):(\d+)", text)
    if not match:
        return None
    days, hours, minutes, seconds = (int(g) if g else 0 for g in match.groups())
    return float(((days * 24 + hours) * 60 + minutes) * 60 + seconds)


def parse_ps_etime_command(line: str) -> tuple[float | None, str]:
    """One line of `ps -o etime=,command=`: elapsed seconds and the command line."""
    line = line.strip()
    first, _, rest = line.partition(" ")
    elapsed = parse_etime(first)
    if elapsed is None:
        return None, line
    return elapsed, rest.strip()


def is_server_command(command: str) -> bool:
    """Is this command line an mlx-omni-server? (`.../mlx-omni-server ...`,
    `python .../mlx-omni-server ...` or `python -m mlx_omni_server...`). A command that only
    mentions the name, such as `pip install mlx-omni-server==0.5.1`, is not."""
    words = command.split()
    if any(w.rsplit("/", 1)[-1] == "mlx-omni-server" for w in words[:2]):
        return True
    return any(
        a == "-m" and b.startswith("mlx_omni_server") for a, b in itertools.pairwise(words[:4])
    )


def parse_server_processes(text: str | None) -> tuple[ServerProcess, ...]:
    """`PID COMMAND` lines (Linux: built from /proc; macOS: `ps -o pid=,command=`), keeping
    the ones that are an mlx-omni-server."""
    found = []
    for line in (text or "").splitlines():
        pid_text, _, command = line.strip().partition(" ")
        if pid_text.isdigit() and is_server_command(command.strip()):
            found.append(ServerProcess(pid=int(pid_text), command=command.strip()))
    return tuple(found)


def parse_process(raw: dict[str, Any] | None) -> ProcessFacts | None:
    if not raw:
        return None
    if "ps" in raw:  # macOS: one `ps -wwE -o etime=,command=` line
        elapsed, command = parse_ps_etime_command(raw.get("ps") or "")
        alive = bool(raw.get("alive")) and bool(command)
    else:
        command = " ".join(raw.get("argv") or [])
        elapsed = raw.get("elapsed_s")
        alive = bool(raw.get("alive"))
    return ProcessFacts(
        pid=int(raw["pid"]),
        alive=alive,
        command=command,
        config_hash=raw.get("config_hash"),
        uptime_s=float(elapsed) if elapsed is not None else None,
    )


def parse_status_line(line: str) -> int | None:
    """`HTTP/1.1 200 OK` -> 200."""
    parts = line.split()
    if len(parts) >= 2 and parts[0].startswith("HTTP/") and parts[1].isdigit():
        return int(parts[1])
    return None


def parse_endpoint(raw: dict[str, Any]) -> EndpointFacts:
    path = str(raw.get("path", ""))
    if raw.get("error"):
        return EndpointFacts(path=path, status=None, ms=None, error=str(raw["error"]))
    status = parse_status_line(str(raw.get("status_line", "")))
    body: Any = None
    ids: tuple[str, ...] = ()
    try:
        body = json.loads(raw.get("body") or "null")
    except json.JSONDecodeError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("data"), list):
        ids = tuple(str(m["id"]) for m in body["data"] if isinstance(m, dict) and "id" in m)
    error = None if status == 200 else f"HTTP {status}" if status else "not an HTTP answer"
    return EndpointFacts(
        path=path, status=status, ms=raw.get("ms"), error=error, body=body, model_ids=ids
    )


def parse_model(spec: ModelSpec, raw: dict[str, Any] | None) -> ModelFacts:
    """Is ``spec`` complete in the cache? Complete means: the revision resolves to a
    snapshot, every file in it resolves (no dangling blob link), no download is half done,
    and, when the tool copied it, every file the copy's marker lists is there at its size."""

    def missing(
        problem: str, commit: str | None = None, size: int = 0, files: int = 0
    ) -> ModelFacts:
        return ModelFacts(
            id=spec.id,
            revision=spec.revision,
            present=raw is not None and bool(raw.get("exists")),
            complete=False,
            commit=commit,
            size_bytes=size,
            files=files,
            problem=problem,
        )

    if not raw or not raw.get("exists"):
        return missing("not in the model cache")
    refs: dict[str, str] = raw.get("refs") or {}
    snapshots: dict[str, list[list[Any]]] = raw.get("snapshots") or {}
    commit = refs.get(spec.revision)
    if commit is None and _COMMIT_RE.match(spec.revision):
        commit = spec.revision
    if commit is None:
        return missing(f"no ref `{spec.revision}` in the cache")
    if commit not in snapshots:
        return missing(f"ref `{spec.revision}` points at {commit[:12]}, which has no snapshot")
    files = snapshots[commit]
    size = sum(s for _, s in files if isinstance(s, int))
    dangling = [name for name, s in files if s is None]
    if not files:
        return missing("the snapshot is empty", commit)
    if dangling:
        return missing(
            f"{len(dangling)} file(s) missing, e.g. {dangling[0]}", commit, size, len(files)
        )
    if raw.get("incomplete_blobs"):
        return missing("a download is incomplete (.incomplete blobs)", commit, size, len(files))
    marker = raw.get("marker")
    if marker:
        try:
            expected = json.loads(marker).get("files", {})
        except (json.JSONDecodeError, AttributeError):
            expected = {}
        actual = {name: s for name, s in files}
        for name, want in expected.items():
            if actual.get(name) != want:
                got = actual.get(name)
                problem = (
                    f"{name} is missing" if got is None else f"{name} has {got} bytes, not {want}"
                )
                return missing(problem, commit, size, len(files))
    return ModelFacts(
        id=spec.id,
        revision=spec.revision,
        present=True,
        complete=True,
        commit=commit,
        size_bytes=size,
        files=len(files),
        problem=None,
    )


def parse_iso_time(text: str | None) -> float | None:
    """`2026-11-26T02:45:30Z` (as apply writes it) -> seconds since the epoch, or None."""
    if not text:
        return None
    try:
        moment = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    return moment.timestamp()


def _str_or_none(value: Any) -> str | None:
    return None if value is None else str(value)


def parse_pull_report(text: str | None) -> PullReport | None:
    """PREFIX/state/pull-report.json as `localai apply --local` wrote it. A file that is not
    such a report is reported as `unreadable`, not ignored: a pull that cannot be read is a
    pull that cannot be trusted."""
    if text is None:
        return None
    data = _json_or_none(text)
    if data is None or not isinstance(data.get("result"), str):
        return PullReport(
            finished_at=None,
            finished_epoch=None,
            result="unreadable",
            error="the pull report is not the JSON this version writes",
        )
    finished = _str_or_none(data.get("finished_at"))
    git = data.get("git_pull") if isinstance(data.get("git_pull"), dict) else {}
    changes = data.get("changes")
    interval = data.get("interval_s")
    return PullReport(
        finished_at=finished,
        finished_epoch=parse_iso_time(finished),
        result=str(data["result"]),
        failed_step=_str_or_none(data.get("failed_step")),
        error=_str_or_none(data.get("error")),
        changes=changes if isinstance(changes, int) else 0,
        site_file=_str_or_none(data.get("site_file")),
        site_hash=_str_or_none(data.get("site_hash")),
        git_commit=_str_or_none(data.get("git_commit")),
        git_error=_str_or_none(git.get("error")) if git and not git.get("ok", True) else None,
        interval_s=interval if isinstance(interval, int) and interval > 0 else None,
    )


def parse_pull_timer(raw: dict[str, Any] | None) -> PullTimerFacts | None:
    if not isinstance(raw, dict):
        return None
    return PullTimerFacts(
        kind=str(raw.get("kind", "")),
        definition=raw.get("definition") or None,
        available=bool(raw.get("available", True)),
        path=_str_or_none(raw.get("path")),
    )


def _json_or_none(text: str | None) -> dict[str, Any] | None:
    if not text:
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


def parse_server_config(raw: Any) -> ServerConfigFacts | None:
    """The facts script's summary of PREFIX/server.json (never its values)."""
    if raw is None:
        return None
    if not isinstance(raw, dict) or not raw.get("readable"):
        return ServerConfigFacts(readable=False)
    argv = raw.get("argv")
    env = raw.get("env")
    env = env if isinstance(env, dict) else {}
    return ServerConfigFacts(
        readable=True,
        hash=_str_or_none(raw.get("hash")),
        argv=tuple(str(a) for a in argv) if isinstance(argv, list) else None,
        salt=str(raw.get("salt") or ""),
        env={str(k): _str_or_none(v) for k, v in env.items()},
    )


def framed(output: str) -> str:
    """The facts script's JSON, from between its BEGIN and END lines: what a login banner,
    a chatty shell profile or a `python` wrapper prints around them is left out. Output with
    no frame at all is taken whole (recorded outputs of earlier versions)."""
    lines = output.splitlines()
    ends = [i for i, line in enumerate(lines) if line.strip() == FRAME_END]
    if not ends:
        if any(line.strip() == FRAME_BEGIN for line in lines):
            raise FactsFormatError("the facts script's output was cut short (no end line)")
        return output
    end = ends[-1]
    begins = [i for i, line in enumerate(lines[:end]) if line.strip() == FRAME_BEGIN]
    if not begins:
        raise FactsFormatError("the facts script's output has an end line but no begin line")
    return "\n".join(lines[begins[-1] + 1 : end])


def parse_system(sys_raw: dict[str, Any]) -> SystemFacts:
    """The `system` section: the OS (macOS from sw_vers or SystemVersion.plist), the user."""
    sysname = str(sys_raw.get("sysname", ""))
    if sysname == "Darwin":
        os_name = "macos"
        os_version = parse_sw_vers(sys_raw.get("sw_vers") or "").get(
            "ProductVersion"
        ) or parse_macos_version(sys_raw.get("system_version_plist"))
    else:
        os_name, os_version = sysname.lower(), parse_os_release(sys_raw.get("os_release"))
    return SystemFacts(
        os=os_name,
        os_version=os_version,
        kernel=str(sys_raw.get("release", "")),
        arch=str(sys_raw.get("machine", "")),
        hostname=str(sys_raw.get("nodename", "")),
        user=str(sys_raw.get("user") or ""),
        uid=int(sys_raw.get("uid", -1)),
        home=str(sys_raw.get("home", "")),
        clock=float(sys_raw.get("time", 0.0)),
        portaudio=bool(sys_raw.get("portaudio", True)),
    )


def parse_python(py_raw: dict[str, Any]) -> PythonFacts:
    parts = [int(v) for v in (py_raw.get("version") or [])[:3]] + [0, 0, 0]
    return PythonFacts(
        requested=str(py_raw.get("requested", "")),
        executable=str(py_raw.get("executable", "")),
        version=(parts[0], parts[1], parts[2]),
        found=not py_raw.get("fallback", False),
    )


def parse_venv(venv_raw: dict[str, Any]) -> VenvFacts:
    return VenvFacts(
        path=str(venv_raw.get("path", "")),
        exists=bool(venv_raw.get("exists")),
        python_exists=bool(venv_raw.get("python_exists")),
        complete=bool(venv_raw.get("complete")),
        python_version=parse_pyvenv_cfg(venv_raw.get("pyvenv_cfg")),
        packages=parse_packages(venv_raw.get("dist_infos") or []),
        site_packages=tuple(venv_raw.get("site_packages") or ()),
        shims=dict(venv_raw.get("shims") or {}),
        half_installed=parse_half_installed(venv_raw.get("half_installed") or {}),
        owned=bool(venv_raw.get("owned") or venv_raw.get("complete")),
        empty=bool(venv_raw.get("empty")),
    )


def parse_service(svc_raw: dict[str, Any], launchd: Any) -> ServiceFacts:
    pid_text = (svc_raw.get("pid_file") or "").strip()
    return ServiceFacts(
        kind=str(svc_raw.get("kind", "")),
        pid=int(pid_text) if pid_text.isdigit() else None,
        process=parse_process(svc_raw.get("process")),
        server_processes=parse_server_processes(svc_raw.get("server_processes")),
        launchd=parse_launchd(launchd),
    )


def parse_facts(host: str, output: str, models: Sequence[ModelSpec]) -> Facts:
    """The whole document printed by facts/remote.py."""
    try:
        doc = json.loads(framed(output))
    except json.JSONDecodeError as exc:
        raise FactsFormatError(f"the facts script printed no JSON ({exc.msg})") from None
    if not isinstance(doc, dict) or doc.get("v") != 1:
        raise FactsFormatError("the facts script printed an unknown format")
    errors: dict[str, str] = dict(doc.get("errors") or {})
    system = parse_system(doc.get("system") or {})
    python = parse_python(doc.get("python") or {})
    venv = parse_venv(doc.get("venv") or {})
    service = parse_service(doc.get("service") or {}, doc.get("launchd"))
    macos = parse_macos_settings(doc.get("macos_settings"))
    mac = parse_mac(doc.get("mac"))
    by_dir = {m.get("dir"): m for m in doc.get("models") or [] if isinstance(m, dict)}
    prefix = doc.get("prefix") or {}
    disk = doc.get("disk") or {}
    return Facts(
        host=host,
        system=system,
        python=python,
        prefix=str(prefix.get("path", "")),
        prefix_exists=bool(prefix.get("exists")),
        hf_home=str(doc.get("hf_home", "")),
        venv=venv,
        server_config=parse_server_config(doc.get("server_config")),
        service=service,
        port_open=bool(doc.get("port_open")),
        endpoints=tuple(parse_endpoint(e) for e in doc.get("http") or []),
        models=tuple(parse_model(m, by_dir.get(m.cache_dir_name)) for m in models),
        hub_dirs=tuple(doc.get("hub_dirs") or ()),
        state=_json_or_none(doc.get("state")),
        lock=doc.get("lock"),
        disk_free_bytes=disk.get("free_bytes"),
        script_ms=float(doc.get("elapsed_ms", 0.0)),
        errors=errors,
        macos=macos,
        mac=mac,
        pull_report=parse_pull_report(doc.get("pull_report")),
        pull_timer=parse_pull_timer(doc.get("pull_timer")),
        generations=parse_generations(doc.get("generations"), venv.usable and venv.owned),
        memory=parse_memory(
            doc.get("memory"),
            mac.memsize_bytes if mac else None,
            mac.wired_limit_mb if mac else None,
        ),
        cache=parse_cache(doc.get("cache")),
        server_log=parse_server_log(doc.get("server_log")),
        loaded_models=parse_loaded_models(doc.get("loaded_models")),
    )
