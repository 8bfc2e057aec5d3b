"""How many examples each property test draws: its number times LOCALAI_TEST_EXAMPLES
(default 0.5, so the fast subset stays near a minute on a 2-core machine; 1 or more for a
thorough run, e.g. before a release). The property tests' numbers were chosen for a run at 1:
at 0.5 the site and shell properties draw 100-200 examples each (Hypothesis's own default is
100) in about half the CPU. Measured 2026-12-02 at load 3: the fast subset went from 110 s
to 70 s, with the ssh markers of that day."""

from __future__ import annotations

import os

SCALE = float(os.environ.get("LOCALAI_TEST_EXAMPLES", "0.5"))


def examples(number: int) -> int:
    return max(20, int(number * SCALE))
