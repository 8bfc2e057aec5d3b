"""Change, Kind and Action: typed, and shown exactly as the strings the output always had."""

from __future__ import annotations

import json

import pytest

from localai_provision.plan import (
    FAIL,
    PACKAGE,
    Action,
    Change,
    Changed,
    Kind,
)


def change(kind: Kind, name: str = "", action: Action = Action.UPDATE) -> Change:
    return Change("mini-01", kind, name, action, "a", "b", "why")


@pytest.mark.parametrize(
    ("kind", "name", "resource"),
    [
        (Kind.VENV, "", "venv"),
        (Kind.SERVICE, "", "service"),
        (Kind.PACKAGE, "mlx-lm", "package mlx-lm"),
        (Kind.MODEL, "org/tiny-a", "model org/tiny-a"),
        (Kind.SYSTEM, "libportaudio2", "system libportaudio2"),
        (Kind.SERVER_CONFIG, "", "server-config"),
        (Kind.MACOS, "gpu_wired_limit_at_boot", "macos gpu_wired_limit_at_boot"),
    ],
)
def test_a_change_renders_its_resource_as_kind_then_name(
    kind: Kind, name: str, resource: str
) -> None:
    assert change(kind, name).resource == resource


def test_as_dict_holds_the_plain_strings_the_json_always_had() -> None:
    row = change(Kind.PACKAGE, "mlx-lm", Action.CREATE).as_dict()
    assert row == {
        "host": "mini-01",
        "resource": "package mlx-lm",
        "action": "create",
        "before": "a",
        "after": "b",
        "reason": "why",
    }
    assert type(row["action"]) is str and type(row["resource"]) is str
    assert json.dumps(row).startswith('{"host": "mini-01", "resource": "package mlx-lm"')


def test_kinds_and_actions_compare_and_hash_as_their_strings() -> None:
    """Callers compare `change.kind == PACKAGE` or `== "package"` and look kinds up in dicts
    keyed by strings: both keep working."""
    package = change(Kind.PACKAGE, "x")
    assert package.kind == PACKAGE == "package" and f"{package.kind}" == "package"
    assert {"package": 1}[package.kind] == 1 and {"fail": 2}[FAIL] == 2
    assert [a.value for a in Action] == ["create", "update", "remove", "start", "restart", "fail"]


def test_every_name_other_modules_import_from_plan_is_still_there() -> None:
    import localai_provision.plan as plan

    names = [
        *("FAIL", "CREATE", "UPDATE", "REMOVE", "START", "RESTART", "HALF_INSTALLED"),
        *("SYSTEM", "LOCK", "SECRET", "PYTHON", "VENV", "PACKAGE", "SERVER_CONFIG", "SHIM"),
        *("SERVICE_DEFINITION", "MACOS", "MODEL", "SERVICE", "PULL_TIMER", "ROOT_HELPER"),
        *("LAUNCHD_DOMAIN", "CLOCK_TOLERANCE_S", "Change", "plan", "plan_warnings"),
        *("layout_for", "desired_config", "desired_packages", "desired_pull_timer"),
        *("desired_shim", "shim_pth", "prerequisite_changes", "pull_warnings"),
        *("macos_changes", "pull_timer_changes"),
    ]
    for name in names:
        assert hasattr(plan, name), name


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ([], Changed()),
        ([change(Kind.VENV, action=Action.CREATE)], Changed(venv=True)),
        ([change(Kind.PACKAGE, "x", Action.REMOVE)], Changed(packages=True)),
        ([change(Kind.SHIM)], Changed(packages=True)),
        ([change(Kind.SERVER_CONFIG)], Changed(configuration=True)),
        ([change(Kind.SERVICE_DEFINITION)], Changed(configuration=True)),
        ([change(Kind.MODEL, "org/a", Action.CREATE)], Changed(models=True)),
        # A failure changes nothing; neither do the Mac's settings nor the pull timer.
        ([change(Kind.VENV, action=Action.FAIL)], Changed()),
        ([change(Kind.SERVICE_DEFINITION, action=Action.FAIL)], Changed()),
        ([change(Kind.MACOS, "never_sleep"), change(Kind.PULL_TIMER)], Changed()),
    ],
)
def test_what_changed_is_read_from_the_changes(changes: list[Change], expected: Changed) -> None:
    assert Changed.by(changes) == expected


def test_what_changed_is_said_in_words_in_apply_order() -> None:
    assert Changed(models=True, venv=True).words() == ["the venv", "models"]
    assert Changed().words() == []
