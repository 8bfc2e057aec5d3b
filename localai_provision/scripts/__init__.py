"""Small programs sent to hosts as text and run there by Python (stdlib only, Python 3.8+).

Like facts/remote.py, none of them is imported by the tool: ``load(name)`` returns the text.
One exception, written to be both: pacing.py, the token bucket the controller imports and
whose text is sent ahead of blobs.py (one copy of the pacing for both ends of a transfer).
"""

from functools import cache
from importlib import resources


@cache
def load(name: str) -> str:
    return (resources.files("localai_provision.scripts") / f"{name}.py").read_text("utf-8")
