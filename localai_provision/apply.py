"""apply: carry out a host's plan, and only its plan, then prove the result.

Per host: gather facts, plan, and if anything is to be done: take the host's lock, run each
step the plan asks for (venv, packages, server configuration, models, service), verify the
server and prewarm its models, then gather facts again and plan again. A host is converged
only when that second plan is empty. Every failure becomes a HostError naming the step, the
command and the tail of its output; it ends that host's run, never another's.
"""

from __future__ import annotations

import contextlib
import datetime
import functools
import hashlib
import json
import os
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from localai_provision import __version__, scripts, shell, tinymodel
from localai_provision.connectors.base import Connector, connector_for
from localai_provision.errors import CommandError, HostError
from localai_provision.facts.gather import gather
from localai_provision.facts.model import Facts
from localai_provision.fleet import (
    DEFAULT_FORKS,
    ConnectorFactory,
    Fleet,
    HostResult,
    ProgressCallback,
)
from localai_provision.layout import (
    CRON_BEGIN,
    CRON_END,
    PULL_LABEL,
    SERVER_PACKAGE,
    SHIM_MODULE,
    Layout,
    expand_home,
    pull_plist,
    pull_plist_path,
)
from localai_provision.lock import Lock, LockError, lock_for
from localai_provision.plan import (
    FAIL,
    HALF_INSTALLED,
    LAUNCHD_DOMAIN,
    LOCK,
    MACOS,
    MODEL,
    PACKAGE,
    PULL_TIMER,
    PYTHON,
    REMOVE,
    ROOT_HELPER,
    SECRET,
    SERVER_CONFIG,
    SERVICE,
    SERVICE_DEFINITION,
    SHIM,
    SYSTEM,
    VENV,
    Change,
    desired_config,
    desired_pull_timer,
    layout_for,
    plan,
    plan_warnings,
    shim_pth,
)
from localai_provision.results import ApplyReport, HostStatus
from localai_provision.services.base import ServiceManager, service_manager_for
from localai_provision.services.launchd import LaunchdService
from localai_provision.site.model import HUB_PREFIX, HostSpec, ModelSpec
from localai_provision.transfer import (
    Artifact,
    Distributor,
    list_files,
    missing_placements,
    sha256_file,
)
from localai_provision.wheelhouse import BUILD_TOOLS, Wheel, tool_wheel, wheels_for

# Apply statuses.
OK = HostStatus.OK  # nothing to do
CHANGED = HostStatus.CHANGED
FAILED = HostStatus.FAILED
UNREACHABLE = HostStatus.UNREACHABLE
SKIPPED = HostStatus.SKIPPED

INSTALL_TIMEOUT_S = 1800.0  # the real server's packages are several GB
VENV_TIMEOUT_S = 300.0
EXIT_LOCK_HELD = 75


@dataclass
class ApplyOptions:
    lock_wait_s: float = 10.0
    site_hash: str = ""
    prewarm_timeout_s: float = 300.0


@dataclass
class StepLog:
    """What a host's apply did, step by step, for the summary and --json."""

    steps: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    verify: dict[str, Any] = field(default_factory=dict)
    prewarm: list[dict[str, Any]] = field(default_factory=list)
    current: str = ""  # the step running now: a failure without a step of its own is its
    # The changes carried out so far: a failed apply reports these, not "nothing changed".
    done: list[Change] = field(default_factory=list)


