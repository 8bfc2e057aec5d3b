# Part of the facts script sent to hosts (see remote_base.py): the sections every host has,
# and main, which runs them and prints the framed JSON.

import os
import pwd
import sys
import time

if False:  # for linters only (see remote_base.py): on the host these are defined above
    from localai_provision.facts.remote_base import (
        BEGIN,
        END,
        http_get,
        json_dumps,
        json_loads,
        listdir,
        port_open,
        read_text,
        run,
        sha256_type,
    )
if False:  # for linters only (see remote_base.py): on the host these are defined above
    from localai_provision.facts.remote_cache import cache_section, memory_section
if False:  # for linters only (see remote_base.py): on the host these are defined above
    from localai_provision.facts.remote_mac import (
        darwin_process,
        launchd_section,
        mac_section,
        macos_settings_section,
        pull_timer_section,
    )


def system_section():
    u = os.uname()
    # The shell wrapper passes `uname -srm`: the command, not the kernel call, is what a
    # host reports (and what a test host's stand-in can answer).
    reported = os.environ.get("LOCALAI_UNAME", "").split()
    sysname, release, machine = (reported + [u.sysname, u.release, u.machine][len(reported) :])[:3]
    info = {
        "sysname": sysname,
        "release": release,
        "machine": machine,
        "nodename": u.nodename,
        "uid": os.getuid(),
        "home": os.path.expanduser("~"),
        "user": pwd.getpwuid(os.getuid()).pw_name,
        "time": time.time(),
    }
    if sysname == "Darwin":
        status, out, _ = run(["sw_vers"])
        info["sw_vers"] = out if status == 0 else None
        info["system_version_plist"] = read_text("/System/Library/CoreServices/SystemVersion.plist")
    else:
        info["os_release"] = read_text("/etc/os-release")
        info["portaudio"] = portaudio_present()
    return info


def python_section(cfg):
    return {
        "requested": cfg["python"],
        "executable": sys.executable,
        "version": list(sys.version_info[:3]),
        # Set by the shell wrapper when the requested interpreter was not found and another
        # one runs this script instead.
        "fallback": os.environ.get("LOCALAI_PY_FALLBACK") == "1",
    }


def venv_section(venv, markers):
    site_dirs = []
    lib = os.path.join(venv, "lib")
    for name in listdir(lib) or []:
        if name.startswith("python"):
            site_dirs.append(os.path.join(lib, name, "site-packages"))
    dist_infos = []
    half_installed = {}
    for site in site_dirs:
        for name in listdir(site) or []:
            if name.endswith(".dist-info"):
                dist_infos.append(name)
                missing = missing_file(site, name)
                if missing:
                    half_installed[name] = missing
    python = os.path.join(venv, "bin", "python")
    return {
        "path": venv,
        "exists": os.path.isdir(venv),
        "python_exists": os.path.exists(python),  # False for a dangling symlink too
        # Written last when the tool builds a venv: its absence means an interrupted build.
        "complete": os.path.exists(os.path.join(venv, markers["complete_marker"])),
        # Written first: the venv is the tool's own, which it may delete and rebuild.
        "owned": os.path.exists(os.path.join(venv, markers["owned_marker"])),
        "empty": listdir(venv) == [],
        "pyvenv_cfg": read_text(os.path.join(venv, "pyvenv.cfg")),
        "dist_infos": dist_infos,
        "half_installed": half_installed,
        "site_packages": site_dirs,
        "shims": shim_hashes(site_dirs[0]) if site_dirs else {},
    }


def generations_section(prefix, layout):
    """The links to the current and previous generation, and each generation's markers and
    small meta file: a no-op check reads a few hundred bytes per generation, no venv."""

    def link(name):
        try:
            return os.readlink(os.path.join(prefix, name))
        except OSError:
            return None

    folders = [
        (n, os.path.join(prefix, layout["generations"], n))
        for n in sorted(listdir(os.path.join(prefix, layout["generations"])) or [])
    ]
    legacy = os.path.join(prefix, layout["venv"])
    if os.path.isdir(legacy):
        folders.append((layout["venv"], legacy))
    items = []
    for name, path in folders:
        if not os.path.isdir(path) or name.startswith("."):
            continue
        items.append(
            {
                "name": name,
                "owned": os.path.exists(os.path.join(path, layout["owned_marker"])),
                "complete": os.path.exists(os.path.join(path, layout["complete_marker"])),
                "meta": read_text(os.path.join(path, layout["generation_meta"]), 65536),
                "failed": read_text(os.path.join(path, layout["failed_marker"]), 65536),
                "mtime": int(os.stat(path).st_mtime),
            }
        )
    return {
        "current": link(layout["current"]),
        "previous": link(layout["previous"]),
        "items": items,
    }


