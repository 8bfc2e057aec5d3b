"""Make a Linux test host a Mac to the tool: Apple's tools as strict STAND-INS, real sudo.

The stand-ins (tests/support/macstandin.py) are installed once per machine, root-owned, in
/opt/localai-macstandin/bin, first in the PATH of a stand-in Mac's SSH sessions
(~/.ssh/environment; the fleet's sshd permits it): `uname` then says Darwin, `sw_vers` 14.5,
and launchctl, plutil, pmset, sysctl, stat, xcode-select and fdesetup keep the Mac's state in
~/.macstandin. `sudo` is Debian's real one: the root helper is installed by running the very
installer the tool writes (as root, as the admin would), which adds exactly one sudoers line.
The Linux kernel, /proc and Python stay what they are.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import shutil
import signal
import subprocess
from pathlib import Path

from localai_provision import roothelper
from tests.support.hostprep import chown_tree, kill_servers
from tests.support.sshfleet import TestHost

STANDIN = Path(__file__).with_name("macstandin.py")
TOOLS_DIR = Path("/opt/localai-macstandin/bin")
TOOLS = ("launchctl", "plutil", "pmset", "sysctl", "sw_vers", "uname", "stat")
TOOLS += ("xcode-select", "fdesetup", "vm_stat")
FAKE_DAEMONS = "fake-root/Library/LaunchDaemons"  # the tests' /Library/LaunchDaemons, per host


def have_sudo() -> bool:
    return shutil.which("sudo") is not None and shutil.which("visudo") is not None


def install_standins() -> Path:
    """The stand-ins, root-owned (a user must not be able to change what root runs)."""
    TOOLS_DIR.mkdir(parents=True, exist_ok=True)
    os.chmod(TOOLS_DIR.parent, 0o755)
    os.chmod(TOOLS_DIR, 0o755)
    tmp = TOOLS_DIR / f".macstandin.py.{os.getpid()}"
    shutil.copy(STANDIN, tmp)
    tmp.chmod(0o755)
    os.replace(tmp, TOOLS_DIR / "macstandin.py")
    for tool in TOOLS:
        link = TOOLS_DIR / tool
        if not link.is_symlink():
            with contextlib.suppress(FileExistsError):
                link.symlink_to("macstandin.py")
    return TOOLS_DIR


def mac_state(host: TestHost) -> Path:
    return host.home / ".macstandin"


def set_mac(host: TestHost, **settings: object) -> None:
    """Change the stand-in Mac's settings (console_uid, ProductVersion, hw.memsize, ...)."""
    path = mac_state(host) / "settings.json"
    data = json.loads(path.read_text()) if path.exists() else {}
    data.update({k: str(v) for k, v in settings.items()})
    path.write_text(json.dumps(data))
    chown_tree(mac_state(host), host.user)


def set_flag(host: TestHost, name: str, on: bool = True) -> None:
    path = mac_state(host) / name
    if on:
        path.write_text("")
        chown_tree(mac_state(host), host.user)
    else:
        path.unlink(missing_ok=True)


def daemons_dir(host: TestHost) -> Path:
    return host.home / FAKE_DAEMONS


def install_root_helper(host: TestHost, installer: Path | None = None) -> str:
    """Run the root helper's installer as root, as the admin would with `sudo sh`. Without
    ``installer``, the one the tool renders for this host."""
    if installer is None:
        text = roothelper.installer(host.user, str(daemons_dir(host)))
        installer = host.home / ".install-root-helper.sh"
        installer.write_text(text)
    env = {"PATH": "/usr/bin:/bin:/usr/sbin:/sbin", "LOCALAI_ROOT_HELPER_TOOLS": str(TOOLS_DIR)}
    done = subprocess.run(
        ["sh", str(installer)], env=env, capture_output=True, text=True, check=True
    )
    return done.stdout


def remove_root_helper(host: TestHost) -> None:
    for path in (roothelper.conf_path(host.user), roothelper.sudoers_path(host.user)):
        Path(path).unlink(missing_ok=True)


def make_mac(host: TestHost, helper: bool = True) -> Path:
    install_standins()
    state = mac_state(host)
    state.mkdir(exist_ok=True)
    ssh_dir = host.home / ".ssh"
    (ssh_dir / "environment").write_text(f"PATH={TOOLS_DIR}:/usr/local/bin:/usr/bin:/bin\n")
    chown_tree(state, host.user)
    chown_tree(ssh_dir, host.user)
    if helper:
        install_root_helper(host)
    return TOOLS_DIR


def stop_jobs(host: TestHost) -> None:
    """Stop every stand-in launchd job of the host (its supervisors run as root or the user)."""
    state = mac_state(host) / "launchd.json"
    if not state.exists():
        return
    for label, job in json.loads(state.read_text()).items():
        if label.startswith("_") or not isinstance(job, dict):
            continue
        with contextlib.suppress(ProcessLookupError, PermissionError, TypeError):
            os.kill(job.get("supervisor"), signal.SIGKILL)
        status = mac_state(host) / f"job-{label}.json"
        if status.exists():
            pid = json.loads(status.read_text()).get("pid")
            if pid:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(pid, signal.SIGKILL)


def unmake_mac(host: TestHost) -> None:
    """Back to a Linux host: stop the stand-in jobs, remove the Mac's state and root's part."""
    stop_jobs(host)
    kill_servers(host)
    remove_root_helper(host)
    (host.home / ".ssh" / "environment").unlink(missing_ok=True)
    (host.home / ".install-root-helper.sh").unlink(missing_ok=True)
    shutil.rmtree(mac_state(host), ignore_errors=True)
    shutil.rmtree(host.home / "Library", ignore_errors=True)
    shutil.rmtree(host.home / "fake-root", ignore_errors=True)


def job(host: TestHost, label: str) -> dict[str, object]:
    """A job's state as the stand-in launchd keeps it: registry entry and status merged."""
    registry = json.loads((mac_state(host) / "launchd.json").read_text()).get(label) or {}
    status_path = mac_state(host) / f"job-{label}.json"
    status = json.loads(status_path.read_text()) if status_path.exists() else {}
    return {**registry, **status}


def uid_of(host: TestHost) -> int:
    return pwd.getpwnam(host.user).pw_uid
