"""Sending large files (model blobs, wheels) from the controller to many hosts.

Every file is content-addressed: it is known by its digest, so a host that already holds it
is never sent it again, a partial copy resumes where it stopped, and what arrives is checked
before it is renamed into place (`scripts/blobs.py` does that on the host).

Sending one file to N hosts must not cost N times the controller's upload. So every holder of
a file (the controller, and each host once it has the file) passes it on to one host at a time:
the number of holders doubles each round and the time grows with log N. A host passes a file on
through a short-lived server bound to its site address on a port the site allows, serving only
that file, only to a request naming a random token, and exiting after one copy or a timeout.
When a host cannot reach another (a firewall, another network), the file comes from the
controller instead and the apply says so in a warning.

One `Distributor` serves one apply; the host jobs share it from their threads.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from localai_provision import scripts, shell
from localai_provision.connectors.base import Connector, Meter
from localai_provision.errors import CommandError, HostError
from localai_provision.layout import OWNED_MARKER
from localai_provision.scripts.pacing import Pace
from localai_provision.site.model import HostSpec
from localai_provision.transfer_progress import Reporter, TransferProgress

# Below this size a file always comes from the controller: starting a peer's server costs
# two commands, more than the copy itself.
PEER_MIN_BYTES = 8 << 20
PARTIAL = ".incomplete"
# A holder waits this long for the host it serves to connect and read the file.
SERVE_TIMEOUT_S = 300.0
CONTROLLER = "controller"
# A copy that makes no progress for this long is given up (its source died): the receiver
# then resumes from another holder or the controller.
STALL_S = 30.0
# What a copy between hosts is given at least, per byte, before it is cut: a slow link
# moves 10 MB/s (a host's max_rate may be lower; then that, with room).
SLOW_LINK_BYTES_S = 10e6


@dataclass(frozen=True)
class Artifact:
    """One file on the controller, known by its content."""

    digest: str  # "sha256:HEX", or "gitsha1:HEX" for Hugging Face's small non-LFS files
    size: int
    local_path: Path


@dataclass(frozen=True)
class Placement:
    """Where an artifact goes on one host, and how much of it is there already."""

    artifact: Artifact
    path: str  # absolute, on the host
    partial_bytes: int = 0  # size of PATH.incomplete left by an interrupted copy


@dataclass
class Delivery:
    """What one host received, for the apply's log."""

    files: int = 0
    from_controller_bytes: int = 0
    from_peers_bytes: int = 0
    resumed_bytes: int = 0  # already on the host from an interrupted copy, not sent again
    sources: dict[str, int] = field(default_factory=dict)  # holder name -> files
    warnings: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        return {
            "files_sent": self.files,
            "bytes_from_controller": self.from_controller_bytes,
            "bytes_from_peers": self.from_peers_bytes,
            "bytes_resumed": self.resumed_bytes,
            "sources": dict(sorted(self.sources.items())),
        }


@dataclass
class _Holder:
    spec: HostSpec
    connector: Connector
    python: str
    paths: dict[str, str] = field(default_factory=dict)  # digest -> path on this host


