"""Gather a host's facts: one command, one round trip, then the pure parsers."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from functools import cache
from pathlib import Path

from localai_provision import roothelper, shell
from localai_provision.connectors.base import Connector
from localai_provision.errors import HostError
from localai_provision.facts.model import Facts
from localai_provision.facts.parse import FactsFormatError, parse_facts
from localai_provision.layout import (
    CACHE_MARKER,
    CRON_BEGIN,
    CRON_END,
    REMOVING_PREFIX,
    SERVER_PACKAGE,
    SOURCE_ONLY_PACKAGES,
    Layout,
    launchd_job,
    pull_plist_path,
    relative_layout,
    wired_limit_plist_path,
)
from localai_provision.site.model import HostSpec, MacosSettings

# Facts are cheap (tens of milliseconds on a host); a host that takes longer is in trouble.
GATHER_TIMEOUT_S = 30.0
# The script's HTTP checks of the server, per request.
HTTP_TIMEOUT_S = 2.0
EXIT_NO_PYTHON = 127
# The scripts' folder, read as files: importlib.resources.files() costs drift's start-up
# 5.8 ms (it imports zipfile), for a package that is never installed zipped.
_HERE = Path(__file__).parent


@cache
def remote_script() -> str:
    """The facts script: its files as one text (remote_base.py says why several)."""
    parts = ("remote_base.py", "remote_mac.py", "remote_cache.py", "remote.py")
    return "\n".join((_HERE / name).read_text("utf-8") for name in parts)


@cache
def _script_words() -> tuple[str, str, str]:
    """The loader, the digest of loader and script, and the script, as shell words (quoted
    once, not once per host): the loader runs the script from the host's cache of its
    compiled code (remote_loader.py)."""
    loader = (_HERE / "remote_loader.py").read_text("utf-8")
    digest = hashlib.sha256((loader + remote_script()).encode("utf-8")).hexdigest()
    return shell.quote(loader), digest, shell.quote(remote_script())


def needs_root(spec: HostSpec) -> bool:
    """Does the site ask this host, if it is a Mac, for anything only root can do?"""
    system_job = spec.service in ("auto", "launchd") and spec.launchd.domain == "system"
    return system_job or spec.macos != MacosSettings()


def mac_checks(spec: HostSpec, doctor: bool = False) -> dict[str, object]:
    """What the facts script checks on a Mac beyond the usual (each only where it matters, so
    a no-op drift pays for none of them)."""
    checks: dict[str, object] = {"doctor": doctor}
    if needs_root(spec) or doctor:
        checks["helper"] = roothelper.HELPER_PATH
        checks["conf_dir"] = roothelper.CONF_DIR
    if spec.service in ("auto", "launchd") and spec.launchd.domain == "user":
        checks["console"] = True
    if SERVER_PACKAGE in spec.packages:
        # Only while a package that must be compiled is not installed yet.
        checks["clt_unless"] = list(SOURCE_ONLY_PACKAGES)
    return checks


def facts_command(spec: HostSpec, doctor: bool = False) -> str:
    """A POSIX shell command that runs the facts script with the site's Python.

    If that Python is missing, the venv's or the system's runs the script instead (marked
    as a fallback), so that a deleted interpreter is reported as such rather than as a
    host that cannot be inspected at all.
    """
    config = {
        "prefix": spec.prefix,
        "layout": relative_layout(),
        "hf_home": spec.hf_home,
        "python": spec.python,
        "service": spec.service,
        "server_host": spec.server.host,
        "port": spec.server.port,
        "endpoints": list(dict.fromkeys(("/v1/models", *spec.verify.endpoints))),
        "models": [{"dir": m.cache_dir_name, "revision": m.revision} for m in spec.models],
        "cache": {"prune": spec.models_prune, "marker": CACHE_MARKER, "removing": REMOVING_PREFIX},
        "timeout": HTTP_TIMEOUT_S,
        "launchd": launchd_job(spec),
        "macos_settings": {"boot_plist": wired_limit_plist_path(spec)}
        if spec.macos != MacosSettings()
        else None,
        "mac": mac_checks(spec, doctor),
        "pull": {
            "declared": spec.pull.declared,
            "plist_path": pull_plist_path(spec),
            "markers": [CRON_BEGIN, CRON_END],
        },
    }
    loader, digest, script = _script_words()
    arg = shell.quote(json.dumps(config, separators=(",", ":")))
    run = f'-I -S -c {loader} {digest} "$s" {arg}'
    venv_python = shell.path_word(Layout(spec.prefix.rstrip("/")).venv_python)
    return (
        # `uname` the command, not the kernel call: it is what the host reports.
        'LOCALAI_UNAME="$(uname -srm 2>/dev/null)"; export LOCALAI_UNAME; '
        # The script in a shell variable: its 35 KB are sent once, not once per `exec`.
        f"s={script}; "
        f"p={shell.path_word(spec.python)}; "
        f'if command -v "$p" >/dev/null 2>&1; then exec "$p" {run}; fi; '
        f"for p in {venv_python} python3 /usr/bin/python3; do "
        f'if command -v "$p" >/dev/null 2>&1; then '
        f'LOCALAI_PY_FALLBACK=1 exec "$p" {run}; fi; done; '
        f"echo 'no Python interpreter found' >&2; exit {EXIT_NO_PYTHON}"
    )


def gather(connector: Connector, spec: HostSpec, doctor: bool = False) -> Facts:
    command = facts_command(spec, doctor)
    sent = time.time()
    result = connector.run(command, timeout=GATHER_TIMEOUT_S)
    # The host read its clock somewhere between sending and answering: the middle is within
    # half a round trip of the truth, plenty to spot a clock that is minutes off.
    controller_time = (sent + time.time()) / 2
    # Error messages show a short form: the script itself is long and not the user's concern.
    shown = f"{spec.python} -I -S -c <facts script>"
    if result.exit_status == EXIT_NO_PYTHON:
        raise HostError(
            host=spec.name,
            step="gather",
            message=f"no Python on the host: `{spec.python}` (the site's `python`) and "
            "python3 are both missing",
            command=shown,
            exit_status=result.exit_status,
            output_tail=_errors_only(result.stderr),
            hint="install Python 3 on the host (see docs/macos.md) or fix `python`",
        )
    if not result.ok:
        raise HostError(
            host=spec.name,
            step="gather",
            message="the facts script failed",
            command=shown,
            exit_status=result.exit_status,
            output_tail=_errors_only(result.stderr),
            hint="run it again; if it repeats, report it with this output",
        )
    try:
        facts = parse_facts(spec.name, result.stdout, spec.models)
        return dataclasses.replace(facts, clock_offset_s=facts.system.clock - controller_time)
    except FactsFormatError as exc:
        raise HostError(
            host=spec.name,
            step="gather",
            message=f"{exc} ({len(result.stdout)} characters on stdout, not shown)",
            command=shown,
            output_tail=_errors_only(result.stderr),
            hint="something on the host prints to stdout in place of the facts (a `python` "
            "wrapper, a shell profile that runs programs?); keep non-interactive logins quiet",
        ) from None


def _errors_only(stderr: str, lines: int = 10) -> str:
    """What an error about the facts command shows of its output: the last lines of stderr
    (Python's traceback, a shell's complaint), never stdout, where the facts are: whatever
    is there is not shown raw to the operator, in a log or a CI report."""
    return "\n".join(stderr.rstrip().splitlines()[-lines:])
