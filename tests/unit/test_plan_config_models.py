"""The config planner (server.json and the start-up shim) and the models planner. Facts in,
changes out."""

from __future__ import annotations

import dataclasses

import pytest

from localai_provision.facts.model import Facts, ServerConfigFacts
from localai_provision.plan import desired_config
from localai_provision.plan.config import config_changes, shim_changes
from localai_provision.plan.models import model_changes
from localai_provision.site.model import HostSpec
from tests.unit.plan_tables import linux, rows, site, with_venv


def with_config(**fields: object) -> Facts:
    facts = linux()
    assert facts.server_config is not None
    return linux(server_config=dataclasses.replace(facts.server_config, **fields))


CONFIG_CASES = [
    ("the site's configuration", site(), linux(), []),
    ("no file yet", site(), linux(server_config=None), [("server-config", "create")]),
    (
        "a file that is not apply's JSON",
        site(),
        linux(server_config=ServerConfigFacts(readable=False)),
        [("server-config", "update")],
    ),
    ("another hash", site(), with_config(hash="0000"), [("server-config", "update")]),
    (
        "the site asks for other arguments",
        site(server="{port: 18999, log_level: debug}"),
        linux(),
        [("server-config", "update")],
    ),
]


@pytest.mark.parametrize(
    ("spec", "facts", "expected"), [c[1:] for c in CONFIG_CASES], ids=[c[0] for c in CONFIG_CASES]
)
def test_the_config_planner_table(
    spec: HostSpec, facts: Facts, expected: list[tuple[str, str]]
) -> None:
    changes = config_changes(spec, facts)
    assert rows(changes) == expected
    assert all(c.after == desired_config(spec, facts)["hash"] for c in changes)


def test_a_changed_configuration_says_what_changed() -> None:
    spec = site(server="{port: 18999, log_level: debug}")
    [change] = config_changes(spec, linux())
    assert change.reason.startswith("changed: the server's arguments: ")
    assert "--log-level info" in change.reason and "--log-level debug" in change.reason


SHIM_CASES = [
    ("installed as wanted", site(), linux(), False, []),
    ("absent", site(), with_venv(linux(), shims={}), False, [("shim", "create")]),
    (
        "outdated",
        site(),
        with_venv(linux(), shims={"localai_server_shim.py": "0" * 64}),
        False,
        [("shim", "update")],
    ),
    ("in a venv that is rebuilt", site(), linux(), True, [("shim", "create")]),
    (
        "turned off by the site",
        site("linux: {shim: false}"),
        with_venv(linux(), shims={}),
        False,
        [],
    ),
]


@pytest.mark.parametrize(
    ("spec", "facts", "rebuilt", "expected"),
    [c[1:] for c in SHIM_CASES],
    ids=[c[0] for c in SHIM_CASES],
)
def test_the_shim_planner_table(
    spec: HostSpec, facts: Facts, rebuilt: bool, expected: list[tuple[str, str]]
) -> None:
    assert rows(shim_changes(spec, facts, venv_rebuilt=rebuilt)) == expected


def _model(**fields: object) -> Facts:
    facts = linux()
    return linux(models=(dataclasses.replace(facts.models[0], **fields),))


MODEL_CASES = [
    ("complete", site(), linux(), []),
    (
        "absent",
        site(),
        _model(present=False, complete=False, problem="not in the cache"),
        [("model org/tiny-a", "create")],
    ),
    (
        "incomplete",
        site(),
        _model(present=True, complete=False, problem="2 files missing"),
        [("model org/tiny-a", "update")],
    ),
]


@pytest.mark.parametrize(
    ("spec", "facts", "expected"), [c[1:] for c in MODEL_CASES], ids=[c[0] for c in MODEL_CASES]
)
def test_the_models_planner_table(
    spec: HostSpec, facts: Facts, expected: list[tuple[str, str]]
) -> None:
    assert rows(model_changes(spec, facts)) == expected


def test_a_missing_model_says_its_problem_and_how_it_will_come() -> None:
    [change] = model_changes(site(), _model(present=False, complete=False, problem="absent"))
    assert change.reason == "org/tiny-a@main: absent; it will be downloaded"
    assert (change.before, change.after) == ("absent", "main")
