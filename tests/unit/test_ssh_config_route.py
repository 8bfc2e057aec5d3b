"""`ssh_config` read with paramiko's own parser: what the config gives where the site gives
nothing, the site's own values kept, ProxyJump's hops; and the site format's new key."""

from __future__ import annotations

from pathlib import Path

import pytest

from localai_provision.connectors.ssh.sshconfig import Hop, route_for
from localai_provision.errors import ConnectError, SiteError
from localai_provision.site import parse_site
from localai_provision.site.model import HostSpec

PINS = "defaults:\n  packages: {mlx-omni-server: 0.5.1}\n"


@pytest.fixture
def config(tmp_path: Path) -> Path:
    key = tmp_path / "id_lab"
    key.write_text("not read by these tests\n")
    path = tmp_path / "config"
    path.write_text(
        f"""\
Host bastion
  HostName gw.lab.example
  User gate
  Port 2200

Host mac-*
  User admin
  IdentityFile {key}
  IdentityFile ~/.ssh/no-such-key-here

Host mac-01
  HostName 10.0.0.11
  Port 2222
  ProxyJump bastion,ops@hop2:2022

Host mac-02
  HostName 10.0.0.12
  ProxyJump none

Host broken
  Port twenty
"""
    )
    return path


def spec_of(config: Path, host_yaml: str, name: str, extra: str = "") -> HostSpec:
    text = f"version: 1\n{PINS}  ssh_config: {config}\n{extra}hosts:\n{host_yaml}"
    return parse_site(text, "site.yaml").hosts[name]


def test_an_alias_takes_hostname_user_port_identity_and_its_jumps(config: Path) -> None:
    route = route_for(spec_of(config, "  mac-01: {}\n", "mac-01"))
    assert (route.spec.address, route.spec.ssh_port, route.spec.user) == (
        "10.0.0.11",
        2222,
        "admin",
    )
    assert route.identity_files == (str(config.parent / "id_lab"),)  # the missing one skipped
    assert route.jumps == (
        Hop("gw.lab.example", 2200, "gate", ()),
        Hop("hop2", 2022, "ops", ()),
    )


def test_the_sites_own_values_win_over_the_config(config: Path) -> None:
    host = "  mac-01: {address: 192.168.1.5, ssh_port: 22, user: me, identity_file: k}\n"
    route = route_for(spec_of(config, host, "mac-01"))
    assert (route.spec.address, route.spec.ssh_port, route.spec.user) == ("192.168.1.5", 22, "me")
    assert route.identity_files == (str(Path("k").resolve()),)


def test_proxyjump_none_is_no_jump_and_the_default_port_stays(config: Path) -> None:
    route = route_for(spec_of(config, "  mac-02: {}\n", "mac-02"))
    assert route.jumps == () and route.spec.address == "10.0.0.12" and route.spec.ssh_port == 22


def test_without_ssh_config_nothing_is_read(tmp_path: Path) -> None:
    spec = parse_site(f"version: 1\n{PINS}hosts:\n  mac-01: {{}}\n", "site.yaml").hosts["mac-01"]
    route = route_for(spec)
    assert route.spec is spec and route.jumps == () and spec.ssh_set_by_site == ()


def test_a_bad_port_in_the_config_names_the_file_and_the_host(config: Path) -> None:
    with pytest.raises(ConnectError, match=r"gives Port 'twenty' for broken"):
        route_for(spec_of(config, "  broken: {}\n", "broken"))


def test_a_missing_config_file_is_a_connect_error_with_a_hint(tmp_path: Path) -> None:
    with pytest.raises(ConnectError, match="cannot read ssh_config") as caught:
        route_for(spec_of(tmp_path / "nope", "  mac-01: {}\n", "mac-01"))
    assert "ssh_config" in caught.value.hint


def test_ssh_config_true_is_the_users_own_config() -> None:
    spec = parse_site(
        f"version: 1\n{PINS}  ssh_config: true\nhosts:\n  a: {{}}\n", "site.yaml"
    ).hosts["a"]
    assert spec.ssh_config == str(Path("~/.ssh/config").expanduser())


def test_ssh_config_of_another_type_is_an_error_at_its_line() -> None:
    with pytest.raises(SiteError) as caught:
        parse_site(f"version: 1\n{PINS}hosts:\n  a:\n    ssh_config: 3\n", "site.yaml")
    (problem,) = caught.value.problems
    assert problem.render().startswith("site.yaml:6:17: error: hosts.a.ssh_config: 3 is not")
