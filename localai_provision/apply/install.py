"""The install steps: the venv, uv, the packages (and the wheels pushed for them), the
start-up shim and the server's configuration.

Each step's commands come from a pure function (facts and spec in, command lines out),
tested with tables; the step runs them and turns a failure into a HostError.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass

from localai_provision import scripts, shell
from localai_provision.apply.context import INSTALL_TIMEOUT_S, VENV_TIMEOUT_S, HostContext
from localai_provision.errors import CommandError, HostError
from localai_provision.layout import COMPLETE_MARKER, OWNED_MARKER, SHIM_MODULE, Layout
from localai_provision.lock import Lock, LockError
from localai_provision.plan import (
    HALF_INSTALLED,
    PACKAGE,
    REMOVE,
    Change,
    desired_config,
    desired_packages,
    shim_pth,
)
from localai_provision.transfer import Artifact, Distributor, list_files, missing_placements
from localai_provision.wheelhouse import BUILD_TOOLS, Wheel, tool_wheel, wheels_for

EXIT_NOT_OURS = 3
# uv trusts its own bundled certificates unless told otherwise; the host's store is what
# pip, and a lab behind a proxy with its own CA, rely on.
UV_ENV = {"UV_NATIVE_TLS": "1"}


# --- the venv -------------------------------------------------------------------------------


def venv_command(python: str, layout: Layout, *, pip: bool = True) -> str:
    """(Re)build the venv in place, marked ours first and complete last; exit
    EXIT_NOT_OURS, touching nothing, if what stands there is not ours. ``pip``: with pip in
    it (ensurepip), which only the pip installer needs: ensurepip was 5.2 s of CPU of a 7 s
    venv build here, `--without-pip` 0.08 s (measured 2026-12-02, Python 3.11)."""
    v = shell.quote(layout.venv)
    if pip:
        venv_python = shell.quote(layout.venv_python)
        build = (
            f"{shell.quote(python)} -m venv {v} && {venv_python} -m pip --version >/dev/null && "
        )
    else:
        build = f"{shell.quote(python)} -m venv --without-pip {v} && "
    return (
        f"if [ -e {v} ] || [ -L {v} ]; then "
        f"if [ ! -e {v}/{OWNED_MARKER} ] && [ ! -e {v}/{COMPLETE_MARKER} ] && "
        f'[ -n "$(ls -A {v} 2>/dev/null)" ]; then exit {EXIT_NOT_OURS}; fi; fi; '
        f"rm -rf {v} && mkdir -p {v} && : > {v}/{OWNED_MARKER} && "
        f"{build}touch {v}/{COMPLETE_MARKER}"
    )


def build_venv(host: HostContext) -> None:
    """(Re)build the venv in place, marking it ours first and complete only at the end. A
    venv cannot be built aside and renamed: its scripts name their own path. What stands at
    its path and is not ours (no marker) is never deleted: checked here again, on the host,
    though plan refuses it already (it may have appeared since the facts were read)."""
    facts, spec, layout = host.facts, host.spec, host.layout
    python = facts.python.executable if facts.python.found else spec.python
    # uv installs the packages: it needs no pip in the venv (ensure_uv brings pip back when
    # uv cannot be had and the site allows pip).
    command = venv_command(python, layout, pip=spec.installer == "pip")
    result = host.connector.run(command, timeout=VENV_TIMEOUT_S)
    if result.exit_status == EXIT_NOT_OURS:
        raise HostError(
            host=spec.name,
            step="venv",
            message=f"{layout.venv} exists but was not made by localai-provision (it has no "
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


# --- uv -------------------------------------------------------------------------------------


# The pip wheel the host's Python carries for ensurepip (CPython's own copy, or the
# distribution's: Debian keeps it in /usr/share/python-wheels), newest first.
_BUNDLED_PIP = (
    "import glob,os,ensurepip as e;"
    "d=[getattr(e,'_WHEEL_PKG_DIR',None) or '',"
    "os.path.join(os.path.dirname(e.__file__),'_bundled')];"
    "w=sorted(p for x in d if x for p in glob.glob(os.path.join(x,'pip-*.whl')));"
    "print(w[-1] if w else '')"
)


def uv_bootstrap_command(python: str, layout: Layout, index_args: list[str]) -> str:
    """uv under prefix/tools with no pip in the venv: pip run from the wheel the host's
    Python carries for ensurepip (pip runs from its wheel, as get-pip does); when there is
    none, ensurepip puts pip in the venv and that pip installs uv. A venv without pip saves
    ensurepip's 5 s of CPU; pip from its wheel costs 1.5 s more than an installed pip."""
    install = shell.join(uv_install_argv(layout, index_args)[3:])
    venv_python = shell.quote(layout.venv_python)
    find = shell.join([python, "-I", "-S", "-c", _BUNDLED_PIP])
    return (
        f'w="$({find} 2>/dev/null)"; '
        f'if [ -n "$w" ] && {venv_python} "$w/pip" {install}; then exit 0; fi; '
        f"{venv_python} -m pip --version >/dev/null 2>&1 || "
        f"{venv_python} -m ensurepip --default-pip >/dev/null || exit 1; "
        f"{venv_python} -m pip {install}"
    )