def site_hash(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


# --- the lock -------------------------------------------------------------------------------

# Runs in the host's login shell, so $PPID is the process that lives as long as our
# connection (sshd's session process; for `connection: local`, this controller). The lock
# records it: if that process is gone, the apply that took the lock is gone too (killed, or
# its connection dropped) and the lock is stale.
_LOCK_SCRIPT = r"""
mkdir -p "$L_PREFIX" || exit 1
L="$L_PREFIX/lock"; n=0
while ! mkdir "$L" 2>/dev/null; do
  owner=$(cat "$L/owner.json" 2>/dev/null)
  pid=$(printf '%s' "$owner" | sed -n 's/.*"session_pid": *\([0-9][0-9]*\).*/\1/p')
  if [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; then
    rm -rf "$L"; echo "took over a stale lock: $owner" >&2; continue
  fi
  if [ -z "$pid" ] && [ -n "$(find "$L" -maxdepth 0 -mmin +1 2>/dev/null)" ]; then
    rm -rf "$L"; echo "took over a lock left half-made" >&2; continue
  fi
  n=$((n+1))
  if [ "$n" -ge "$L_TRIES" ]; then printf '%s' "$owner"; exit 75; fi
  sleep 0.1
done
printf '%s' "$L_INFO" | sed "s/\"SESSION_PID\"/$PPID/" > "$L/owner.json.tmp" &&
  mv "$L/owner.json.tmp" "$L/owner.json" || exit 1
if [ "$n" -gt 0 ]; then echo waited; fi
"""

_UNLOCK_SCRIPT = r"""
L="$L_PREFIX/lock"
if grep -q "\"session_pid\": $PPID[,}]" "$L/owner.json" 2>/dev/null; then rm -rf "$L"; fi
"""


def _with_vars(script: str, **values: str) -> str:
    assignments = "; ".join(f"{k}={shell.quote(v)}" for k, v in values.items())
    return f"{assignments}; {script}"


def acquire_lock(
    connector: Connector, spec: HostSpec, prefix: str, wait_s: float
) -> tuple[bool, list[str]]:
    """Take the host's lock. Returns whether we had to wait for another apply (the host may
    have changed meanwhile) and warnings about stale locks taken over."""
    info = json.dumps(
        {
            "session_pid": "SESSION_PID",
            "controller": socket.gethostname(),
            "controller_pid": os.getpid(),
            "started": _now(),
            "tool_version": __version__,
        }
    )
    command = _with_vars(
        _LOCK_SCRIPT, L_PREFIX=prefix, L_TRIES=str(max(1, int(wait_s * 10))), L_INFO=info
    )
    result = connector.run(command, timeout=wait_s + 30)
    if result.exit_status == EXIT_LOCK_HELD:
        holder = _describe_holder(result.stdout)
        raise HostError(
            host=spec.name,
            step="lock",
            message=f"another apply is running on this host ({holder}); waited {wait_s:g} s",
            hint="let it finish, then run again; a lock whose apply died is taken over "
            "automatically",
        )
    if not result.ok:
        raise CommandError.of(
            spec.name, "lock", "could not take the host's lock", "<lock script>", result
        )
    took_over = [line for line in result.stderr.splitlines() if line.startswith("took over")]
    return "waited" in result.stdout.split(), took_over


def _describe_holder(owner: str) -> str:
    try:
        data = json.loads(owner)
    except json.JSONDecodeError:
        return "holder unknown"
    return (
        f"held by localai {data.get('tool_version', '?')} on {data.get('controller', '?')}, "
        f"pid {data.get('controller_pid', '?')}, since {data.get('started', '?')}"
    )


def clear_leftovers(connector: Connector, spec: HostSpec, facts: Facts) -> None:
    """Remove the temporary files an apply that died (killed, its connection cut) left beside
    the files it was writing. Only under the host's lock: no other apply is writing then.
    Only where the tool writes, one level deep, and only its own temporary names: never a
    search of the whole prefix (which may be a shared folder, where another program's or
    another prefix's files live)."""
    layout = layout_for(facts)
    folders = [layout.prefix, layout.state_dir, layout.wheels]
    folders += [f"{site}" for site in facts.venv.site_packages]
    hub = f"{facts.hf_home}/hub"
    for model in spec.models:
        base = f"{hub}/{model.cache_dir_name}"
        folders += [base, f"{base}/refs"]
    snapshots = [f"{hub}/{m.cache_dir_name}/snapshots" for m in spec.models]
    ours = "\\( -name '.localai-tmp-*' -o -name '*.localai-tmp' \\)"
    commands = [
        f"find {shell.quote(folder)} -mindepth 1 -maxdepth 1 {ours} -exec rm -f {{}} +"
        for folder in folders
    ]
    # A model's snapshot links sit in subfolders (a file's own path); only its links'
    # temporary names (LINK.localai-tmp) are removed there.
    commands += [
        f"find {shell.quote(folder)} -mindepth 2 -name '*.localai-tmp' -exec rm -f {{}} +"
        for folder in snapshots
    ]
    connector.run("; ".join(f"{c} 2>/dev/null" for c in commands) + "; true", timeout=120)


def release_lock(connector: Connector, prefix: str) -> None:
    connector.run(_with_vars(_UNLOCK_SCRIPT, L_PREFIX=prefix), timeout=30)


# --- steps ----------------------------------------------------------------------------------


def _run_step(
    connector: Connector,
    spec: HostSpec,
    step: str,
    argv: list[str],
    message: str,
    timeout: float = 120.0,
    env: dict[str, str] | None = None,
) -> str:
    assignments = "".join(f"{k}={shell.quote(v)} " for k, v in (env or {}).items())
    command = assignments + shell.join(argv)
    result = connector.run(command, timeout=timeout)
    if not result.ok:
        raise CommandError.of(spec.name, step, message, command, result)
    return result.stdout


EXIT_NOT_OURS = 3
# Markers the tool writes into what it makes: only a folder that carries one is ever deleted.
OWNED_MARKER = ".localai-owned"  # written first, into the empty folder
COMPLETE_MARKER = ".localai-complete"  # written last (older versions wrote only this one)


def build_venv(connector: Connector, spec: HostSpec, facts: Facts, layout: Layout) -> None:
    """(Re)build the venv in place, marking it ours first and complete only at the end. A
    venv cannot be built aside and renamed: its scripts name their own path. What stands at
    its path and is not ours (no marker) is never deleted: checked here again, on the host,
    though plan refuses it already (it may have appeared since the facts were read)."""
    python = facts.python.executable if facts.python.found else spec.python
    venv = layout.venv
    v = shell.quote(venv)
    command = (
        f"if [ -e {v} ] || [ -L {v} ]; then "
        f"if [ ! -e {v}/{OWNED_MARKER} ] && [ ! -e {v}/{COMPLETE_MARKER} ] && "
        f'[ -n "$(ls -A {v} 2>/dev/null)" ]; then exit {EXIT_NOT_OURS}; fi; fi; '
        f"rm -rf {v} && mkdir -p {v} && : > {v}/{OWNED_MARKER} && "
        f"{shell.quote(python)} -m venv {v} && "
        f"{shell.quote(layout.venv_python)} -m pip --version >/dev/null && "
        f"touch {v}/{COMPLETE_MARKER}"
    )
    result = connector.run(command, timeout=VENV_TIMEOUT_S)
    if result.exit_status == EXIT_NOT_OURS:
        raise HostError(
            host=spec.name,
            step="venv",
            message=f"{venv} exists but was not made by localai-provision (it has no "
            f"{OWNED_MARKER} marker): refused to delete it",
            hint="move that folder away (or delete it yourself if it is not needed), or "
            "choose another `prefix` for this host, then run apply again",
        )
    if not result.ok:
        raise CommandError.of(
            spec.name,
            "venv",
            f"could not build the venv with {python}",
            command,
            result,
            hint="on Debian/Ubuntu install python3-venv; on macOS use a python.org or "
            "Homebrew Python",
        )


def ensure_uv(
    connector: Connector,
    spec: HostSpec,
    layout: Layout,
    log: StepLog,
    index_args: list[str] | None = None,
) -> bool:
    """Make uv available under prefix/tools (from the site's package index, with the venv's
    pip). False, with a warning, when it cannot be had and the site allows pip instead."""
    found = connector.run(f"test -x {shell.quote(layout.uv)}")
    if found.ok:
        return True
    argv = [
        layout.venv_python,
        "-m",
        "pip",
        "install",
        "--disable-pip-version-check",
        "--no-input",
        "--quiet",
        "--target",
        layout.tools,
        "--upgrade",
        *(spec.package_index.arguments() if index_args is None else index_args),
        "uv",
    ]
    command = shell.join(argv)
    result = connector.run(command, timeout=INSTALL_TIMEOUT_S)
    if result.ok and connector.run(f"test -x {shell.quote(layout.uv)}").ok:
        log.steps.append({"step": "installer", "installed": "uv"})
        return True
    if spec.installer == "uv":
        raise CommandError.of(
            spec.name, "packages", "uv could not be installed (`installer: uv`)", command, result
        )
    last = result.tail(1) or "no uv wheel for this host"
    log.warnings.append(f"uv could not be had ({last}); installed with pip instead")
    return False


def install_packages(
    connector: Connector,
    spec: HostSpec,
    layout: Layout,
    changes: list[Change],
    log: StepLog,
    lock: Lock | None,
    facts: Facts,
    distributor: Distributor,
) -> None:
    """Install what the plan asks for. With a lock: exactly the locked set, hashes checked,
    anything else removed (uv pip sync; with pip, install then uninstall the rest). Without:
    the changed pins only; a package already at its version is not touched. With
    `package_index.push`, the wheels come from the controller and no index is asked."""
    pins = [f"{c.name}=={c.after}" for c in changes if c.kind == PACKAGE and c.after]
    extras = [c.name for c in changes if c.kind == PACKAGE and c.action == REMOVE]
    index_args = spec.package_index.arguments()
    if lock is not None and spec.package_index.push:
        push_wheels(connector, spec, layout, facts, lock, distributor, log)
        index_args = ["--no-index", "--find-links", layout.wheels]
    # Installers take a package at its version for installed even when files of it are gone.
    damaged = [c.name for c in changes if c.kind == PACKAGE and c.before == HALF_INSTALLED]
    reinstall = [a for name in damaged for a in ("--reinstall-package", name)]
    use_uv = spec.installer != "pip" and ensure_uv(connector, spec, layout, log, index_args)
    # uv trusts its own bundled certificates unless told otherwise; the host's store is what
    # pip, and a lab behind a proxy with its own CA, rely on.
    uv_env = {"UV_NATIVE_TLS": "1"}
    pip = [layout.venv_python, "-m", "pip"]
    quiet = ["--disable-pip-version-check", "--no-input"]
    if lock is not None:
        target = f"{layout.prefix}/requirements.lock.txt"
        connector.put(lock.text.encode("utf-8"), target)
        if use_uv:
            steps = [
                [
                    layout.uv,
                    "pip",
                    "sync",
                    "--python",
                    layout.venv_python,
                    "--require-hashes",
                    *reinstall,
                    *index_args,
                    target,
                ]
            ]
        else:
            steps = [
                [
                    *pip,
                    "install",
                    *quiet,
                    "--require-hashes",
                    "--no-deps",
                    *index_args,
                    *(["--force-reinstall"] if damaged else []),
                    "-r",
                    target,
                ]
            ]
            if extras:
                steps.append([*pip, "uninstall", *quiet, "--yes", *extras])
        what = f"the locked set {lock.path.name}"
    else:
        if not pins:
            return
        if use_uv:
            steps = [
                [
                    layout.uv,
                    "pip",
                    "install",
                    "--python",
                    layout.venv_python,
                    *reinstall,
                    *index_args,
                    *pins,
                ]
            ]
        else:
            broken = [p for p in pins if p.split("==")[0] in damaged]
            steps = [
                [*pip, "install", *quiet, *index_args, *pins],
                *(
                    [
                        [
                            *pip,
                            "install",
                            *quiet,
                            "--force-reinstall",
                            "--no-deps",
                            *index_args,
                            *broken,
                        ]
                    ]
                    if broken
                    else []
                ),
            ]
        what = ", ".join(pins)
    for argv in steps:
        _run_step(
            connector,
            spec,
            "packages",
            argv,
            f"could not install {what}",
            timeout=INSTALL_TIMEOUT_S,
            env=uv_env if use_uv else None,
        )
    log.steps.append(
        {
            "step": "packages",
            "installer": "uv" if use_uv else "pip",
            "installed": pins,
            "removed": extras,
            "lock": lock.path.name if lock else None,
        }
    )


def push_wheels(
    connector: Connector,
    spec: HostSpec,
    layout: Layout,
    facts: Facts,
    lock: Lock,
    distributor: Distributor,
    log: StepLog,
) -> None:
    """Send the host the locked wheels it lacks (and uv's), from the controller's
    wheelhouse; wheels of older sets are deleted in the same command that lists them."""
    try:
        wheels = distributor.once(
            ("wheels", lock.platform, lock.digest, facts.python.version[:2]),
            lambda: wheels_for(lock, facts, spec.package_index),
        )
    except LockError as exc:
        raise HostError(
            host=spec.name,
            step="packages",
            message=str(exc),
            hint="the controller downloads the wheels with its own pip and the site's "
            "package_index",
        ) from None
    assert isinstance(wheels, list)
    tools = []
    wanted = ["uv"] if spec.installer != "pip" else []
    if any(not w.filename.endswith(".whl") for w in wheels):
        wanted += BUILD_TOOLS  # an sdist is built on the host, with no index
    for name in wanted:
        tool = distributor.once(
            (name, lock.platform, facts.python.version[:2]),
            functools.partial(tool_wheel, name, lock.platform, facts, spec.package_index),
        )
        if isinstance(tool, Wheel):
            tools.append(tool)
    python = facts.python.executable
    # A build tool may be in the lock too (setuptools): one file, sent once.
    everything = list({w.filename: w for w in [*wheels, *tools]}.values())
    present = list_files(
        connector,
        spec,
        python,
        layout.wheels,
        "packages",
        create=True,
        keep=[w.filename for w in everything],
    )
    placements = missing_placements(
        present,
        layout.wheels,
        [(w.filename, Artifact(f"sha256:{w.sha256}", w.size, w.path)) for w in everything],
    )
    delivery = distributor.deliver(connector, spec, python, placements, "packages")
    log.warnings += delivery.warnings
    log.steps.append({"step": "wheels", "wheels": len(everything), **delivery.as_dict()})


def install_shim(connector: Connector, spec: HostSpec, facts: Facts, layout: Layout) -> None:
    """Put the start-up shim and its .pth into the venv's site-packages, then compile it
    (hosts may set PYTHONDONTWRITEBYTECODE: uncompiled, it would cost every start 3 ms)."""
    site = f"{layout.venv}/lib/python{facts.python.short_version}/site-packages"
    module = f"{site}/{SHIM_MODULE}.py"
    connector.put(scripts.load("server_shim").encode("utf-8"), module)
    connector.put(shim_pth().encode("utf-8"), f"{site}/{SHIM_MODULE}.pth")
    _run_step(
        connector,
        spec,
        "shim",
        [layout.venv_python, "-I", "-m", "py_compile", module],
        "the start-up shim does not compile on this host's Python",
    )


def write_server_config(connector: Connector, facts: Facts, spec: HostSpec, layout: Layout) -> None:
    config = desired_config(spec, facts)
    data = (json.dumps(config, indent=2, sort_keys=True) + "\n").encode("utf-8")
    # 0600: the environment may hold secrets (an HF token).
    connector.put(data, layout.server_config, mode=0o600)


@dataclass(frozen=True)
class ModelFile:
    blob: str  # its name under blobs/: sha256, or git's blob id for Hugging Face's small files
    size: int
    local_path: Path

    @property
    def digest(self) -> str:
        return f"sha256:{self.blob}" if len(self.blob) == 64 else f"gitsha1:{self.blob}"


@dataclass(frozen=True)
class ModelSource:
    commit: str  # the snapshot's name: the hub's commit, or one derived from the content
    files: dict[str, ModelFile]  # relative path -> file


def model_manifest(source: Path) -> dict[str, tuple[str, int]]:
    """Every file under a model folder on the controller: relative path -> (sha256, size)."""
    files: dict[str, tuple[str, int]] = {}
    for path in sorted(source.rglob("*")):
        if path.is_file() and not any(
            part.startswith(".") for part in path.relative_to(source).parts
        ):
            files[path.relative_to(source).as_posix()] = (sha256_file(path), path.stat().st_size)
    return files


def escaping_links(source: Path) -> list[tuple[Path, Path]]:
    """Symbolic links in a model folder on the controller that point outside it, with their
    targets. Copying follows links: one to ~/.ssh/id_rsa would ship this machine's key to
    every host."""
    root = source.resolve()
    found = []
    for path in sorted(source.rglob("*")):
        if path.is_symlink():
            target = path.resolve()
            if not target.is_relative_to(root):
                found.append((path, target))
    return found


def refuse_escaping_links(spec: HostSpec, model: ModelSpec) -> None:
    if not model.source or model.source.startswith((tinymodel.BUILTIN_PREFIX, HUB_PREFIX)):
        return
    links = escaping_links(Path(model.source))
    if links:
        path, target = links[0]
        raise HostError(
            host=spec.name,
            step="models",
            message=f"{path} in the `source:` folder of {model.id} is a symbolic link to "
            f"{target}, outside that folder: refused (it would be copied to the host)"
            + (f"; {len(links) - 1} more such link(s)" if len(links) > 1 else ""),
            hint="copy the file itself into the model folder, or remove the link",
        )


def manifest_commit(files: dict[str, tuple[str, int]]) -> str:
    """A stable 40-hex revision for a copied model, derived from its content."""
    text = "\n".join(f"{name} {sha}" for name, (sha, _) in sorted(files.items()))
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


def folder_source(source: Path) -> ModelSource:
    manifest = model_manifest(source)
    return ModelSource(
        commit=manifest_commit(manifest),
        files={rel: ModelFile(sha, size, source / rel) for rel, (sha, size) in manifest.items()},
    )


def hub_source(repo_id: str, revision: str) -> ModelSource:
    """Download a model once into the controller's own Hugging Face cache (or find it there,
    offline with HF_HUB_OFFLINE=1) and describe it blob by blob, exactly as the cache holds
    it: hosts then get the same blob names, snapshot and ref as huggingface_hub would write."""
    try:
        from huggingface_hub import snapshot_download
    except ImportError:
        raise HostError(
            host="",
            step="models",
            message=f"`source: hf:{repo_id}` needs huggingface_hub on the controller",
            hint="pip install 'localai-provision[hub]' (or huggingface_hub) where localai runs",
        ) from None
    try:
        snapshot = Path(snapshot_download(repo_id, revision=revision))
    except Exception as exc:  # noqa: BLE001 - huggingface_hub raises many kinds; all mean the same
        raise HostError(
            host="",
            step="models",
            message=f"the controller could not download {repo_id}@{revision}: "
            f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}",
            hint="check the controller's network and HF_TOKEN, or fill its cache "
            "(huggingface-cli download) and set HF_HUB_OFFLINE=1",
        ) from None
    files: dict[str, ModelFile] = {}
    for path in sorted(snapshot.rglob("*")):
        if path.is_dir():
            continue
        blob = path.resolve()
        files[path.relative_to(snapshot).as_posix()] = ModelFile(
            blob.name, blob.stat().st_size, blob
        )
    return ModelSource(commit=snapshot.name, files=files)


