"""The local connector, and plan/drift through it (`connection: local`)."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import pytest

from localai_provision.cli import Output, main
from localai_provision.connectors.local import LocalConnector
from localai_provision.errors import CommandError
from localai_provision.site import parse_site


def connector() -> LocalConnector:
    site = parse_site(
        "version: 1\nhosts:\n  here: {connection: local, packages: {mlx-omni-server: 0.5.1}}\n",
        "s.yaml",
    )
    return LocalConnector(site.hosts["here"])


def test_run_returns_status_and_output() -> None:
    with connector() as c:
        result = c.run("echo out; echo err >&2; exit 3")
    assert (result.exit_status, result.stdout, result.stderr) == (3, "out\n", "err\n")
    assert result.tail() == "out\nerr"


def test_run_timeout_raises_a_host_error() -> None:
    with pytest.raises(CommandError, match=r"did not finish within 0\.2 s"):
        connector().run("sleep 5", timeout=0.2)


def test_put_is_atomic_and_sets_the_mode(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "file.json"
    c = connector()
    c.put(b"first", str(target), mode=0o600)
    c.put(b"second", str(target), mode=0o600)
    assert target.read_bytes() == b"second"
    assert os.stat(target).st_mode & 0o777 == 0o600
    assert os.listdir(target.parent) == ["file.json"]  # no temporary file left behind
    assert c.get(str(target)) == b"second"


def test_plan_and_drift_of_a_local_host(tmp_path: Path) -> None:
    site = tmp_path / "site.yaml"
    site.write_text(
        "version: 1\nhosts:\n  here:\n    connection: local\n"
        f"    prefix: {tmp_path}/prefix\n    hf_home: {tmp_path}/hf\n"
        "    packages: {mlx-omni-server: 0.5.1}\n    server: {port: 1}\n"
    )
    out, err = io.StringIO(), io.StringIO()
    assert main(["drift", str(site), "--json"], Output(out, err)) == 2
    [host] = json.loads(out.getvalue())["hosts"]
    assert host["status"] == "drift"
    resources = {d["resource"] for d in host["differences"]}
    assert len([r for r in resources if r.startswith("generation ")]) == 1
    assert resources - {r for r in resources if r.startswith("generation ")} == {
        "package mlx-omni-server",
        "package torch",
        "shim",
        "server-config",
        "service",
    }