def uv_install_argv(layout: Layout, index_args: list[str]) -> list[str]:
    """uv goes under prefix/tools, installed by pip from the site's index."""
    return [
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
        *index_args,
        "uv",
    ]


def ensure_uv(host: HostContext, index_args: list[str] | None = None) -> bool:
    """Make uv available under prefix/tools (from the site's package index, with the venv's
    pip). False, with a warning, when it cannot be had and the site allows pip instead."""
    connector, spec, layout = host.connector, host.spec, host.layout
    if connector.run(f"test -x {shell.quote(layout.uv)}").ok:
        return True
    args = spec.package_index.arguments() if index_args is None else index_args
    python = host.facts.python.executable if host.facts.python.found else spec.python
    command = uv_bootstrap_command(python, layout, args)
    result = connector.run(command, timeout=INSTALL_TIMEOUT_S)
    if result.ok and connector.run(f"test -x {shell.quote(layout.uv)}").ok:
        host.log.steps.append({"step": "installer", "installed": "uv"})
        return True
    if spec.installer == "uv":
        raise CommandError.of(
            spec.name, "packages", "uv could not be installed (`installer: uv`)", command, result
        )
    last = result.tail(1) or "no uv wheel for this host"
    host.log.warnings.append(f"uv could not be had ({last}); installed with pip instead")
    # The venv was built without pip for uv: pip is the installer now.
    venv_python = shell.quote(layout.venv_python)
    has_pip = f"{venv_python} -m pip --version >/dev/null 2>&1"
    connector.run(f"{has_pip} || {venv_python} -m ensurepip --default-pip", timeout=600)
    return False


# --- packages -------------------------------------------------------------------------------


@dataclass(frozen=True)
class PackageWork:
    """What the plan's package changes ask for."""

    pins: list[str]  # NAME==VERSION to install
    extras: list[str]  # names to remove
    damaged: list[str]  # names installed at their version with files gone

    @classmethod
    def of(cls, changes: list[Change]) -> PackageWork:
        packages = [c for c in changes if c.kind == PACKAGE]
        return cls(
            pins=[f"{c.name}=={c.after}" for c in packages if c.after],
            extras=[c.name for c in packages if c.action == REMOVE],
            damaged=[c.name for c in packages if c.before == HALF_INSTALLED],
        )


def package_commands(
    layout: Layout,
    work: PackageWork,
    *,
    use_uv: bool,
    index_args: list[str],
    lock_file: str | None,
) -> list[list[str]]:
    """The install commands, in order. With a lock file: exactly the locked set, hashes
    checked, anything else removed. Without: the changed pins only. Installers take a
    package at its version for installed even when files of it are gone: those are forced."""
    pip = [layout.venv_python, "-m", "pip"]
    quiet = ["--disable-pip-version-check", "--no-input"]
    reinstall = [a for name in work.damaged for a in ("--reinstall-package", name)]
    if lock_file is not None:
        if use_uv:
            sync = ["pip", "sync", "--python", layout.venv_python, "--require-hashes"]
            return [[layout.uv, *sync, *reinstall, *index_args, lock_file]]
        force = ["--force-reinstall"] if work.damaged else []
        install = [*pip, "install", *quiet, "--require-hashes", "--no-deps", *index_args]
        steps = [[*install, *force, "-r", lock_file]]
        if work.extras:
            steps.append([*pip, "uninstall", *quiet, "--yes", *work.extras])
        return steps
    if not work.pins:
        return []
    if use_uv:
        install = [layout.uv, "pip", "install", "--python", layout.venv_python]
        return [[*install, *reinstall, *index_args, *work.pins]]
    steps = [[*pip, "install", *quiet, *index_args, *work.pins]]
    broken = [p for p in work.pins if p.split("==")[0] in work.damaged]
    if broken:
        force = ["--force-reinstall", "--no-deps"]
        steps.append([*pip, "install", *quiet, *force, *index_args, *broken])
    return steps