def model_source(model: ModelSpec) -> ModelSource:
    assert model.source is not None
    if model.source.startswith(HUB_PREFIX):
        return hub_source(model.source.removeprefix(HUB_PREFIX), model.revision)
    source = (
        tinymodel.materialize(model.source)
        if model.source.startswith(tinymodel.BUILTIN_PREFIX)
        else Path(model.source)
    )
    if not source.is_dir():
        raise HostError(
            host="",
            step="models",
            message=f"the source folder {source} of {model.id} does not exist on this machine",
            hint="fix `source` in the site file (it is relative to the site file's folder)",
        )
    found = folder_source(source)
    if not found.files:
        raise HostError(host="", step="models", message=f"{source} holds no files")
    return found


def copy_model(
    connector: Connector,
    spec: HostSpec,
    facts: Facts,
    model: ModelSpec,
    distributor: Distributor,
) -> dict[str, Any]:
    """Copy a model from the controller into the host's cache, in huggingface_hub's layout.
    Blobs are named by content, so a blob the host already has is never sent again; each
    arrives as a partial file that resumes after an interruption and is checked before it is
    renamed; the ref and the marker are written last, so an interrupted copy is never taken
    for a complete one. Large blobs pass from host to host (see transfer.py)."""
    try:
        source = distributor.once(
            ("model", model.source, model.revision), lambda: model_source(model)
        )
    except HostError as exc:
        exc.host = spec.name
        raise
    assert isinstance(source, ModelSource)
    base = f"{facts.hf_home}/hub/{model.cache_dir_name}"
    python = facts.python.executable
    present = list_files(connector, spec, python, f"{base}/blobs", "models", create=True)
    placements = missing_placements(
        present,
        f"{base}/blobs",
        [(f.blob, Artifact(f.digest, f.size, f.local_path)) for f in source.files.values()],
    )
    delivery = distributor.deliver(connector, spec, python, placements, "models")
    link = {
        "base": base,
        "commit": source.commit,
        "revision": model.revision,
        "files": {rel: [f.blob, f.size] for rel, f in source.files.items()},
    }
    _run_step(
        connector,
        spec,
        "models",
        [python, "-I", "-S", "-c", scripts.load("model_files"), "link", json.dumps(link)],
        f"cannot lay out {model.id} in the cache",
    )
    return {
        "model": model.id,
        "commit": source.commit,
        **delivery.as_dict(),
        "warnings": delivery.warnings,
    }


