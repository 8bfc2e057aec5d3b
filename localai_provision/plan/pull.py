"""Pull mode: the timer that runs `localai apply --local` on the host (a crontab entry on
Linux, a launchd job on macOS), and what the host's last pull reported (warnings, not
changes: the host's state is what drift compares). Never a reason to restart the server."""

from __future__ import annotations

from localai_provision.facts.model import Facts
from localai_provision.layout import pull_cron_block, pull_plist, same_plist
from localai_provision.plan.change import Action, Change, Kind, layout_for
from localai_provision.site.model import HostSpec

STALE_PULL_INTERVALS = 3  # a pull older than this many intervals is a warning


def desired_pull_timer(spec: HostSpec, facts: Facts) -> str | None:
    """The timer's definition as the site asks for it on this host (the tool's crontab lines
    on Linux, the plist on macOS), or None when the site declares no timer."""
    if not spec.pull.declared:
        return None
    if facts.system.os == "macos":
        layout = layout_for(facts)
        return pull_plist(spec, layout, facts.system.user, facts.system.home).decode("utf-8")
    return pull_cron_block(spec)


def pull_timer_changes(spec: HostSpec, facts: Facts) -> list[Change]:
    """Resource `pull-timer`: create or update it to the site's definition, remove one the
    site no longer declares (only the tool's own: its crontab markers, its plist label)."""
    wanted = desired_pull_timer(spec, facts)
    timer = facts.pull_timer
    actual = timer.definition if timer else None
    kind = "launchd job" if facts.system.os == "macos" else "crontab entry"

    def change(action: Action, before: str | None, after: str | None, reason: str) -> Change:
        return Change(spec.name, Kind.PULL_TIMER, "", action, before, after, reason)

    if wanted is None:
        if actual is None:
            return []
        return [
            change(
                Action.REMOVE,
                "installed",
                None,
                f"the pull timer ({kind}) is installed but the site declares no `pull`",
            )
        ]
    every = f"every {spec.pull.interval_s} s"
    if timer is not None and timer.kind == "cron" and not timer.available:
        return [
            change(
                Action.FAIL,
                None,
                every,
                "`pull` asks for a timer, which is a crontab entry on Linux, but `crontab` "
                "is not on the host: install cron (Debian/Ubuntu: sudo apt-get install cron)",
            )
        ]
    if actual == wanted or (
        facts.system.os == "macos" and same_plist(actual, wanted.encode("utf-8"))
    ):
        return []
    if actual is None:
        return [change(Action.CREATE, None, every, f"the pull timer ({kind}) is not installed")]
    return [
        change(Action.UPDATE, "differs", every, f"the pull timer ({kind}) differs from the site's")
    ]


def pull_warnings(spec: HostSpec, facts: Facts) -> list[str]:
    """What the host's last pull (PREFIX/state/pull-report.json) says: it failed, it could
    not update its checkout, or it is older than 3 of its intervals (the timer stopped, the
    host sleeps or is off)."""
    report = facts.pull_report
    if report is None:
        return []
    when = report.finished_at or "an unknown time"
    warnings = []
    if report.failed:
        step = f" at step {report.failed_step}" if report.failed_step else ""
        warnings.append(
            f"the last pull (localai apply --local, {when}) failed{step}: "
            f"{report.error or report.result}"
        )
    if report.git_error:
        warnings.append(
            f"the last pull ({when}) could not update its checkout (git pull: "
            f"{report.git_error}); it applied the site file as it was"
        )
    interval = spec.pull.interval_s if spec.pull.declared else report.interval_s
    if interval and report.finished_epoch is not None:
        age = facts.system.clock - report.finished_epoch
        if age > STALE_PULL_INTERVALS * interval:
            warnings.append(
                f"the last pull ran {_ago(age)} ago ({when}), more than "
                f"{STALE_PULL_INTERVALS} times its interval of {interval} s: is its timer "
                "running, is the host asleep?"
            )
    return warnings


def _ago(seconds: float) -> str:
    minutes = int(seconds // 60)
    if minutes < 120:
        return f"{minutes} min"
    hours = minutes // 60
    return f"{hours} h" if hours < 48 else f"{hours // 24} days"
