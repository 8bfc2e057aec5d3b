# Sent to a host and run as `python -I -S -c <this> JSON`: start the server detached. JSON
# names its paths (Layout's): {"server_config", "pid_file", "server_log", "work_dir",
# "dirs": [folders to make]}. The log is rotated first when it has reached its size limit.
#
# The server's command line and environment are read from server_config (mode 0600),
# not passed on our command line, so that secrets in the environment never show in `ps`.
# The server gets its own session (so no terminal or SSH hang-up reaches it), a minimal
# environment (the login's variables do not leak in), and the pid file is written atomically.
import json
import os
import subprocess
import sys

if False:  # for linters only: on the host scripts/logrotate.py's text is in front of this one
    from localai_provision.scripts.logrotate import localai_log_settings, localai_rotate_if_large

paths = json.loads(sys.argv[1])
with open(paths["server_config"], encoding="utf-8") as f:
    config = json.load(f)
env = {
    "HOME": os.path.expanduser("~"),
    "PATH": "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",
    "LANG": os.environ.get("LANG", "C.UTF-8"),
    "USER": os.environ.get("USER", ""),
}
env.update({str(k): str(v) for k, v in config["env"].items()})
env["LOCALAI_CONFIG_HASH"] = config["hash"]
for folder in paths["dirs"]:
    os.makedirs(folder, exist_ok=True)
rotation = localai_log_settings(env)
if rotation is not None and rotation[0] == paths["server_log"]:
    # Before each start: a server that keeps crashing cannot grow the log past its limit.
    # A log that cannot be rotated (a full disk) is appended to, as before: never a reason
    # not to start the server.
    try:
        localai_rotate_if_large(*rotation)
    except OSError as exc:
        print("localai: could not rotate %s: %s" % (rotation[0], exc), file=sys.stderr)
log = open(paths["server_log"], "ab")
log.write(b"\n--- localai: starting the server ---\n")
log.flush()
process = subprocess.Popen(
    config["argv"],
    stdin=subprocess.DEVNULL,
    stdout=log,
    stderr=subprocess.STDOUT,
    env=env,
    # The server writes ./logs at import time: give it a writable folder of its own.
    cwd=paths["work_dir"],
    start_new_session=True,
    close_fds=True,
)
pid_file = paths["pid_file"]
with open(pid_file + ".tmp", "w") as f:
    f.write(str(process.pid))
os.replace(pid_file + ".tmp", pid_file)
print(process.pid)
