"""The service planner (the launchd plist, start, restart with its reason) and the macOS
settings planner. Facts in, changes out."""

from __future__ import annotations

import dataclasses

import pytest

from localai_provision.facts.model import Facts, LaunchdFacts, MacosFacts
from localai_provision.layout import launchd_plist, wired_limit_plist
from localai_provision.plan import Changed, layout_for
from localai_provision.plan.macos import macos_changes
from localai_provision.plan.service import (
    restart_reason,
    service_changes,
    service_definition_changes,
)
from localai_provision.site.model import HostSpec
from tests.unit.plan_tables import linux, mac, rows, site


def _process(port_open: bool = True, **fields: object) -> Facts:
    facts = linux()
    assert facts.service.process is not None
    process = dataclasses.replace(facts.service.process, **fields)
    service = dataclasses.replace(facts.service, process=process)
    return linux(service=service, port_open=port_open)


def _job(facts: Facts, **fields: object) -> Facts:
    job = LaunchdFacts(
        target="system/com.localai-provision.server.18999",
        loaded=True,
        state="running",
        pid=8123,
        runs=1,
        last_exit_code=None,
        plist_path="/Library/LaunchDaemons/com.localai-provision.server.18999.plist",
        plist=None,
    )
    job = dataclasses.replace(job, **fields)
    return dataclasses.replace(facts, service=dataclasses.replace(facts.service, launchd=job))


NO_PROCESS = linux(service=dataclasses.replace(linux().service, process=None))
CRASHING = {"state": "not running", "last_exit_code": 78, "runs": 14}

START_CASES = [
    ("a running server", linux(), []),
    ("no process", dataclasses.replace(NO_PROCESS, port_open=False), "the server is not running"),
    ("a dead pid", _process(alive=False, port_open=False), "the server is not running"),
    ("a job that is not loaded", _job(mac(), loaded=False, state=None), "is not loaded"),
    ("a loaded job not running", _job(mac(), state="waiting"), "is loaded but waiting"),
    ("a job in a crash loop", _job(mac(), **CRASHING), "keeps ending: it exited with 78"),
    ("its port held by another", NO_PROCESS, "port 18999 is held by another program (pid 4242"),
]


@pytest.mark.parametrize(
    ("facts", "expected"), [c[1:] for c in START_CASES], ids=[c[0] for c in START_CASES]
)
def test_a_stopped_server_is_started_with_the_reason_it_is_not_running(
    facts: Facts, expected: list[object] | str
) -> None:
    changes = service_changes(site(), facts, Changed())
    if expected == []:
        assert changes == []
        return
    [change] = changes
    assert (change.resource, change.action, change.before, change.after) == (
        "service",
        "start",
        "stopped",
        "running",
    )
    assert isinstance(expected, str) and expected in change.reason


RESTART_CASES = [
    ("nothing changed", Changed(), linux(), None),
    ("the venv", Changed(venv=True), linux(), "the venv changed"),
    (
        "packages and models",
        Changed(packages=True, models=True),
        linux(),
        "packages and models changed",
    ),
    ("the configuration", Changed(configuration=True), linux(), "the configuration changed"),
    (
        "it runs another configuration",
        Changed(),
        _process(config_hash="0000"),
        "it runs with another configuration than the site's",
    ),
    (
        "an endpoint fails",
        Changed(),
        linux(endpoints=()),
        "/v1/models does not answer properly (no answer)",
    ),
    (
        "a model it does not list",
        Changed(),
        linux(endpoints=tuple(dataclasses.replace(e, model_ids=()) for e in linux().endpoints)),
        "org/tiny-a is in the cache but not listed by the server",
    ),
]


