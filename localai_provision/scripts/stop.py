# Sent to a host and run as `python -I -S -c <this> PID_FILE PREFIX TIMEOUT_S`: stop the
# server started by launch.py, and its worker processes (they share its process group).
# Only a process whose command line names a server under PREFIX (PREFIX/generations/ID/bin/
# mlx-omni-server, or PREFIX/venv/bin/... of older versions) is signalled: a recycled pid
# that now belongs to something else is left alone. Prints what it did as JSON.
import json
import os
import signal
import subprocess
import sys
import time

pid_file, prefix, timeout = sys.argv[1], sys.argv[2], float(sys.argv[3])
result = {"pid": None, "stopped": False, "killed": False, "note": ""}


def argv_of(pid):
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            return [a.decode("utf-8", "replace") for a in f.read().split(b"\0") if a]
    except OSError:
        pass
    try:
        out = subprocess.run(
            ["ps", "-ww", "-p", str(pid), "-o", "command="],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            timeout=5,
        ).stdout
        return out.decode("utf-8", "replace").split()
    except (OSError, subprocess.SubprocessError):
        return []


def is_server(argv):
    # The server runs as `SERVER_BIN ...` or `PYTHON SERVER_BIN ...`. Matching only those
    # two places keeps this script (and the shell that started it, whose command line
    # mentions PREFIX as an argument) from ever signalling itself.
    return any(
        a.startswith(prefix.rstrip("/") + "/") and a.endswith("/bin/mlx-omni-server")
        for a in argv[:2]
    )


def signal_group(pid, sig):
    try:
        os.killpg(pid, sig)  # the server and its worker processes share its process group
    except (ProcessLookupError, PermissionError):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie answers kill(0); it is as good as gone.
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


try:
    with open(pid_file) as f:
        pid = int(f.read().strip())
except (OSError, ValueError):
    pid = None
result["pid"] = pid
if pid and alive(pid) and is_server(argv_of(pid)):
    for sig in (signal.SIGTERM, signal.SIGKILL):
        signal_group(pid, sig)
        deadline = time.time() + (timeout if sig == signal.SIGTERM else 5)
        while time.time() < deadline and alive(pid):
            time.sleep(0.05)
        if not alive(pid):
            result["stopped"] = True
            result["killed"] = sig == signal.SIGKILL
            break
elif pid:
    result["note"] = "the pid file names no running server"
# Servers of this venv that no pid file names (an earlier run lost it, or a hand-started
# copy): they hold the port and memory, and are ours to stop.
orphans = []
if os.path.isdir("/proc/self"):
    for name in os.listdir("/proc"):
        if name.isdigit() and int(name) != pid and int(name) != os.getpid():
            try:
                if os.stat("/proc/" + name).st_uid != os.getuid():
                    continue
            except OSError:
                continue
            if is_server(argv_of(int(name))):
                orphans.append(int(name))
else:
    try:
        listing = subprocess.run(
            ["ps", "-x", "-ww", "-o", "pid=,command=", "-U", str(os.getuid())],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            timeout=5,
        ).stdout.decode("utf-8", "replace")
    except (OSError, subprocess.SubprocessError):
        listing = ""
    for line in listing.splitlines():
        fields = line.split()
        if fields and fields[0].isdigit() and int(fields[0]) not in (pid, os.getpid()):
            if is_server(fields[1:3]):
                orphans.append(int(fields[0]))
for orphan in orphans:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        signal_group(orphan, sig)
        deadline = time.time() + 5
        while time.time() < deadline and alive(orphan):
            time.sleep(0.05)
        if not alive(orphan):
            break
result["orphans"] = orphans

if result["stopped"] or result["note"] or not pid:
    try:
        os.unlink(pid_file)
    except OSError:
        pass
print(json.dumps(result))
