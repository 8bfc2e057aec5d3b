#!/usr/bin/python3
"""STAND-INS for Apple's tools, as strict as macOS, so that a Linux test host is a Mac to the tool.

Installed root-owned in /opt/localai-macstandin/bin (tests/support/macos.py) as `launchctl`,
`plutil`, `pmset`, `sysctl`, `sw_vers`, `uname`, `stat`, `xcode-select`, `fdesetup` and
`vm_stat`
(symlinks to this file; it dispatches on its name), first in the PATH of a test host's SSH
sessions. `sudo` is NOT a stand-in: the tests use Debian's real sudo with exactly the sudoers
line the tool tells the admin to add, so a command the tool runs as root that the line does
not grant fails as it would on a Mac; files given to root are really root's.

Every output and refusal below is taken from real macOS output in public sources, listed in
tests/fixtures/macos/SOURCES.md (section letters in brackets, e.g. [b1]); where no real output
was found, the line says INFERRED and docs/macos-acceptance.md records it on the first real Mac.

One state folder per stand-in Mac: ~ACCOUNT/.macstandin, where ACCOUNT is the caller, or
SUDO_USER when the caller is root through sudo (the root helper), so that each test host on
this one Linux machine is a Mac of its own. launchd itself is played by one supervisor
process per loaded job (`macstandin.py _supervise`), which runs the job's program as its
UserName, restarts a KeepAlive job no sooner than ThrottleInterval after its last start, and
records its pid, runs, exit code or terminating signal, as launchd does.
Standard library only.
"""

from __future__ import annotations

import contextlib
import json
import os
import plistlib
import pwd
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

TOOLS_DIR = Path(__file__).resolve().parent
BOOTOUT_LINGER_S = 0.6  # launchd tears a job down after bootout has returned [b1]
BOOTSTRAP_COOLDOWN_S = (
    2.0  # and bootstrap fails with 5 a moment longer, after print no longer shows it [b1]
)
EXIT_TIMEOUT_S = 5.0  # launchd's default ExitTimeOut: SIGTERM, then SIGKILL [a2 `exit timeout = 5`]

# sysexits.h names launchd prints after the code: `last exit code = 78: EX_CONFIG` [a5]. Other
# codes are printed bare (`last exit code = 1` [a1, a3]: no name was seen after 1).
SYSEXITS = {
    64: "EX_USAGE",
    65: "EX_DATAERR",
    66: "EX_NOINPUT",
    67: "EX_NOUSER",
    68: "EX_NOHOST",
    69: "EX_UNAVAILABLE",
    70: "EX_SOFTWARE",
    71: "EX_OSERR",
    72: "EX_OSFILE",
    73: "EX_CANTCREAT",
    74: "EX_IOERR",
    75: "EX_TEMPFAIL",
    76: "EX_PROTOCOL",
    77: "EX_NOPERM",
    78: "EX_CONFIG",
}
# macOS strsignal() texts: `last terminating signal = Killed: 9`, `Terminated: 15` [a5].
SIGNAL_NAMES = {
    1: "Hangup",
    2: "Interrupt",
    3: "Quit",
    4: "Illegal instruction",
    6: "Abort trap",
    9: "Killed",
    10: "Bus error",
    11: "Segmentation fault",
    15: "Terminated",
}


# --- state --------------------------------------------------------------------------------------


def account() -> str:
    """Whose Mac this is: the caller, or the account sudo ran the root helper for."""
    if os.geteuid() == 0 and os.environ.get("SUDO_USER"):
        return os.environ["SUDO_USER"]
    return pwd.getpwuid(os.getuid()).pw_name


def state_dir() -> Path:
    entry = pwd.getpwnam(account())
    path = Path(entry.pw_dir) / ".macstandin"
    if not path.exists():
        path.mkdir()
        give_back(path)
    return path


def give_back(path: Path) -> None:
    """Files root writes in the account's state folder stay the account's (so that its own
    `launchctl print` can update them)."""
    if os.geteuid() == 0:
        entry = pwd.getpwnam(account())
        with contextlib.suppress(OSError):
            os.chown(path, entry.pw_uid, entry.pw_gid)


