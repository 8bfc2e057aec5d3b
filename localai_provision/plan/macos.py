"""Mac settings for a headless inference host, only those the site names: pmset (sleep,
restart after a power failure) and sysctl (the GPU's wired-memory limit, now and at boot).
Resources are `macos NAME`; `after` holds the value apply sets."""

from __future__ import annotations

from localai_provision.facts.model import Facts, MacosFacts
from localai_provision.layout import WIRED_LIMIT_LABEL, same_plist, wired_limit_plist
from localai_provision.plan.change import Action, Change, Kind
from localai_provision.site.model import HostSpec, MacosSettings


def macos_changes(spec: HostSpec, facts: Facts) -> list[Change]:
    wanted = spec.macos
    if facts.system.os != "macos" or wanted == MacosSettings():
        return []
    found = facts.macos or MacosFacts(pmset={}, wired_limit_mb=None)
    changes = []

    def add(name: str, before: str | None, after: str, reason: str) -> None:
        changes.append(Change(spec.name, Kind.MACOS, name, Action.UPDATE, before, after, reason))

    sleep = (found.pmset.get("sleep"), found.pmset.get("disksleep"))
    if wanted.never_sleep and sleep != ("0", "0"):
        add(
            "never_sleep",
            f"sleep {found.pmset.get('sleep')}",
            "0",
            "the Mac may sleep (pmset sleep/disksleep are not 0): a sleeping host serves nothing",
        )
    if wanted.restart_after_power_failure is not None:
        value = "1" if wanted.restart_after_power_failure else "0"
        if found.pmset.get("autorestart") != value:
            add(
                "restart_after_power_failure",
                found.pmset.get("autorestart"),
                value,
                f"pmset autorestart is {found.pmset.get('autorestart')}, {value} wanted",
            )
    limit = wanted.gpu_wired_limit_mb
    if limit is not None:
        if found.wired_limit_mb != limit:
            add(
                "gpu_wired_limit_mb",
                str(found.wired_limit_mb),
                str(limit),
                f"iogpu.wired_limit_mb is {found.wired_limit_mb}, {limit} wanted",
            )
        if not same_plist(found.boot_plist, wired_limit_plist(limit)):
            add(
                "gpu_wired_limit_at_boot",
                None,
                str(limit),
                f"the limit resets at reboot: a boot daemon sets it again ({WIRED_LIMIT_LABEL})",
            )
    return changes
