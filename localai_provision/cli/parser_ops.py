"""The grammar of the operator's commands (metrics, import, completion), apart from
parser.py: light to import, each command's module imported only when it runs."""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable
from typing import Any

from localai_provision.constants import DEFAULT_MIN_INTERVAL_S, DEFAULT_SERVER_VERSION

Command = Callable[[str, str], Any]  # parser._command: (module, function) -> a lazy command
AddTo = Callable[[argparse.ArgumentParser], None]

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


def add_ops_commands(
    sub: argparse._SubParsersAction,  # type: ignore[type-arg]
    command: Command,
    add_limit: AddTo,
    add_forks: AddTo,
    add_json: AddTo,
) -> None:
    p = sub.add_parser(
        "metrics", help="the fleet as Prometheus metrics: serve them, or write a textfile once"
    )
    p.add_argument("file", metavar="FILE")
    add_limit(p)
    add_forks(p)
    add_json(p)
    _metrics_options(p)
    p.set_defaults(func=command("metrics", "cmd_metrics"))
    _add_import(sub, command)
    p = sub.add_parser(
        "completion",
        help='print a completion script: eval "$(localai completion bash)" (or zsh)',
    )
    p.add_argument(
        "shell", choices=("bash", "zsh", "names"), help="names: a site's hosts and groups"
    )
    p.add_argument("file", nargs="?", metavar="FILE", help="with names: the site file")
    p.set_defaults(func=command("completion", "cmd_completion"))


def _metrics_options(p: argparse.ArgumentParser) -> None:
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


def _add_import(sub: argparse._SubParsersAction, command: Command) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("import", help="make a site file from another tool's inventory")
    kinds = p.add_subparsers(dest="kind", metavar="KIND", required=True)
    a = kinds.add_parser(
        "ansible",
        help="an Ansible INI or YAML inventory (hosts, groups, children, connection vars)",
    )
    a.add_argument("inventory", metavar="INVENTORY")
    a.add_argument(
        "--server-version",
        default=DEFAULT_SERVER_VERSION,
        metavar="VERSION",
        help=f"mlx-omni-server pin written into defaults (default {DEFAULT_SERVER_VERSION})",
    )
    a.add_argument("--json", action="store_true", help="print {site, warnings} as JSON")
    a.set_defaults(func=command("importcmd", "cmd_import_ansible"))
