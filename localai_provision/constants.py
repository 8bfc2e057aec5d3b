"""Values the command line needs before it knows what it will run (its defaults and
choices), kept apart from the modules that use them: `localai --help` should not import the
fleet, the facts and the plan to print them."""

from __future__ import annotations

# Hosts worked on at once. A host's check is mostly waiting on round trips (handshake, the
# facts command), so a lab of up to 64 Macs is checked in one wave rather than two; each
# live host costs the controller one socket and two threads (tests/ssh/test_fleet_bounds.py),
# and on a 2-core loopback fleet of 100, 16 to 100 forks measured the same (bench/scale.py).
DEFAULT_FORKS = 64

# Our platform names -> uv's --python-platform, and the environment uv needs for it.
# macOS 14 is the floor: current torch publishes macosx_14_0 wheels only, and uv assumes
# macOS 13 unless told (it would then pick an old torch).
PLATFORMS: dict[str, tuple[str, dict[str, str]]] = {
    "macos-arm64": ("aarch64-apple-darwin", {"MACOSX_DEPLOYMENT_TARGET": "14.0"}),
    "linux-x86_64": ("x86_64-manylinux_2_35", {}),
    "linux-aarch64": ("aarch64-manylinux_2_35", {}),
}

# `localai metrics`: a scrape gathers the fleet at most this often (seconds); Prometheus's
# default scrape interval is 60 s and a common one 15 s; a faster scraper gets the last gather.
DEFAULT_MIN_INTERVAL_S = 10.0

# `localai import ansible`: the server's pin written into `defaults`, the version the
# project's examples and tests use; the file's first comment says to check it.
DEFAULT_SERVER_VERSION = "0.5.1"
