"""Small programs sent to hosts as text and run there by Python (stdlib only, Python 3.8+).

Like facts/remote.py, none of them is imported by the tool: ``load(name)`` returns the text,
with the text of its PRELUDES in front (code more than one program needs, written once).
One exception, written to be both: pacing.py, the token bucket the controller imports and
whose text is sent ahead of blobs.py for `serve` (one copy of the pacing for both ends of a
transfer; transfer.py adds it).
"""

from functools import cache
from importlib import resources

# The server's log is rotated by whoever holds it: the launchers at start, the shim while the
# server runs (logrotate.py says why).
PRELUDES = {
    "launch": ("logrotate",),
    "launchd_exec": ("logrotate",),
    "server_shim": ("logrotate",),
}


@cache
def load(name: str) -> str:
    parts = (*PRELUDES.get(name, ()), name)
    folder = resources.files("localai_provision.scripts")
    return "\n".join((folder / f"{part}.py").read_text("utf-8") for part in parts)