@pytest.mark.parametrize(
    ("changed", "facts", "expected"),
    [c[1:] for c in RESTART_CASES],
    ids=[c[0] for c in RESTART_CASES],
)
def test_a_running_server_restarts_for_the_first_reason_that_applies(
    changed: Changed, facts: Facts, expected: str | None
) -> None:
    assert facts.service.process is not None
    reason = restart_reason(site(), facts, changed, facts.service.process.config_hash)
    assert reason == expected or (expected is not None and reason and reason.startswith(expected))
    changes = service_changes(site(), facts, changed)
    assert rows(changes) == ([("service", "restart")] if expected else [])


def _wanted_plist(spec: HostSpec, facts: Facts) -> str:
    return launchd_plist(spec, layout_for(facts), facts.system.user, facts.system.home).decode()


OTHER_PLIST = "<plist version='1.0'><dict/></plist>"
DEFINITION_CASES = [
    ("a Linux host has none", linux(), None, []),
    ("no job yet", mac(), None, [("service-definition", "create")]),
    ("the site's plist", mac(), "wanted", []),
    ("another plist", mac(), OTHER_PLIST, [("service-definition", "update")]),
]


@pytest.mark.parametrize(
    ("facts", "plist", "expected"),
    [c[1:] for c in DEFINITION_CASES],
    ids=[c[0] for c in DEFINITION_CASES],
)
def test_the_service_definition_planner_table(
    facts: Facts, plist: str | None, expected: list[tuple[str, str]]
) -> None:
    spec = site()
    if facts.system.os == "macos":
        facts = _job(facts, plist=_wanted_plist(spec, facts) if plist == "wanted" else plist)
    assert rows(service_definition_changes(spec, facts)) == expected


def _pmset(sleep: str = "0", disksleep: str = "0", autorestart: str = "1") -> dict[str, str]:
    return {"sleep": sleep, "disksleep": disksleep, "autorestart": autorestart}


SETTLED = MacosFacts(
    pmset=_pmset(), wired_limit_mb=24000, boot_plist=wired_limit_plist(24000).decode()
)
ALL = "macos: {never_sleep: true, restart_after_power_failure: true, gpu_wired_limit_mb: 24000}"
EVERY = ["never_sleep", "restart_after_power_failure", "gpu_wired_limit_mb"]
EVERY += ["gpu_wired_limit_at_boot"]


def on_mac(**fields: object) -> Facts:
    """The Mac with its settings as SETTLED but for ``fields``."""
    return mac(macos=dataclasses.replace(SETTLED, **fields))


MACOS_CASES = [
    ("as the site asks", site(ALL), on_mac(), []),
    ("a Linux host", site(ALL), linux(), []),
    ("the site names no setting", site(), mac(macos=None), []),
    ("the Mac sleeps", site(ALL), on_mac(pmset=_pmset(sleep="10")), ["never_sleep"]),
    ("its disk sleeps", site(ALL), on_mac(pmset=_pmset(disksleep="10")), ["never_sleep"]),
    (
        "no restart after a power failure",
        site(ALL),
        on_mac(pmset=_pmset(autorestart="0")),
        ["restart_after_power_failure"],
    ),
    ("another wired limit", site(ALL), on_mac(wired_limit_mb=0), ["gpu_wired_limit_mb"]),
    ("no boot daemon", site(ALL), on_mac(boot_plist=None), ["gpu_wired_limit_at_boot"]),
    ("nothing read from the Mac", site(ALL), mac(macos=None), EVERY),
    (
        "a setting the site leaves alone",
        site("macos: {never_sleep: true}"),
        on_mac(pmset=_pmset(autorestart="0")),
        [],
    ),
]


@pytest.mark.parametrize(
    ("spec", "facts", "expected"), [c[1:] for c in MACOS_CASES], ids=[c[0] for c in MACOS_CASES]
)
def test_the_macos_settings_planner_table(
    spec: HostSpec, facts: Facts, expected: list[str]
) -> None:
    changes = macos_changes(spec, facts)
    assert [c.name for c in changes] == expected
    assert all(c.resource == f"macos {c.name}" and c.action == "update" for c in changes)