def sha256_file(path: Path) -> str:
    """The SHA-256 of a file on the controller, read in 1 MiB pieces (models are gigabytes)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def missing_placements(
    present: dict[str, int], folder: str, files: Iterable[tuple[str, Artifact]]
) -> list[Placement]:
    """Where each (name, artifact) goes in ``folder`` on a host, for those the host lacks
    (``present`` is its listing): a name already there at its size is skipped, a partial
    copy is resumed, a name given twice is sent once."""
    placements: dict[str, Placement] = {}
    for name, artifact in files:
        if name in placements or present.get(name) == artifact.size:
            continue
        placements[name] = Placement(artifact, f"{folder}/{name}", present.get(name + PARTIAL, 0))
    return list(placements.values())


class Distributor:
    """Shared by every host job of one apply: who holds which file, who is busy sending."""

    def __init__(self, progress: TransferProgress | None = None) -> None:
        self._progress = progress  # told how each large file's copy goes, per host
        # The controller is one sending host: all its uploads share one pace, each piece
        # at the rate of the host it goes to (that host's transfer.max_rate).
        self._pace = Pace()
        self._cond = threading.Condition()
        self._holders: dict[str, _Holder] = {}  # host name -> what it can pass on
        self._busy: set[str] = set()  # holders (or CONTROLLER) sending right now
        self._unreachable: set[tuple[str, str]] = set()  # (holder, receiver) that failed
        self._wanted: dict[str, int] = {}  # digest -> hosts waiting for a holder of it
        # (host, digest) -> where that host's copy is coming from, while it is arriving.
        self._upstream: dict[tuple[str, str], str] = {}
        self._memo: dict[object, object] = {}
        self._memo_locks: dict[object, threading.Lock] = {}

    # --- computed once per apply, whatever the number of hosts ---------------------------

    def once(self, key: object, compute: Callable[[], object]) -> object:
        """``compute()`` the first time ``key`` is asked for, by one thread; the rest wait
        and share its result (hashing a 20 GB model once, not once per host)."""
        with self._cond:
            lock = self._memo_locks.setdefault(key, threading.Lock())
        with lock:
            if key not in self._memo:
                self._memo[key] = compute()
            return self._memo[key]

    # --- sending ---------------------------------------------------------------------------

    def deliver(
        self,
        connector: Connector,
        spec: HostSpec,
        python: str,
        placements: list[Placement],
        step: str,
    ) -> Delivery:
        """Make every placement's path hold its artifact on this host."""
        delivery = Delivery()
        small = [p for p in placements if not self._through_peers(spec, p)]
        for placement in small:
            self._upload(connector, spec, placement, delivery)
        if small:
            _commit(connector, spec, python, small, step)
        for placement in placements:
            if placement in small:
                continue
            self._deliver_large(connector, spec, python, placement, delivery, step)
        return delivery

    def retire(self, host: str) -> None:
        """The host's job is ending and its connection will close. While other hosts wait
        for a file it holds, it keeps passing it on (the last round of the tree needs every
        holder); then it waits for a copy it is serving right now to finish."""
        with self._cond:
            holder = self._holders.get(host)
            while holder is not None and (
                host in self._busy or any(self._wanted.get(d) for d in holder.paths)
            ):
                self._cond.wait(1.0)
            self._holders.pop(host, None)

    def _through_peers(self, spec: HostSpec, placement: Placement) -> bool:
        return (
            spec.transfer.peers
            and spec.connection == "ssh"
            and placement.artifact.size - placement.partial_bytes >= PEER_MIN_BYTES
        )

    def _upload(
        self, connector: Connector, spec: HostSpec, placement: Placement, delivery: Delivery
    ) -> None:
        artifact = placement.artifact
        offset = placement.partial_bytes if placement.partial_bytes <= artifact.size else 0
        reporter = self._reporter(spec, placement, CONTROLLER, offset)
        meter = self._meter(spec.transfer.max_rate, reporter)
        connector.append_file(artifact.local_path, placement.path + PARTIAL, offset, meter)
        if reporter is not None:
            reporter.finish()
        delivery.files += 1
        delivery.from_controller_bytes += artifact.size - offset
        delivery.resumed_bytes += offset
        delivery.sources[CONTROLLER] = delivery.sources.get(CONTROLLER, 0) + 1

    def _reporter(
        self, spec: HostSpec, placement: Placement, source: str, offset: int
    ) -> Reporter | None:
        """Progress for a large file (one that could go through peers), when shown."""
        if self._progress is None or placement.artifact.size < PEER_MIN_BYTES:
            return None
        name = placement.path.rpartition("/")[2]
        return Reporter(self._progress, spec.name, name, source, placement.artifact.size, offset)

    def _meter(self, rate: int | None, reporter: Reporter | None) -> Meter | None:
        if rate is None and reporter is None:
            return None

        def meter(n: int) -> None:
            self._pace.take(n, rate)
            if reporter is not None:
                reporter.sent(n)

        return meter

    def _deliver_large(
        self,
        connector: Connector,
        spec: HostSpec,
        python: str,
        placement: Placement,
        delivery: Delivery,
        step: str,
    ) -> None:
        digest = placement.artifact.digest
        try:
            while True:
                source = self._take_source(spec.name, digest)
                # From now on this host can pass the file on as it arrives (cut-through): the
                # next host need not wait for the whole file.
                self._hold(connector, spec, python, digest, placement.path, upstream=source)
                try:
                    if source == CONTROLLER:
                        self._upload(connector, spec, placement, delivery)
                        _commit(connector, spec, python, [placement], step)
                        break
                    holder = self._holders_snapshot(source)
                    if holder is None:
                        continue
                    reporter = self._reporter(spec, placement, source, placement.partial_bytes)
                    try:
                        received, seconds = _peer_copy(
                            holder, connector, spec, python, placement, digest
                        )
                    except HostError as exc:
                        with self._cond:
                            self._unreachable.add((source, spec.name))
                        delivery.warnings.append(
                            f"could not get a file from {source} ({exc.message}); it came "
                            "from another holder or the controller instead"
                        )
                        placement = _with_partial(connector, spec, python, placement, step)
                        continue
                    if reporter is not None:
                        reporter.finish(seconds)
                    delivery.files += 1
                    delivery.from_peers_bytes += received
                    delivery.resumed_bytes += placement.artifact.size - received
                    delivery.sources[source] = delivery.sources.get(source, 0) + 1
                    break
                finally:
                    self._give_back(source)
        except BaseException:
            self._unhold(spec.name, digest)
            raise
        with self._cond:
            self._upstream.pop((spec.name, digest), None)  # whole now: depends on no one

    def _holders_snapshot(self, name: str) -> _Holder | None:
        with self._cond:
            return self._holders.get(name)

    def _feeds_from(self, holder: str, receiver: str, digest: str) -> bool:
        """Is ``holder``'s copy still arriving, directly or not, from ``receiver``?"""
        seen = set()
        while holder not in seen:
            seen.add(holder)
            upstream = self._upstream.get((holder, digest))
            if upstream is None or upstream == CONTROLLER:
                return False
            if upstream == receiver:
                return True
            holder = upstream
        return True

    def _take_source(self, receiver: str, digest: str) -> str:
        """An idle holder of ``digest``: a host that has the whole file, else one that is
        receiving it (not from this receiver), else the controller, whose upload is the
        scarce resource; waits while all are busy."""
        with self._cond:
            self._wanted[digest] = self._wanted.get(digest, 0) + 1
            try:
                while True:
                    idle = [
                        name
                        for name, holder in self._holders.items()
                        if digest in holder.paths
                        and name not in self._busy
                        and name != receiver
                        and (name, receiver) not in self._unreachable
                        and not self._feeds_from(name, receiver, digest)
                    ]
                    idle.sort(key=lambda name: (name, digest) in self._upstream)
                    if idle:
                        self._busy.add(idle[0])
                        return idle[0]
                    if CONTROLLER not in self._busy:
                        self._busy.add(CONTROLLER)
                        return CONTROLLER
                    self._cond.wait(1.0)
            finally:
                self._wanted[digest] -= 1
                self._cond.notify_all()

    def _give_back(self, source: str) -> None:
        with self._cond:
            self._busy.discard(source)
            self._cond.notify_all()

    def _hold(
        self,
        connector: Connector,
        spec: HostSpec,
        python: str,
        digest: str,
        path: str,
        upstream: str,
    ) -> None:
        if not spec.transfer.peers or spec.connection != "ssh":
            return
        with self._cond:
            holder = self._holders.setdefault(spec.name, _Holder(spec, connector, python))
            holder.paths[digest] = path
            self._upstream[(spec.name, digest)] = upstream
            self._cond.notify_all()

    def _unhold(self, host: str, digest: str) -> None:
        with self._cond:
            holder = self._holders.get(host)
            if holder is not None:
                holder.paths.pop(digest, None)
            self._upstream.pop((host, digest), None)
            self._cond.notify_all()


