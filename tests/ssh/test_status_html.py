"""`status FILE --html OUT`: over real sshd, the page is written from the same one facts
command per host, and the table and exit code are what `status` prints without it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.conftest import CAN_SSH
from tests.support import hostprep
from tests.support.lab import Lab

pytestmark = [
    pytest.mark.ssh,
    pytest.mark.skipif(not CAN_SSH, reason="needs root and openssh-server"),
]


def test_status_html_writes_a_page_with_each_host_and_keeps_the_table(lab: Lab) -> None:
    hosts = lab.fleet.hosts[:2]
    for host in hosts:
        hostprep.reset_host(host)  # as a fresh machine, whatever ran on it before
    site = lab.site(hosts)
    out_file = lab.tmp_path / "status.html"
    plain_code, plain, _ = lab.cli("status", str(site))
    code, out, err = lab.cli("status", str(site), "--html", str(out_file))
    assert code == plain_code == 0, err
    assert out.splitlines()[0] == plain.splitlines()[0]  # the same table header
    page = out_file.read_text()
    for host in hosts:
        row = re.search(rf'<tr id="host-{host.name}">(.*?)</tr>', page)
        assert row, host.name
        # Never applied: the server is not installed, and drift says what apply would do.
        assert "stopped" in row.group(1) and "not installed" in row.group(1)
        drift = re.search(r'<span class="drift">(.*?)</span>', row.group(1))
        assert drift and "package" in drift.group(1), row.group(1)
    assert not list(lab.tmp_path.glob(".status.html*"))  # no temporary file left


def test_status_html_into_a_folder_that_does_not_exist_says_so(lab: Lab) -> None:
    site = lab.site(lab.fleet.hosts[:1])
    missing = Path(lab.tmp_path / "no-such-folder" / "status.html")
    code, _, err = lab.cli("status", str(site), "--html", str(missing))
    assert code == 1
    assert "cannot write the status page" in err and "no-such-folder" in err
