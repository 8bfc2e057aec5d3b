"""`localai lock` (each package set resolved, with hashes, per platform) and `localai
root-helper` (the installer of a Mac's root helper)."""

from __future__ import annotations

import argparse
import time

from localai_provision.cli.exits import EXIT_OK
from localai_provision.cli.render import Output, count
from localai_provision.constants import PLATFORMS
from localai_provision.errors import UsageError
from localai_provision.fleet import check_hosts
from localai_provision.lock import compile_lock, parse_lock, plan_locks, platform_of
from localai_provision.site import load_site, select_hosts
from localai_provision.site.model import HostSpec

Platforms = dict[str, list[tuple[str, str]]]


def learn_platforms(args: argparse.Namespace, hosts: list[HostSpec]) -> Platforms:
    """Each host's platform and Python: as given (--platform), or from the host itself (one
    round trip)."""
    if args.platform:
        return {h.name: [(p, args.python_version) for p in args.platform] for h in hosts}
    platforms: Platforms = {}
    failed = []
    for result in check_hosts(hosts, forks=args.forks):
        if result.facts is None:
            failed.append(result.name)
            continue
        python = args.python_version or result.facts.python.short_version
        platforms[result.name] = [(platform_of(result.facts), python)]
    if failed:
        raise UsageError(
            f"cannot learn the platform of {', '.join(failed)} (unreachable); name it: "
            f"--platform {' --platform '.join(PLATFORMS)}"
        )
    return platforms


def cmd_lock(args: argparse.Namespace, io: Output) -> int:
    site = load_site(args.file)
    hosts = [h for h in select_hosts(site, args.limit) if h.lock]
    if not hosts:
        raise UsageError(
            f"no host in {args.file} has a `lock` setting; add one, for example "
            "`lock: locks/omni` under `defaults:`"
        )
    platforms = learn_platforms(args, hosts)
    written = []
    for job in plan_locks(hosts, platforms):
        start = time.perf_counter()
        path = compile_lock(job.spec, job.platform, job.python_version or "3.11")
        n = len(parse_lock(path.read_text()))
        elapsed = time.perf_counter() - start
        written.append(
            {
                "file": str(path),
                "platform": job.platform,
                "packages": n,
                "hosts": list(job.hosts),
                "seconds": round(elapsed, 1),
            }
        )
        if not args.json:
            io.line(
                f"{path}: {n} packages for {job.platform} "
                f"({count(len(job.hosts), 'host')}, {elapsed:.1f} s)"
            )
    if args.json:
        io.json({"locks": written})
    return EXIT_OK


def cmd_root_helper(args: argparse.Namespace, io: Output) -> int:
    site = load_site(args.file)
    from localai_provision import roothelper
    from localai_provision.layout import launchd_daemons_dir

    spec = site.hosts.get(args.host)
    if spec is None:
        raise UsageError(f"{args.file}: no host named {args.host!r}")
    if spec.user is None:
        raise UsageError(
            f"{args.file}: host {args.host} names no `user`; the helper is per account"
        )
    daemons = launchd_daemons_dir(spec)
    if not daemons.startswith("/"):
        raise UsageError(f"{args.file}: `launchd.plist_dir` of {args.host} must be absolute here")
    io.out.write(roothelper.installer(spec.user, daemons))
    return EXIT_OK
