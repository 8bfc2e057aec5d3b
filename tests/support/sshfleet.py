"""A fleet of real OpenSSH test hosts on one Linux machine.

Each test host is one ``sshd`` listening on its own loopback port, with its own config,
host key and log, and one Unix user whose home stands in for that host's disk. Tests
reach the hosts over real SSH (paramiko/fabric), so behaviour such as host-key checks,
refused connections and per-user state is the genuine article rather than a mock.

Requires root (``useradd``, binding sshd, ``runuser``) and Debian's ``openssh-server``.
Stdlib only, so it can be imported before any project dependency is installed.

Naming and cleanup safety: every account is ``<prefix><runid><NN>`` (``runid`` = five
random lowercase letters), has the GECOS marker ``GECOS_MARK`` and a home of exactly
``/tmp/localai-fleet-<prefix><runid>/home/<user>``. ``cleanup_stale`` deletes only
accounts matching all three, and only when the process that created them is gone, so a
fleet of a parallel run is never touched.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import pwd
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import ClassVar

SSHD = "/usr/sbin/sshd"  # sshd refuses to re-exec unless started by absolute path
SSH_KEYGEN = "ssh-keygen"
LOOPBACK = "127.0.0.1"
# Homes live outside base_dir: pytest's tmp_path sits below /tmp/pytest-of-root (0700),
# which the test users could not traverse, and sshd reads authorized_keys as the user.
HOMES_PARENT = Path("/tmp")
HOMES_DIR_PREFIX = "localai-fleet-"
GECOS_MARK = "sshfleet test host"
RUNID_LEN = 5
# The PATH OpenSSH gives non-root sessions on Debian, so run_as() sees what SSH sees.
SESSION_PATH = "/usr/local/bin:/usr/bin:/bin:/usr/games"
_PREFIX_RE = re.compile(r"^[a-z][a-z0-9]{0,15}$")
_MAX_HOSTS = 999  # index is 2-3 digits; keeps names well under useradd's 32 chars
_PORT_ATTEMPTS = 5
_GRACE_SECONDS = 2.0
# Waits between tries of useradd/userdel when another fleet holds the passwd lock (parallel
# test workers and benches make and remove users at once; "cannot lock /etc/passwd" was
# seen with four fleets on a loaded 2-core machine): 0.1 s doubling to 2 s, ~60 s in all.
_LOCK_BACKOFF = (0.1, 0.2, 0.4, 0.8, 1.6) + (2.0,) * 28


class SSHFleetError(RuntimeError):
    """A test host could not be set up, started or cleaned up."""


class _PortTakenError(SSHFleetError):
    """sshd lost the race for its port (someone bound it between pick and listen)."""


@dataclass
class TestHost:
    """One test host: an sshd on ``address:port`` that admits only ``user``."""

    __test__: ClassVar[bool] = False  # the name starts with "Test"; pytest must not collect it

    name: str
    user: str
    port: int
    home: Path
    host_key_path: Path
    host_pubkey: str  # "ssh-ed25519 AAAA..." (no comment), as known_hosts wants it
    config_path: Path
    log_path: Path
    address: str = LOOPBACK
    # sshd's `Subsystem sftp` line for this host (None: no SFTP at all); a test changes it,
    # then restarts the host (stop_host/start_host) and sets it back when done.
    sftp: str | None = "internal-sftp"
    # The network namespace its sshd runs in (and so every command of its sessions), None:
    # this machine's own. bench/fanout.py --link-mbit gives each host one behind a slow link.
    netns: str | None = None


class SSHFleet:
    """Start ``count`` sshd test hosts, each with its own Unix user; tear all down on stop().

    ``base_dir`` (created if missing, must otherwise be empty) receives the client key,
    host keys, configs, pid files and logs; stop() empties it again (``keep_logs=True``
    keeps the ``sshd.log`` files for post-mortems). Usable as a context manager.
    """

    def __init__(
        self,
        base_dir: Path,
        count: int,
        prefix: str = "lt",
        *,
        startup_timeout: float = 10.0,
        keep_logs: bool = False,
        places: Sequence[tuple[str, str]] | None = None,
    ) -> None:
        """``places``: one (network namespace, address in it) per host, made by the caller
        (bench/links.py); default: every host on loopback in this machine's namespace."""
        if not _PREFIX_RE.match(prefix):
            raise ValueError(f"prefix must match {_PREFIX_RE.pattern!r}, got {prefix!r}")
        if not 1 <= count <= _MAX_HOSTS:
            raise ValueError(f"count must be 1..{_MAX_HOSTS}, got {count}")
        self.base_dir = Path(base_dir).absolute()
        self.count = count
        self.prefix = prefix
        self.startup_timeout = startup_timeout
        self.keep_logs = keep_logs
        if places is not None and len(places) != count:
            raise ValueError(f"places names {len(places)} hosts, count is {count}")
        self.places = list(places) if places is not None else None
        self.runid = _new_runid(prefix)
        self.homes_root = _homes_root(prefix, self.runid)
        self.client_key_path = self.base_dir / "client_ed25519"
        self.hosts: list[TestHost] = []
        self.start_seconds: float | None = None  # wall time of start(), for reports
        self._procs: dict[str, subprocess.Popen[bytes]] = {}
        self._users: list[str] = []  # recorded *before* useradd so half-made ones go too
        self._ports: set[int] = set()
        self._lock = threading.RLock()
        self._state = "new"  # new -> starting -> started -> stopped
        self._owner_pid = os.getpid()

    # ----------------------------------------------------------------- lifecycle

    def __enter__(self) -> SSHFleet:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> SSHFleet:
        """Create users, keys and configs, start every sshd concurrently, wait for banners."""
        with self._lock:
            if self._state != "new":
                raise SSHFleetError(f"fleet {self.runid} already {self._state}")
            self._state = "starting"
            # Registered before anything exists, so even a crash half-way is cleaned up.
            atexit.register(self._atexit_stop)
        started = time.monotonic()
        try:
            self._prepare_dirs()
            _keygen(self.client_key_path, f"sshfleet-client-{self.runid}")
            client_pub = _read_pubkey(self.client_key_path)
            hosts = [self._describe_host(i) for i in range(self.count)]
            self.hosts = hosts
            # useradd takes the passwd lock; ~15 ms each, so serial is simplest and safe.
            for host in hosts:
                self._create_user(host, client_pub)
            workers = min(32, self.count)
            with ThreadPoolExecutor(max_workers=workers) as pool:
                list(pool.map(self._make_host_key, hosts))
            with ThreadPoolExecutor(max_workers=workers) as pool:
                list(pool.map(self._launch, hosts))
        except BaseException:
            self.stop()
            raise
        self.start_seconds = time.monotonic() - started
        with self._lock:
            self._state = "started"
        return self

    def stop(self) -> None:
        """Kill every sshd and user process, delete the users and files. Idempotent."""
        with self._lock:
            if self._state in ("new", "stopped"):
                self._state = "stopped"
                return
            self._state = "stopped"
        atexit.unregister(self._atexit_stop)
        errors: list[str] = []
        for name in list(self._procs):
            # Deliberately broad: whatever fails here, the users below must still be removed.
            try:
                self._kill_sshd(name)
            except Exception as exc:  # noqa: BLE001
                errors.append(f"sshd {name}: {exc}")
        uids = [u.pw_uid for u in map(_getpwnam, self._users) if u is not None]
        try:
            _kill_uid_processes(uids)
        except Exception as exc:  # noqa: BLE001 - same reason: userdel must still run
            errors.append(f"user processes: {exc}")
        # Safety net: anything of this run's pattern, even if not recorded above.
        pattern = _user_re(self.prefix, self.runid)
        leftovers = [p.pw_name for p in pwd.getpwall() if pattern.match(p.pw_name)]
        for user in dict.fromkeys([*self._users, *leftovers]):
            err = _delete_user(user)
            if err:
                errors.append(err)
        with contextlib.suppress(FileNotFoundError):
            shutil.rmtree(self.homes_root)
        self._clear_base_dir()
        if errors:
            raise SSHFleetError(f"fleet {self.runid} cleanup incomplete: " + "; ".join(errors))

    def _atexit_stop(self) -> None:
        # A forked child (e.g. multiprocessing with fork) inherits atexit hooks; only the
        # process that built the fleet may tear it down.
        if os.getpid() != self._owner_pid:
            return
        try:
            self.stop()
        except Exception as exc:  # noqa: BLE001 - an atexit hook must not raise
            print(f"sshfleet: {exc}", file=sys.stderr)

    # ------------------------------------------------------------ public helpers

    def known_hosts_line(self, host: TestHost) -> str:
        """``[127.0.0.1]:PORT ssh-ed25519 AAAA...`` for the host's *current* key."""
        return f"[{host.address}]:{host.port} {host.host_pubkey}"

    def known_hosts_text(self, hosts: Iterable[TestHost] | None = None) -> str:
        return "".join(self.known_hosts_line(h) + "\n" for h in (hosts or self.hosts))

    def write_known_hosts(self, path: Path, hosts: Iterable[TestHost] | None = None) -> Path:
        """Write a known_hosts snapshot; it is not updated by regenerate_host_key()."""
        path = Path(path)
        path.write_text(self.known_hosts_text(hosts))
        return path

    def host_by_name(self, name: str) -> TestHost:
        for host in self.hosts:
            if host.name == name:
                return host
        raise KeyError(name)

    def is_running(self, host: TestHost) -> bool:
        proc = self._procs.get(host.name)
        return proc is not None and proc.poll() is None

    def stop_host(self, host: TestHost, *, kill_user_processes: bool = True) -> None:
        """Take a host down (port refuses connections). By default its user's processes
        die too, as on a machine that went down; pass False to keep them running."""
        self._kill_sshd(host.name)
        if kill_user_processes:
            entry = _getpwnam(host.user)
            if entry is not None:
                _kill_uid_processes([entry.pw_uid])

    def start_host(self, host: TestHost) -> None:
        """Bring a stopped host back on the same port with its current host key."""
        if self.is_running(host):
            raise SSHFleetError(f"{host.name} is already running")
        self._launch(host, keep_port=True)

    def regenerate_host_key(self, host: TestHost) -> str:
        """Give the host a new ed25519 key and restart its sshd on the same port.

        Returns the new public key; known_hosts files written earlier now mismatch.
        """
        self.stop_host(host, kill_user_processes=False)
        for path in (host.host_key_path, host.host_key_path.with_suffix(".pub")):
            path.unlink(missing_ok=True)
        self._make_host_key(host)
        self._launch(host, keep_port=True)
        return host.host_pubkey

    def run_as(
        self,
        host: TestHost,
        cmd: Sequence[str],
        *,
        input_text: str | None = None,
        env: Mapping[str, str] | None = None,
        check: bool = True,
        timeout: float | None = 120,
    ) -> subprocess.CompletedProcess[str]:
        """Run ``cmd`` locally as the host's user, in its home, to prepare host state.

        The environment is minimal (like an SSH session), not root's: root's variables
        (PIP_FIND_LINKS, ...) would otherwise leak into state the SSH session lacks.
        """
        run_env = {"PATH": SESSION_PATH, "LANG": "C.UTF-8"}
        run_env.update(env or {})
        # Resolved with root's PATH: the child's PATH (SESSION_PATH) lacks /usr/sbin.
        runuser = shutil.which("runuser") or "/usr/sbin/runuser"
        return subprocess.run(
            [runuser, "-u", host.user, "--", *cmd],
            cwd=host.home,
            env=run_env,
            input=input_text,
            capture_output=True,
            text=True,
            check=check,
            timeout=timeout,
        )

    # ------------------------------------------------------------------ internals

    def _prepare_dirs(self) -> None:
        self.base_dir.mkdir(parents=True, exist_ok=True)
        if any(self.base_dir.iterdir()):
            # stop() empties base_dir, so refuse to adopt a directory holding other files.
            raise SSHFleetError(f"base_dir {self.base_dir} is not empty")
        # sshd checks that its privilege-separation directory exists (root, not writable).
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
        self.homes_root.mkdir(mode=0o755)
        self.homes_root.chmod(0o755)  # mkdir's mode is filtered by umask
        (self.homes_root / "owner").write_text(_process_identity(os.getpid()))
        (self.homes_root / "home").mkdir(mode=0o755)
        (self.homes_root / "home").chmod(0o755)

    def _describe_host(self, index: int) -> TestHost:
        name = f"host{index:02d}"
        user = f"{self.prefix}{self.runid}{index:02d}"
        host_dir = self.base_dir / name
        host_dir.mkdir()
        return TestHost(
            name=name,
            user=user,
            port=0,
            home=self.homes_root / "home" / user,
            host_key_path=host_dir / "ssh_host_ed25519_key",
            host_pubkey="",
            # The user name in the file name lets cleanup_stale find orphaned listeners.
            config_path=host_dir / f"sshd_config.{user}",
            log_path=host_dir / "sshd.log",
            address=self.places[index][1] if self.places else LOOPBACK,
            netns=self.places[index][0] if self.places else None,
        )

    def _create_user(self, host: TestHost, client_pub: str) -> None:
        self._users.append(host.user)
        # -p '*': useradd leaves the account locked ('!'), and with UsePAM no sshd refuses
        # key logins to locked accounts; '*' means "no password, but not locked".
        cmd = ["useradd", "-m", "-d", str(host.home), "-s", "/bin/bash", "-p", "*",
               "-c", f"{GECOS_MARK} {self.runid}", host.user]  # fmt: skip
        for delay in _LOCK_BACKOFF:
            result = subprocess.run(cmd, capture_output=True, text=True, check=False)
            # Parallel runs contend for the passwd lock; shadow usually waits for it, but
            # can give up with "cannot lock"; only that failure is worth retrying.
            if result.returncode == 0 or "cannot lock" not in result.stderr:
                break
            time.sleep(delay)
        if result.returncode != 0:
            raise SSHFleetError(f"useradd {host.user} failed: {result.stderr.strip()}")
        entry = pwd.getpwnam(host.user)
        ssh_dir = host.home / ".ssh"
        ssh_dir.mkdir(mode=0o700, exist_ok=True)
        keys = ssh_dir / "authorized_keys"
        keys.write_text(client_pub + "\n")
        keys.chmod(0o600)
        for path in (ssh_dir, keys):
            os.chown(path, entry.pw_uid, entry.pw_gid)

    def _make_host_key(self, host: TestHost) -> None:
        _keygen(host.host_key_path, f"sshfleet-{host.name}-{self.runid}")
        host.host_pubkey = _read_pubkey(host.host_key_path)

    def _write_config(self, host: TestHost) -> None:
        host_dir = host.config_path.parent
        host.config_path.write_text(
            "\n".join(
                [
                    f"ListenAddress {host.address}",
                    f"Port {host.port}",
                    f"HostKey {host.host_key_path}",
                    f"PidFile {host_dir / 'sshd.pid'}",
                    "AuthorizedKeysFile %h/.ssh/authorized_keys",
                    f"AllowUsers {host.user}",  # each host admits only its own "owner"
                    "PubkeyAuthentication yes",
                    "PasswordAuthentication no",
                    "KbdInteractiveAuthentication no",
                    "PermitRootLogin no",
                    "UsePAM no",
                    "StrictModes no",  # homes/base_dir may sit under loose /tmp modes
                    "MaxStartups 100:30:200",  # 30+ parallel handshakes to one host
                    "MaxSessions 50",
                    "LoginGraceTime 30",
                    "PrintMotd no",
                    "PrintLastLog no",
                    "X11Forwarding no",
                    "UseDNS no",
                    "LogLevel VERBOSE",
                    # fabric's put()/get() need SFTP; internal-sftp needs no helper binary.
                    *([f"Subsystem sftp {host.sftp}"] if host.sftp else []),
                    # Lets a test give one host its own PATH (~/.ssh/environment): the macOS
                    # stand-ins (tests/support/macos.py) are found first that way.
                    "PermitUserEnvironment yes",
                    "",
                ]
            )
        )

    def _launch(self, host: TestHost, keep_port: bool = False) -> None:
        """Start the host's sshd and wait until it is ours that answers on the port."""
        for _attempt in range(_PORT_ATTEMPTS):
            if not keep_port:
                with self._lock:
                    self._ports.discard(host.port)
                    host.port = _free_port(exclude=self._ports)
                    self._ports.add(host.port)
            self._write_config(host)
            log_offset = host.log_path.stat().st_size if host.log_path.exists() else 0
            with host.log_path.open("ab") as log:
                # stderr goes to the log too: config errors are printed before -E applies.
                # `ip netns exec` enters the namespace and execs sshd: the pid stays sshd's.
                inside = ["ip", "netns", "exec", host.netns] if host.netns else []
                proc = subprocess.Popen(
                    [*inside, SSHD, "-D", "-f", str(host.config_path), "-E", str(host.log_path)],
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=log,
                )
            with self._lock:
                self._procs[host.name] = proc  # recorded at once so stop() can kill it
            try:
                self._wait_ready(host, proc, log_offset)
                return
            except _PortTakenError:
                self._kill_sshd(host.name)
                if keep_port:
                    raise
        raise SSHFleetError(f"{host.name}: no free port after {_PORT_ATTEMPTS} attempts")

    def _wait_ready(self, host: TestHost, proc: subprocess.Popen[bytes], log_offset: int) -> None:
        # A banner alone is not proof: if another process (e.g. a parallel run's sshd) got
        # the port, the probe would see *its* banner. So also require our own sshd's
        # "Server listening" line, which it logs only after bind() and listen() succeeded.
        listening = f"Server listening on {host.address} port {host.port}."
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                text = _read_from(host.log_path, log_offset)
                if "Address already in use" in text:
                    raise _PortTakenError(f"{host.name}: port {host.port} taken")
                self._kill_sshd(host.name)
                raise SSHFleetError(
                    f"{host.name}: sshd exited with {proc.returncode} on port {host.port}; "
                    f"log {host.log_path}:\n{_tail(text)}"
                )
            if listening in _read_from(host.log_path, log_offset) and _has_banner(
                host.address, host.port
            ):
                return
            time.sleep(0.02)
        text = _read_from(host.log_path, log_offset)
        self._kill_sshd(host.name)
        raise SSHFleetError(
            f"{host.name}: no SSH banner on {host.address}:{host.port} within "
            f"{self.startup_timeout:.0f} s; log {host.log_path}:\n{_tail(text)}"
        )

    def _kill_sshd(self, name: str) -> None:
        with self._lock:
            proc = self._procs.pop(name, None)
        if proc is None:
            return
        _kill_tree(proc)

    def _clear_base_dir(self) -> None:
        if not self.base_dir.is_dir():
            return
        for entry in self.base_dir.iterdir():
            if entry.is_dir() and not entry.is_symlink():
                for item in entry.iterdir():
                    if self.keep_logs and item.name == "sshd.log":
                        continue
                    _remove(item)
                with contextlib.suppress(OSError):
                    entry.rmdir()  # fails (kept) when it still holds a log
            else:
                _remove(entry)


