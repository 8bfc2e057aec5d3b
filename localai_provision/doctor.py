"""`localai doctor`: per host, everything that would block or degrade an apply, with the fix.

One facts command per host (with the doctor's extra checks: FileVault, what sudo grants, the
Command Line Tools), plus a look at SFTP. What blocks is exactly what `plan` reports as a
failure before anything moves (plan.prerequisite_changes and the other FAIL rows), so that
doctor and plan never disagree; the rest are warnings worth fixing before a power cut or a
large model finds them.
"""

from __future__ import annotations

from collections.abc import Sequence

from localai_provision.connectors.base import Connector, connector_for
from localai_provision.constants import DEFAULT_FORKS
from localai_provision.facts.gather import gather, needs_root
from localai_provision.facts.model import Facts
from localai_provision.fleet import ConnectorFactory, Fleet, HostResult
from localai_provision.layout import service_kind
from localai_provision.lock import lock_for
from localai_provision.plan import CLOCK_TOLERANCE_S, FAIL, ROOT_HELPER, plan
from localai_provision.results import Check, DoctorReport, HostStatus
from localai_provision.roothelper import HELPER_PATH, sudoers_line
from localai_provision.site.model import HostSpec

READY = HostStatus.READY
BLOCKED = HostStatus.BLOCKED
# What a first apply writes: the server's venv (about 3 GB on macOS, 220 packages) and room
# for uv's cache; a host with less fails in the middle of the packages step.
VENV_BYTES = 4 * 1024**3


def checks(spec: HostSpec, facts: Facts, sftp_error: str | None) -> list[Check]:
    """Pure: the host's facts (gathered with doctor=True) to checks, blocking ones first."""
    found: list[Check] = []
    lock = lock_for(spec, facts)
    for change in plan(spec, facts, lock):
        if change.action == FAIL:
            found.append(Check(change.resource, False, True, change.reason))
    blocked = {c.name for c in found}
    system = facts.system
    found.append(
        Check("os", True, False, f"{system.os} {system.os_version} ({system.arch})".strip())
    )
    if facts.python.found and "python" not in blocked:
        found.append(Check("python", True, False, f"{spec.python} is {facts.python.short_version}"))
    found += _mac_checks(spec, facts, blocked)
    found += _host_checks(facts, sftp_error)
    return sorted(found, key=lambda c: (c.ok, not c.blocking))


def _mac_checks(spec: HostSpec, facts: Facts, blocked: set[str]) -> list[Check]:
    """A Mac's own: sudo for the root helper, the Command Line Tools, FileVault, memory,
    the launchd domain (none on Linux)."""
    found: list[Check] = []
    system = facts.system
    mac = facts.mac
    if system.os == "macos" and mac is not None:
        if ROOT_HELPER not in blocked and needs_root(spec):
            granted = mac.sudo_checked and mac.sudo_ok
            found.append(
                Check(
                    "sudo",
                    granted,
                    not granted,
                    f"sudo lets {system.user} run {HELPER_PATH}"
                    if granted
                    else f"sudo does not let {system.user} run {HELPER_PATH} without a password"
                    f" ({(mac.sudo_output or '').strip()[:120]})",
                    ""
                    if granted
                    else f"add the line `{sudoers_line(system.user)}` "
                    "(the root helper's installer does: see docs/macos.md)",
                )
            )
        if mac.clt_checked and "system xcode-clt" not in blocked:
            found.append(Check("xcode-clt", True, False, f"Command Line Tools in {mac.clt_path}"))
        if spec.macos.restart_after_power_failure:
            on = (mac.filevault or "").startswith("FileVault is On")
            found.append(
                Check(
                    "filevault",
                    not on,
                    False,
                    mac.filevault or "unknown",
                    "after a power cut a FileVault Mac waits at the unlock screen and serves "
                    "nothing until someone unlocks it (macOS 26: over SSH with a password); "
                    "`sudo fdesetup authrestart` for planned reboots, or turn FileVault off on "
                    "a server in a locked room (docs/macos.md)"
                    if on
                    else "",
                )
            )
        limit = spec.macos.gpu_wired_limit_mb
        if mac.memsize_bytes and limit is not None and "macos gpu_wired_limit_mb" not in blocked:
            memory_mb = mac.memsize_bytes // 1024**2
            found.append(
                Check(
                    "memory",
                    True,
                    False,
                    f"{memory_mb} MB, GPU wired limit {limit} MB ({100 * limit // memory_mb}%)",
                )
            )
        if service_kind(spec, facts) == "launchd" and spec.launchd.domain == "user":
            found.append(
                Check(
                    "launchd-domain",
                    "launchd-domain" not in blocked,
                    False,
                    "`domain: user` serves only while the user is logged in at the console",
                    "a headless Mac wants `launchd: {domain: system}`",
                )
            )
    return found


def _host_checks(facts: Facts, sftp_error: str | None) -> list[Check]:
    """Disk, SFTP and the clock, on every host."""
    found: list[Check] = []
    if facts.disk_free_bytes is not None:
        needed = 0 if facts.venv.complete else VENV_BYTES
        enough = facts.disk_free_bytes >= needed + 1024**3
        found.append(
            Check(
                "disk",
                enough,
                not enough,
                f"{facts.disk_free_bytes / 1024**3:.1f} GiB free under {facts.prefix}"
                + (f"; a first apply writes about {needed / 1024**3:.0f} GiB" if needed else ""),
                "" if enough else "free disk space on the host, or choose another `prefix`",
            )
        )
    found.append(
        Check(
            "sftp",
            sftp_error is None,
            sftp_error is not None,
            "SFTP answers" if sftp_error is None else f"SFTP does not answer: {sftp_error}",
            ""
            if sftp_error is None
            else "enable the SFTP subsystem of the host's sshd (`Subsystem sftp ...` in "
            "sshd_config; macOS has it on with Remote Login)",
        )
    )
    offset = facts.clock_offset_s
    if offset is not None:
        good = abs(offset) <= CLOCK_TOLERANCE_S
        found.append(
            Check(
                "clock",
                good,
                False,
                f"{offset:+.0f} s from this machine",
                ""
                if good
                else "turn on automatic time (System Settings > General > Date & "
                "Time, or `sudo systemsetup -setusingnetworktime on`)",
            )
        )
    return found


def doctor_job(fleet: Fleet, spec: HostSpec) -> HostResult:
    connector: Connector = fleet.open(spec)
    try:
        facts = gather(connector, spec, doctor=True)
        sftp_error = connector.file_transfer_problem()
    finally:
        fleet.release(connector)
    found = checks(spec, facts, sftp_error)
    blocked = any(not c.ok and c.blocking for c in found)
    return HostResult(
        name=spec.name,
        status=BLOCKED if blocked else READY,
        facts=facts,
        commands=1,
        connections=1,
        details=DoctorReport(tuple(found)),
    )


def doctor_hosts(
    hosts: Sequence[HostSpec],
    *,
    forks: int = DEFAULT_FORKS,
    connector_factory: ConnectorFactory = connector_for,
) -> list[HostResult]:
    return Fleet(hosts, forks=forks, connector_factory=connector_factory).run(doctor_job)


__all__ = ["BLOCKED", "READY", "Check", "checks", "doctor_hosts", "doctor_job"]
