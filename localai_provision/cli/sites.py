"""Which hosts a command works on: `FILE [--limit P]` from a controller, or `--local FILE
--host NAME` on a host itself (pull mode)."""

from __future__ import annotations

import argparse
import dataclasses

from localai_provision.errors import UsageError
from localai_provision.site import load_site, select_hosts
from localai_provision.site.model import HostSpec


def site_hosts(args: argparse.Namespace) -> tuple[str, list[HostSpec]]:
    """The site file and the hosts to work on: `FILE [--limit P]` from a controller, or
    `--local FILE --host NAME` on a host itself (pull mode): that one host, reached with the
    local connector instead of SSH; everything else about it is as the file says."""
    local = getattr(args, "local", None)
    host = getattr(args, "host", None)
    if local is None:
        if host is not None:
            raise UsageError(
                "--host goes with --local FILE (pull mode, run on the host itself); "
                "from a controller, choose hosts with --limit"
            )
        if args.file is None:
            raise UsageError(
                "no site file given: localai COMMAND FILE, or --local FILE --host NAME"
            )
        return args.file, select_hosts(load_site(args.file), args.limit)
    if args.file is not None:
        raise UsageError(f"give the site file once: {args.file} or --local {local}, not both")
    if host is None:
        raise UsageError(
            "--local needs --host NAME: which host of the file this machine is "
            f"(see `localai hosts {local}`)"
        )
    if args.limit is not None:
        raise UsageError("--limit does not go with --local: --host names the one host")
    site = load_site(local)
    spec = site.hosts.get(host)
    if spec is None:
        raise UsageError(
            f"--host {host!r} is not a host of {local} (hosts: {', '.join(site.hosts)})"
        )
    return local, [dataclasses.replace(spec, connection="local")]