# ---------------------------------------------------------------- stale cleanup


def cleanup_stale(prefix: str = "lt") -> list[str]:
    """Remove users (and their sshd, processes, homes) left by crashed runs of ``prefix``.

    Only accounts matching the fleet's exact naming pattern, GECOS marker and home path
    are considered, and only when the process that created them no longer exists, so
    fleets of runs in progress are left alone. Returns the removed user names.
    """
    if not _PREFIX_RE.match(prefix):
        raise ValueError(f"prefix must match {_PREFIX_RE.pattern!r}, got {prefix!r}")
    pattern = _user_re(prefix, None)
    removed: list[str] = []
    for entry in pwd.getpwall():
        match = pattern.match(entry.pw_name)
        if not match or entry.pw_uid < 1000:  # never a system account
            continue
        root = _homes_root(prefix, match.group(1))
        if Path(entry.pw_dir) != root / "home" / entry.pw_name:
            continue
        if not entry.pw_gecos.startswith(GECOS_MARK) or _owner_alive(root):
            continue
        for pid in _stale_sshd_pids(entry.pw_name):
            _kill_pids(_descendants(pid) | {pid})
        _kill_uid_processes([entry.pw_uid])
        if _delete_user(entry.pw_name) is None:
            removed.append(entry.pw_name)
    # Homes roots of dead runs (including runs that died before creating any user).
    root_re = re.compile(rf"^{re.escape(HOMES_DIR_PREFIX + prefix)}[a-z]{{{RUNID_LEN}}}$")
    in_use = {Path(p.pw_dir) for p in pwd.getpwall()}
    for root in HOMES_PARENT.glob(f"{HOMES_DIR_PREFIX}{prefix}*"):
        if not root_re.match(root.name) or root.is_symlink() or _owner_alive(root):
            continue
        if any(root in home.parents for home in in_use):
            continue
        shutil.rmtree(root, ignore_errors=True)
    return removed


