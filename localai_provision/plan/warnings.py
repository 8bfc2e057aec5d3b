"""Things worth saying about a host that are not changes: stray servers, an exposed port,
prewarmed models the server will unload, an unlocked set, a wrong clock, a full disk, and
what its last pull reported."""

from __future__ import annotations

from localai_provision.facts.model import Facts
from localai_provision.layout import SERVER_PACKAGE
from localai_provision.plan.models import cache_warnings
from localai_provision.plan.pull import pull_warnings
from localai_provision.site.model import HostSpec

CLOCK_TOLERANCE_S = 300.0


def plan_warnings(spec: HostSpec, facts: Facts) -> list[str]:
    warnings = [
        *_server_warnings(spec, facts),
        *_cache_warnings(spec),
        *cache_warnings(spec, facts),
    ]
    if spec.lock is None and SERVER_PACKAGE in spec.packages:
        warnings.append(
            "only the pinned packages are fixed: the rest of the server's dependencies "
            "(about 200) are whatever the index offers today; `localai lock` fixes them all"
        )
    if facts.clock_offset_s is not None and abs(facts.clock_offset_s) > CLOCK_TOLERANCE_S:
        warnings.append(
            f"the host's clock is {facts.clock_offset_s:+.0f} s off this machine's: TLS "
            "certificates (downloads) and log times can go wrong; check its time settings"
        )
    if facts.disk_free_bytes is not None and facts.disk_free_bytes < 2 * 1024**3:
        warnings.append(f"only {facts.disk_free_bytes / 1024**3:.1f} GiB free under {facts.prefix}")
    return warnings + pull_warnings(spec, facts)


def _server_warnings(spec: HostSpec, facts: Facts) -> list[str]:
    warnings = []
    process = facts.service.process
    ours = process.pid if process is not None and process.alive else None
    strays = [p for p in facts.service.server_processes if p.pid != ours]
    if strays:
        warnings.append(
            f"{len(strays)} other mlx-omni-server process(es) run as this user "
            f"(pid {', '.join(str(p.pid) for p in strays[:5])}); they are not managed by "
            "localai and may hold memory or ports"
        )
    if spec.server.host in ("0.0.0.0", "::") and "--api-key" not in " ".join(
        spec.server.extra_args
    ):
        warnings.append(
            f"the server listens on all interfaces ({spec.server.host}) with no API key in "
            "front: anyone on the network can use it"
        )
    return warnings


def _cache_warnings(spec: HostSpec) -> list[str]:
    """Prewarmed models the server's model cache will not keep loaded."""
    warnings = []
    prewarmed = [m.id for m in spec.models if m.prewarm]
    env = spec.server.env
    size, ttl = env.get("MLX_OMNI_MODEL_CACHE_SIZE"), env.get("MLX_OMNI_MODEL_CACHE_TTL")
    # isdigit() is true of "²" and "٣" too; only ASCII digits are the plain number the
    # server's int() reads as meant (and "²" would make int() raise here).
    if size is not None and size.isascii() and size.isdigit() and len(prewarmed) > int(size):
        warnings.append(
            f"{len(prewarmed)} models are prewarmed but the server keeps {size} loaded "
            "(MLX_OMNI_MODEL_CACHE_SIZE): the first ones will be unloaded again"
        )
    if prewarmed and ttl not in (None, "0"):
        warnings.append(
            f"prewarmed models are unloaded after {ttl} s idle (MLX_OMNI_MODEL_CACHE_TTL); "
            "0 keeps them loaded"
        )
    return warnings
