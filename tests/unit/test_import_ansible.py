"""`localai import ansible`: a real-world-shaped inventory (tests/fixtures/ansible, INI and
YAML of the same lab) becomes a site file that validates; what has no site setting is named,
never dropped silently, and never with its value."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from localai_provision.ansible_inventory import expand, read_inventory
from localai_provision.ansible_site import import_inventory
from localai_provision.cli import main
from localai_provision.cli.render import Output
from localai_provision.errors import SiteError
from localai_provision.site import parse_site

FIXTURES = Path(__file__).parent.parent / "fixtures" / "ansible"


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), Output(out, err))
    return code, out.getvalue(), err.getvalue()


@pytest.mark.parametrize("name", ["hosts.ini", "hosts.yaml"])
def test_an_inventory_becomes_a_site_file_that_validates(name: str) -> None:
    code, out, err = run("import", "ansible", str(FIXTURES / name))
    assert code == 0, err
    site = parse_site(out, "site.yaml")
    assert list(site.hosts) == [
        "gateway.lab.example",
        "mini01.lab.example",
        "mini02.lab.example",
        "mini03.lab.example",
        "mini-04",
        "studio-01",
        "controller",
    ]
    mini, studio = site.hosts["mini02.lab.example"], site.hosts["studio-01"]
    assert mini.user == "lab" and mini.groups == ("macs", "minis")  # host vars win
    assert studio.user == "admin" and studio.address == "10.0.0.21"  # the group's user
    assert studio.python == "/opt/homebrew/bin/python3.11"
    assert site.hosts["gateway.lab.example"].user == "ops"  # all:vars, ansible_ssh_user
    assert site.hosts["gateway.lab.example"].ssh_port == 2222
    assert site.hosts["mini-04"].identity_file == str(Path("~/.ssh/id_lab").expanduser())
    assert site.hosts["controller"].connection == "local"
    assert set(site.groups) == {"minis", "studios", "macs", "local"}


def test_variables_without_a_site_setting_are_named_in_comments_and_warnings() -> None:
    code, out, err = run("import", "ansible", str(FIXTURES / "hosts.ini"))
    assert code == 0
    assert "# not imported (no site setting): ansible_become_pass, http_port" in out
    assert "# not imported (no site setting): gpu_mem" in out
    assert "macs: not imported (no site setting): ansible_become_pass, http_port" in err
    assert "ntp_server" in err and "gpu_mem" in err
    assert "hunter2" not in out + err  # a value is never written: it may be a password


def test_json_gives_the_site_and_the_warnings() -> None:
    code, out, _ = run("import", "ansible", str(FIXTURES / "hosts.yaml"), "--json")
    data = json.loads(out)
    assert code == 0 and data["site"].startswith("# Imported") and len(data["warnings"]) == 3


def test_a_broken_section_header_names_its_line_and_column(tmp_path: Path) -> None:
    bad = tmp_path / "inventory.ini"
    bad.write_text("[minis]\nmini01\n  [studios\n")
    code, _, err = run("import", "ansible", str(bad))
    assert code == 1
    assert err.startswith(f"{bad}:3:3: error: a section is [GROUP]")


def test_an_inventory_without_hosts_or_file_is_said_so(tmp_path: Path) -> None:
    empty = tmp_path / "empty.ini"
    empty.write_text("[minis]\n")
    code, _, err = run("import", "ansible", str(empty))
    assert code == 1 and "no hosts in this inventory" in err
    code, _, err = run("import", "ansible", str(tmp_path / "missing.ini"))
    assert code == 1 and "missing.ini" in err
    with pytest.raises(SystemExit) as usage:
        run("import")  # no KIND
    assert usage.value.code == 64


def test_a_host_name_the_site_refuses_keeps_its_address() -> None:
    inv = read_inventory("[v6]\nfe80::1%eth0\n", "inv.ini")
    imported = import_inventory(inv, "inv.ini", "0.5.1")
    (name,) = imported.hosts
    assert name == "fe80--1-eth0" and imported.hosts[name].settings["address"] == "fe80::1%eth0"


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ("mac[01:03]", ["mac01", "mac02", "mac03"]),
        ("mac[8:10].lab", ["mac8.lab", "mac9.lab", "mac10.lab"]),
        ("db-[a:c]", ["db-a", "db-b", "db-c"]),
        ("n[0:4:2]", ["n0", "n2", "n4"]),
        ("plain", ["plain"]),
    ],
)
def test_host_ranges_expand_as_ansible_does(pattern: str, expected: list[str]) -> None:
    assert expand(pattern) == expected


def test_a_yaml_syntax_error_names_its_line() -> None:
    with pytest.raises(SiteError) as caught:
        read_inventory("all:\n  hosts:\n    a: [\n", "inv.yaml")
    assert caught.value.problems[0].render().startswith("inv.yaml:4:1: error: YAML syntax")
