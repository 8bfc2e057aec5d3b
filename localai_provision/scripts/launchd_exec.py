# The program of the server's launchd job, run as `python -I -S -c <this> PREFIX`: it reads
# PREFIX/server.json (mode 0600: the environment may hold secrets, which must never be in a
# plist, since `launchctl print` shows a job's environment to any local user), sets the
# server's environment and execs the server, so launchd tracks the server's own pid. It
# rotates the log first when it has reached its size limit (scripts/logrotate.py).
# With a GPU wired limit in the configuration it first waits (up to 60 s) until the limit is
# set: at boot the limit's own job and this one start together, and MLX reads the limit once
# per process.
import json
import os
import subprocess
import sys
import time

if False:  # for linters only: on the host scripts/logrotate.py's text is in front of this one
    from localai_provision.scripts.logrotate import localai_log_settings, localai_rotate_if_large

prefix = sys.argv[1]
with open(os.path.join(prefix, "server.json"), encoding="utf-8") as f:
    config = json.load(f)
limit = config.get("wired_limit_mb")
if limit:
    deadline = time.time() + 60
    while True:
        try:
            out = subprocess.run(
                ["sysctl", "-n", "iogpu.wired_limit_mb"],
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                timeout=5,
            ).stdout
            if out.strip() == str(limit).encode():
                break
        except (OSError, subprocess.SubprocessError):
            pass
        if time.time() >= deadline:
            print("localai: iogpu.wired_limit_mb is not %s after 60 s; starting anyway" % limit)
            break
        time.sleep(1)
env = {
    "HOME": os.environ.get("HOME", os.path.expanduser("~")),
    "PATH": os.environ.get("PATH", "/usr/bin:/bin:/usr/sbin:/sbin"),
    "LANG": os.environ.get("LANG", "en_US.UTF-8"),
}
env.update({str(k): str(v) for k, v in config["env"].items()})
env["LOCALAI_CONFIG_HASH"] = config["hash"]
rotation = localai_log_settings(env)
if rotation is not None and rotation[0] == os.path.join(prefix, "logs", "server.log"):
    # launchd opened the log (StandardOutPath) as fds 1 and 2 and never rotates it: under
    # KeepAlive a server that crashes at start writes it every ThrottleInterval. Rotating here,
    # before each start, bounds it: the new server.log replaces fds 1 and 2.
    try:
        sys.stdout.flush()
        localai_rotate_if_large(*rotation, fds=(1, 2))
    except OSError as exc:
        print("localai: could not rotate %s: %s" % (rotation[0], exc))
print("\n--- localai: starting the server (launchd) ---", flush=True)
os.execve(config["argv"][0], config["argv"], env)
