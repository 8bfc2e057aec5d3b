"""The pull timer: a launchd job on macOS, the tool's lines of the user's crontab elsewhere."""

from __future__ import annotations

from localai_provision.apply.context import HostContext, with_vars
from localai_provision.errors import CommandError
from localai_provision.layout import (
    CRON_BEGIN,
    CRON_END,
    PULL_LABEL,
    Layout,
    expand_home,
    pull_plist,
    pull_plist_path,
)
from localai_provision.plan import PULL_TIMER, REMOVE, Change, desired_pull_timer
from localai_provision.services.launchd import LaunchdService

# The tool's lines of the user's crontab are replaced (or removed) in place, on the host, so
# that lines another program adds meanwhile are kept. A crontab that cannot be read (other
# than "no crontab for USER") is left alone: writing would wipe it.
_CRON_SCRIPT = r"""
current=$(crontab -l 2>&1) || case "$current" in
  *"no crontab"*) current="" ;;
  *) printf '%s\n' "$current" >&2; exit 1 ;;
esac
{ if [ -n "$current" ]; then printf '%s\n' "$current" | sed "$C_SED"; fi
  printf '%s' "$C_BLOCK"; } | crontab - || exit 1
if [ -n "$C_BLOCK" ]; then mkdir -p "$C_STATE" && : > "$C_MARKER"; else rm -f "$C_MARKER"; fi
"""


def cron_command(layout: Layout, block: str | None) -> str:
    """Replace the tool's crontab lines with ``block`` (None: remove them)."""
    return with_vars(
        _CRON_SCRIPT,
        C_SED=f"/^{CRON_BEGIN.split(' (')[0]}/,/^{CRON_END}$/d",
        C_BLOCK=block or "",
        C_STATE=layout.state_dir,
        C_MARKER=layout.pull_cron_marker,
    )


def converge_pull_timer(host: HostContext, change: Change) -> None:
    """Install, replace or remove the pull timer: a launchd job on macOS (the same plist
    machinery as the server's job), the tool's lines of the user's crontab elsewhere."""
    connector, spec, facts, layout = host.connector, host.spec, host.facts, host.layout
    wanted = None if change.action == REMOVE else desired_pull_timer(spec, facts)
    if facts.system.os == "macos":
        service = LaunchdService(connector, spec, layout, facts)
        path = expand_home(pull_plist_path(spec), facts.system.home)
        if wanted is None:
            service.remove_job(PULL_LABEL, path)
            return
        host.run_step(PULL_TIMER, ["mkdir", "-p", layout.log_dir], "mkdir failed")
        data = pull_plist(spec, layout, facts.system.user, facts.system.home)
        service.install_plist(path, PULL_LABEL, data)
        service.load_job(PULL_LABEL, path)
        return
    result = connector.run(cron_command(layout, wanted))
    if not result.ok:
        raise CommandError.of(
            spec.name,
            PULL_TIMER,
            "could not "
            + ("remove the pull timer from" if wanted is None else "write")
            + " the user's crontab",
            "crontab - <the tool's lines>",
            result,
            hint="check that this user may use cron (/etc/cron.allow, /etc/cron.deny)",
        )