def load(name: str, default: Any) -> Any:
    try:
        return json.loads((state_dir() / name).read_text())
    except (OSError, ValueError):
        return default


def save(name: str, data: Any) -> None:
    path = state_dir() / name
    tmp = path.with_name(f".{name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=1))
    give_back(tmp)
    os.replace(tmp, path)


def flag(name: str) -> bool:
    return (state_dir() / name).exists()


def setting(name: str, default: str) -> str:
    return str(load("settings.json", {}).get(name, default))


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


# --- launchd: one supervisor per loaded job -----------------------------------------------------


def job_status(label: str) -> dict[str, Any]:
    status: dict[str, Any] = load(f"job-{label}.json", {})
    return status


def supervise(label: str) -> None:
    """Play launchd for one job until bootout (SIGTERM to this supervisor)."""
    jobs = load("launchd.json", {})
    plist = plistlib.loads(Path(jobs[label]["plist"]).read_bytes())
    status: dict[str, Any] = {"runs": 0, "pid": None, "state": "not running"}
    child: subprocess.Popen[bytes] | None = None
    stopping = False

    def stop(_signum: int, _frame: Any) -> None:
        nonlocal stopping
        stopping = True
        if child is not None and child.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.pid, signal.SIGTERM)
            try:
                child.wait(EXIT_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(child.pid, signal.SIGKILL)
                child.wait()
        status.update(pid=None, state="not running")
        save(f"job-{label}.json", status)
        os._exit(0)

    signal.signal(signal.SIGTERM, stop)
    kick = state_dir() / f"kick-{label}"
    run_now = bool(plist.get("RunAtLoad")) or bool(plist.get("KeepAlive"))
    last_start = 0.0
    while not stopping:
        if kick.exists():
            kick.unlink()
            run_now = True
        if run_now:
            throttle = float(plist.get("ThrottleInterval", 10))
            wait = last_start + throttle - time.time()
            if status["runs"] and wait > 0 and not kick_requested(status):
                status["state"] = "spawn scheduled"  # KeepAlive's back-off [a3]
                save(f"job-{label}.json", status)
                time.sleep(min(wait, 0.2))
                continue
            status.pop("kick", None)
            last_start = time.time()
            child = spawn(plist)
            status.update(
                pid=child.pid, runs=status["runs"] + 1, state="running", spawned_at=last_start
            )
            save(f"job-{label}.json", status)
            code = child.wait()
            child = None
            status.update(pid=None, state="not running")
            if code < 0:
                status.update(last_signal=-code)
                status.pop("last_exit", None)
            else:
                status.update(last_exit=code)
                status.pop("last_signal", None)
            save(f"job-{label}.json", status)
            run_now = bool(plist.get("KeepAlive"))
            continue
        time.sleep(0.2)


def kick_requested(status: dict[str, Any]) -> bool:
    return bool(status.get("kick"))


def spawn(plist: dict[str, Any]) -> subprocess.Popen[bytes]:
    """Start the job's program as launchd would: its own session, the plist's environment
    only, as its UserName (launchd refuses nothing here: a job that cannot open its log
    files ends with 78: EX_CONFIG [a5])."""
    env = {str(k): str(v) for k, v in plist.get("EnvironmentVariables", {}).items()}
    # On this Linux machine Apple's tools are these stand-ins, not /usr/sbin: a job finds
    # them first, as a real job finds sysctl in /usr/sbin.
    env["PATH"] = f"{TOOLS_DIR}:" + env.get("PATH", "/usr/bin:/bin:/usr/sbin:/sbin")
    user = plist.get("UserName")
    kwargs: dict[str, Any] = {}
    if os.geteuid() == 0:
        entry = pwd.getpwnam(user or account())
        kwargs = {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}
    out = plist.get("StandardOutPath", "/dev/null")
    err = plist.get("StandardErrorPath", out)
    try:
        stdout = open_as(out, kwargs)
        stderr = open_as(err, kwargs)
    except OSError:
        return subprocess.Popen([sys.executable, "-c", "raise SystemExit(78)"])
    try:
        return subprocess.Popen(
            plist["ProgramArguments"],
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=stderr,
            env=env,
            cwd=plist.get("WorkingDirectory", "/"),
            start_new_session=True,
            **kwargs,
        )
    except OSError:
        # A missing or unrunnable program: launchd reports 78: EX_CONFIG [a5].
        return subprocess.Popen([sys.executable, "-c", "raise SystemExit(78)"])
    finally:
        stdout.close()
        stderr.close()


def open_as(path: str, kwargs: dict[str, Any]) -> Any:
    """Open a log file as the job's user would (launchd opens it for the job)."""
    if kwargs and os.geteuid() == 0:
        pid = os.fork()
        if pid == 0:  # check the job's user may open it
            try:
                os.setgid(kwargs["group"])
                os.setgroups([])
                os.setuid(kwargs["user"])
                open(path, "ab").close()
                os._exit(0)
            except OSError:
                os._exit(1)
        _, code = os.waitpid(pid, 0)
        if code:
            raise PermissionError(path)
    return open(path, "ab")


def domain_exists(domain: str) -> bool:
    """`gui/UID` exists only while UID is logged in at the console [b3]."""
    if not domain.startswith("gui/"):
        return domain == "system"
    return setting("console_uid", "0") == domain.split("/", 1)[1]


def domain_words(domain: str) -> str:
    """launchctl's spelling of a domain in its messages: `system`, `user gui: 501` [b6]."""
    return "system" if domain == "system" else f"user gui: {domain.split('/', 1)[1]}"


def may_change(domain: str) -> bool:
    """Root changes the system domain; a user changes only the gui domain of its own uid."""
    if os.geteuid() == 0:
        return True
    return domain == f"gui/{os.getuid()}"


def refresh(jobs: dict[str, Any]) -> None:
    now = time.time()
    for label in [k for k in jobs if not k.startswith("_")]:
        gone = jobs[label].get("gone_at")
        if gone and now >= gone:
            jobs.pop(label)
    cooldowns = {k: v for k, v in jobs.get("_cooldown", {}).items() if v > now}  # [b1]
    jobs["_cooldown"] = cooldowns


def split_target(text: str) -> tuple[str, str]:
    domain, _, label = text.rpartition("/")
    return domain, label


def not_permitted(verb: str, label: str) -> int:
    if verb == "kickstart":  # [b4] (macOS 14.4)
        print(f'Could not kickstart service "{label}": 1: Operation not permitted', file=sys.stderr)
    else:  # INFERRED from launchd's log line `code = 1: Operation not permitted` [b4]
        word = {"bootstrap": "Bootstrap", "bootout": "Boot-out"}.get(verb, verb.capitalize())
        print(f"{word} failed: 1: Operation not permitted", file=sys.stderr)
    return 1


def launchctl(args: list[str]) -> int:
    jobs = load("launchd.json", {})
    refresh(jobs)
    try:
        return _launchctl(jobs, args)
    finally:
        save("launchd.json", jobs)


def _launchctl(jobs: dict[str, Any], args: list[str]) -> int:
    verb = args[0] if args else ""
    disabled: list[str] = jobs.setdefault("_disabled", [])
    if verb == "bootstrap" and len(args) == 3:
        domain, path = args[1], args[2]
        if not may_change(domain):
            return not_permitted(verb, path)
        if not domain_exists(domain):
            print("Bootstrap failed: 5: Input/output error", file=sys.stderr)  # [b3]
            return 5
        try:
            data = Path(path).read_bytes()
            info = os.stat(path)
            label = plistlib.loads(data)["Label"]
        except (OSError, ValueError, KeyError, plistlib.InvalidFileException):
            print("Bootstrap failed: 5: Input/output error", file=sys.stderr)
            return 5
        root_only = domain == "system" and (info.st_uid != 0 or info.st_mode & 0o022)
        busy = label in jobs or label in jobs["_cooldown"]
        if root_only or busy:
            # Loaded, still draining after a bootout [b1], or a daemon plist not owned by
            # root / writable by others (launchd logs "bad ownership/permissions").
            print("Bootstrap failed: 5: Input/output error", file=sys.stderr)
            if os.geteuid() != 0:
                print("Try re-running the command as root for richer errors.", file=sys.stderr)
            return 5
        if f"{domain}/{label}" in disabled:  # [b2]
            print(f"{path}: Service is disabled", file=sys.stderr)
            print("Bootstrap failed: 119: Service is disabled", file=sys.stderr)
            return 119
        jobs[label] = {"domain": domain, "plist": path}
        save("launchd.json", jobs)
        save(f"job-{label}.json", {"runs": 0, "pid": None, "state": "not running"})
        proc = subprocess.Popen(
            [sys.executable, str(TOOLS_DIR / "macstandin.py"), "_supervise", label],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        jobs[label]["supervisor"] = proc.pid
        return 0
    if verb in ("bootout", "enable", "disable", "kickstart", "print") and len(args) >= 2:
        domain, label = split_target(args[-1])
        job = jobs.get(label) if label in jobs and not label.startswith("_") else None
        if job is not None and job["domain"] != domain:
            job = None
        if verb == "print":
            return print_job(domain, label, job)
        if not may_change(domain):
            return not_permitted(verb, label)
        if verb in ("enable", "disable"):
            target = f"{domain}/{label}"
            if verb == "disable" and target not in disabled:
                disabled.append(target)
            if verb == "enable" and target in disabled:
                disabled.remove(target)
            return 0
        if job is None or job.get("gone_at"):
            if verb == "bootout":
                print("Boot-out failed: 3: No such process", file=sys.stderr)  # [b5]
                return 3
            print(  # [b8]
                f'Could not find service "{label}" in domain for {domain_words(domain)}',
                file=sys.stderr,
            )
            return 113
        if verb == "bootout":
            supervisor = job.get("supervisor")
            if alive(supervisor):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(supervisor, signal.SIGTERM)
            # Still listed for a moment, and bootstrap refused a moment longer [b1].
            job["gone_at"] = time.time() + BOOTOUT_LINGER_S
            jobs["_cooldown"][label] = time.time() + BOOTOUT_LINGER_S + BOOTSTRAP_COOLDOWN_S
            return 0
        # kickstart [-k]: a new process now (with -k, the running one is killed first).
        status = job_status(label)
        if "-k" in args and alive(status.get("pid")):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(status["pid"], signal.SIGTERM)
        status["kick"] = True
        save(f"job-{label}.json", status)
        (state_dir() / f"kick-{label}").write_text("")
        give_back(state_dir() / f"kick-{label}")
        return 0
    print(f"Unrecognized subcommand: {verb}", file=sys.stderr)
    return 64


def print_job(domain: str, label: str, job: dict[str, Any] | None) -> int:
    """`launchctl print DOMAIN/LABEL` in the layout of [a2], [a3], [a4], [a5]; anyone may
    read the system domain."""
    if not domain_exists(domain):
        print(f"Could not find domain for {domain_words(domain)}", file=sys.stderr)  # [b3]
        return 113  # INFERRED: the exit status of a missing domain was not found [b7]
    if job is None:
        print("Bad request.", file=sys.stderr)  # [b6]
        print(
            f'Could not find service "{label}" in domain for {domain_words(domain)}',
            file=sys.stderr,
        )
        return 113
    plist = plistlib.loads(Path(job["plist"]).read_bytes())
    status = job_status(label)
    running = status.get("state") == "running" and alive(status.get("pid"))
    state = (
        status.get("state", "not running")
        if running or status.get("state") != "running"
        else "not running"
    )
    env = plist.get("EnvironmentVariables", {})
    lines = [
        f"{domain}/{label} = {{",
        f"\tactive count = {1 if running else 0}",
        f"\tpath = {job['plist']}",
        "\ttype = " + ("LaunchDaemon" if domain == "system" else "LaunchAgent"),
        f"\tstate = {state}",
        "",
        f"\tprogram = {plist['ProgramArguments'][0]}",
        "\targuments = {",
        *[f"\t\t{a}" for a in plist["ProgramArguments"]],
        "\t}",
        "",
        f"\tworking directory = {plist.get('WorkingDirectory', '/')}",
        "",
        f"\tstdout path = {plist.get('StandardOutPath', '/dev/null')}",
        f"\tstderr path = {plist.get('StandardErrorPath', '/dev/null')}",
        "\tdefault environment = {",
        "\t\tPATH => /usr/bin:/bin:/usr/sbin:/sbin",
        "\t}",
        "",
        "\tenvironment = {",
        *[f"\t\t{k} => {v}" for k, v in sorted(env.items())],
        f"\t\tXPC_SERVICE_NAME => {label}",
        "\t}",
        "",
        f"\tdomain = {domain}",
    ]
    if plist.get("UserName"):
        lines.append(f"\tusername = {plist['UserName']}")
    lines += ["\tminimum runtime = 10", "\texit timeout = 5", f"\truns = {status.get('runs', 0)}"]
    if running:
        lines.append(f"\tpid = {status['pid']}")
    if status.get("last_signal") is not None:
        sig = int(status["last_signal"])
        lines.append(f"\tlast terminating signal = {SIGNAL_NAMES.get(sig, 'Signal')}: {sig}")
    elif status.get("last_exit") is not None:
        code = int(status["last_exit"])
        name = f": {SYSEXITS[code]}" if code in SYSEXITS else ""
        lines.append(f"\tlast exit code = {code}{name}")
    else:
        lines.append("\tlast exit code = (never exited)")
    lines += [
        "",
        "\tspawn type = interactive (4)",
        "\tendpoints = {",  # a nested block with a pid of its own: not the job's [a5]
        "\t\tpid = 1",
        "\t}",
        "}",
    ]
    print("\n".join(lines))
    return 0


# --- the other tools ----------------------------------------------------------------------------


def plutil(args: list[str]) -> int:
    """-lint FILE..., -convert xml1 FILE, -extract KEY raw [-o -] FILE [d1], [d2]."""
    if args[:1] == ["-lint"]:
        status = 0
        for name in args[1:]:
            try:
                plistlib.loads(Path(name).read_bytes())
                print(f"{name}: OK")
            except Exception as exc:  # noqa: BLE001 - any parse failure is "not OK"
                print(f"{name}: {exc}")
                status = 1
        return status
    if args[:2] == ["-convert", "xml1"] and len(args) == 3:
        path = Path(args[2])
        try:
            value = plistlib.loads(path.read_bytes())
        except Exception as exc:  # noqa: BLE001
            print(f"{path}: Property List error: {exc}", file=sys.stderr)
            return 1
        path.write_bytes(plistlib.dumps(value, sort_keys=True))
        return 0
    if args[:1] == ["-extract"] and len(args) >= 4 and args[2] == "raw":
        key, path = args[1], args[-1]
        try:
            value: Any = plistlib.loads(Path(path).read_bytes())
            for part in key.split("."):
                value = value[int(part)] if isinstance(value, list) else value[part]
        except (KeyError, IndexError, ValueError, TypeError, OSError):
            print(
                f"{path}: Could not extract value, error: No value at that key path or "
                f"invalid key path: {key}"
            )
            return 1
        if isinstance(value, bool):
            value = "true" if value else "false"
        if isinstance(value, (dict, list)):
            print(f"{path}: Could not extract value, error: not a raw value: {key}")
            return 1
        print(value)
        return 0
    print("plutil stand-in: only -lint, -convert xml1 and -extract KEY raw", file=sys.stderr)
    return 64


PMSET_DEFAULTS = {"sleep": "1", "disksleep": "10", "autorestart": "0"}


def pmset(args: list[str]) -> int:
    settings = load("settings.json", {})
    if args[:1] == ["-g"]:
        # The layout of [e4] (with autorestart, which a Mac mini lists).
        value = {k: settings.get(k, v) for k, v in PMSET_DEFAULTS.items()}
        print("System-wide power settings:\nCurrently in use:")
        print(" standby              0")
        print(f" autorestart          {value['autorestart']}")
        print(f" disksleep            {value['disksleep']}")
        print(f" sleep                {value['sleep']}")
        print(" displaysleep         10")
        return 0
    if args[:1] == ["-a"] and len(args) >= 3:
        if os.geteuid() != 0:
            print("pmset must be run as root", file=sys.stderr)  # INFERRED
            return 1
        for key, value in zip(args[1::2], args[2::2], strict=False):
            settings[key] = value
        save("settings.json", settings)
        return 0
    return 1


def sysctl(args: list[str]) -> int:
    """Reads `NAME: VALUE` (with -n the value alone); root writes `NAME: OLD -> NEW` [e1]."""
    settings = load("settings.json", {})
    values = {
        "iogpu.wired_limit_mb": str(settings.get("iogpu.wired_limit_mb", "0")),
        "hw.memsize": str(settings.get("hw.memsize", 16 * 1024**3)),
    }
    bare = args[:1] == ["-n"]
    status = 0
    for arg in args[1:] if bare else args:
        name, sep, new = arg.partition("=")
        if name not in values:
            print(f"sysctl: unknown oid '{name}'", file=sys.stderr)
            status = 1
            continue
        if sep:
            if os.geteuid() != 0:  # INFERRED [e1]
                print(f"sysctl: {arg}: Operation not permitted", file=sys.stderr)
                status = 1
                continue
            print(f"{name}: {values[name]} -> {new}")
            settings[name] = new
            save("settings.json", settings)
        else:
            print(values[name] if bare else f"{name}: {values[name]}")
    return status


def sw_vers(args: list[str]) -> int:
    version = setting("ProductVersion", "14.5")
    values = {"ProductName": "macOS", "ProductVersion": version, "BuildVersion": "23F79"}
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
    words = [parts.get(f"-{ch}", "Darwin") for flag_ in flags for ch in flag_[1:]]
    print(" ".join(words))
    return 0


def stat(args: list[str]) -> int:
    """BSD stat's `-f FORMAT FILE` for the owner of /dev/console (who is logged in at the
    Mac's screen): `%u` the uid, `%Su` the name. GNU options are refused, as BSD stat does."""
    if len(args) != 3 or args[0] != "-f" or args[2] != "/dev/console":
        print(f"stat: illegal option -- {args[0][1:2] if args else ''}", file=sys.stderr)
        return 1
    uid = int(setting("console_uid", "0"))
    print(pwd.getpwuid(uid).pw_name if args[1] == "%Su" else uid)
    return 0


def xcode_select(args: list[str]) -> int:
    """`-p`: the developer folder, or the error of a Mac without the tools [e3]."""
    if args != ["-p"]:
        return 64
    if flag("no-clt"):
        print(
            "xcode-select: error: Unable to get active developer directory. Use `sudo "
            "xcode-select --switch path/to/Xcode.app` to set one (or see `man xcode-select`)",
            file=sys.stderr,
        )
        return 2  # INFERRED: the exit status was not found [e3]
    print("/Library/Developer/CommandLineTools")
    return 0


def fdesetup(args: list[str]) -> int:
    if args != ["status"]:
        return 64
    print("FileVault is On." if flag("filevault-on") else "FileVault is Off.")  # [e2]
    return 0


def vm_stat(args: list[str]) -> int:
    """`vm_stat` of an idle Apple silicon Mac: 16 KB pages, a quarter of the memory free and
    a quarter inactive, the format of [e10] (each count ends with a period)."""
    if args:
        return 64  # INFERRED: the tool only ever runs it bare
    total = int(load("settings.json", {}).get("hw.memsize", 16 * 1024**3)) // 16384
    lines = [
        ("Pages free", total // 4),
        ("Pages active", total // 4),
        ("Pages inactive", total // 4),
        ("Pages speculative", total // 32),
        ("Pages throttled", 0),
        ("Pages wired down", total // 8),
        ("Pages purgeable", total // 64),
        ('"Translation faults"', 123456789),
        ("Pages copy-on-write", 1234567),
    ]
    print("Mach Virtual Memory Statistics: (page size of 16384 bytes)")
    for name, count in lines:
        print(f"{name + ':':<40}{count:>13}.")
    return 0


TOOLS = {
    "launchctl": launchctl,
    "plutil": plutil,
    "pmset": pmset,
    "sysctl": sysctl,
    "sw_vers": sw_vers,
    "uname": uname,
    "stat": stat,
    "xcode-select": xcode_select,
    "fdesetup": fdesetup,
    "vm_stat": vm_stat,
}

if __name__ == "__main__":
    if sys.argv[1:2] == ["_supervise"]:
        supervise(sys.argv[2])
        sys.exit(0)
    tool = os.path.basename(sys.argv[0])
    sys.exit(TOOLS[tool](sys.argv[1:]))
