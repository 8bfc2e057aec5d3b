"""`localai metrics FILE --listen ADDR:PORT | --textfile PATH`: the fleet for Prometheus.

Imported when the command runs (parser_ops.py holds its grammar); prometheus_client and the
exporter only then too.
"""

from __future__ import annotations

import argparse
import json
import threading
from collections.abc import Sequence

from localai_provision.cli.exits import EXIT_OK
from localai_provision.cli.fleetview import HostView, fleet_views
from localai_provision.cli.render import Output
from localai_provision.site import load_site, select_hosts
from localai_provision.site.model import HostSpec


def gatherer(hosts: Sequence[HostSpec], forks: int) -> list[HostView]:
    from localai_provision.status import observe_hosts

    return fleet_views(hosts, observe_hosts(hosts, forks=forks))


def cmd_metrics(args: argparse.Namespace, io: Output) -> int:
    site = load_site(args.file)
    hosts = select_hosts(site, args.limit)
    from localai_provision.cli.exporter import FleetCollector, exposition, serve

    collector = FleetCollector(lambda: gatherer(hosts, args.forks), args.min_interval)
    if args.textfile:
        from localai_provision.cli.outfile import write_atomically

        # Host failures are in the file (localai_host_up 0): that is what it is for, so the
        # command succeeds whenever the file is written.
        write_atomically(args.textfile, exposition(collector), "metrics textfile")
        views = collector.views()  # the gather just made (within --min-interval)
        if args.json:
            io.json(
                {
                    "textfile": args.textfile,
                    "hosts": len(views),
                    "up": sum(v.up for v in views),
                    "in_sync": sum(v.in_sync for v in views),
                }
            )
        return EXIT_OK
    addr, port = args.listen
    stop = threading.Event()
    bound_addr, bound_port = serve(collector, addr, port, stop)
    host = f"[{bound_addr}]" if ":" in bound_addr else bound_addr
    url = f"http://{host}:{bound_port}/metrics"
    if args.json:
        io.out.write(json.dumps({"listen": url, "hosts": len(hosts)}) + "\n")
    else:
        io.line(f"serving metrics of {len(hosts)} hosts on {url}")
    io.out.flush()
    try:
        # Until Ctrl-C or SIGTERM (exit 130 or 143, as every command), or --exit-after.
        stop.wait(args.exit_after)
    finally:
        stop.set()
    return EXIT_OK
