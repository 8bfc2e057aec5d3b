"""Site settings of artifact transfer, and the wheelhouse's pure parts."""

from __future__ import annotations

from pathlib import Path

import pytest

from localai_provision.errors import SiteError
from localai_provision.lock import Lock
from localai_provision.site import parse_site
from localai_provision.wheelhouse import locked_requirements, pip_platforms

# Every site pins the server (the loader refuses one that does not); appended, so that the
# positions above it stay as they are.
PIN = "defaults: {packages: {mlx-omni-server: 0.5.1}}\n"
HEAD = "version: 1\nhosts:\n  mini-01:\n    address: 10.0.0.1\n"


@pytest.mark.parametrize(
    ("text", "line", "column", "fragment"),
    [
        (
            HEAD + "    package_index: {push: true}\n",
            5,
            27,
            "`push` sends the locked wheels, but the host has no `lock`",
        ),
        (
            "version: 1\ndefaults:\n  package_index:\n    push: true\n"
            "hosts:\n  a: {}\n  b: {lock: locks/x}\n",
            4,
            11,
            "host `a`",
        ),
        (HEAD + "    models: [{id: a/b, source: 'hf:nope'}]\n", 5, 32, "not `hf:ORG/NAME`"),
        (HEAD + "    transfer: {peer_ports: [80, 9000]}\n", 5, 29, "below the minimum 1024"),
        (HEAD + "    transfer: {peers: maybe}\n", 5, 23, "true or false"),
        (HEAD + "    transfer: {peer_address: 'a b'}\n", 5, 30, "host name or an IP"),
    ],
)
def test_bad_transfer_settings(text: str, line: int, column: int, fragment: str) -> None:
    with pytest.raises(SiteError) as caught:
        parse_site(text, "site.yaml")
    problems = caught.value.problems
    assert any(p.line == line and p.column == column and fragment in p.message for p in problems), [
        (p.line, p.column, p.message) for p in problems
    ]


def test_transfer_settings_merge_and_default() -> None:
    site = parse_site(
        "version: 1\ndefaults:\n  transfer: {peer_ports: [50100, 50000]}\n"
        "  packages: {mlx-omni-server: 0.5.1}\n"
        "hosts:\n  a: {}\n  b: {transfer: {peers: false}}\n",
        "site.yaml",
    )
    assert site.hosts["a"].transfer.peers is True
    assert site.hosts["a"].transfer.peer_ports == (50000, 50100)
    assert site.hosts["b"].transfer.peers is False
    assert site.hosts["b"].transfer.peer_ports == (50000, 50100)
    hub = parse_site(HEAD + "    models: [{id: a/b, source: 'hf:org/name'}]\n" + PIN, "s.yaml")
    assert hub.hosts["mini-01"].models[0].source == "hf:org/name"


LOCK = """\
# localai lock for linux-x86_64 (Python 3.11); made by `localai lock`
# from: mlx-lm==0.28.2
mlx-lm==0.28.2 \\
    --hash=sha256:aaaa000000000000000000000000000000000000000000000000000000000000 \\
    --hash=sha256:bbbb000000000000000000000000000000000000000000000000000000000000
    # via -r requirements.in
mlx[cpu]==0.29.3 \\
    --hash=sha256:cccc000000000000000000000000000000000000000000000000000000000000
    # via mlx-lm
"""


def test_locked_requirements_keep_every_hash_of_each_pin() -> None:
    lock = Lock(path=Path("x.txt"), platform="linux-x86_64", packages={}, text=LOCK)
    found = {(r.name, r.version): r.hashes for r in locked_requirements(lock)}
    assert found == {
        ("mlx-lm", "0.28.2"): frozenset({"aaaa" + "0" * 60, "bbbb" + "0" * 60}),
        ("mlx", "0.29.3"): frozenset({"cccc" + "0" * 60}),
    }


def test_pip_platforms_name_every_tag_a_host_accepts() -> None:
    assert pip_platforms("macos-arm64", "15.1") == ["macosx_15_0_arm64"]
    linux = pip_platforms("linux-x86_64", "12")
    assert linux[0] == "manylinux_2_35_x86_64"
    assert {"manylinux_2_17_x86_64", "manylinux2014_x86_64", "linux_x86_64"} <= set(linux)
