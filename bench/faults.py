"""The reliability figures: run the fault-injection suite and the hostile-input tests, count.

Run (as root, with openssh-server installed, as the tests need): python bench/faults.py

It runs pytest on tests/faults (marker `faults`: each test injects one fault over real SSH)
and on the hostile-input tests (marker `hostile`: the validate table of bad site files, the
quoting property test on a real shell, the path and symlink tests), with
LOCALAI_RELIABILITY_LOG set: every such test appends its own outcome to that file
(tests/conftest.py, tests/support/reliability.py). The figures are counted from those lines,
never from a table:

  faults injected   fault tests run          survived   those that passed
  data lost         half-written files the tests found (target 0)
  hostile inputs    inputs fed (one per bad file; every value hypothesis generated)
  let through       inputs that were not refused or not kept literal (target 0)

Exit status 0 when every fault was survived with nothing lost and nothing was let through.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TARGETS = [
    "tests/faults",
    "tests/ssh/test_fanout.py",  # its fault tests: a holder killed mid-copy, bad bytes, no peer
    "tests/unit/test_site_errors.py",
    "tests/unit/test_site_hostile.py",
    "tests/unit/test_shell_quoting.py",
    "tests/unit/test_hostile_paths.py",
    "tests/unit/test_host_text.py",  # host text escaped, JUnit valid (issue 14)
    "tests/unit/test_ownership.py",  # nothing deleted that the tool did not make (issue 14)
    "tests/local/test_apply_mistakes.py",  # no traceback in apply (issue 14)
    "tests/ssh/test_output_secrets.py",  # no secret leaves a host, chatty login (issue 14)
]


def run_suite(log: Path, verbose: bool) -> int:
    env = {**os.environ, "LOCALAI_RELIABILITY_LOG": str(log), "PYTHONPATH": str(REPO)}
    argv = [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "-m",
        "faults or hostile",
        *TARGETS,
    ]
    out = None if verbose else subprocess.DEVNULL
    return subprocess.run(argv, cwd=REPO, env=env, stdout=out, check=False).returncode


def summarize(entries: list[dict[str, object]]) -> dict[str, object]:
    faults = [e for e in entries if e["kind"] == "fault" and not e.get("skipped")]
    hostile = [e for e in entries if e["kind"] == "hostile" and not e.get("skipped")]
    return {
        "faults_injected": len(faults),
        "survived": sum(1 for e in faults if e["passed"]),
        "data_lost": sum(int(str(e.get("data_lost", 0))) for e in faults),
        "hostile_inputs_tried": sum(int(str(e.get("tried", 0))) for e in hostile),
        "let_through": sum(int(str(e.get("let_through", 0))) for e in hostile),
        "hostile_tests": len(hostile),
        "skipped": sum(1 for e in entries if e.get("skipped")),
        "faults": [
            {"fault": e["fault"], "survived": e["passed"], "data_lost": e.get("data_lost", 0)}
            for e in faults
        ],
        "failed": [str(e["test"]) for e in entries if not e["passed"] and not e.get("skipped")],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--verbose", action="store_true", help="show pytest's output")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="localai-faults-") as folder:
        log = Path(folder) / "outcomes.jsonl"
        log.touch()
        start = time.perf_counter()
        pytest_status = run_suite(log, args.verbose)
        elapsed = time.perf_counter() - start
        entries = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    figures = summarize(entries)
    figures["seconds"] = round(elapsed, 1)
    figures["pytest_exit_status"] = pytest_status
    figures["machine"] = (
        f"{os.cpu_count()} cores, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}"
    )
    figures["date"] = time.strftime("%Y-%m-%d", time.gmtime())
    if args.json:
        print(json.dumps(figures, indent=2))
    else:
        print(f"{'fault':<62} {'survived':>8} {'lost':>5}")
        for fault in figures["faults"]:  # type: ignore[attr-defined]
            mark = "yes" if fault["survived"] else "NO"
            print(f"{fault['fault']:<62} {mark:>8} {fault['data_lost']:>5}")
        print()
        print(f"faults injected:      {figures['faults_injected']}")
        print(f"survived:             {figures['survived']}")
        print(f"data lost:            {figures['data_lost']} (target 0)")
        print(
            f"hostile inputs tried: {figures['hostile_inputs_tried']} "
            f"(in {figures['hostile_tests']} tests)"
        )
        print(f"let through:          {figures['let_through']} (target 0)")
        if figures["skipped"]:
            print(f"skipped:              {figures['skipped']} (not counted)")
        for test in figures["failed"]:  # type: ignore[attr-defined]
            print(f"FAILED: {test}")
        print(f"({figures['seconds']} s, {figures['date']}, {figures['machine']})")
    ok = (
        pytest_status == 0
        and figures["survived"] == figures["faults_injected"]
        and figures["data_lost"] == 0
        and figures["let_through"] == 0
        and figures["faults_injected"] > 0
    )
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
