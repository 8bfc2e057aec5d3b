#!/usr/bin/python3
"""STAND-INS for Apple's tools, so that a Linux test host behaves like a Mac for the tool.

Installed by tests/support/macos.py into a test host's PATH as `launchctl`, `plutil`,
`pmset`, `sysctl`, `sw_vers`, `uname` and `sudo` (symlinks to this file; it dispatches on
its name). State lives in ~/.macstandin. They print what Apple's tools print (launchctl's
`print` block, "Bootstrap failed: 5: Input/output error" for a job already loaded, a new pid
after `kickstart -k`), and they reproduce the behaviours the tool must handle: `bootout`
returns before the job is gone, a job whose program exits is restarted (KeepAlive) with
`runs` rising and `last exit code` set. Standard library only.
"""

from __future__ import annotations

import contextlib
import json
import os
import plistlib
import signal
import subprocess
import sys
import time
from pathlib import Path

STATE = Path(os.path.expanduser("~/.macstandin"))
JOBS = STATE / "launchd.json"
SETTINGS = STATE / "settings.json"
BOOTOUT_LINGER_S = 0.6  # launchd tears a job down after bootout has returned


def load(path: Path, default: dict) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return default


def save(path: Path, data: dict) -> None:
    STATE.mkdir(exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1))
    os.replace(tmp, path)


def alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def exit_code_of(job: dict) -> int:
    status = Path(job["status_file"])
    try:
        return int(status.read_text().strip() or "0")
    except (OSError, ValueError):
        return 0


def spawn(job: dict) -> None:
    """Start the job's program as launchd would: its own session, its environment only."""
    plist = plistlib.loads(Path(job["plist"]).read_bytes())
    env = {str(k): str(v) for k, v in plist.get("EnvironmentVariables", {}).items()}
    env.setdefault("PATH", "/usr/bin:/bin:/usr/sbin:/sbin")
    out = plist.get("StandardOutPath", "/dev/null")
    err = plist.get("StandardErrorPath", out)
    status = STATE / f"{plist['Label']}.status"
    status.unlink(missing_ok=True)
    # A tiny supervisor records the exit status, as launchd keeps `last exit code`.
    wrapper = (
        "import subprocess, sys\n"
        "r = subprocess.call(sys.argv[2:])\n"
        'open(sys.argv[1], "w").write(str(r))\n'
    )
    with open(out, "ab") as stdout, open(err, "ab") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-c", wrapper, str(status), *plist["ProgramArguments"]],
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=stderr,
            env=env,
            cwd=plist.get("WorkingDirectory", "/"),
            start_new_session=True,
        )
    job.update(
        pid=proc.pid, runs=job.get("runs", 0) + 1, status_file=str(status), spawned_at=time.time()
    )


def kill(job: dict) -> None:
    pid = job.get("pid")
    if pid and alive(pid):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGTERM)
        deadline = time.time() + 5
        while time.time() < deadline and alive(pid):
            time.sleep(0.05)
        if alive(pid):
            os.killpg(pid, signal.SIGKILL)


def refresh(jobs: dict) -> None:
    """What launchd does on its own between our calls: finish bootouts, restart crashed
    KeepAlive jobs."""
    now = time.time()
    for label in list(jobs):
        job = jobs[label]
        if job.get("gone_at") and now >= job["gone_at"]:
            del jobs[label]
            continue
        if job.get("gone_at"):
            continue
        if job.get("pid") and not alive(job["pid"]):
            job["last_exit"] = exit_code_of(job)
            job["pid"] = None
        if job.get("pid") is None and job.get("runs"):
            plist = plistlib.loads(Path(job["plist"]).read_bytes())
            # KeepAlive restarts it, but no sooner than ThrottleInterval after the last start.
            throttle = plist.get("ThrottleInterval", 10)
            if plist.get("KeepAlive") and now - job.get("spawned_at", 0) >= throttle:
                spawn(job)


def target(arg: str) -> tuple[str, str]:
    domain, _, label = arg.rpartition("/")
    return domain, label


