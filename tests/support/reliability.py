"""Outcomes of the fault-injection and hostile-input tests, for bench/faults.py.

When LOCALAI_RELIABILITY_LOG names a file, every test marked `faults` or `hostile` appends one
JSON line to it when it has run: its kind, whether it passed, and what it counted. The counts
come from the tests themselves, never from a table: a fault test records what it found
half-written (`data_lost`), a hostile-input test how many inputs it fed (`tried`, one per
parametrized case, or every example hypothesis generated) and how many got through
(`let_through`, the failures).
"""

from __future__ import annotations

import collections
import json
import os
from pathlib import Path
from typing import Any

LOG_VARIABLE = "LOCALAI_RELIABILITY_LOG"

# Examples a hypothesis test generated, by test function name (the test counts them itself).
EXAMPLES: collections.Counter[str] = collections.Counter()


def count_example(test_name: str) -> None:
    EXAMPLES[test_name] += 1


def write(entry: dict[str, Any]) -> None:
    target = os.environ.get(LOG_VARIABLE)
    if not target:
        return
    with Path(target).open("a", encoding="utf-8") as f:
        f.write(json.dumps(entry, sort_keys=True) + "\n")
