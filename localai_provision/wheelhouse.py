"""The controller's wheelhouse for `package_index: {push: true}`.

The controller downloads each platform's locked wheels once (pip, hash-checked against the
lock) into ~/.cache/localai-provision/wheels/PLATFORM; apply then sends each host only the
wheels it lacks, and the host installs them with no index at all. A lab of ten Macs downloads
the set once instead of ten times, and a lab with no internet can be provisioned at all.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

from localai_provision.facts.model import Facts
from localai_provision.lock import Lock, LockError
from localai_provision.site.model import PackageIndex
from localai_provision.transfer import sha256_file

DOWNLOAD_TIMEOUT_S = 1800.0
ARCHIVE_SUFFIXES = (".whl", ".tar.gz", ".zip")
# What a host needs to build a pushed sdist with no index (pip's and uv's isolated builds).
BUILD_TOOLS = ("setuptools", "wheel")
_BLOCK = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==(\S+)")
_HASH = re.compile(r"--hash=sha256:([0-9a-f]{64})")
# One download per platform folder at a time, across the host threads of an apply.
_folder_locks: dict[Path, threading.Lock] = {}
_folder_locks_guard = threading.Lock()


def _folder_lock(folder: Path) -> threading.Lock:
    with _folder_locks_guard:
        return _folder_locks.setdefault(folder, threading.Lock())


@dataclass(frozen=True)
class Wheel:
    filename: str
    sha256: str
    size: int
    path: Path


@dataclass(frozen=True)
class LockedRequirement:
    name: str
    version: str
    hashes: frozenset[str]


def wheelhouse_root() -> Path:
    configured = os.environ.get("LOCALAI_WHEELHOUSE")
    if configured:
        return Path(configured).expanduser()
    return Path("~/.cache/localai-provision/wheels").expanduser()


def locked_requirements(lock: Lock) -> list[LockedRequirement]:
    """Each `name==version` of the lock with the sha256 hashes it allows."""
    found: list[LockedRequirement] = []
    current: tuple[str, str] | None = None
    hashes: set[str] = set()
    for line in [*lock.text.splitlines(), ""]:
        match = _BLOCK.match(line)
        if match or not line.startswith((" ", "\t")):
            if current:
                found.append(LockedRequirement(current[0], current[1], frozenset(hashes)))
            current, hashes = ((match.group(1), match.group(2)) if match else None), set()
        hashes.update(_HASH.findall(line))
    return found


def pip_platforms(platform: str, os_version: str) -> list[str]:
    """pip's `--platform` values for a host: every tag its Python accepts, newest first."""
    os_name, _, arch = platform.partition("-")
    if os_name == "macos":
        # pip widens a macOS tag to the older releases it accepts.
        major = os_version.split(".")[0]
        return [f"macosx_{major if major.isdigit() else '14'}_0_{arch}"]
    # The locks are resolved for glibc 2.35; pip does not widen manylinux_2_X tags itself.
    return [f"manylinux_2_{minor}_{arch}" for minor in range(35, 16, -1)] + [
        f"manylinux2014_{arch}",
        f"linux_{arch}",
    ]


def _index(folder: Path) -> dict[str, Path]:
    """sha256 -> wheel in ``folder``; hashes are cached beside the wheels by name and size."""
    cache_file = folder / ".sha256"
    cached: dict[tuple[str, int], str] = {}
    if cache_file.exists():
        for line in cache_file.read_text().splitlines():
            parts = line.split(" ")
            if len(parts) == 3 and parts[1].isdigit():
                cached[(parts[0], int(parts[1]))] = parts[2]
    found: dict[str, Path] = {}
    lines = []
    for path in sorted(p for p in folder.iterdir() if p.name.endswith(ARCHIVE_SUFFIXES)):
        key = (path.name, path.stat().st_size)
        sha = cached.get(key) or sha256_file(path)
        found[sha] = path
        lines.append(f"{key[0]} {key[1]} {sha}")
    tmp = cache_file.with_name(".sha256.tmp")
    tmp.write_text("\n".join(lines) + "\n")
    os.replace(tmp, cache_file)
    return found


