"""The host's lock: one apply at a time per host, and a dead apply's lock taken over.

Also the clean-up only the lock holder may do: the temporary files a dead apply left.
"""

from __future__ import annotations

import json
import os
import socket

from localai_provision import __version__, shell
from localai_provision.apply.context import HostContext, now, with_vars
from localai_provision.errors import CommandError, HostError
from localai_provision.facts.model import Facts
from localai_provision.layout import Layout
from localai_provision.site.model import HostSpec

EXIT_LOCK_HELD = 75

# Runs in the host's login shell, so $PPID is the process that lives as long as our
# connection (sshd's session process; for `connection: local`, this controller). The lock
# records it: if that process is gone, the apply that took the lock is gone too (killed, or
# its connection dropped) and the lock is stale.
_LOCK_SCRIPT = r"""
mkdir -p "$L_PREFIX" || exit 1
L="$L_LOCK"; n=0
while ! mkdir "$L" 2>/dev/null; do
  owner=$(cat "$L/owner.json" 2>/dev/null)
  pid=$(printf '%s' "$owner" | sed -n 's/.*"session_pid": *\([0-9][0-9]*\).*/\1/p')
  if [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; then
    rm -rf "$L"; echo "took over a stale lock: $owner" >&2; continue
  fi
  if [ -z "$pid" ] && [ -n "$(find "$L" -maxdepth 0 -mmin +1 2>/dev/null)" ]; then
    rm -rf "$L"; echo "took over a lock left half-made" >&2; continue
  fi
  n=$((n+1))
  if [ "$n" -ge "$L_TRIES" ]; then printf '%s' "$owner"; exit 75; fi
  sleep 0.1
done
printf '%s' "$L_INFO" | sed "s/\"SESSION_PID\"/$PPID/" > "$L/owner.json.tmp" &&
  mv "$L/owner.json.tmp" "$L/owner.json" || exit 1
if [ "$n" -gt 0 ]; then echo waited; fi
"""

_UNLOCK_SCRIPT = r"""
L="$L_LOCK"
if grep -q "\"session_pid\": $PPID[,}]" "$L/owner.json" 2>/dev/null; then rm -rf "$L"; fi
"""


def lock_command(layout: Layout, wait_s: float, info: str) -> str:
    """The script that takes the lock, trying every 0.1 s for ``wait_s``."""
    return with_vars(
        _LOCK_SCRIPT,
        L_PREFIX=layout.prefix,
        L_LOCK=layout.lock,
        L_TRIES=str(max(1, int(wait_s * 10))),
        L_INFO=info,
    )


def unlock_command(layout: Layout) -> str:
    return with_vars(_UNLOCK_SCRIPT, L_LOCK=layout.lock)


def owner_info() -> str:
    """Who holds the lock; the host puts its session's pid in place of SESSION_PID."""
    return json.dumps(
        {
            "session_pid": "SESSION_PID",
            "controller": socket.gethostname(),
            "controller_pid": os.getpid(),
            "started": now(),
            "tool_version": __version__,
        }
    )


def acquire_lock(host: HostContext, wait_s: float) -> tuple[bool, list[str]]:
    """Take the host's lock. Returns whether we had to wait for another apply (the host may
    have changed meanwhile) and warnings about stale locks taken over."""
    command = lock_command(host.layout, wait_s, owner_info())
    result = host.connector.run(command, timeout=wait_s + 30)
    if result.exit_status == EXIT_LOCK_HELD:
        holder = describe_holder(result.stdout)
        raise HostError(
            host=host.name,
            step="lock",
            message=f"another apply is running on this host ({holder}); waited {wait_s:g} s",
            hint="let it finish, then run again; a lock whose apply died is taken over "
            "automatically",
        )
    if not result.ok:
        raise CommandError.of(
            host.name, "lock", "could not take the host's lock", "<lock script>", result
        )
    took_over = [line for line in result.stderr.splitlines() if line.startswith("took over")]
    return "waited" in result.stdout.split(), took_over


def describe_holder(owner: str) -> str:
    try:
        data = json.loads(owner)
    except json.JSONDecodeError:
        return "holder unknown"
    return (
        f"held by localai {data.get('tool_version', '?')} on {data.get('controller', '?')}, "
        f"pid {data.get('controller_pid', '?')}, since {data.get('started', '?')}"
    )


def release_lock(host: HostContext) -> None:
    host.connector.run(unlock_command(host.layout), timeout=30)


def leftovers_command(spec: HostSpec, facts: Facts, layout: Layout) -> str:
    """The command that removes the tool's temporary names where the tool writes."""
    folders = [layout.prefix, layout.state_dir, layout.wheels]
    folders += [f"{site}" for site in facts.venv.site_packages]
    for model in spec.models:
        base = layout.model_cache(facts.hf_home, model.cache_dir_name)
        folders += [base, f"{base}/refs"]
    snapshots = [
        f"{layout.model_cache(facts.hf_home, m.cache_dir_name)}/snapshots" for m in spec.models
    ]
    ours = "\\( -name '.localai-tmp-*' -o -name '*.localai-tmp' \\)"
    commands = [
        f"find {shell.quote(folder)} -mindepth 1 -maxdepth 1 {ours} -exec rm -f {{}} +"
        for folder in folders
    ]
    # A model's snapshot links sit in subfolders (a file's own path); only its links'
    # temporary names (LINK.localai-tmp) are removed there.
    commands += [
        f"find {shell.quote(folder)} -mindepth 2 -name '*.localai-tmp' -exec rm -f {{}} +"
        for folder in snapshots
    ]
    return "; ".join(f"{c} 2>/dev/null" for c in commands) + "; true"


def clear_leftovers(host: HostContext) -> None:
    """Remove the temporary files an apply that died (killed, its connection cut) left beside
    the files it was writing. Only under the host's lock: no other apply is writing then.
    Only where the tool writes, one level deep, and only its own temporary names: never a
    search of the whole prefix (which may be a shared folder, where another program's or
    another prefix's files live)."""
    host.connector.run(leftovers_command(host.spec, host.facts, host.layout), timeout=120)