def install_packages(
    host: HostContext,
    changes: list[Change],
    lock: Lock | None,
    distributor: Distributor,
    *,
    whole: bool = False,
) -> None:
    """Install what the plan asks for. With a lock: exactly the locked set, hashes checked,
    anything else removed (uv pip sync; with pip, install then uninstall the rest). Without:
    the changed pins only; a package already at its version is not touched. With
    `package_index.push`, the wheels come from the controller and no index is asked."""
    spec, layout = host.spec, host.layout
    work = PackageWork.of(changes)
    if whole:
        # A new generation: its venv is empty, the whole set goes in (what the plan lists
        # is only what differs from the generation that serves).
        wanted = desired_packages(spec, host.facts, lock)
        work = PackageWork([f"{n}=={v}" for n, (v, _why) in wanted.items()], [], [])
    index_args = spec.package_index.arguments()
    if lock is not None and spec.package_index.push:
        push_wheels(host, lock, distributor)
        index_args = ["--no-index", "--find-links", layout.wheels]
    use_uv = spec.installer != "pip" and ensure_uv(host, index_args)
    lock_file = None
    if lock is not None:
        lock_file = layout.requirements_lock
        host.connector.put(lock.text.encode("utf-8"), lock_file)
        what = f"the locked set {lock.path.name}"
    elif not work.pins:
        return
    else:
        what = ", ".join(work.pins)
    argvs = package_commands(
        layout, work, use_uv=use_uv, index_args=index_args, lock_file=lock_file
    )
    for argv in argvs:
        host.run_step(
            "packages",
            argv,
            f"could not install {what}",
            timeout=INSTALL_TIMEOUT_S,
            env=UV_ENV if use_uv else None,
        )
    host.log.steps.append(
        {
            "step": "packages",
            "installer": "uv" if use_uv else "pip",
            "installed": work.pins,
            "removed": work.extras,
            "lock": lock.path.name if lock else None,
        }
    )


def push_wheels(host: HostContext, lock: Lock, distributor: Distributor) -> None:
    """Send the host the locked wheels it lacks (and uv's), from the controller's
    wheelhouse; wheels of older sets are deleted in the same command that lists them."""
    connector, spec, facts, layout = host.connector, host.spec, host.facts, host.layout
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
    keep = [w.filename for w in everything]
    present = list_files(connector, spec, python, layout.wheels, "packages", create=True, keep=keep)
    placements = missing_placements(
        present,
        layout.wheels,
        [(w.filename, Artifact(f"sha256:{w.sha256}", w.size, w.path)) for w in everything],
    )
    delivery = distributor.deliver(connector, spec, python, placements, "packages")
    host.log.warnings += delivery.warnings
    host.log.steps.append({"step": "wheels", "wheels": len(everything), **delivery.as_dict()})


# --- the shim and the server's configuration ------------------------------------------------


def shim_files(layout: Layout, python_short_version: str) -> dict[str, str]:
    """The shim's files in the venv's site-packages: path -> content."""
    site = layout.site_packages(python_short_version)
    return {
        f"{site}/{SHIM_MODULE}.py": scripts.load("server_shim"),
        f"{site}/{SHIM_MODULE}.pth": shim_pth(),
    }


def install_shim(host: HostContext) -> None:
    """Put the start-up shim and its .pth into the venv's site-packages, then compile it
    (hosts may set PYTHONDONTWRITEBYTECODE: uncompiled, it would cost every start 3 ms)."""
    layout = host.layout
    files = shim_files(layout, host.facts.python.short_version)
    for path, text in files.items():
        host.connector.put(text.encode("utf-8"), path)
    module = next(iter(files))
    host.run_step(
        "shim",
        [layout.venv_python, "-I", "-m", "py_compile", module],
        "the start-up shim does not compile on this host's Python",
    )


def server_config_bytes(host: HostContext) -> bytes:
    config = desired_config(host.spec, host.facts, host.generation)
    return (json.dumps(config, indent=2, sort_keys=True) + "\n").encode("utf-8")


def write_server_config(host: HostContext) -> None:
    # 0600: the environment may hold secrets (an HF token).
    host.connector.put(server_config_bytes(host), host.layout.server_config, mode=0o600)
