"""`localai validate` and `localai hosts`: the site file alone, no host reached."""

from __future__ import annotations

import argparse

import yaml

from localai_provision.cli.exits import EXIT_ERROR, EXIT_OK
from localai_provision.cli.render import Output, count
from localai_provision.errors import SiteError
from localai_provision.site import load_site, select_hosts


def cmd_validate(args: argparse.Namespace, io: Output) -> int:
    reports: list[dict[str, object]] = []
    failed = False
    for file in args.files:
        try:
            site = load_site(file)
        except SiteError as exc:
            failed = True
            reports.append(
                {"file": file, "valid": False, "errors": [p.as_dict() for p in exc.problems]}
            )
            if not args.json:
                for problem in exc.problems:
                    io.error(problem.render())
                n = len(exc.problems)
                io.error(f"{file}: {n} error{'s' if n != 1 else ''}")
            continue
        summary = {
            "hosts": len(site.hosts),
            "groups": len(site.groups),
            "models": len(site.model_ids),
        }
        reports.append({"file": file, "valid": True, "errors": [], **summary})
        if not args.json:
            io.line(
                f"{file}: valid: {count(summary['hosts'], 'host')}, "
                f"{count(summary['groups'], 'group')}, {count(summary['models'], 'model')}"
            )
    if args.json:
        io.json({"valid": not failed, "files": reports})
    return EXIT_ERROR if failed else EXIT_OK


def cmd_hosts(args: argparse.Namespace, io: Output) -> int:
    site = load_site(args.file)
    hosts = select_hosts(site, args.limit)
    if args.json:
        io.json({"file": args.file, "hosts": [h.to_dict() for h in hosts]})
        return EXIT_OK
    for i, host in enumerate(hosts):
        if i:
            io.line()
        data = host.to_dict()
        name = data.pop("name")
        io.line(f"{name}:")
        text = yaml.safe_dump(data, sort_keys=False, default_flow_style=False, width=100)
        for line in text.rstrip().splitlines():
            io.line("  " + line)
    return EXIT_OK
