"""Host keys: known_hosts entries, the strict and accept-new policies, fingerprints."""

from __future__ import annotations

import fcntl
import threading
from pathlib import Path

import paramiko

from localai_provision.connectors import ssh_settings as _settings

# One definition for both connectors (ssh_settings.py imports neither client).
known_hosts_path = _settings.known_hosts_path
_host_entry_name = _settings.host_entry_name


_parsed_known_hosts: dict[str, tuple[tuple[int, int], paramiko.HostKeys]] = {}
_parsed_lock = threading.Lock()


def _known_keys(path: Path, entry_name: str) -> list[tuple[str, paramiko.PKey]]:
    """What known_hosts holds for ``entry_name`` (as paramiko's load_host_keys would find it),
    the file parsed once per process and again only when it changes. Parsing the whole file
    for every host made a fleet's connections cost O(hosts) each: 6 ms per host at 100."""
    stat = path.stat()
    stamp = (stat.st_mtime_ns, stat.st_size)
    with _parsed_lock:
        cached = _parsed_known_hosts.get(str(path))
        if cached is None or cached[0] != stamp:
            keys = paramiko.HostKeys()
            keys.load(str(path))
            cached = _parsed_known_hosts[str(path)] = (stamp, keys)
    found = cached[1].lookup(entry_name)
    return list(found.items()) if found is not None else []


def _fingerprint(key: paramiko.PKey) -> str:
    return f"{key.get_name()} SHA256:{key.fingerprint.split(':', 1)[-1]}"


class _AcceptNewPolicy(paramiko.MissingHostKeyPolicy):
    """OpenSSH's `StrictHostKeyChecking accept-new`: record a new host's key, refuse a change.

    A changed key never reaches a policy: paramiko raises BadHostKeyException for it first.
    Appending (under an exclusive lock) rather than paramiko's save_host_keys, which rewrites
    the whole file and would lose lines written by hosts connecting in parallel.
    """

    def __init__(self, path: Path) -> None:
        self.path = path

    def missing_host_key(
        self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey
    ) -> None:
        line = f"{hostname} {key.get_name()} {key.get_base64()}\n"
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                f.write(line)
                f.flush()
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)
        client.get_host_keys().add(hostname, key.get_name(), key)


class _StrictPolicy(paramiko.MissingHostKeyPolicy):
    def __init__(self, path: Path) -> None:
        self.path = path

    def missing_host_key(
        self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey
    ) -> None:
        raise _UnknownHostKey(hostname, key)


class _UnknownHostKey(Exception):
    def __init__(self, hostname: str, key: paramiko.PKey) -> None:
        super().__init__(hostname)
        self.hostname = hostname
        self.key = key


def _known_hosts_lines(path: Path, entry_name: str) -> list[int]:
    """Line numbers in known_hosts that name ``entry_name`` (plain or hashed)."""
    found: list[int] = []
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return found
    for number, line in enumerate(lines, start=1):
        fields = line.split()
        if not fields or line.startswith("#"):
            continue
        for name in fields[0].split(","):
            if name == entry_name:
                found.append(number)
            elif name.startswith("|1|"):
                salt = name.split("|")[2]
                if paramiko.HostKeys.hash_host(entry_name, salt) == name:
                    found.append(number)
    return found