def wheels_for(lock: Lock, facts: Facts, index: PackageIndex) -> list[Wheel]:
    """The lock's wheels (or, for a package with none, its sdist) for this host's platform,
    downloaded into the wheelhouse first if missing. Raises LockError naming what no index
    offers."""
    folder = wheelhouse_root() / lock.platform
    with _folder_lock(folder):
        folder.mkdir(parents=True, exist_ok=True)
        requirements = locked_requirements(lock)
        have = _index(folder)
        missing = [r for r in requirements if not r.hashes & have.keys()]
        if missing:
            _download(missing, folder, lock.platform, facts, index)
            have = _index(folder)
            missing = [r for r in requirements if not r.hashes & have.keys()]
        if missing:
            raise LockError(
                f"no wheel of {', '.join(f'{r.name}=={r.version}' for r in missing[:5])}"
                f"{' and more' if len(missing) > 5 else ''} for {lock.platform} matches the "
                f"hashes in {lock.path.name}; check the site's package_index, or put the "
                f"wheels into {folder}"
            )
    wheels = []
    for requirement in requirements:
        sha = next(h for h in sorted(requirement.hashes) if h in have)
        path = have[sha]
        wheels.append(Wheel(path.name, sha, path.stat().st_size, path))
    return wheels


def _pip_download(
    what: list[str], dest: Path, platform: str, facts: Facts, index: PackageIndex
) -> subprocess.CompletedProcess[str]:
    """The controller's `pip download` of ``what`` (options and requirements) for a host's
    platform and Python, with the site's index and none of the controller's pip settings.
    Raises subprocess.TimeoutExpired after DOWNLOAD_TIMEOUT_S."""
    major, minor = facts.python.version[0], facts.python.version[1]
    argv = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--disable-pip-version-check",
        "--no-input",
        "--quiet",
        "--no-deps",
        "--dest",
        str(dest),
        "--python-version",
        f"{major}.{minor}",
        *[a for p in pip_platforms(platform, facts.system.os_version) for a in ("--platform", p)],
        *index.arguments(),
        *what,
    ]
    return subprocess.run(
        argv,
        capture_output=True,
        text=True,
        timeout=DOWNLOAD_TIMEOUT_S,
        check=False,
        env=pip_environment(),
    )


def _download(
    requirements: list[LockedRequirement],
    folder: Path,
    platform: str,
    facts: Facts,
    index: PackageIndex,
) -> None:
    major, minor = facts.python.version[0], facts.python.version[1]
    lines = [
        f"{r.name}=={r.version} " + " ".join(f"--hash=sha256:{h}" for h in sorted(r.hashes))
        for r in requirements
    ]
    with tempfile.TemporaryDirectory(prefix="localai-wheels-") as tmp:
        reqs = Path(tmp) / "requirements.txt"
        reqs.write_text("\n".join(lines) + "\n")
        dest = Path(tmp) / "wheels"
        what = [
            # A wheel wherever one exists; a package published only as source (a few pure
            # Python ones are) comes as its sdist, which the host builds offline.
            "--prefer-binary",
            "--implementation",
            "cp",
            *[a for abi in (f"cp{major}{minor}", "abi3", "none") for a in ("--abi", abi)],
            "-r",
            str(reqs),
        ]
        try:
            result = _pip_download(what, dest, platform, facts, index)
        except subprocess.TimeoutExpired:
            raise LockError(f"downloading the wheels for {platform} took over 30 min") from None
        if result.returncode != 0:
            tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-5:])
            raise LockError(
                f"the controller could not download the locked wheels for {platform} "
                f"(pip download exited {result.returncode}):\n{tail}"
            )
        for wheel in dest.iterdir():
            if wheel.name.endswith(ARCHIVE_SUFFIXES):
                shutil.move(str(wheel), folder / wheel.name)


# Kept from the controller's pip environment: how to reach an index, not what to install.
_KEPT_PIP_VARIABLES = frozenset({"PIP_CERT", "PIP_CLIENT_CERT", "PIP_PROXY", "PIP_TRUSTED_HOST"})


def pip_environment() -> dict[str, str]:
    """The environment of the controller's `pip download`: its configuration files and
    PIP_* variables are left out (a constraint there, such as a version cap, would veto the
    lock's exact pins; a find-links there would add wheels the site never named), so the
    site's package_index is the only source and the lock's hashes the only truth.
    Certificates and proxies are kept."""
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("PIP_") or k in _KEPT_PIP_VARIABLES
    }
    env["PIP_CONFIG_FILE"] = os.devnull
    return env


def tool_wheel(name: str, platform: str, facts: Facts, index: PackageIndex) -> Wheel | None:
    """A wheel of an installer tool (uv) for the platform, downloaded once; None if no index
    offers one (the host then installs with pip)."""
    folder = wheelhouse_root() / platform / "tools"
    with _folder_lock(folder):
        folder.mkdir(parents=True, exist_ok=True)
        found = sorted(folder.glob(f"{name}-*.whl"))
        if not found:
            try:
                _pip_download(["--only-binary=:all:", name], folder, platform, facts, index)
            except subprocess.TimeoutExpired:
                return None
            found = sorted(folder.glob(f"{name}-*.whl"))
        if not found:
            return None
        path = found[-1]
        return Wheel(path.name, sha256_file(path), path.stat().st_size, path)
