"""Reading a small file on this machine whose path comes from the user: a site file, an SSH
key, a known_hosts file.

Its kind and size are checked before anything is read. A path may name /dev/zero (endless:
reading it whole ended in MemoryError), a FIFO (opening it waits for a writer forever), a
folder, or a file of gigabytes; each is refused with a sentence that says what it is.
"""

from __future__ import annotations

import os
import stat

from localai_provision.errors import UnreadableFile

# A private key is a few KiB (RSA 16384 is about 13 KiB); known_hosts for a large
# organisation a few MiB.
MAX_KEY_BYTES = 1 << 20
MAX_KNOWN_HOSTS_BYTES = 64 << 20

_KINDS = {
    stat.S_IFDIR: "a folder",
    stat.S_IFCHR: "a device (such as /dev/zero)",
    stat.S_IFBLK: "a disk device",
    stat.S_IFIFO: "a pipe (FIFO)",
    stat.S_IFSOCK: "a socket",
}


def _refuse_kind_or_size(mode: int, size: int, path: str, limit: int, what: str) -> None:
    if not stat.S_ISREG(mode):
        kind = _KINDS.get(stat.S_IFMT(mode), "not a regular file")
        raise UnreadableFile(path, what, f"is {kind}, not a file", f"give the path of the {what}")
    if size > limit:
        raise UnreadableFile(
            path,
            what,
            f"is {size:,} bytes, larger than the {limit // 1024:,} KiB a {what} can be",
            f"check that this is the {what} you meant",
        )


def check_small_regular_file(path: str | os.PathLike[str], limit: int, what: str) -> None:
    """Refuse ``path`` unless it is a regular file of at most ``limit`` bytes (following
    links), for a file another library opens by name."""
    try:
        info = os.stat(path)
    except OSError as exc:
        raise UnreadableFile(
            os.fspath(path), what, f"cannot be read: {exc.strerror or exc}", "check the path"
        ) from None
    _refuse_kind_or_size(info.st_mode, info.st_size, os.fspath(path), limit, what)


def read_small_regular_file(path: str | os.PathLike[str], limit: int, what: str) -> bytes:
    """The bytes of ``path``, a regular file of at most ``limit`` bytes; else UnreadableFile.

    Opened without blocking (a FIFO would wait for a writer), then checked on the open file,
    so a file swapped after a check is still the one checked; at most ``limit`` + 1 bytes are
    read, in case it grew since."""
    name = os.fspath(path)
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise UnreadableFile(
            name, what, "does not exist (no such file)", "check the path"
        ) from None
    except OSError as exc:
        raise UnreadableFile(
            name, what, f"cannot be read: {exc.strerror or exc}", "check the path"
        ) from None
    try:
        info = os.fstat(fd)
        _refuse_kind_or_size(info.st_mode, info.st_size, name, limit, what)
        chunks: list[bytes] = []
        remaining = limit + 1
        while remaining > 0:
            chunk = os.read(fd, min(remaining, 1 << 20))
            if not chunk:
                break
            chunks.append(chunk)
            remaining -= len(chunk)
        data = b"".join(chunks)
    except OSError as exc:
        raise UnreadableFile(
            name, what, f"cannot be read: {exc.strerror or exc}", "check the path"
        ) from None
    finally:
        os.close(fd)
    if len(data) > limit:
        _refuse_kind_or_size(stat.S_IFREG, len(data), name, limit, what)
    return data
