"""Benchmark: sending one large file (a model blob) to N hosts, with and without peers.

Run (as root, from the repo root): python bench/fanout.py --hosts 1 10 30 --size-mb 200
  --json-out FILE   also write every measurement as JSON
  --link-mbit N     each host in its own network namespace behind an N Mbit/s link (up and
                    down, the controller's too: bench/links.py, `tc tbf`), not loopback
  --peers on|off|both  which `transfer.peers` settings to run (default both)

What it does: starts an SSHFleet (one real sshd on loopback and one Unix user per host,
tests/support/sshfleet.py) of max(N) hosts and writes a file of made-up content on the
controller. For each N, with `transfer.peers` false and then true, it empties every host's
blob folder and times the library's transfer step alone (`transfer.Distributor.deliver`,
the code `localai apply` runs for a model blob or a wheel), one thread per host as apply's
`--forks` would, all connections opened beforehand. It reports the wall time, the bytes the
controller uploaded and the bytes hosts passed on to each other, and checks that every host
holds the file with the right sha256. With --link-mbit it also reports the bytes the
controller put on its link (the bridge's qdisc counter: SSH and TCP included) as copies of the
file. The whole apply, with a 200 MB model, is measured by bench/scale.py.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import yaml  # noqa: E402

from bench.links import Links  # noqa: E402
from bench.links import cleanup_stale as cleanup_stale_links  # noqa: E402
from localai_provision.connectors.ssh import SSHConnector  # noqa: E402
from localai_provision.site import load_site  # noqa: E402
from localai_provision.transfer import Artifact, Distributor, Placement  # noqa: E402
from tests.support.sshfleet import SSHFleet, cleanup_stale  # noqa: E402

FLEET_PREFIX = "bf"


def site_file(fleet: SSHFleet, known_hosts: Path, peers: bool, path: Path) -> Path:
    hosts = {
        h.name: {"address": h.address, "ssh_port": h.port, "user": h.user} for h in fleet.hosts
    }
    data = {
        "version": 1,
        "defaults": {
            "identity_file": str(fleet.client_key_path),
            "known_hosts_file": str(known_hosts),
            "host_key_checking": "strict",
            "transfer": {"peers": peers},
            "packages": {"mlx-omni-server": "0.5.1"},  # every site pins the server
        },
        "hosts": hosts,
    }
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def one_run(
    fleet: SSHFleet,
    n: int,
    peers: bool,
    blob: Path,
    digest: str,
    work: Path,
    known: Path,
    links: Links | None,
) -> dict[str, Any]:
    site = load_site(site_file(fleet, known, peers, work / f"site-{peers}.yaml"))
    hosts = fleet.hosts[:n]
    for host in hosts:
        folder = host.home / "blobs"
        if folder.exists():
            for entry in folder.iterdir():
                entry.unlink()
    connectors = [SSHConnector(site.hosts[h.name]) for h in hosts]
    with ThreadPoolExecutor(max_workers=n) as pool:
        list(pool.map(lambda c: c.open(), connectors))
    for connector, host in zip(connectors, hosts, strict=True):
        connector.run(f"mkdir -p {host.home}/blobs")
    artifact = Artifact(f"sha256:{digest}", blob.stat().st_size, blob)
    distributor = Distributor()

    def deliver(index: int) -> dict[str, object]:
        host = hosts[index]
        placement = Placement(artifact, f"{host.home}/blobs/{digest}")
        spec = site.hosts[host.name]
        try:
            got = distributor.deliver(
                connectors[index], spec, "/usr/bin/python3", [placement], "bench"
            ).as_dict()
            # When this host's copy was whole (before it waits to pass it on), and from whom.
            return {**got, "done_s": round(time.perf_counter() - start, 2)}
        finally:
            distributor.retire(host.name)

    wire_before = links.controller_bytes_sent() if links else 0
    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=n) as pool:
        deliveries = list(pool.map(deliver, range(n)))
    wall = time.perf_counter() - start
    wire = links.controller_bytes_sent() - wire_before if links else None
    for connector in connectors:
        connector.close()
    for host in hosts:
        got = host.home / "blobs" / digest
        assert got.stat().st_size == artifact.size, host.name
    controller_bytes = sum(int(str(d["bytes_from_controller"])) for d in deliveries)
    return {
        "hosts": n,
        "peers": peers,
        "seconds": round(wall, 2),
        "size_bytes": artifact.size,
        "link_mbit": links.mbit if links else None,
        "controller_bytes": controller_bytes,
        "controller_copies": round(controller_bytes / artifact.size, 3),
        "controller_wire_bytes": wire,
        "controller_wire_copies": None if wire is None else round(wire / artifact.size, 3),
        "peer_bytes": sum(int(str(d["bytes_from_peers"])) for d in deliveries),
        # Per host: when its copy was whole and where it came from (the tree's shape).
        "per_host": [
            {"host": h.name, "done_s": d["done_s"], "from": sorted(dict(d["sources"]))}  # type: ignore[call-overload]
            for h, d in zip(hosts, deliveries, strict=True)
        ],
        "controller_uploads": sum(
            1 for d in deliveries if isinstance(d["sources"], dict) and "controller" in d["sources"]
        ),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, nargs="+", default=[1, 10, 30])
    parser.add_argument("--size-mb", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--json-out")
    parser.add_argument("--link-mbit", type=int)
    parser.add_argument("--peers", choices=["on", "off", "both"], default="both")
    args = parser.parse_args()
    cleanup_stale(FLEET_PREFIX)
    cleanup_stale_links()
    modes = {"on": [True], "off": [False], "both": [False, True]}[args.peers]
    work = Path(tempfile.mkdtemp(prefix="bench-fanout-"))
    blob = work / "model.safetensors"
    with open(blob, "wb") as f:
        for _ in range(args.size_mb):
            f.write(os.urandom(1 << 20))
    digest = hashlib.sha256(blob.read_bytes()).hexdigest()
    rows: list[dict[str, Any]] = []
    count = max(args.hosts)
    with contextlib.ExitStack() as stack:
        links = stack.enter_context(Links(count, args.link_mbit)) if args.link_mbit else None
        places = links.places if links else None
        fleet = stack.enter_context(
            SSHFleet(work / "fleet", count, prefix=FLEET_PREFIX, places=places)
        )
        known = fleet.write_known_hosts(work / "known_hosts")
        for n in args.hosts:
            for peers in modes:
                runs = [
                    one_run(fleet, n, peers, blob, digest, work, known, links)
                    for _ in range(args.repeat)
                ]
                row = dict(runs[0])
                row["seconds"] = round(statistics.median(r["seconds"] for r in runs), 2)
                row["runs_s"] = [r["seconds"] for r in runs]
                row["load1"] = round(os.getloadavg()[0], 2)
                rows.append(row)
                print(json.dumps(row), flush=True)
    print()
    print("| hosts | peers | seconds | x one host | controller copies | on its link | load |")
    print("| ---: | --- | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        one = next(o for o in rows if o["hosts"] == min(args.hosts) and o["peers"] == r["peers"])
        wire = r["controller_wire_copies"]
        print(
            f"| {r['hosts']} | {'yes' if r['peers'] else 'no'} | {r['seconds']:.2f} | "
            f"{r['seconds'] / one['seconds']:.2f} | {r['controller_copies']:.2f} | "
            f"{'-' if wire is None else f'{wire:.2f}'} | {r['load1']} |"
        )
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(rows, indent=2) + "\n")
    for entry in work.iterdir():
        if entry.is_file():
            entry.unlink()
    return 0


if __name__ == "__main__":
    sys.exit(main())
