"""Proving the server: its endpoints answer, it lists the site's models, the prewarmed ones
answer a request; and whether the server's port is held at all."""

from __future__ import annotations

import json
from typing import Any

from localai_provision import scripts, shell
from localai_provision.apply.context import ApplyOptions, HostContext
from localai_provision.errors import HostError
from localai_provision.layout import Layout
from localai_provision.site.model import HostSpec

_PORT_CHECK = (
    "import socket,sys\n"
    "try:\n socket.create_connection((sys.argv[1], int(sys.argv[2])), 2).close()\n"
    "except OSError:\n sys.exit(1)"
)


def reachable_address(spec: HostSpec) -> str:
    """Where the host itself reaches its server: a wildcard bind is asked on loopback."""
    return spec.server.host if spec.server.host not in ("0.0.0.0", "::") else "127.0.0.1"


def verify_config(
    spec: HostSpec, layout: Layout, options: ApplyOptions, prewarm: bool
) -> dict[str, Any]:
    """What scripts/verify.py is given: where to ask, what, and for how long."""
    return {
        "host": reachable_address(spec),
        "port": spec.server.port,
        "endpoints": list(dict.fromkeys(("/v1/models", *spec.verify.endpoints))),
        "timeout_s": spec.verify.timeout_s,
        "prewarm": [m.id for m in spec.models if m.prewarm] if prewarm else [],
        "prewarm_timeout_s": options.prewarm_timeout_s,
        "pid_file": layout.pid_file,
        "log": layout.server_log,
    }


def verify(host: HostContext, options: ApplyOptions, prewarm: bool) -> dict[str, Any]:
    spec, layout = host.spec, host.layout
    config = verify_config(spec, layout, options, prewarm)
    models = config["prewarm"]
    out = host.run_step(
        "verify",
        [layout.venv_python, "-I", "-S", "-c", scripts.load("verify"), json.dumps(config)],
        "the verify script failed",
        timeout=spec.verify.timeout_s + options.prewarm_timeout_s * max(1, len(models)) + 30,
    )
    result: dict[str, Any] = json.loads(out)
    check_verified(spec, layout, result)
    return result


def check_verified(spec: HostSpec, layout: Layout, result: dict[str, Any]) -> None:
    """Raise the HostError for the first thing the verify script found wrong."""
    hint = f"read {layout.server_log} on the host"
    if result.get("error"):
        raise HostError(
            host=spec.name,
            step="verify",
            message=result["error"],
            output_tail=result.get("log_tail", ""),
            hint=hint,
        )
    for endpoint in result["endpoints"]:
        if endpoint.get("status") != 200:
            raise HostError(
                host=spec.name,
                step="verify",
                message=f"{endpoint['path']} answered {endpoint.get('status') or 'nothing'}",
                output_tail=str(endpoint.get("error", "")),
                hint=hint,
            )
    missing = [m.id for m in spec.models if m.id not in result["listed"]]
    if missing:
        raise HostError(
            host=spec.name,
            step="verify",
            message=f"the server does not list {', '.join(missing)}",
            hint="the model folder may not be a model the server can load (config.json with "
            "a model_type mlx-lm knows)",
        )
    for entry in result["prewarm"]:
        if entry.get("status") != 200:
            raise HostError(
                host=spec.name,
                step="prewarm",
                message=f"prewarming {entry['model']} failed (HTTP {entry.get('status')})",
                output_tail=str(entry.get("error", "")),
                hint=hint,
            )


def port_check_argv(spec: HostSpec, layout: Layout) -> list[str]:
    port = str(spec.server.port)
    return [layout.venv_python, "-I", "-S", "-c", _PORT_CHECK, reachable_address(spec), port]


def port_in_use(host: HostContext) -> bool:
    """Is something listening on the server's port? Asked on the host: it is its loopback."""
    return host.connector.run(shell.join(port_check_argv(host.spec, host.layout))).ok
