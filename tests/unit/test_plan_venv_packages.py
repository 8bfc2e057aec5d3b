"""The venv and packages planners, and the one rule of what a Linux host adds. Facts in,
changes out."""

from __future__ import annotations

from pathlib import Path

import pytest

from localai_provision.facts.model import Facts
from localai_provision.linux import linux_additions
from localai_provision.lock import Lock, requirements
from localai_provision.plan import desired_packages
from localai_provision.plan.packages import package_changes
from localai_provision.plan.venv import venv_changes
from localai_provision.site.model import HostSpec
from tests.unit.plan_tables import linux, mac, rows, site, with_venv

VENV_CASES = [
    ("a sound venv", linux(), []),
    ("no venv", with_venv(linux(), exists=False), [("venv", "create")]),
    ("its python gone", with_venv(linux(), python_exists=False), [("venv", "update")]),
    ("an interrupted build", with_venv(linux(), complete=False), [("venv", "update")]),
    ("made by another python", with_venv(linux(), python_version="3.10.12"), [("venv", "update")]),
    ("the same minor python", with_venv(linux(), python_version="3.11.9"), []),
    ("somebody else's venv", with_venv(linux(), owned=False), [("venv", "fail")]),
    ("an empty folder", with_venv(linux(), owned=False, empty=True), []),
]


@pytest.mark.parametrize(
    ("facts", "expected"), [c[1:] for c in VENV_CASES], ids=[c[0] for c in VENV_CASES]
)
def test_the_venv_planner_table(facts: Facts, expected: list[tuple[str, str]]) -> None:
    assert rows(venv_changes(site(), facts)) == expected


def test_a_venv_of_another_python_says_both_versions() -> None:
    [change] = venv_changes(site(), with_venv(linux(), python_version="3.10.12"))
    assert (change.before, change.after) == ("Python 3.10.12", "Python 3.11")


INSTALLED = {"mlx-omni-server": "0.5.1", "mlx-lm": "0.28.2", "torch": "2.13.0+cpu"}

LM_UPDATE, LM_CREATE = [("package mlx-lm", "update")], [("package mlx-lm", "create")]
EVERY = [("package mlx-omni-server", "create"), ("package mlx-lm", "create")]
EVERY += [("package torch", "create")]
HALF = {"mlx-lm": "mlx_lm/__init__.py"}

PACKAGE_CASES = [
    ("all at their versions", INSTALLED, {}, False, []),
    ("another version", {**INSTALLED, "mlx-lm": "0.28.1"}, {}, False, LM_UPDATE),
    ("versions compare exactly", {**INSTALLED, "mlx-lm": "0.28.20"}, {}, False, LM_UPDATE),
    ("versions compare case-insensitively", {**INSTALLED, "torch": "2.13.0+CPU"}, {}, False, []),
    ("missing", {"mlx-omni-server": "0.5.1", "torch": "2.13.0+cpu"}, {}, False, LM_CREATE),
    ("an extra package is fine", {**INSTALLED, "numpy": "2.0"}, {}, False, []),
    ("half-installed", INSTALLED, HALF, False, LM_UPDATE),
    ("a rebuilt venv gets every package", INSTALLED, {}, True, EVERY),
]


@pytest.mark.parametrize(
    ("installed", "half", "rebuilt", "expected"),
    [c[1:] for c in PACKAGE_CASES],
    ids=[c[0] for c in PACKAGE_CASES],
)
def test_the_packages_planner_table(
    installed: dict[str, str],
    half: dict[str, str],
    rebuilt: bool,
    expected: list[tuple[str, str]],
) -> None:
    facts = with_venv(linux(), packages=installed, half_installed=half)
    assert rows(package_changes(site(), facts, None, venv_rebuilt=rebuilt)) == expected


def test_a_half_installed_package_says_which_file_is_missing() -> None:
    facts = with_venv(linux(), half_installed={"mlx-lm": "mlx_lm/__init__.py"})
    [change] = package_changes(site(), facts, None, venv_rebuilt=False)
    assert (change.before, change.after) == ("half-installed", "0.28.2")
    assert "mlx_lm/__init__.py is missing" in change.reason


LOCK = Lock(
    path=Path("/s/omni.linux-x86_64.txt"),
    platform="linux-x86_64",
    packages={
        "mlx-omni-server": "0.5.1",
        "mlx-lm": "0.28.2",
        "torch": "2.13.0+cpu",
        "anyio": "4.0",
    },
    text="",
)


def test_a_locked_set_is_exact_so_what_it_does_not_name_goes_but_the_installers_stay() -> None:
    installed = {**LOCK.packages, "requests": "2.0", "pip": "24.0"}
    facts = with_venv(linux(), packages=installed)
    assert rows(package_changes(site(), facts, LOCK, venv_rebuilt=False)) == [
        ("package requests", "remove")
    ]
    # A venv that is rebuilt has nothing to remove.
    assert ("package requests", "remove") not in rows(
        package_changes(site(), facts, LOCK, venv_rebuilt=True)
    )


def test_a_locked_set_lists_the_sites_pins_first() -> None:
    assert list(desired_packages(site(), linux(), LOCK)) == [
        "mlx-lm",
        "mlx-omni-server",
        "anyio",
        "torch",
    ]


ADDITION_CASES = [
    ("the server alone: torch's CPU build", "", ["torch"]),
    ("mlx pinned: its CPU back end too", ", mlx: 0.29.3", ["mlx-cpu", "torch"]),
    ("mlx with extras pinned", ", 'mlx[metal]': 0.29.3", ["mlx-cpu", "torch"]),
    ("both pinned by the site", ", mlx: 0.29.3, mlx-cpu: 0.29.3, torch: 2.1.0", []),
]


@pytest.mark.parametrize(
    ("packages", "names"), [c[1:] for c in ADDITION_CASES], ids=[c[0] for c in ADDITION_CASES]
)
def test_what_a_linux_host_adds(packages: str, names: list[str]) -> None:
    spec = site(packages=packages)
    assert [a.name for a in linux_additions(spec)] == names
    # The plan's set and the lock's requirements read the same rule.
    wanted = desired_packages(spec, linux())
    assert [n for n in wanted if n not in spec.packages] == names
    assert all(a.requirement in requirements(spec, "linux-x86_64") for a in linux_additions(spec))


@pytest.mark.parametrize("spec", [site(), site(packages=", mlx: 0.29.3")])
def test_a_mac_gets_the_pins_alone(spec: HostSpec) -> None:
    assert list(desired_packages(spec, mac())) == list(spec.packages)
    assert requirements(spec, "macos-arm64") == [
        f"{n}=={v}" for n, v in sorted(spec.packages.items())
    ]


def test_the_lock_asks_for_mlx_with_its_cpu_extra_in_place_of_mlx() -> None:
    lines = requirements(site(packages=", mlx: 0.29.3"), "linux-x86_64")
    assert "mlx==0.29.3" not in lines and lines[-2:] == ["mlx[cpu]==0.29.3", "torch==2.13.0+cpu"]