def _blobs_command(python: str, mode: str, config: dict[str, object] | None) -> str:
    """The command for ``blobs.py MODE``; with config None it reads its JSON from stdin (the
    peers' token stays out of `ps`)."""
    argument = "-" if config is None else json.dumps(config)
    # Only `serve` paces (with pacing.py's Pace): the other modes go without its 2 kB.
    program = (scripts.load("pacing") if mode == "serve" else "") + scripts.load("blobs")
    return shell.join([python, "-I", "-S", "-c", program, mode, argument])


def list_files(
    connector: Connector,
    spec: HostSpec,
    python: str,
    folder: str,
    step: str,
    *,
    create: bool = False,
    keep: list[str] | None = None,
) -> dict[str, int]:
    """{file name: size} in a folder of the host (partial copies included), in one command
    that can also create the folder and delete what is not in ``keep`` first."""
    config: dict[str, object] = {"dir": folder, "create": create, "owned_marker": OWNED_MARKER}
    if keep is not None:
        config["keep"] = keep
    command = _blobs_command(python, "list", config)
    result = connector.run(command)
    if not result.ok:
        raise CommandError.of(spec.name, step, f"cannot list {folder}", command, result)
    listing: dict[str, int] = json.loads(result.stdout or "{}")
    return listing


def _commit(
    connector: Connector, spec: HostSpec, python: str, placements: list[Placement], step: str
) -> None:
    files = [
        {"path": p.path, "digest": p.artifact.digest, "size": p.artifact.size} for p in placements
    ]
    command = _blobs_command(python, "commit", {"files": files})
    result = connector.run(
        command, timeout=max(60.0, sum(p.artifact.size for p in placements) / 50e6)
    )
    if result.ok:
        return
    try:
        bad: dict[str, str] = json.loads(result.stdout)["bad"]
        why = "; ".join(f"{path}: {reason}" for path, reason in bad.items())
    except (ValueError, KeyError, TypeError):
        why = result.tail(3)
    raise CommandError.of(
        spec.name,
        step,
        f"what arrived is not what was sent: {why}",
        command,
        result,
        hint="run apply again (a wrong file was deleted and is sent again); if it repeats, "
        "check the host's disk",
    )