def launchctl(args: list[str]) -> int:
    jobs = load(JOBS, {})
    refresh(jobs)
    verb = args[0] if args else ""
    try:
        if verb == "bootstrap":
            domain, plist_path = args[1], args[2]
            label = plistlib.loads(Path(plist_path).read_bytes())["Label"]
            if label in jobs:
                print("Bootstrap failed: 5: Input/output error", file=sys.stderr)
                return 5
            job = {"domain": domain, "plist": plist_path, "runs": 0, "last_exit": None}
            if plistlib.loads(Path(plist_path).read_bytes()).get("RunAtLoad"):
                spawn(job)
            jobs[label] = job
            return 0
        if verb == "bootout":
            _, label = target(args[1])
            job = jobs.get(label)
            if job is None or job.get("gone_at"):
                print("Boot-out failed: 3: No such process", file=sys.stderr)
                return 3
            kill(job)
            job["gone_at"] = time.time() + BOOTOUT_LINGER_S  # still listed for a moment
            return 0
        if verb == "enable":
            return 0
        if verb == "kickstart":
            _, label = target(args[-1])
            job = jobs.get(label)
            if job is None:
                print(f'Could not find service "{label}" in domain for port', file=sys.stderr)
                return 113
            if "-k" in args:
                kill(job)
                job["last_exit"] = -15
            if not alive(job.get("pid")):
                spawn(job)
            return 0
        if verb == "print":
            domain, label = target(args[1])
            job = jobs.get(label)
            if job is None:
                print(f'Could not find service "{label}" in domain for port', file=sys.stderr)
                return 113
            plist = plistlib.loads(Path(job["plist"]).read_bytes())
            running = alive(job.get("pid"))
            lines = [
                f"{domain}/{label} = {{",
                "\tactive count = " + ("1" if running else "0"),
                f"\tpath = {job['plist']}",
                "\tstate = "
                + (
                    "running"
                    if running
                    else ("spawn scheduled" if job.get("runs") else "not running")
                ),
                "",
                f"\tprogram = {plist['ProgramArguments'][0]}",
                "\targuments = {",
                *[f"\t\t{a}" for a in plist["ProgramArguments"]],
                "\t}",
                "",
                f"\tstdout path = {plist.get('StandardOutPath', '/dev/null')}",
                f"\truns = {job.get('runs', 0)}",
            ]
            if running:
                lines.append(f"\tpid = {job['pid']}")
            if job.get("last_exit") is not None:
                lines.append(f"\tlast exit code = {job['last_exit']}")
            else:
                lines.append("\tlast exit code = (never exited)")
            lines.append("}")
            print("\n".join(lines))
            return 0
        print(f"Unrecognized subcommand: {verb}", file=sys.stderr)
        return 64
    finally:
        save(JOBS, jobs)


def plutil(args: list[str]) -> int:
    if args[:1] != ["-lint"]:
        print("plutil stand-in: only -lint", file=sys.stderr)
        return 64
    status = 0
    for name in args[1:]:
        try:
            plistlib.loads(Path(name).read_bytes())
            print(f"{name}: OK")
        except Exception as exc:  # noqa: BLE001 - any parse failure is "not OK"
            print(f"{name}: {exc}")
            status = 1
    return status


DEFAULTS = {"sleep": "1", "disksleep": "10", "autorestart": "0", "iogpu.wired_limit_mb": "0"}


def pmset(args: list[str]) -> int:
    settings = load(SETTINGS, dict(DEFAULTS))
    if args[:1] == ["-g"]:
        print("System-wide power settings:\nCurrently in use:")
        for key in ("sleep", "disksleep", "autorestart"):
            print(f" {key:<20}{settings.get(key, DEFAULTS[key])}")
        return 0
    if args[:1] == ["-a"] and len(args) >= 3:
        pairs = args[1:]
        for key, value in zip(pairs[::2], pairs[1::2], strict=False):
            settings[key] = value
        save(SETTINGS, settings)
        return 0
    return 1


def sysctl(args: list[str]) -> int:
    settings = load(SETTINGS, dict(DEFAULTS))
    if args[:1] == ["-n"] and len(args) == 2:
        print(settings.get(args[1], DEFAULTS.get(args[1], "0")))
        return 0
    if len(args) == 1 and "=" in args[0]:
        key, value = args[0].split("=", 1)
        settings[key] = value
        save(SETTINGS, settings)
        print(f"{key}: {value}")
        return 0
    return 1


def sw_vers(args: list[str]) -> int:
    values = {"ProductName": "macOS", "ProductVersion": "14.5", "BuildVersion": "23F79"}
    if args and args[0].startswith("-"):
        key = {
            "-productName": "ProductName",
            "-productVersion": "ProductVersion",
            "-buildVersion": "BuildVersion",
        }.get(args[0])
        print(values.get(key or "", ""))
        return 0
    for key, value in values.items():
        print(f"{key}:\t\t{value}")
    return 0


def uname(args: list[str]) -> int:
    parts = {"-s": "Darwin", "-r": "23.5.0", "-m": "arm64", "-n": os.uname().nodename}
    flags = [a for a in args if a.startswith("-")] or ["-s"]
    words = []
    for flag in flags:
        for ch in flag[1:]:
            words.append(parts.get(f"-{ch}", "Darwin"))
    print(" ".join(words))
    return 0


def sudo(args: list[str]) -> int:
    """Runs the command as this user: the stand-ins keep their state in the user's home.
    `sudo -n` with ~/.macstandin/sudo-needs-password present fails as real sudo does."""
    args = [a for a in args if a != "-n"]
    if (STATE / "sudo-needs-password").exists():
        print("sudo: a password is required", file=sys.stderr)
        return 1
    if args and os.path.basename(args[0]) == "chown":
        # The test user cannot give a file to root: record what was asked instead.
        STATE.mkdir(exist_ok=True)
        with open(STATE / "chown.log", "a") as log:
            log.write(" ".join(args[1:]) + "\n")
        return 0
    return subprocess.call(args)


TOOLS = {
    "launchctl": launchctl,
    "plutil": plutil,
    "pmset": pmset,
    "sysctl": sysctl,
    "sw_vers": sw_vers,
    "uname": uname,
    "sudo": sudo,
}

if __name__ == "__main__":
    tool = os.path.basename(sys.argv[0])
    sys.exit(TOOLS[tool](sys.argv[1:]))
