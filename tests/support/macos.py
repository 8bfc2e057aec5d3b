"""Make a Linux test host look like a Mac to the tool: Apple's tools as STAND-INS.

The stand-ins (tests/support/macstandin.py) go into ~/macbin on the host and first in the
PATH of its SSH sessions (~/.ssh/environment; the fleet's sshd permits it). `uname` then says
Darwin, `sw_vers` 14.5, and launchctl, plutil, pmset, sysctl and sudo keep their state in
~/.macstandin. The Linux kernel, /proc and Python stay what they are.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
from pathlib import Path

from tests.support.hostprep import chown_tree, kill_servers
from tests.support.sshfleet import TestHost

STANDIN = Path(__file__).with_name("macstandin.py")
TOOLS = ("launchctl", "plutil", "pmset", "sysctl", "sw_vers", "uname", "sudo")


def make_mac(host: TestHost) -> Path:
    bin_dir = host.home / "macbin"
    bin_dir.mkdir(exist_ok=True)
    script = bin_dir / "macstandin.py"
    shutil.copy(STANDIN, script)
    script.chmod(0o755)
    for tool in TOOLS:
        link = bin_dir / tool
        if not link.exists():
            link.symlink_to("macstandin.py")
    ssh_dir = host.home / ".ssh"
    (ssh_dir / "environment").write_text(f"PATH={bin_dir}:/usr/local/bin:/usr/bin:/bin\n")
    chown_tree(bin_dir, host.user)
    chown_tree(ssh_dir, host.user)
    return bin_dir


def unmake_mac(host: TestHost) -> None:
    """Back to a Linux host: stop the stand-in jobs, remove the tools and their state."""
    state = host.home / ".macstandin" / "launchd.json"
    if state.exists():
        import json

        for job in json.loads(state.read_text()).values():
            pid = job.get("pid")
            if pid:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(pid, signal.SIGKILL)
    kill_servers(host)
    (host.home / ".ssh" / "environment").unlink(missing_ok=True)
    shutil.rmtree(host.home / "macbin", ignore_errors=True)
    shutil.rmtree(host.home / ".macstandin", ignore_errors=True)
    shutil.rmtree(host.home / "Library", ignore_errors=True)
