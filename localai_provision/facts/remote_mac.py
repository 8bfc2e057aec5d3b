# Part of the facts script sent to hosts (see remote_base.py): the sections only a Mac has.

import os

if False:  # for linters only (see remote_base.py): on the host these are defined above
    from localai_provision.facts.remote_base import (
        read_text,
        run,
        sha256_of,
    )


def without_environment(text):
    """`launchctl print` output without the job's environment: its `environment`,
    `default environment` and `inherited environment` blocks (and any `KEY => VALUE` line)
    show variables, which may be secrets, to any local user. They never leave the host."""
    kept = []
    skip_depth = 0
    for line in text.splitlines():
        stripped = line.strip()
        if skip_depth:
            if stripped.endswith("{"):
                skip_depth += 1
            elif stripped == "}":
                skip_depth -= 1
            continue
        if stripped.endswith("environment = {"):
            skip_depth = 1
            continue
        if " => " in stripped:
            continue
        kept.append(line)
    return "\n".join(kept)


def launchd_section(cfg):
    """`launchctl print DOMAIN/LABEL` (without the environment) and the job's plist."""
    job = cfg["launchd"]
    domain = "system" if job["domain"] == "system" else "gui/%d" % os.getuid()
    status, out, err = run(["launchctl", "print", "%s/%s" % (domain, job["label"])])
    plist_path = os.path.expanduser(job["plist_path"])
    return {
        "target": "%s/%s" % (domain, job["label"]),
        "print_status": status,
        "print": without_environment(out) if status == 0 else None,
        "print_error": err.strip()[-500:] if status else None,
        "plist_path": plist_path,
        "plist": read_text(plist_path),
    }


def mac_section(cfg, user, venv):
    """What a Mac needs before an apply can work: memory and the wired limit (one sysctl),
    the root helper (its digest and this account's settings), and, when asked: who owns the
    console (domain user), the Command Line Tools (a lock that builds from source), and for
    `localai doctor` FileVault and sudo's answer for the helper."""
    mac = cfg.get("mac") or {}
    status, out, err = run(["sysctl", "hw.memsize", "iogpu.wired_limit_mb"])
    info = {"sysctl": out, "sysctl_error": err.strip()[-300:] if status else None}
    helper = mac.get("helper")
    if helper:
        info["helper_sha256"] = sha256_of(helper)
        info["helper_conf"] = read_text(os.path.join(mac["conf_dir"], user + ".conf"), 4096)
    if mac.get("console"):
        status, out, _ = run(["stat", "-f", "%u", "/dev/console"])
        info["console_uid"] = out.strip() if status == 0 else None
    installed = set(n.split("-")[0].lower() for n in (venv or {}).get("dist_infos", []))
    if mac.get("doctor") or any(n not in installed for n in mac.get("clt_unless", [])):
        status, out, err = run(["xcode-select", "-p"])
        info["clt"] = {"status": status, "path": out.strip()[-300:], "error": err.strip()[-300:]}
    if mac.get("doctor"):
        status, out, err = run(["fdesetup", "status"])
        info["filevault"] = (out if status == 0 else err).strip()[-300:]
        if helper:
            status, out, err = run(["sudo", "-n", "-l", helper])
            info["sudo"] = {"status": status, "output": (out + err).strip()[-300:]}
    return info


def pull_timer_section(cfg, marker, is_mac):
    """The pull timer as installed: the launchd plist on a Mac; on Linux the tool's lines of
    the user's crontab (only those: the rest of a crontab never leaves the host). `crontab -l`
    costs a process, so it runs only when the site declares a timer or the tool installed
    one (its marker file)."""
    pull = cfg.get("pull") or {}
    if is_mac:
        path = os.path.expanduser(pull["plist_path"])
        return {"kind": "launchd", "path": path, "definition": read_text(path)}
    if not pull.get("declared") and not os.path.exists(marker):
        return None
    status, out, err = run(["crontab", "-l"])
    if status is None:
        return {"kind": "cron", "available": False, "definition": None, "error": err[-300:]}
    begin, end = pull["markers"]
    lines = []
    for line in out.splitlines(True):
        if line.rstrip("\n") == begin or lines:
            lines.append(line)
            if line.rstrip("\n") == end:
                break
    return {"kind": "cron", "available": True, "definition": "".join(lines) or None}


def macos_settings_section(cfg, mac):
    status, pm, _ = run(["pmset", "-g"])
    wired = None
    for line in (mac or {}).get("sysctl", "").splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "iogpu.wired_limit_mb":
            wired = value.strip()
    return {
        "pmset": pm if status == 0 else None,
        "wired_limit_mb": wired,
        "boot_plist": read_text(os.path.expanduser(cfg["macos_settings"]["boot_plist"])),
    }


def darwin_process(pid):
    """`ps` of one process. Its environment (`ps -E`) is read on the host for our own
    variable alone: the rest, secrets included, never leaves the host."""
    import subprocess

    def ps(args):
        return subprocess.run(
            ["/bin/ps", "-ww", *args, "-p", str(pid)],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            timeout=5,
        ).stdout.decode("utf-8", "replace")

    try:
        line = ps(["-o", "etime=,command="]).strip()
        with_env = ps(["-E", "-o", "command="])
    except (OSError, subprocess.SubprocessError):
        return {"pid": pid, "alive": False}
    config_hash = None
    marker = " LOCALAI_CONFIG_HASH="
    if marker in with_env:
        token = (with_env.rsplit(marker, 1)[1].split() or [""])[0]
        if 0 < len(token) <= 64 and all(c in "0123456789abcdef" for c in token):
            config_hash = token
    return {"pid": pid, "alive": bool(line), "ps": line, "config_hash": config_hash}