def missing_file(site, dist_info):
    """The first file a package's RECORD lists that is gone (a half-installed or damaged
    package), or None. Installers write RECORD last: without it the install was cut short.
    Only the files an import or a command needs first are checked: top-level modules and
    package __init__ files, compiled extensions, scripts in bin/ (stat-ing every file of the
    server's 220 packages, about 47,000, took 0.3 s; these, about 2,000, 60 ms)."""
    record = read_text(os.path.join(site, dist_info, "RECORD"), 8 * 1024 * 1024)
    if record is None:
        return dist_info + "/RECORD"
    for line in record.splitlines():
        # path,hash,size; a path with a comma is quoted (then it is skipped, never misread).
        path = line.rsplit(",", 2)[0] if line.count(",") >= 2 else ""
        if not path or path.startswith('"'):
            continue
        if not (
            path.startswith("../")
            or (path.endswith(".py") and path.count("/") <= 1)
            or path.endswith((".so", ".dylib", ".pyd"))
        ):
            continue
        if not os.path.lexists(os.path.join(site, path)):
            return path
    return None


def shim_hashes(site):
    """sha256 of the tool's own files in site-packages (the start-up shim), by name."""
    sha256 = sha256_type()
    found = {}
    for name in listdir(site) or []:
        if name.startswith("localai_") and not name.endswith(".pyc"):
            try:
                with open(os.path.join(site, name), "rb") as f:
                    found[name] = sha256(f.read()).hexdigest()
            except OSError:
                pass
    return found


def env_digest(salt, name, value):
    """A value of the server's environment as it may leave the host: sha256 of a fresh random
    salt, the name and the value (layout.env_digest computes the same on the controller).
    Salted per run: no digest is seen twice, so none can be looked up or compared between
    runs or hosts."""
    data = "\0".join((salt, name, value)).encode("utf-8", "surrogatepass")
    return sha256_type()(data).hexdigest()


def server_config_section(path):
    """What the controller compares of PREFIX/server.json, and nothing it could leak: the
    file holds the server's environment, secrets included. The configuration's hash and
    argv (no secret is ever an argument: secrets are environment values), the environment's
    names, and a salted digest of each value."""
    text = read_text(path, 1024 * 1024)
    if text is None:
        return None
    try:
        data = json_loads(text)
    except Exception:  # noqa: BLE001 - a damaged file: said so, never shown
        data = None
    if not isinstance(data, dict):
        return {"readable": False}
    argv = data.get("argv")
    env = data.get("env")
    salt = os.urandom(16).hex()
    return {
        "readable": True,
        "hash": data.get("hash") if isinstance(data.get("hash"), str) else None,
        "argv": [a for a in argv if isinstance(a, str)] if isinstance(argv, list) else None,
        "salt": salt,
        "env": {
            str(name): env_digest(salt, str(name), value) if isinstance(value, str) else None
            for name, value in (env.items() if isinstance(env, dict) else ())
        },
    }


def portaudio_present():
    """Is PortAudio's library installed? (mlx-omni-server imports sounddevice at start.)"""
    for folder in ("/usr/lib", "/usr/local/lib", "/usr/lib64", "/lib"):
        for sub in ("", "x86_64-linux-gnu", "aarch64-linux-gnu"):
            for name in listdir(os.path.join(folder, sub)) or []:
                if name.startswith("libportaudio.so"):
                    return True
    return False


