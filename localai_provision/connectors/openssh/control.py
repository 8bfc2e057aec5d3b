"""Where the OpenSSH masters live, and the `ssh` command line for a host.

The control sockets are in a private folder (0700, ours, not a link): whoever can connect to
a master's socket runs commands as us on that host without a key. The socket's name is a
digest of every setting that decides how the master logged in (address, port, user, key,
known_hosts, checking), so a site that changes one of them never reuses another's master,
and the path stays short (a Unix socket path is at most 104-108 bytes, and ssh appends 17
bytes while it creates one).
"""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

from localai_provision.connectors.ssh_settings import known_hosts_path
from localai_provision.site.model import HostSpec

# Set by the benchmarks and tests for a folder of their own (a cold run: no master to reuse).
CONTROL_DIR_ENV = "LOCALAI_SSH_CONTROL_DIR"


def control_dir() -> Path | None:
    """The private folder of the control sockets, made if missing; None when it is not safe
    to use (another owner, a link, open to others): then no master is kept, every run
    connects anew, and nothing else changes."""
    explicit = os.environ.get(CONTROL_DIR_ENV)
    if explicit:
        folder = Path(explicit)
    elif os.environ.get("XDG_RUNTIME_DIR"):
        folder = Path(os.environ["XDG_RUNTIME_DIR"]) / "localai-ssh"
    else:
        folder = Path("/tmp") / f"localai-ssh-{os.getuid()}"
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        st = os.lstat(folder)
    except OSError:
        return None
    private = stat.S_ISDIR(st.st_mode) and st.st_uid == os.getuid() and not st.st_mode & 0o077
    return folder if private else None


def control_path(host: HostSpec, folder: Path) -> Path:
    fields = (
        host.address,
        str(host.ssh_port),
        host.user or "",
        host.identity_file or "",
        str(known_hosts_path(host)),
        host.host_key_checking,
    )
    digest = hashlib.sha256("\0".join(fields).encode()).hexdigest()[:20]
    return folder / digest


def ssh_argv(host: HostSpec, control: Path | None) -> list[str]:
    """`ssh` with every setting the site names on the command line (where it wins over
    ~/.ssh/config); the remote command goes after it."""
    timeout = max(1, round(host.connect_timeout_s))
    checking = {"strict": "yes", "accept-new": "accept-new", "off": "no"}[host.host_key_checking]
    known = os.devnull if host.host_key_checking == "off" else str(known_hosts_path(host))
    argv = [
        "ssh",
        "-T",  # no terminal: commands' output as written, as paramiko's exec channel
        "-x",
        "-a",
        "-o", "BatchMode=yes",  # never a password or passphrase prompt: an error instead
        "-o", "LogLevel=ERROR",  # no "Permanently added" chatter on stderr
        "-o", "ClearAllForwardings=yes",
        "-o", f"ConnectTimeout={timeout}",
        # A host that stops answering mid-run is given up after about 3 x connect_timeout_s,
        # as the paramiko connector's keepalive and TCP_USER_TIMEOUT do.
        "-o", f"ServerAliveInterval={timeout}",
        "-o", "ServerAliveCountMax=2",
        "-o", f"StrictHostKeyChecking={checking}",
        "-o", f"UserKnownHostsFile={known}",
        "-o", "GlobalKnownHostsFile=/dev/null",  # the site's file only, as with paramiko
        "-o", "UpdateHostKeys=no",
        "-o", "HashKnownHosts=no",
        # curve25519 first, as paramiko negotiates: OpenSSH 9's default, the post-quantum
        # sntrup761x25519 hybrid, cost 123 ms of client CPU per handshake here against 21 ms
        # (and as much again in the host's sshd): 30 hosts paid 3.7 s of CPU for it.
        "-o", "KexAlgorithms=^curve25519-sha256,curve25519-sha256@libssh.org",
    ]  # fmt: skip
    # ssh_config: ssh reads that file itself; only what the site sets goes on the command
    # line (where it wins), so the file's Port, User and IdentityFile fill in the rest.
    given = set(host.ssh_set_by_site) if host.ssh_config else {"ssh_port", "user", "identity_file"}
    if host.ssh_config:
        argv += ["-F", host.ssh_config]
    if "ssh_port" in given:
        argv += ["-p", str(host.ssh_port)]
    if host.user and "user" in given:
        argv += ["-l", host.user]
    if host.identity_file and "identity_file" in given:
        # Only the named key: every key in ~/.ssh costs round trips and can trip MaxAuthTries.
        argv += [
            "-i", host.identity_file,
            "-o", "IdentitiesOnly=yes",
            "-o", "PreferredAuthentications=publickey",  # not GSSAPI first (Debian's default)
        ]  # fmt: skip
    if control is None or host.ssh_persist_s <= 0:
        argv += ["-o", "ControlMaster=no", "-o", "ControlPath=none"]
    else:
        argv += [
            "-o", "ControlMaster=auto",
            "-o", f"ControlPath={control}",
            "-o", f"ControlPersist={host.ssh_persist_s}",
        ]  # fmt: skip
    return [*argv, "--", host.address]
