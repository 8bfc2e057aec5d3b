"""Pull mode: `localai apply --local FILE --host NAME`, run on a host itself.

The host converges itself with the same plan and apply as a push from the controller (the
host's spec with `connection: local`); this module adds only what is particular to a pull:
updating the git checkout first (`--git-pull`), and the report the controller's facts read,
PREFIX/state/pull-report.json, written atomically (a temporary file, then a rename).
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from localai_provision import __version__
from localai_provision.connectors.local import LocalConnector
from localai_provision.layout import PULL_REPORT, expand_home
from localai_provision.site.model import HostSpec

GIT_TIMEOUT_S = 120.0
REPORT_VERSION = 1

# A pull's result, as the report and the controller's drift say it.
CONVERGED = "converged"  # nothing was to be done
CHANGED = "changed"  # changes were made, and the host converged
FAILED = "failed"


@dataclass
class GitOutcome:
    ok: bool
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "error": self.error}


def _git(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["git", "-C", str(folder), *args],
        capture_output=True,
        text=True,
        timeout=GIT_TIMEOUT_S,
        check=False,
        # Never ask for a password or a host key: a timer has no one to answer.
        env={**os.environ, "GIT_TERMINAL_PROMPT": "0", "GIT_SSH_COMMAND": _git_ssh()},
    )


def _git_ssh() -> str:
    return os.environ.get("GIT_SSH_COMMAND", "ssh -o BatchMode=yes")


def git_pull(site_file: Path) -> GitOutcome:
    """`git pull --ff-only` in the work tree that holds the site file. A failure is returned,
    not raised: the pull then applies the checkout as it is, and the report says so."""
    folder = site_file.resolve().parent
    try:
        done = _git(folder, "pull", "--ff-only", "--quiet")
    except (OSError, subprocess.SubprocessError) as exc:
        return GitOutcome(ok=False, error=f"git could not run: {exc}")
    if done.returncode != 0:
        tail = (done.stderr.strip() or done.stdout.strip()).splitlines()[-3:]
        return GitOutcome(ok=False, error=" ".join(tail) or f"exit status {done.returncode}")
    return GitOutcome(ok=True)


def git_commit(site_file: Path) -> str | None:
    """The commit checked out where the site file is, if that is a git work tree."""
    try:
        done = _git(site_file.resolve().parent, "rev-parse", "HEAD")
    except (OSError, subprocess.SubprocessError):
        return None
    commit = done.stdout.strip()
    return commit if done.returncode == 0 and len(commit) == 40 else None


def file_hash(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    except OSError:
        return None


def default_report_path(spec: HostSpec) -> str:
    """PREFIX/state/pull-report.json, `~` expanded here: this machine is the host."""
    prefix = expand_home(spec.prefix, os.path.expanduser("~"))
    return f"{prefix.rstrip('/')}/state/{PULL_REPORT}"


def now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def build_report(
    *,
    host: str,
    site_file: Path,
    started_at: str,
    result: str,
    changes: int = 0,
    failed_step: str | None = None,
    error: str | None = None,
    git: GitOutcome | None = None,
    interval_s: int | None = None,
) -> dict[str, Any]:
    return {
        "v": REPORT_VERSION,
        "host": host,
        "started_at": started_at,
        "finished_at": now(),
        "result": result,
        "failed_step": failed_step,
        "error": error,
        "changes": changes,
        "site_file": str(site_file.resolve()),
        "site_hash": file_hash(site_file),
        "git_commit": git_commit(site_file),
        "git_pull": git.as_dict() if git else None,
        "interval_s": interval_s,
        "tool_version": __version__,
    }


def write_report(path: str, report: dict[str, Any]) -> None:
    """Atomically: a reader (the controller's facts) never sees half a report."""
    data = (json.dumps(report, indent=2) + "\n").encode("utf-8")
    LocalConnector(HostSpec(name=str(report["host"]), address="localhost")).put(data, path)
