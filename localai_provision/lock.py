"""Locked package sets: the whole dependency tree, resolved once, with hashes.

Pins name a few packages; the server pulls about 220. Without a lock, two hosts installed a
week apart get different versions of everything not pinned. `localai lock` resolves each
distinct package set of the site, for each platform its hosts need, with `uv pip compile`
(the one resolver that resolves a macOS set from a Linux controller), into files that live
beside the site in version control:

    <lock>.macos-arm64.txt    <lock>.linux-x86_64.txt

`apply` then installs exactly the locked set (hashes checked, anything else removed) and
`drift` reports every distribution that differs from it.

uv is a dependency of this tool on the controller for this reason (the PyPI package ships
the binary); hosts get their own uv under their prefix (apply.ensure_uv).
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from localai_provision.constants import PLATFORMS
from localai_provision.errors import LocalAIError
from localai_provision.facts.model import Facts
from localai_provision.linux import linux_additions
from localai_provision.site.model import HostSpec, canonical_package_name, package_base_name

# Installer tools that a venv carries besides the set; never part of a lock's comparison.
TOOLS = frozenset({"pip", "setuptools", "wheel"})
COMPILE_TIMEOUT_S = 600.0
FROM_PREFIX = "# from: "  # the lock's header line naming what was resolved

_PYTHON_HEADER = re.compile(r"\(Python (\d+\.\d+)\)")
_REQUIREMENT = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?==([^\s\\;]+)")


class LockError(LocalAIError):
    """A lock cannot be made or used; the message says what to do."""


@dataclass(frozen=True)
class Lock:
    path: Path
    platform: str
    packages: dict[str, str]  # canonical name -> exact version
    text: str

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.text.encode("utf-8")).hexdigest()[:16]

    @property
    def python_version(self) -> str | None:
        """The Python the lock was resolved for, from its first line: `(Python 3.11)`."""
        match = _PYTHON_HEADER.search(self.text.split("\n", 1)[0])
        return match.group(1) if match else None


def platform_of(facts: Facts) -> str:
    arch = {"aarch64": "arm64"}.get(facts.system.arch, facts.system.arch)
    if facts.system.os == "macos":
        return f"macos-{arch}"
    arch = {"arm64": "aarch64", "amd64": "x86_64"}.get(arch, arch)
    return f"{facts.system.os}-{arch}"


def lock_path(spec: HostSpec, platform: str) -> Path:
    assert spec.lock is not None
    return Path(f"{spec.lock}.{platform}.txt")


def parse_lock(text: str) -> dict[str, str]:
    """`name==version \\` lines of a requirements file (hash and comment lines skipped)."""
    packages: dict[str, str] = {}
    for line in text.splitlines():
        match = _REQUIREMENT.match(line.strip())
        if match:
            packages[canonical_package_name(match.group(1))] = match.group(3)
    return packages


def read_lock(spec: HostSpec, platform: str) -> Lock:
    path = lock_path(spec, platform)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise LockError(
            f"{spec.name}: no lock for {platform}: {path} does not exist; "
            "run `localai lock SITE` to make it"
        ) from None
    except OSError as exc:
        raise LockError(f"{spec.name}: cannot read {path}: {exc.strerror}") from None
    packages = parse_lock(text)
    stale = [
        f"{name} {version} (lock has {packages.get(package_base_name(name), 'none')})"
        for name, version in spec.packages.items()
        if packages.get(package_base_name(name)) != version
    ]
    if stale:
        raise LockError(
            f"{spec.name}: {path} does not match the site's pins: {', '.join(stale)}; "
            "run `localai lock SITE` again"
        )
    # The header records what was resolved; a changed `linux.torch` is stale too, though
    # no pin moved.
    recorded = next(
        (
            line[len(FROM_PREFIX) :].split()
            for line in text.splitlines()
            if line.startswith(FROM_PREFIX)
        ),
        None,
    )
    wanted = requirements(spec, platform)
    if recorded is not None and sorted(recorded) != sorted(wanted):
        missing = sorted(set(wanted) - set(recorded))
        raise LockError(
            f"{spec.name}: {path} was resolved from other requirements (now also "
            f"{', '.join(missing) or 'fewer'}); run `localai lock SITE` again"
        )
    return Lock(path=path, platform=platform, packages=packages, text=text)


def requirements(spec: HostSpec, platform: str) -> list[str]:
    """What is resolved for a host set on a platform: the pins, plus on Linux what the server
    needs there (linux.linux_additions, the rule the plan reads too)."""
    lines = [f"{name}=={version}" for name, version in sorted(spec.packages.items())]
    if not platform.startswith("linux"):
        return lines
    for addition in linux_additions(spec):
        if addition.replaces:
            lines = [line for line in lines if not line.startswith(f"{addition.replaces}==")]
        lines.append(addition.requirement)
    return lines


def uv_binary() -> str:
    try:
        from uv import find_uv_bin
    except ImportError:
        raise LockError(
            "uv is not installed on this machine; reinstall localai-provision (it depends on uv)"
        ) from None
    return str(find_uv_bin())


def compile_lock(spec: HostSpec, platform: str, python_version: str) -> Path:
    """Resolve and write ``spec``'s lock for ``platform``; atomic (temporary file, rename)."""
    if platform not in PLATFORMS:
        raise LockError(f"unknown platform {platform!r}; known: {', '.join(PLATFORMS)}")
    target, env = PLATFORMS[platform]
    path = lock_path(spec, platform)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "requirements.in"
        source.write_text("\n".join(requirements(spec, platform)) + "\n")
        out = Path(tmp) / "lock.txt"
        argv = [
            uv_binary(),
            "pip",
            "compile",
            str(source),
            "--generate-hashes",
            "--quiet",
            "--python-platform",
            target,
            "--python-version",
            python_version,
            "--no-header",
            "--output-file",
            str(out),
            *spec.package_index.arguments(),
        ]
        try:
            result = subprocess.run(
                argv,
                capture_output=True,
                text=True,
                timeout=COMPILE_TIMEOUT_S,
                check=False,
                env={**os.environ, "UV_NATIVE_TLS": "1", **env},
            )
        except subprocess.TimeoutExpired:
            raise LockError(
                f"resolving {path.name} took longer than {COMPILE_TIMEOUT_S:g} s"
            ) from None
        if result.returncode != 0:
            tail = "\n".join(result.stderr.strip().splitlines()[-15:])
            raise LockError(f"could not resolve {path.name} with uv:\n{tail}")
        header = (
            f"# localai lock for {platform} (Python {python_version}); made by `localai lock`\n"
            f"{FROM_PREFIX}{' '.join(requirements(spec, platform))}\n"
        )
        text = header + out.read_text()
    fd, tmp_path = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    os.chmod(tmp_path, 0o644)  # mkstemp makes it private; a lock is shared in git
    os.replace(tmp_path, path)
    return path