def download_model(
    connector: Connector, spec: HostSpec, layout: Layout, facts: Facts, model: ModelSpec
) -> dict[str, Any]:
    """Download on the host with huggingface_hub (installed with mlx-lm)."""
    code = (
        "import sys; from huggingface_hub import snapshot_download; "
        "print(snapshot_download(sys.argv[1], revision=sys.argv[2]))"
    )
    command = f"HF_HOME={shell.quote(facts.hf_home)} " + shell.join(
        [layout.venv_python, "-c", code, model.id, model.revision]
    )
    result = connector.run(command, timeout=INSTALL_TIMEOUT_S)
    if not result.ok:
        raise CommandError.of(
            spec.name,
            "models",
            f"could not download {model.id}@{model.revision}",
            command,
            result,
            hint="check the host's network, or copy the model from this machine with `source:`",
        )
    return {"model": model.id, "downloaded": True}


def verify(
    connector: Connector, spec: HostSpec, layout: Layout, options: ApplyOptions, prewarm: bool
) -> dict[str, Any]:
    host = spec.server.host if spec.server.host not in ("0.0.0.0", "::") else "127.0.0.1"
    models = [m.id for m in spec.models if m.prewarm] if prewarm else []
    config = {
        "host": host,
        "port": spec.server.port,
        "endpoints": list(dict.fromkeys(("/v1/models", *spec.verify.endpoints))),
        "timeout_s": spec.verify.timeout_s,
        "prewarm": models,
        "prewarm_timeout_s": options.prewarm_timeout_s,
        "pid_file": layout.pid_file,
        "log": layout.server_log,
    }
    out = _run_step(
        connector,
        spec,
        "verify",
        [layout.venv_python, "-I", "-S", "-c", scripts.load("verify"), json.dumps(config)],
        "the verify script failed",
        timeout=spec.verify.timeout_s + options.prewarm_timeout_s * max(1, len(models)) + 30,
    )
    result: dict[str, Any] = json.loads(out)
    if result.get("error"):
        raise HostError(
            host=spec.name,
            step="verify",
            message=result["error"],
            output_tail=result.get("log_tail", ""),
            hint=f"read {layout.server_log} on the host",
        )
    for endpoint in result["endpoints"]:
        if endpoint.get("status") != 200:
            raise HostError(
                host=spec.name,
                step="verify",
                message=f"{endpoint['path']} answered {endpoint.get('status') or 'nothing'}",
                output_tail=str(endpoint.get("error", "")),
                hint=f"read {layout.server_log} on the host",
            )
    missing = [m.id for m in spec.models if m.id not in result["listed"]]
    if missing:
        raise HostError(
            host=spec.name,
            step="verify",
            message=f"the server does not list {', '.join(missing)}",
            hint="the model folder may not be a model the server can load (config.json with "
            "a model_type mlx-lm knows)",
        )
    for entry in result["prewarm"]:
        if entry.get("status") != 200:
            raise HostError(
                host=spec.name,
                step="prewarm",
                message=f"prewarming {entry['model']} failed (HTTP {entry.get('status')})",
                output_tail=str(entry.get("error", "")),
                hint=f"read {layout.server_log} on the host",
            )
    return result


