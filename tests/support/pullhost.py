"""Run `localai` ON a test host, as its user: pull mode.

Root's Python (and the project's venv) may sit where test users cannot read (pyenv under
/root, mode 0700), so this copies what the CLI needs for pull mode into a folder every test
user can read: the project's package and schema, and the distributions of PyYAML and
jsonschema with their dependencies, taken from the running interpreter (no index needed).
The host's /usr/bin/python3 runs it: the same minor version, so compiled parts (rpds) load.
fabric and paramiko are not copied: pull mode never opens an SSH connection, and a run that
tried would fail on the import, which is itself a check.
"""

from __future__ import annotations

import importlib.metadata as md
import re
import shutil
import subprocess
from pathlib import Path

import localai_provision
from tests.support.sshfleet import SESSION_PATH, SSHFleet, TestHost

SYSTEM_PYTHON = "/usr/bin/python3"
NEEDED = ("pyyaml", "jsonschema")


def _closure(names: tuple[str, ...]) -> list[md.Distribution]:
    seen: dict[str, md.Distribution] = {}
    todo = list(names)
    while todo:
        name = re.sub(r"[-_.]+", "-", todo.pop()).lower()
        if name in seen:
            continue
        dist = md.distribution(name)
        seen[name] = dist
        for requirement in dist.requires or []:
            if "extra ==" in requirement:
                continue
            todo.append(re.split(r"[\s<>=!~;\[(]", requirement, maxsplit=1)[0])
    return list(seen.values())


def install_tool(folder: Path) -> Path:
    """The project and its pull-mode dependencies under ``folder``; returns `bin/localai`."""
    project = Path(localai_provision.__file__).resolve().parent
    tool = folder / "tool"
    shutil.copytree(
        project, tool / "localai_provision", ignore=shutil.ignore_patterns("__pycache__")
    )
    schema = project.parent / "schemas" / "site.schema.json"
    (tool / "schemas").mkdir()
    shutil.copy(schema, tool / "schemas" / schema.name)
    deps = folder / "deps"
    deps.mkdir()
    for dist in _closure(NEEDED):
        for file in dist.files or []:
            source = Path(str(dist.locate_file(file)))
            if ".." in file.parts or not source.is_file():
                continue  # scripts installed outside site-packages
            target = deps / file
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(source, target)
    program = folder / "bin" / "localai"
    program.parent.mkdir()
    program.write_text(
        f'#!/bin/sh\nPYTHONPATH={tool}:{deps} exec {SYSTEM_PYTHON} -m localai_provision "$@"\n'
    )
    program.chmod(0o755)
    for path in [folder, *folder.rglob("*")]:
        path.chmod(0o755 if path.is_dir() or path == program else 0o644)
    return program


def host_env(host: TestHost) -> dict[str, str]:
    """What a login (or cron, or launchd) gives the program: HOME above all."""
    return {"HOME": str(host.home), "USER": host.user, "LOGNAME": host.user, "PATH": SESSION_PATH}


def git(fleet: SSHFleet, host: TestHost, *args: str) -> str:
    done = fleet.run_as(
        host,
        ["git", "-c", "user.name=lab", "-c", "user.email=lab@example.com", *args],
        env=host_env(host),
    )
    return done.stdout.strip()


def make_checkout(fleet: SSHFleet, host: TestHost, site_text: str) -> Path:
    """An `origin` repository on the host and a clone of it, `~/lab`, holding site.yaml; the
    host pulls from origin as it would from a lab's git server."""
    origin, checkout, work = host.home / "origin.git", host.home / "lab", host.home / "work"
    for path in (origin, checkout, work):
        shutil.rmtree(path, ignore_errors=True)
    git(fleet, host, "init", "-q", "--bare", "-b", "main", str(origin))
    git(fleet, host, "clone", "-q", str(origin), str(work))
    push_site(fleet, host, site_text, "the lab")
    git(fleet, host, "clone", "-q", str(origin), str(checkout))
    return checkout


def push_site(fleet: SSHFleet, host: TestHost, site_text: str, message: str) -> str:
    """Commit a new site.yaml to origin (as someone editing the lab's repository would)."""
    work = host.home / "work"
    fleet.run_as(
        host, ["sh", "-c", 'cat > "$1"', "sh", str(work / "site.yaml")], input_text=site_text
    )
    git(fleet, host, "-C", str(work), "add", "site.yaml")
    git(fleet, host, "-C", str(work), "commit", "-q", "-m", message)
    git(fleet, host, "-C", str(work), "push", "-q", "origin", "HEAD:main")
    return git(fleet, host, "-C", str(work), "rev-parse", "HEAD")


def run_localai(
    fleet: SSHFleet, program: Path, host: TestHost, *args: str, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    return fleet.run_as(
        host, [str(program), *args], env=host_env(host), check=False, timeout=timeout
    )