# ------------------------------------------------------------------- helpers


def _new_runid(prefix: str) -> str:
    rng = random.SystemRandom()
    while True:
        runid = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(RUNID_LEN))
        taken = any(p.pw_name.startswith(prefix + runid) for p in pwd.getpwall())
        if not taken and not _homes_root(prefix, runid).exists():
            return runid


def _homes_root(prefix: str, runid: str) -> Path:
    return HOMES_PARENT / f"{HOMES_DIR_PREFIX}{prefix}{runid}"


def _user_re(prefix: str, runid: str | None) -> re.Pattern[str]:
    # The fixed-length runid makes prefixes unambiguous ("lt" never matches "ltx..." users).
    run = re.escape(runid) if runid else f"[a-z]{{{RUNID_LEN}}}"
    return re.compile(rf"^{re.escape(prefix)}({run})(\d{{2,3}})$")


def _run(cmd: Sequence[str]) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise SSHFleetError(
            f"{' '.join(cmd)} failed ({result.returncode}): {result.stderr.strip()}"
        )
    return result


def _keygen(path: Path, comment: str) -> None:
    _run([SSH_KEYGEN, "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)])


def _read_pubkey(private_key: Path) -> str:
    kind, blob, *_comment = private_key.with_suffix(".pub").read_text().split()
    return f"{kind} {blob}"


def _free_port(exclude: set[int]) -> int:
    # Port 0 lets the kernel choose; released at once, so sshd can race others for it,
    # which _launch() detects and retries. `exclude` stops two hosts of one fleet
    # from being handed the same recently released port.
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((LOOPBACK, 0))
            port = int(sock.getsockname()[1])
        if port not in exclude:
            return port


def _has_banner(address: str, port: int) -> bool:
    try:
        with socket.create_connection((address, port), timeout=1.0) as sock:
            sock.settimeout(1.0)
            data = b""
            while b"\n" not in data and len(data) < 256:
                chunk = sock.recv(256)
                if not chunk:
                    break
                data += chunk
            return data.startswith(b"SSH-")
    except OSError:
        return False


def _read_from(path: Path, offset: int) -> str:
    try:
        with path.open("rb") as fh:
            fh.seek(offset)
            return fh.read().decode(errors="replace")
    except FileNotFoundError:
        return ""


def _tail(text: str, lines: int = 20) -> str:
    return "\n".join(text.splitlines()[-lines:]) or "(log empty)"


def _getpwnam(user: str) -> pwd.struct_passwd | None:
    try:
        return pwd.getpwnam(user)
    except KeyError:
        return None


def _delete_user(user: str) -> str | None:
    """userdel -r -f; returns an error text, or None once the account is gone."""
    for delay in _LOCK_BACKOFF:
        # Exit status 12 ("mail spool not found" etc.) is harmless: judge by the result.
        result = subprocess.run(
            ["userdel", "-r", "-f", user], capture_output=True, text=True, check=False
        )
        if _getpwnam(user) is None:
            return None
        time.sleep(delay)  # most likely the passwd lock held by another fleet; try again
    return f"userdel {user} failed ({result.returncode}): {result.stderr.strip()}"


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _proc_stat(pid: int) -> list[str] | None:
    """Fields of /proc/PID/stat after the command name (field 3 onward)."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name is in parentheses and may itself contain spaces or ')'.
    return raw.rsplit(")", 1)[1].split()


def _process_identity(pid: int) -> str:
    # pid plus start time: a recycled pid of a dead run must not look alive.
    fields = _proc_stat(pid)
    return f"{pid} {fields[19] if fields else '?'}"


def _owner_alive(homes_root: Path) -> bool:
    try:
        recorded = (homes_root / "owner").read_text().split()
    except FileNotFoundError:
        # A run between mkdir and writing the owner file: treat a fresh dir as alive.
        try:
            return time.time() - homes_root.stat().st_mtime < 60
        except FileNotFoundError:
            return False
    if len(recorded) != 2 or not recorded[0].isdigit():
        return False
    return _process_identity(int(recorded[0])).split() == recorded


def _all_pids() -> list[int]:
    return [int(d) for d in os.listdir("/proc") if d.isdigit()]


def _descendants(root: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for pid in _all_pids():
        fields = _proc_stat(pid)
        if fields:
            children.setdefault(int(fields[1]), []).append(pid)
    found: set[int] = set()
    todo = [root]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def _alive(pid: int) -> bool:
    fields = _proc_stat(pid)
    return fields is not None and fields[0] != "Z"


def _kill_pids(pids: set[int]) -> None:
    """SIGTERM, wait up to the grace period, then SIGKILL whatever is left."""
    pids.discard(os.getpid())
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, sig)
        deadline = time.monotonic() + _GRACE_SECONDS
        while time.monotonic() < deadline:
            pids = {p for p in pids if _alive(p)}
            if not pids:
                return
            time.sleep(0.02)


def _kill_tree(proc: subprocess.Popen[bytes]) -> None:
    # Connection handlers are forked children of the listener (and setsid() themselves,
    # so killpg would miss them). Freeze the listener first so it cannot fork new ones
    # while the tree is collected; once it dies, its children are reparented and lost.
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGSTOP)
        tree = _descendants(proc.pid) | {proc.pid}
        _kill_pids(tree - {proc.pid})
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=5)  # reap, so no zombie sshd stays behind


def _uids_of(pid: int) -> tuple[int, int] | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("Uid:"):
                real, effective = line.split()[1:3]
                return int(real), int(effective)
    except OSError:
        return None
    return None


def _kill_uid_processes(uids: Iterable[int]) -> None:
    """Like ``pkill -u`` for several users at once, then SIGKILL after a short wait."""
    wanted = {uid for uid in uids if uid != 0}  # never root, whatever the caller passes
    if not wanted:
        return
    pids = {
        pid
        for pid in _all_pids()
        if (ids := _uids_of(pid)) is not None and (ids[0] in wanted or ids[1] in wanted)
    }
    _kill_pids(pids)


def _stale_sshd_pids(user: str) -> list[int]:
    # sshd rewrites its argv into a title such as
    # "sshd: /usr/sbin/sshd -D -f CONFIG -E LOG [listener] 0 of 100-200 startups",
    # so match on the text, not on NUL-separated arguments.
    wanted = re.compile(
        rf"^(sshd: )?{re.escape(SSHD)} .*-f \S*/sshd_config\.{re.escape(user)}( |$)"
    )
    found = []
    for pid in _all_pids():
        try:
            title = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (OSError, UnicodeDecodeError):
            continue
        if wanted.match(title.strip()) and _uids_of(pid) == (0, 0):
            found.append(pid)
    return found