def linux_process(pid):
    base = f"/proc/{pid}"
    raw = None
    try:
        with open(base + "/cmdline", "rb") as f:
            raw = f.read()
    except OSError:
        return {"pid": pid, "alive": False}
    argv = [a.decode("utf-8", "replace") for a in raw.split(b"\0") if a]
    config_hash = None
    try:
        with open(base + "/environ", "rb") as f:
            for item in f.read().split(b"\0"):
                if item.startswith(b"LOCALAI_CONFIG_HASH="):
                    config_hash = item.split(b"=", 1)[1].decode("ascii", "replace")
    except OSError:
        pass
    elapsed = None
    try:
        stat = read_text(base + "/stat") or ""
        start_ticks = int(stat.rsplit(")", 1)[1].split()[19])
        uptime = float((read_text("/proc/uptime") or "0").split()[0])
        elapsed = uptime - start_ticks / os.sysconf("SC_CLK_TCK")
    except (ValueError, IndexError, OSError):
        pass
    return {
        "pid": pid,
        "alive": bool(argv),  # a zombie has an empty cmdline
        "argv": argv,
        "config_hash": config_hash,
        "elapsed_s": elapsed,
    }


def server_processes(uid):
    """Every process of ours that looks like an mlx-omni-server, as `PID ARGS` lines."""
    if os.path.isdir("/proc/self"):
        lines = []
        for name in os.listdir("/proc"):
            if not name.isdigit():
                continue
            try:
                if os.stat("/proc/" + name).st_uid != uid:
                    continue
                with open(f"/proc/{name}/cmdline", "rb") as f:
                    cmd = f.read().replace(b"\0", b" ").decode("utf-8", "replace").strip()
            except OSError:
                continue
            if "mlx-omni-server" in cmd or "mlx_omni_server" in cmd:
                lines.append(f"{name} {cmd}")
        return "\n".join(lines)
    import subprocess

    try:
        return subprocess.run(
            ["/bin/ps", "-x", "-ww", "-o", "pid=,command=", "-U", str(uid)],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            timeout=5,
        ).stdout.decode("utf-8", "replace")
    except (OSError, subprocess.SubprocessError):
        return None


def service_section(cfg, pid_file, launchd):
    pid_text = read_text(pid_file)
    pid = None
    if launchd and launchd.get("print"):
        # The job's pid is launchd's to tell: `pid = N` in the job's own block (depth 1),
        # not a nested one (endpoints, spawn info).
        depth = 0
        for line in launchd["print"].splitlines():
            stripped = line.strip()
            if stripped.endswith("{"):
                depth += 1
            elif stripped == "}":
                depth -= 1
            elif depth == 1:
                key, _, value = stripped.partition(" = ")
                if key == "pid" and value.strip().isdigit():
                    pid = int(value.strip())
    elif pid_text and pid_text.strip().isdigit():
        pid = int(pid_text.strip())
    process = None
    if pid:
        process = linux_process(pid) if os.path.isdir("/proc/self") else darwin_process(pid)
    return {
        "kind": cfg["service"],
        "pid_file": pid_text,
        "process": process,
        "server_processes": server_processes(os.getuid()),
    }


def model_section(hub, entry, marker):
    base = os.path.join(hub, entry["dir"])
    info = {"dir": entry["dir"], "exists": os.path.isdir(base)}
    if not info["exists"]:
        return info
    info["refs"] = {}
    refs_dir = os.path.join(base, "refs")
    for ref in listdir(refs_dir) or []:
        info["refs"][ref] = (read_text(os.path.join(refs_dir, ref), 200) or "").strip()
    info["snapshots"] = {}
    snaps = os.path.join(base, "snapshots")
    for rev in listdir(snaps) or []:
        files = []
        root = os.path.join(snaps, rev)
        for folder, _dirs, names in os.walk(root):
            for name in names:
                full = os.path.join(folder, name)
                rel = os.path.relpath(full, root)
                try:
                    files.append([rel, os.stat(full).st_size])  # follows the blob symlink
                except OSError:
                    files.append([rel, None])  # dangling: the blob is missing
        info["snapshots"][rev] = files
    info["incomplete_blobs"] = [
        n for n in (listdir(os.path.join(base, "blobs")) or []) if n.endswith(".incomplete")
    ]
    info["marker"] = read_text(os.path.join(base, marker), 4096)
    return info


