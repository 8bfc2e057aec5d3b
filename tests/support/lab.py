"""A site file over some of the test fleet's hosts, and the CLI run on it in process."""

from __future__ import annotations

import io
import json
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from localai_provision.cli import Output, main
from localai_provision.site import load_site
from localai_provision.site.model import HostSpec
from tests.support.sshfleet import SSHFleet, TestHost

Hosts = dict[str, dict[str, Any]]  # a command's --json hosts, by name

PACKAGES = {"mlx-omni-server": "0.5.1", "mlx-lm": "0.28.2"}
MODEL = "org/tiny-a"


def site_yaml(
    fleet: SSHFleet,
    hosts: list[TestHost],
    known_hosts: Path,
    *,
    ports: dict[str, int],
    defaults: dict[str, object] | None = None,
    per_host: dict[str, dict[str, object]] | None = None,
) -> str:
    """A site file for some of the fleet's hosts."""
    base: dict[str, object] = {
        "identity_file": str(fleet.client_key_path),
        "known_hosts_file": str(known_hosts),
        "python": "/usr/bin/python3",
        "prefix": "~/.localai",
        "hf_home": "~/hf",
        "connect_timeout_s": 5,
    }
    base.update(defaults or {})
    site_hosts: dict[str, object] = {}
    for host in hosts:
        entry: dict[str, object] = {
            "address": "127.0.0.1",
            "ssh_port": host.port,
            "user": host.user,
            "server": {"port": ports[host.name]},
        }
        entry.update((per_host or {}).get(host.name, {}))
        site_hosts[host.name] = entry
    return yaml.safe_dump({"version": 1, "defaults": base, "hosts": site_hosts}, sort_keys=False)


class Lab:
    """A site file over some fleet hosts, and ways to run the CLI and the library on it."""

    def __init__(
        self,
        fleet: SSHFleet,
        tmp_path: Path,
        known_hosts: Path,
        ports: dict[str, int],
        wheelhouse: Path,
    ) -> None:
        self.fleet = fleet
        self.tmp_path = tmp_path
        self.known_hosts = known_hosts
        self.ports = ports
        self.wheelhouse = wheelhouse

    def site(
        self,
        hosts: list[TestHost],
        per_host: dict[str, dict[str, object]] | None = None,
        **defaults: object,
    ) -> Path:
        base: dict[str, object] = {
            "packages": PACKAGES,
            "models": [MODEL],
            "package_index": {"no_index": True, "find_links": [str(self.wheelhouse)]},
        }
        base.update(defaults)
        path = self.tmp_path / "site.yaml"
        path.write_text(
            site_yaml(
                self.fleet,
                hosts,
                self.known_hosts,
                ports=self.ports,
                defaults=base,
                per_host=per_host,
            )
        )
        return path

    def spec(self, site: Path, host: TestHost) -> HostSpec:
        return load_site(site).hosts[host.name]

    def cli(self, *argv: str) -> tuple[int, str, str]:
        out, err = io.StringIO(), io.StringIO()
        code = main(list(argv), Output(out, err))
        return code, out.getvalue(), err.getvalue()

    def json(self, command: str, site: Path, *extra: str) -> tuple[int, Hosts]:
        """Run a command with --json; its hosts by name."""
        code, out, err = self.cli(command, str(site), "--json", *extra)
        assert out, err
        return code, {h["name"]: h for h in json.loads(out)["hosts"]}

    def serves(self, host: TestHost, timeout: float = 5.0) -> bool:
        """Does the host's server answer GET /v1/models with 200?"""
        url = f"http://127.0.0.1:{self.ports[host.name]}/v1/models"
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response:
                return int(response.status) == 200
        except OSError:
            return False

    def drift_json(self, site: Path, *extra: str) -> tuple[int, Hosts]:
        return self.json("drift", site, *extra)