# The tool's lines of the user's crontab are replaced (or removed) in place, on the host, so
# that lines another program adds meanwhile are kept. A crontab that cannot be read (other
# than "no crontab for USER") is left alone: writing would wipe it.
_CRON_SCRIPT = r"""
current=$(crontab -l 2>&1) || case "$current" in
  *"no crontab"*) current="" ;;
  *) printf '%s\n' "$current" >&2; exit 1 ;;
esac
{ if [ -n "$current" ]; then printf '%s\n' "$current" | sed "$C_SED"; fi
  printf '%s' "$C_BLOCK"; } | crontab - || exit 1
if [ -n "$C_BLOCK" ]; then mkdir -p "$C_STATE" && : > "$C_MARKER"; else rm -f "$C_MARKER"; fi
"""


def converge_pull_timer(
    connector: Connector, spec: HostSpec, facts: Facts, layout: Layout, change: Change
) -> None:
    """Install, replace or remove the pull timer: a launchd job on macOS (the same plist
    machinery as the server's job), the tool's lines of the user's crontab elsewhere."""
    wanted = None if change.action == REMOVE else desired_pull_timer(spec, facts)
    if facts.system.os == "macos":
        service = LaunchdService(connector, spec, layout, facts)
        path = expand_home(pull_plist_path(spec), facts.system.home)
        if wanted is None:
            service.remove_job(PULL_LABEL, path)
            return
        _run_step(connector, spec, PULL_TIMER, ["mkdir", "-p", layout.log_dir], "mkdir failed")
        data = pull_plist(spec, layout, facts.system.user, facts.system.home)
        service.install_plist(path, PULL_LABEL, data)
        service.load_job(PULL_LABEL, path)
        return
    command = _with_vars(
        _CRON_SCRIPT,
        C_SED=f"/^{CRON_BEGIN.split(' (')[0]}/,/^{CRON_END}$/d",
        C_BLOCK=wanted or "",
        C_STATE=layout.state_dir,
        C_MARKER=layout.pull_cron_marker,
    )
    result = connector.run(command)
    if not result.ok:
        raise CommandError.of(
            spec.name,
            PULL_TIMER,
            "could not "
            + ("remove the pull timer from" if wanted is None else "write")
            + " the user's crontab",
            "crontab - <the tool's lines>",
            result,
            hint="check that this user may use cron (/etc/cron.allow, /etc/cron.deny)",
        )