def lock_for(spec: HostSpec, facts: Facts) -> Lock | LockError | None:
    """The host's locked set for its platform; the error, to be planned as a failure; or
    None when the site has no `lock`."""
    if spec.lock is None:
        return None
    try:
        return read_lock(spec, platform_of(facts))
    except LockError as exc:
        return exc


@dataclass(frozen=True)
class LockJob:
    """One lock file to make: a host set's packages for one platform."""

    spec: HostSpec  # any host of the set: they share `lock`, pins and index settings
    hosts: tuple[str, ...]
    platform: str
    python_version: str


def plan_locks(hosts: list[HostSpec], platforms: dict[str, list[tuple[str, str]]]) -> list[LockJob]:
    """Group hosts by lock file; ``platforms`` maps each host to its (platform, python).
    Hosts sharing a `lock` must pin the same set, or the lock would fit only some of them."""
    by_stem: dict[str, list[HostSpec]] = {}
    for spec in hosts:
        if spec.lock is None:
            continue
        by_stem.setdefault(spec.lock, []).append(spec)
    jobs: list[LockJob] = []
    for stem, members in sorted(by_stem.items()):
        first = members[0]
        for other in members[1:]:
            if (other.packages, other.linux, other.package_index) != (
                first.packages,
                first.linux,
                first.package_index,
            ):
                raise LockError(
                    f"hosts {first.name} and {other.name} share `lock: {stem}` but pin "
                    "different packages or indexes; give them different `lock` settings"
                )
        wanted: dict[str, str] = {}
        for spec in members:
            for platform, python in platforms.get(spec.name, []):
                wanted.setdefault(platform, python)
        for platform, python in sorted(wanted.items()):
            jobs.append(LockJob(first, tuple(m.name for m in members), platform, python))
    return jobs
