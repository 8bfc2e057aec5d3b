"""Fixtures shared by the SSH tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support import hostprep
from tests.support.lab import Lab
from tests.support.macos import have_sudo, make_mac, unmake_mac
from tests.support.sshfleet import TestHost


@pytest.fixture
def mac(lab: Lab) -> Iterator[TestHost]:
    """A fleet host made a stand-in Mac (tests/support/macos.py), root helper installed; a
    Linux host again afterwards."""
    if not have_sudo():
        pytest.skip("needs Debian's sudo (the stand-in Macs use the real one)")
    host = lab.fleet.hosts[6]
    hostprep.reset_host(host)
    make_mac(host)
    yield host
    unmake_mac(host)
    hostprep.reset_host(host)