def write_state(
    connector: Connector,
    spec: HostSpec,
    facts: Facts,
    layout: Layout,
    options: ApplyOptions,
    log: StepLog,
) -> None:
    state = {
        "applied_at": _now(),
        "tool_version": __version__,
        "site_hash": options.site_hash,
        "packages": spec.packages,
        "models": {m.id: m.commit for m in facts.models},
        "config_hash": facts.server_config.hash if facts.server_config else None,
        "prewarm": log.prewarm,
    }
    connector.put(
        (json.dumps(state, indent=2, sort_keys=True) + "\n").encode("utf-8"), layout.state
    )


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def refuse_unusable(spec: HostSpec, lock: Lock | None) -> None:
    """Mistakes in the site that validate may let through and that would otherwise end in a
    traceback on the host, after things were changed: refused before anything is touched.
    A NUL cannot be part of a process's argument or environment (the launch would fail with
    `embedded null byte`); a site without mlx-omni-server has no server to start."""
    server = spec.server
    for name, value in server.env.items():
        if "\0" in name or "\0" in value:
            raise HostError(
                host=spec.name,
                step="server-config",
                message=f"server.env.{name.replace(chr(0), '<NUL>')} holds a NUL character: "
                "no process's environment can hold one",
                hint="remove the NUL (\\0, \\x00) from that value in the site file",
            )
    for number, arg in enumerate(server.extra_args):
        if "\0" in arg:
            raise HostError(
                host=spec.name,
                step="server-config",
                message=f"server.extra_args[{number}] holds a NUL character: no process's "
                "argument can hold one",
                hint="remove the NUL (\\0, \\x00) from that argument in the site file",
            )
    locked = lock is not None and SERVER_PACKAGE in lock.packages
    if SERVER_PACKAGE not in spec.packages and not locked:
        raise HostError(
            host=spec.name,
            step="packages",
            message=f"the site installs no {SERVER_PACKAGE}: there is no server to start",
            hint=f"pin it under `packages:` (for example `{SERVER_PACKAGE}: 0.5.1`)",
        )


# --- one host ---------------------------------------------------------------------------------