def _with_partial(
    connector: Connector, spec: HostSpec, python: str, placement: Placement, step: str
) -> Placement:
    """The placement with what a failed copy left on the host, to resume from there (and
    so that a host passing it on meanwhile keeps its bytes)."""
    folder, _, name = placement.path.rpartition("/")
    present = list_files(connector, spec, python, folder, step)
    return Placement(placement.artifact, placement.path, present.get(name + PARTIAL, 0))


def _peer_copy(
    holder: _Holder,
    connector: Connector,
    spec: HostSpec,
    python: str,
    placement: Placement,
    digest: str,
) -> tuple[int, float]:
    """``holder`` serves the file once (paced to its max_rate); this host fetches it.
    Returns the bytes received and the seconds the receiver counted from first to last."""
    token = secrets.token_urlsafe(24)
    low, high = holder.spec.transfer.peer_ports
    address = holder.spec.transfer.peer_address or holder.spec.address
    serve_config = json.dumps(
        {
            "path": holder.paths[digest],
            "token": token,
            "bind": address,
            "ports": [low, high],
            "timeout_s": SERVE_TIMEOUT_S,
            "size": placement.artifact.size,
            "stall_s": STALL_S,
            "max_rate": holder.spec.transfer.max_rate,
        }
    )
    started = holder.connector.run(
        _blobs_command(holder.python, "serve", None),
        timeout=30.0,
        stdin=serve_config.encode(),
    )
    if not started.ok:
        raise HostError(host=spec.name, message=f"it could not serve: {started.tail(1)}")
    port = int(json.loads(started.stdout)["port"])
    artifact = placement.artifact
    fetch_config = json.dumps(
        {
            "host": address,
            "port": port,
            "token": token,
            "path": placement.path,
            "digest": artifact.digest,
            "size": artifact.size,
            "stall_s": STALL_S,
        }
    )
    slowest = min(SLOW_LINK_BYTES_S, holder.spec.transfer.max_rate or SLOW_LINK_BYTES_S)
    result = connector.run(
        _blobs_command(python, "fetch", None),
        timeout=max(120.0, 1.5 * artifact.size / slowest),
        stdin=fetch_config.encode(),
    )
    if not result.ok:
        raise HostError(host=spec.name, message=result.tail(1) or "the copy failed")
    answer = json.loads(result.stdout)
    return int(answer["received"]), float(answer.get("seconds", 0.0))
