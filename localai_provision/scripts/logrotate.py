# Size-based rotation of the server's log, put in front of the programs that need it
# (scripts/__init__.py PRELUDES): the launchers (launch.py, launchd_exec.py) rotate at each
# start, the start-up shim (server_shim.py) while the server runs. launchd holds the log open as
# the job's stdout, so newsyslog cannot rotate it: whoever holds fds 1 and 2 must.
# Standard library only, Python 3.8+. Only server.log and server.log.N are renamed or removed.
import os

LOCALAI_LOG_ENV = ("LOCALAI_LOG_PATH", "LOCALAI_LOG_MAX_BYTES", "LOCALAI_LOG_KEEP")


def localai_log_settings(env):
    """(path, max_bytes, keep) from the server's environment, or None when not asked to."""
    path, max_bytes, keep = (env.get(name, "") for name in LOCALAI_LOG_ENV)
    try:
        max_bytes, keep = int(max_bytes), int(keep)
    except ValueError:
        return None
    if not path or max_bytes < 1 or keep < 1:
        return None
    return path, max_bytes, keep


def localai_rotate(path, keep, fds=()):
    """server.log -> server.log.1 -> ... -> server.log.KEEP (older ones removed), then a new
    server.log, opened for appending, is put on ``fds`` (1 and 2: the server's output)."""
    folder, base = os.path.split(path)
    try:
        names = os.listdir(folder or ".")
    except OSError:
        names = []
    numbered = []
    for name in names:
        suffix = name[len(base) + 1 :]
        if name.startswith(base + ".") and suffix.isdigit() and suffix[0] != "0":
            numbered.append(int(suffix))
    for n in sorted(numbered, reverse=True):
        old = "%s.%d" % (path, n)
        try:
            if n >= keep:
                os.remove(old)
            else:
                os.replace(old, "%s.%d" % (path, n + 1))
        except OSError:
            pass
    try:
        os.replace(path, path + ".1")
    except OSError:
        pass
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    for target in fds:
        os.dup2(fd, target)
    if fd not in fds:
        os.close(fd)


def localai_rotate_if_large(path, max_bytes, keep, fds=()):
    """Rotate when the log has reached ``max_bytes``; True if it did."""
    try:
        size = os.stat(path).st_size
    except OSError:
        return False
    if size < max_bytes:
        return False
    localai_rotate(path, keep, fds)
    return True