def execute(
    fleet: Fleet,
    connector: Connector,
    spec: HostSpec,
    facts: Facts,
    changes: list[Change],
    options: ApplyOptions,
    log: StepLog,
    lock: Lock | None,
    distributor: Distributor,
) -> Facts:
    """Run the steps ``changes`` ask for, in order; return the facts read afterwards."""
    layout = layout_for(facts)
    by_kind: dict[str, list[Change]] = {}
    for change in changes:
        by_kind.setdefault(change.kind, []).append(change)

    # What the tool cannot fix stops the host before anything is touched.
    hints = {
        SYSTEM: "install it on the host, then run apply again",
        PYTHON: "install Python 3 on the host or fix `python`",
        LOCK: "run `localai lock SITE`, commit the lock files, then apply again",
        SECRET: "set the variable in the environment of the shell that runs localai",
        PULL_TIMER: "install cron on the host, or leave `pull` out of its settings",
        ROOT_HELPER: "run the setup command above once, then apply again (docs/macos.md)",
        LAUNCHD_DOMAIN: "set `launchd: {domain: system}` for this host (docs/macos.md)",
        MACOS: "fix the setting in the site file",
        VENV: "move that folder away (or delete it yourself if it is not needed), or choose "
        "another `prefix` for this host, then run apply again",
    }
    steps = {
        SYSTEM: "system-packages",
        PYTHON: "python",
        LOCK: "lock-file",
        ROOT_HELPER: "root-helper",
        LAUNCHD_DOMAIN: "service",
    }
    refuse_unusable(spec, lock)
    for change in changes:
        if change.action == FAIL:
            if change.kind == ROOT_HELPER:
                # The one step only the admin can do: leave the installer ready on the host.
                LaunchdService(connector, spec, layout, facts).write_installer()
            raise HostError(
                host=spec.name,
                step=steps.get(change.kind, change.kind),
                message=change.reason,
                hint=hints.get(change.kind, ""),
            )
    if VENV in by_kind:
        fleet.progress(spec.name, "building the venv")
        log.current = "venv"
        build_venv(connector, spec, facts, layout)
        log.steps.append({"step": "venv", "path": layout.venv})
        log.done += by_kind[VENV]
    if PACKAGE in by_kind:
        fleet.progress(spec.name, "installing packages")
        log.current = "packages"
        install_packages(connector, spec, layout, by_kind[PACKAGE], log, lock, facts, distributor)
        log.done += by_kind[PACKAGE]
    if SHIM in by_kind:
        fleet.progress(spec.name, "installing the start-up shim")
        log.current = "shim"
        install_shim(connector, spec, facts, layout)
        log.steps.append({"step": "shim"})
        log.done += by_kind[SHIM]
    if SERVER_CONFIG in by_kind:
        fleet.progress(spec.name, "writing the server configuration")
        log.current = "server-config"
        write_server_config(connector, facts, spec, layout)
        log.steps.append({"step": "server-config"})
        log.done += by_kind[SERVER_CONFIG]
    for change in by_kind.get(MODEL, []):
        model = next(m for m in spec.models if m.id == change.name)
        fleet.progress(spec.name, f"model {model.id}")
        log.current = "models"
        if model.source:
            refuse_escaping_links(spec, model)
            copied = copy_model(connector, spec, facts, model, distributor)
            log.warnings += copied.pop("warnings", [])
            log.steps.append({"step": "models", **copied})
        else:
            log.steps.append(
                {"step": "models", **download_model(connector, spec, layout, facts, model)}
            )
        log.done.append(change)
    if MACOS in by_kind:
        fleet.progress(spec.name, "Mac settings")
        log.current = "macos"
        LaunchdService(connector, spec, layout, facts).apply_macos_settings(by_kind[MACOS])
        log.steps.append({"step": "macos", "settings": [c.name for c in by_kind[MACOS]]})
        log.done += by_kind[MACOS]
    for change in by_kind.get(PULL_TIMER, []):
        fleet.progress(spec.name, "the pull timer")
        converge_pull_timer(connector, spec, facts, layout, change)
        log.steps.append({"step": PULL_TIMER, "action": change.action})
        log.done.append(change)
    service_changes = by_kind.get(SERVICE, [])
    service = service_manager_for(connector, spec, layout, facts)
    redefined = SERVICE_DEFINITION in by_kind
    if redefined:
        fleet.progress(spec.name, "installing the service definition")
        log.current = "service"
        service.install()
        log.steps.append({"step": "service-definition"})
        log.done += by_kind[SERVICE_DEFINITION]
    if service_changes:
        log.current = "service"
        _run_service(fleet, service, spec, facts, service_changes[0], log, redefined)
        log.done += service_changes
        fleet.progress(spec.name, "verifying and prewarming")
        log.current = "verify"
        result = verify(connector, spec, layout, options, prewarm=True)
        log.verify = {e["path"]: round(e.get("ms", 0.0), 1) for e in result["endpoints"]}
        log.verify["ready_after_s"] = round(result.get("waited_s") or 0.0, 2)
        log.prewarm = [
            {"model": p["model"], "ms": round(p.get("ms", 0.0), 1)} for p in result["prewarm"]
        ]
    fleet.progress(spec.name, "checking the result")
    log.current = "gather"
    return gather(connector, spec)


def _run_service(
    fleet: Fleet,
    service: ServiceManager,
    spec: HostSpec,
    facts: Facts,
    change: Change,
    log: StepLog,
    redefined: bool = False,
) -> None:
    process = facts.service.process
    ours = process is not None and process.alive
    if facts.port_open and not ours:
        # Stop what is ours first (an orphaned server of this venv), then look again.
        stopped = service.stop()
        still_held = port_in_use(service.connector, spec, service.layout)
        if still_held:
            holders = facts.service.server_processes
            who = f" by pid {holders[0].pid} ({holders[0].command[:100]})" if holders else ""
            raise HostError(
                host=spec.name,
                step="service",
                message=f"port {spec.server.port} is held by another program{who}",
                hint="stop that program, or choose another `server.port` for this host",
                details={"stopped": stopped},
            )
    if redefined:
        # A changed definition is loaded anew, whether the job runs, crash-loops or is
        # stopped: launchd keeps the old one until bootout.
        fleet.progress(spec.name, "reloading the service")
        service.reload()
    elif change.action == "restart":
        fleet.progress(spec.name, "restarting the server")
        service.restart()
    else:
        fleet.progress(spec.name, "starting the server")
        service.start()
    log.steps.append({"step": "service", "action": change.action, "reason": change.reason})


