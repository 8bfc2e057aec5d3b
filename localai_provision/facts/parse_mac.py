"""Pure parsers of what a Mac prints: sw_vers, SystemVersion.plist, `launchctl print`,
`sysctl`, `pmset -g`, the root helper's settings. Tested on recorded real output
(tests/fixtures/macos, whose sources are in SOURCES.md)."""

from __future__ import annotations

import re
from typing import Any

from localai_provision.facts.model import LaunchdFacts, MacFacts, MacosFacts


def parse_macos_version(plist_text: str | None) -> str:
    """ProductVersion from /System/Library/CoreServices/SystemVersion.plist (what sw_vers
    prints as ProductVersion), e.g. `14.5`."""
    if not plist_text:
        return ""
    import plistlib  # only for a Mac: 8 ms of drift's start-up (with datetime, pyexpat)

    try:
        data = plistlib.loads(plist_text.encode("utf-8"))
    except (plistlib.InvalidFileException, ValueError, SyntaxError):
        return ""
    version = data.get("ProductVersion", "") if isinstance(data, dict) else ""
    return str(version)


def parse_sw_vers(text: str) -> dict[str, str]:
    """`sw_vers` output (`ProductName:\\tmacOS` lines) as a mapping."""
    values: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            values[key.strip()] = value.strip()
    return values


def parse_launchctl_print(text: str | None) -> dict[str, str]:
    """The top-level `key = value` lines of `launchctl print DOMAIN/LABEL` (state, pid,
    runs, last exit code, path, ...). Nested blocks (arguments, environment) are skipped."""
    values: dict[str, str] = {}
    depth = 0
    for line in (text or "").splitlines():
        stripped = line.strip()
        if stripped.endswith("{"):
            depth += 1
            continue
        if stripped == "}":
            depth -= 1
            continue
        if depth == 1 and " = " in stripped:
            key, _, value = stripped.partition(" = ")
            values[key.strip()] = value.strip()
    return values


def _int_or_none(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def parse_exit_code(value: str | None) -> tuple[int | None, str | None]:
    """`last exit code = 78: EX_CONFIG` (macOS 13+ names the code), `= 1`, or
    `= (never exited)`: the code and its name."""
    match = re.fullmatch(r"(-?\d+)(?::\s*(.+))?", (value or "").strip())
    if not match:
        return None, None
    return int(match.group(1)), (match.group(2) or None)


def parse_signal(value: str | None) -> tuple[int | None, str | None]:
    """`last terminating signal = Killed: 9` (the name first, then the number)."""
    match = re.fullmatch(r"(?:(.+?):\s*)?(\d+)", (value or "").strip())
    if not match:
        return None, None
    return int(match.group(2)), (match.group(1) or None)


def parse_launchd(raw: dict[str, Any] | None) -> LaunchdFacts | None:
    if not raw:
        return None
    values = parse_launchctl_print(raw.get("print"))
    loaded = raw.get("print_status") == 0
    code, code_name = parse_exit_code(values.get("last exit code"))
    signal, signal_name = parse_signal(values.get("last terminating signal"))
    return LaunchdFacts(
        target=str(raw.get("target", "")),
        loaded=loaded,
        state=values.get("state") if loaded else None,
        pid=_int_or_none(values.get("pid")),
        runs=_int_or_none(values.get("runs")),
        last_exit_code=code,
        plist_path=str(raw.get("plist_path", "")),
        plist=raw.get("plist"),
        last_exit_name=code_name,
        last_signal=signal,
        last_signal_name=signal_name,
        last_exit_reason=values.get("last exit reason") or None,
    )


def parse_sysctl(text: str | None) -> dict[str, str]:
    """`sysctl NAME NAME`: `name: value` lines (an unknown name goes to stderr)."""
    values: dict[str, str] = {}
    for line in (text or "").splitlines():
        key, sep, value = line.partition(":")
        if sep:
            values[key.strip()] = value.strip()
    return values


def parse_helper_conf(text: str | None) -> dict[str, str]:
    """The root helper's settings file: `KEY='value'` lines as the installer writes them."""
    values: dict[str, str] = {}
    for line in (text or "").splitlines():
        key, sep, value = line.partition("=")
        if sep and key.isidentifier():
            value = value.strip()
            if len(value) >= 2 and value[0] == value[-1] == "'":
                value = value[1:-1].replace("'\\''", "'")
            values[key] = value
    return values


def parse_mac(raw: Any) -> MacFacts | None:
    if not isinstance(raw, dict):
        return None
    sysctl = parse_sysctl(raw.get("sysctl"))
    clt = raw.get("clt") if isinstance(raw.get("clt"), dict) else None
    sudo = raw.get("sudo") if isinstance(raw.get("sudo"), dict) else None
    console = raw.get("console_uid")
    return MacFacts(
        memsize_bytes=_int_or_none(sysctl.get("hw.memsize")),
        wired_limit_mb=_int_or_none(sysctl.get("iogpu.wired_limit_mb")),
        helper_sha256=raw.get("helper_sha256") or None,
        helper_conf=parse_helper_conf(raw.get("helper_conf")),
        helper_checked="helper_sha256" in raw,
        console_uid=int(console) if isinstance(console, str) and console.isdigit() else None,
        clt_checked=clt is not None,
        clt_path=(clt or {}).get("path") or None if (clt or {}).get("status") == 0 else None,
        clt_error=(clt or {}).get("error") or None,
        filevault=raw.get("filevault"),
        sudo_checked=sudo is not None,
        sudo_ok=(sudo or {}).get("status") == 0,
        sudo_output=(sudo or {}).get("output"),
    )


def parse_pmset(text: str | None) -> dict[str, str]:
    """`pmset -g`: ` sleep                 1` lines (the headings are skipped)."""
    values: dict[str, str] = {}
    for line in (text or "").splitlines():
        if not line.startswith(" "):
            continue
        parts = line.split()
        if len(parts) >= 2:
            values[parts[0]] = parts[1]
    return values


def parse_macos_settings(mac_raw: Any) -> MacosFacts | None:
    """The `macos_settings` section: pmset, the wired limit, the boot job's plist."""
    if not isinstance(mac_raw, dict):
        return None
    return MacosFacts(
        pmset=parse_pmset(mac_raw.get("pmset")),
        wired_limit_mb=_int_or_none(mac_raw.get("wired_limit_mb")),
        boot_plist=mac_raw.get("boot_plist"),
    )
