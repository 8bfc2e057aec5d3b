"""Read-only no-op drift check, the pyinfra equivalent of `localai drift SITE`.

Run: pyinfra bench/pyinfra/inventory.py bench/pyinfra/deploy.py --dry --parallel N
Each check is a fact (one command over the host's one paramiko connection), read while
pyinfra prepares the deploy. A host that differs gets an operation named "DRIFT ...", which
`--dry` lists as a proposed change and never runs; a host in sync gets no operation at all.
"""

import json
import shlex

from pyinfra import host
from pyinfra.facts.server import Command
from pyinfra.operations import server

prefix = host.data.localai_prefix
port = host.data.localai_server_port
packages = dict(host.data.localai_packages)
model = host.data.localai_model
problems = []

# 1. The pinned packages, at their versions, in the server's venv.
VERSIONS = (
    "import importlib.metadata as m, json, sys\n"
    "def version(name):\n"
    "    try:\n"
    "        return m.version(name)\n"
    "    except m.PackageNotFoundError:\n"
    "        return None\n"
    "print(json.dumps({name: version(name) for name in sys.argv[1:]}))\n"
)
command = " ".join(
    shlex.quote(word) for word in [f"{prefix}/current/bin/python", "-I", "-c", VERSIONS, *packages]
)
output = host.get_fact(Command, command=command + " 2>&1 || echo null")
try:
    installed = json.loads(output or "null")
except ValueError:
    installed = None
if installed != packages:
    problems.append(f"packages: installed {output!r}, pinned {packages}")

# 2. The server process named by the pid file is alive.
alive = host.get_fact(
    Command,
    command=f"pid=$(cat {shlex.quote(prefix)}/run/server.pid 2>/dev/null) "
    '&& [ -n "$pid" ] && [ -d "/proc/$pid" ] && echo up || echo down',
)
if alive != "up":
    problems.append("server process not running")

# 3. GET /v1/models answers 200 and lists the model.
body = host.get_fact(
    Command,
    command=f"curl -sS -f -m 2 http://127.0.0.1:{int(port)}/v1/models 2>&1 || echo FAILED",
)
try:
    listed = [m["id"] for m in json.loads(body)["data"]]
except (ValueError, KeyError, TypeError):
    listed = None
if listed is None or model not in listed:
    problems.append(f"/v1/models: {body!r}")

if problems:
    server.shell(name=f"DRIFT {host.name}: " + "; ".join(problems), commands=["false"])