def port_in_use(connector: Connector, spec: HostSpec, layout: Layout) -> bool:
    """Is something listening on the server's port? Asked on the host: it is its loopback."""
    host = spec.server.host if spec.server.host not in ("0.0.0.0", "::") else "127.0.0.1"
    code = (
        "import socket,sys\n"
        "try:\n socket.create_connection((sys.argv[1], int(sys.argv[2])), 2).close()\n"
        "except OSError:\n sys.exit(1)"
    )
    result = connector.run(
        shell.join([layout.venv_python, "-I", "-S", "-c", code, host, str(spec.server.port)])
    )
    return result.ok


def apply_job_factory(options: ApplyOptions, distributor: Distributor | None = None) -> Any:
    distributor = distributor or Distributor()

    def apply_job(fleet: Fleet, spec: HostSpec) -> HostResult:
        fleet.progress(spec.name, "connecting")
        connector = fleet.open(spec)
        log = StepLog()
        try:
            fleet.progress(spec.name, "gathering facts")
            facts = gather(connector, spec)
            lock = lock_for(spec, facts)
            changes = plan(spec, facts, lock)
            warnings = list(getattr(connector, "warnings", [])) + plan_warnings(spec, facts)
            if not changes:
                result = HostResult(
                    name=spec.name,
                    status=OK,
                    warnings=warnings,
                    facts=facts,
                    commands=connector.commands_run,
                    connections=1,
                    details=ApplyReport(verify=_verify_from_facts(facts)),
                )
                return result
            fleet.progress(spec.name, "taking the lock")
            waited, took_over = acquire_lock(connector, spec, facts.prefix, options.lock_wait_s)
            log.warnings += took_over
            try:
                clear_leftovers(connector, spec, facts)
                if waited:
                    # Another apply ran meanwhile: plan again from what the host is now.
                    facts = gather(connector, spec)
                    changes = plan(spec, facts, lock)
                    if not changes:
                        result = HostResult(
                            name=spec.name,
                            status=OK,
                            warnings=warnings + log.warnings,
                            facts=facts,
                            commands=connector.commands_run,
                            connections=1,
                            details=ApplyReport(verify=_verify_from_facts(facts)),
                        )
                        return result
                after = execute(
                    fleet,
                    connector,
                    spec,
                    facts,
                    changes,
                    options,
                    log,
                    lock if isinstance(lock, Lock) else None,
                    distributor,
                )
                remaining = plan(spec, after, lock)
                if remaining:
                    raise HostError(
                        host=spec.name,
                        step="converge",
                        message="the host still differs after the steps ran: "
                        + "; ".join(f"{c.resource}: {c.reason}" for c in remaining),
                        hint="run `localai plan` to see the differences; report this if it repeats",
                    )
                write_state(connector, spec, after, layout_for(after), options, log)
            finally:
                # If the connection is gone, the next apply takes the stale lock over.
                with contextlib.suppress(HostError):
                    release_lock(connector, facts.prefix)
            result = HostResult(
                name=spec.name,
                status=CHANGED,
                changes=changes,
                warnings=warnings + log.warnings,
                facts=after,
                commands=connector.commands_run,
                connections=1,
                details=ApplyReport.from_log(log.verify, log.prewarm, log.steps),
            )
            return result
        except HostError as exc:
            if not exc.step:
                exc.step = log.current or "apply"
            exc.details.setdefault("report", ApplyReport.from_log({}, [], log.steps))
            exc.details.setdefault("changes", log.done)
            raise
        finally:
            distributor.retire(spec.name)
            fleet.release(connector)

    return apply_job


def _verify_from_facts(facts: Facts) -> dict[str, float]:
    return {e.path: round(e.ms, 1) for e in facts.endpoints if e.ms is not None}


def apply_hosts(
    hosts: list[HostSpec],
    options: ApplyOptions,
    *,
    forks: int = DEFAULT_FORKS,
    max_fail: int | None = None,
    serial: int | None = None,
    connector_factory: ConnectorFactory = connector_for,
    progress: ProgressCallback | None = None,
) -> list[HostResult]:
    """Converge every host; one result per host, sorted by name.

    ``serial`` N works through the hosts N at a time (a rolling update of a lab that serves
    people) and starts no new batch once one failed. ``max_fail`` N starts no new host after
    N failures.
    """
    batches = (
        [hosts] if not serial else [hosts[i : i + serial] for i in range(0, len(hosts), serial)]
    )
    results: list[HostResult] = []
    failures = 0
    job = apply_job_factory(options)
    for number, batch in enumerate(batches):
        if serial and failures:
            results += [
                HostResult(
                    name=spec.name,
                    status=SKIPPED,
                    error=HostError(
                        host=spec.name,
                        message=f"not started: batch {number} of --serial {serial} failed",
                    ),
                )
                for spec in batch
            ]
            continue
        left = None if max_fail is None else max(0, max_fail - failures)
        fleet = Fleet(
            batch,
            forks=forks,
            connector_factory=connector_factory,
            progress=progress,
            max_fail=left,
            error_status=FAILED,
        )
        if left == 0:
            fleet.stop_starting()
        batch_results = fleet.run(job)
        failures += sum(1 for r in batch_results if r.failed)
        results += batch_results
    return sorted(results, key=lambda r: r.name)
