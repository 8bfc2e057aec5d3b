"""Generations over real sshd with the STAND-IN server (tests/support): a new package set is
built beside the one that serves, switched to, rolled back from by itself when its server
does not start, not retried, rolled back from by hand, and pruned to `generations.keep`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import CAN_SSH
from tests.support import hostprep
from tests.support.lab import PACKAGES, Lab
from tests.support.sshfleet import TestHost

pytestmark = [
    pytest.mark.ssh,
    pytest.mark.skipif(not CAN_SSH, reason="needs root and openssh-server"),
]

GOOD = {**PACKAGES, "mlx-omni-server": "0.5.2"}
BROKEN = {**PACKAGES, "mlx-omni-server": "0.5.9"}  # its server exits 3 as it starts


def server_pid(host: TestHost) -> int:
    return int((host.home / ".localai" / "run" / "server.pid").read_text())


def generations(lab: Lab, site: Path) -> dict[str, dict[str, object]]:
    code, hosts = lab.json("generations", site)
    assert code == 0, hosts
    return hosts


def current(entry: dict[str, object]) -> dict[str, object]:
    rows = entry["generations"]
    assert isinstance(rows, list)
    return next(g for g in rows if g["current"])


def fresh(lab: Lab, hosts: list[TestHost], packages: dict[str, str]) -> Path:
    for host in hosts:
        hostprep.reset_host(host)
    site = lab.site(hosts, models=[], packages=packages)
    code, result = lab.json("apply", site)
    assert code == 0, result
    return site


def test_a_set_whose_server_crashes_is_rolled_back_on_every_host_and_not_retried(
    lab: Lab,
) -> None:
    hosts = lab.fleet.hosts[:2]
    site = fresh(lab, hosts, PACKAGES)
    before = {
        h.name: current(e)["generation"]
        for h, e in zip(hosts, generations(lab, site).values(), strict=True)
    }

    site = lab.site(hosts, models=[], packages=BROKEN)
    code, result = lab.json("apply", site)
    assert code == 1
    for host in hosts:
        entry = result[host.name]
        assert entry["status"] == "rolled-back", entry
        error = entry["error"]
        assert "rolled back to generation" in error["message"]
        assert "standin: failing at start" in error["output_tail"]  # the new one's log tail
        assert lab.serves(host)  # the old set serves again
    listed = generations(lab, site)
    for host in hosts:
        rows = listed[host.name]["generations"]
        assert current(listed[host.name])["generation"] == before[host.name]
        failed = [g for g in rows if g["failed"]]
        assert (
            len(failed) == 1
            and "mlx-omni-server 0.5.1 -> 0.5.9" in failed[0]["differs_from_current"]
        )

    # Not tried again with the same site: the hosts keep serving, nothing restarts.
    pids = {h.name: server_pid(h) for h in hosts}
    code, result = lab.json("apply", site)
    assert code == 1
    for host in hosts:
        entry = result[host.name]
        assert entry["status"] == "failed"
        assert "not tried again" in entry["error"]["message"], entry
        assert server_pid(host) == pids[host.name] and lab.serves(host)


def test_serial_with_max_fail_0_stops_after_the_canary_and_the_rest_keep_serving(lab: Lab) -> None:
    hosts = lab.fleet.hosts[2:5]
    fresh(lab, hosts, PACKAGES)
    site = lab.site(hosts, models=[], packages=BROKEN)
    code, result = lab.json("apply", site, "--serial", "1", "--max-fail", "0")
    assert code == 1
    statuses = [result[h.name]["status"] for h in hosts]
    assert statuses == ["rolled-back", "skipped", "skipped"], result
    assert all(lab.serves(h) for h in hosts)


def test_a_good_upgrade_keeps_the_old_one_rollback_returns_and_old_ones_are_pruned(
    lab: Lab,
) -> None:
    [host] = hosts = [lab.fleet.hosts[5]]
    site = fresh(lab, hosts, PACKAGES)
    first = current(generations(lab, site)[host.name])["generation"]

    site = lab.site(hosts, models=[], packages=GOOD)
    code, plan = lab.json("plan", site)
    assert code == 2
    reasons = [
        c["reason"] for c in plan[host.name]["changes"] if c["resource"].startswith("generation")
    ]
    assert len(reasons) == 1 and f"beside {first}" in reasons[0], plan
    pid = server_pid(host)
    code, result = lab.json("apply", site)
    assert code == 0, result
    assert server_pid(host) != pid and lab.serves(host)
    listed = generations(lab, site)[host.name]
    second = current(listed)["generation"]
    assert second != first
    rows = {g["generation"]: g for g in listed["generations"]}
    assert rows[first]["previous"] and (host.home / f".localai/generations/{first}").is_dir()
    code, status = lab.json("status", site)
    assert status[host.name]["generation"] == second
    assert status[host.name]["packages"]["mlx-omni-server"] == "0.5.2"

    # Back by hand: the old set serves, verified; apply does not switch forward again.
    code, out, err = lab.cli("rollback", str(site))
    assert code == 0, out + err
    assert f"rolled back from {second} to {first}" in out
    code, status = lab.json("status", site)
    assert status[host.name]["generation"] == first
    assert status[host.name]["packages"]["mlx-omni-server"] == "0.5.1" and lab.serves(host)
    code, result = lab.json("apply", site)
    assert code == 1 and "not tried again" in result[host.name]["error"]["message"]

    # Two more sets: the first generation goes once it is beyond the 2 kept.
    for mlx_lm in ("0.28.1",):
        site = lab.site(hosts, models=[], packages={**GOOD, "mlx-lm": mlx_lm})
        code, result = lab.json("apply", site)
        assert code == 0, result
    site = lab.site(hosts, models=[], packages={**PACKAGES, "mlx-lm": "0.28.1"})
    code, result = lab.json("apply", site)
    assert code == 0, result
    removed = [s for s in result[host.name]["steps"] if s["step"] == "generations"]
    assert removed and first in removed[0]["removed"], result
    assert not (host.home / f".localai/generations/{first}").exists()
    assert (host.home / f".localai/generations/{second}").is_dir()  # the newest failed one
    code, again = lab.json("apply", site)
    assert code == 0 and again[host.name]["status"] == "ok"
    assert json.loads((host.home / ".localai/state.json").read_text())
