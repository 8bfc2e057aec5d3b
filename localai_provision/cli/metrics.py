"""`localai metrics FILE --listen ADDR:PORT | --textfile PATH`: the fleet for Prometheus.

Light to import (the parser imports it at start-up): prometheus_client and the exporter are
imported when the command runs.
"""

from __future__ import annotations

import argparse
import json
import re
import threading
from collections.abc import Sequence

from localai_provision.cli.exits import EXIT_OK
from localai_provision.cli.fleetview import HostView, fleet_views
from localai_provision.cli.render import Output
from localai_provision.site import load_site, select_hosts
from localai_provision.site.model import HostSpec

# A scrape gathers the fleet at most this often (seconds): Prometheus's default scrape
# interval is 60 s and a common one 15 s; a faster scraper gets the last gather.
DEFAULT_MIN_INTERVAL_S = 10.0

_ADDR = re.compile(r"^(?:\[(?P<v6>[0-9A-Fa-f:.]+)\]|(?P<host>[^:\[\]]*)):(?P<port>\d{1,5})$")


def listen_address(text: str) -> tuple[str, int]:
    """ADDR:PORT for --listen: 127.0.0.1:9101, [::1]:9101, or :9101 (every interface)."""
    match = _ADDR.match(text)
    port = int(match["port"]) if match else -1
    if not match or not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not ADDR:PORT (for example 127.0.0.1:9101, [::1]:9101 or :9101)"
        )
    return (match["v6"] or match["host"] or "0.0.0.0"), port


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


def add_metrics(p: argparse.ArgumentParser) -> None:
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument(
        "--listen",
        type=listen_address,
        metavar="ADDR:PORT",
        help="serve /metrics over HTTP here (127.0.0.1:9101; :9101 for every interface)",
    )
    where.add_argument(
        "--textfile",
        metavar="PATH",
        help="write the metrics once to PATH (atomically), for node_exporter's textfile "
        "collector, and exit",
    )
    p.add_argument(
        "--min-interval",
        type=float,
        default=DEFAULT_MIN_INTERVAL_S,
        metavar="SECONDS",
        help="gather the fleet at most this often; scrapes in between get the last gather "
        f"(default {DEFAULT_MIN_INTERVAL_S:g})",
    )
    p.add_argument(
        "--exit-after",
        type=float,
        default=None,
        metavar="SECONDS",
        help="with --listen: stop serving after this long (default: until stopped)",
    )
    p.set_defaults(func=cmd_metrics)