def server_log_section(path, alive):
    """The size of server.log and of each server.log.N (one listing, a stat each), and the
    log's last 4 KiB when the server is not running: a crash says why there."""
    folder, base = os.path.split(path)
    sizes = {}
    for name in listdir(folder) or []:
        if name == base or (name.startswith(base + ".") and name[len(base) + 1 :].isdigit()):
            try:
                size = os.stat(os.path.join(folder, name)).st_size
            except OSError:
                continue
            sizes[name] = size
    info = {"path": path, "sizes": sizes}
    if not alive and sizes.get(base):
        start = max(0, sizes[base] - 4096)
        with open(path, "rb") as f:
            f.seek(start)
            info["tail"] = f.read(4096).decode("utf-8", "replace")
        info["tail_from"] = start
    return info


def main():
    started = time.perf_counter()
    cfg = json_loads(sys.argv[1])
    out = {"v": 1, "errors": {}}

    def section(name, fn, *args):
        try:
            out[name] = fn(*args)
        except Exception as exc:  # noqa: BLE001 - one broken section must not hide the others
            out["errors"][name] = f"{type(exc).__name__}: {exc}"

    prefix = os.path.expanduser(cfg["prefix"])
    hf_home = os.path.expanduser(cfg["hf_home"])
    section("system", system_section)
    section("python", python_section, cfg)
    out["prefix"] = {
        "path": prefix,
        "exists": os.path.isdir(prefix),
        "writable": os.access(
            prefix if os.path.isdir(prefix) else os.path.dirname(prefix), os.W_OK
        ),
    }
    paths = {k: os.path.join(prefix, v) for k, v in cfg["layout"].items()}
    section("generations", generations_section, prefix, cfg["layout"])
    # The venv described is the generation the `current` link names (the one serving), or
    # the single venv of older versions.
    current = (out.get("generations") or {}).get("current")
    venv = os.path.join(prefix, current) if current else paths["venv"]
    section("venv", venv_section, venv, cfg["layout"])
    section("server_config", server_config_section, paths["server_config"])
    out["state"] = read_text(paths["state"])
    out["lock"] = read_text(paths["lock_owner"], 4096)
    is_mac = out.get("system", {}).get("sysname") == "Darwin"
    if cfg.get("launchd") and (
        cfg["service"] == "launchd" or (cfg["service"] == "auto" and is_mac)
    ):
        section("launchd", launchd_section, cfg)
    if is_mac:
        section("mac", mac_section, cfg, out.get("system", {}).get("user", ""), out.get("venv"))
    if cfg.get("macos_settings") and is_mac:
        section("macos_settings", macos_settings_section, cfg, out.get("mac"))
    section("service", service_section, cfg, paths["pid_file"], out.get("launchd"))
    alive = ((out.get("service") or {}).get("process") or {}).get("alive")
    section("server_log", server_log_section, paths["server_log"], bool(alive))
    out["loaded_models"] = read_text(paths["loaded_models"], 65536)
    out["pull_report"] = read_text(paths["pull_report"], 65536)
    if cfg.get("pull"):
        section("pull_timer", pull_timer_section, cfg, paths["pull_cron_marker"], is_mac)
    host = cfg["server_host"]
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"
    timeout = cfg.get("timeout", 2.0)
    out["port_open"] = port_open(host, cfg["port"], timeout)
    out["http"] = []
    if out["port_open"]:
        for path in cfg["endpoints"]:
            out["http"].append(http_get(host, cfg["port"], path, timeout))
    hub = os.path.join(hf_home, "hub")
    out["hf_home"] = hf_home
    out["models"] = []
    for entry in cfg["models"]:
        section("model", model_section, hub, entry, cfg["layout"]["complete_marker"])
        if "model" in out:
            out["models"].append(out.pop("model"))
    out["hub_dirs"] = [n for n in (listdir(hub) or []) if n.startswith("models--")]
    section("cache", cache_section, hub, cfg)
    section("memory", memory_section, is_mac)
    try:
        st = os.statvfs(prefix if os.path.isdir(prefix) else os.path.expanduser("~"))
        out["disk"] = {
            "free_bytes": st.f_bavail * st.f_frsize,
            "total_bytes": st.f_blocks * st.f_frsize,
        }
    except OSError as exc:
        out["errors"]["disk"] = str(exc)
    out["elapsed_ms"] = (time.perf_counter() - started) * 1000
    # A line of its own before and after: text printed before (a login banner, a chatty
    # shell profile, a `python` wrapper) or after never mixes with the JSON.
    sys.stdout.write("\n%s\n%s\n%s\n" % (BEGIN, json_dumps(out), END))


main()
