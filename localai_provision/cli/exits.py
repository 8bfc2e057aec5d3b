"""The exit codes: an API, the same for every command (README, "Commands")."""

from __future__ import annotations

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_CHANGES = 2
# argparse exits 2 on a mistyped command line, the code plan and drift use for "changes": a
# script running `localai drift --limt x` would have read drift. EX_USAGE (sysexits.h).
EXIT_USAGE = 64
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report it
EXIT_TERMINATED = 143  # 128 + SIGTERM
