"""plan(spec, facts) is pure: a table of observed states and the changes each one needs."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from localai_provision.facts.parse import parse_facts
from localai_provision.plan import (
    desired_config,
    desired_shim,
    generation_id,
    plan,
    plan_warnings,
)
from localai_provision.site import parse_site
from localai_provision.site.model import HostSpec
from tests.unit.test_facts_parse import host_summary, linux_doc

SITE = """
version: 1
hosts:
  mini-01:
    connection: local
    prefix: /tmp/rec/home/.localai
    hf_home: /tmp/rec/home/hf
    python: /usr/bin/python3
    packages: {mlx-omni-server: 0.5.1, mlx-lm: 0.28.2}
    models: [org/tiny-a]
    server: {port: 18999}
"""


def spec_with(**server: Any) -> HostSpec:
    text = SITE
    if server:
        text = text.replace(
            "server: {port: 18999}", "server: " + json.dumps({"port": 18999, **server})
        )
    return parse_site(text, "s.yaml").hosts["mini-01"]


def serving_generation(doc: dict[str, Any], spec: HostSpec) -> str:
    """Make the recorded host serve the site's package set from its own generation (as an
    apply leaves it): the `current` link, its ready meta, the venv's path in it."""
    facts = parse_facts("mini-01", json.dumps(doc), spec.models)
    generation = generation_id(spec, facts, None)
    prefix = doc["prefix"]["path"]
    doc["venv"]["path"] = f"{prefix}/generations/{generation}"
    meta = {"created": "2026-12-01T00:00:00Z", "python": "3.11", "packages": {}, "size_kb": 1}
    doc["generations"] = {
        "current": f"generations/{generation}",
        "previous": None,
        "items": [
            {
                "name": generation,
                "owned": True,
                "complete": True,
                "meta": json.dumps(meta),
                "failed": None,
                "mtime": 1,
            }
        ],
    }
    return generation


def in_sync_doc() -> dict[str, Any]:
    """The recorded Linux host, with its server up and answering as the site asks."""
    doc = linux_doc()
    spec = spec_with()
    serving_generation(doc, spec)
    config = desired_config(spec, parse_facts("mini-01", json.dumps(doc), spec.models))
    doc["server_config"] = host_summary(config)
    doc["venv"]["shims"] = desired_shim()
    doc["service"] = {
        "kind": "auto",
        "pid_file": "4242\n",
        "process": {
            "pid": 4242,
            "alive": True,
            "argv": [config["argv"][0].replace("mlx-omni-server", "python"), *config["argv"]],
            "config_hash": config["hash"],
            "elapsed_s": 100.0,
        },
        "server_processes": f"4242 python {config['argv'][0]}",
    }
    doc["port_open"] = True
    listing = json.dumps({"object": "list", "data": [{"id": "org/tiny-a"}]})
    doc["http"] = [
        {"path": "/v1/models", "status_line": "HTTP/1.1 200 OK", "body": listing, "ms": 4.0},
        {
            "path": "/anthropic/v1/models",
            "status_line": "HTTP/1.1 200 OK",
            "body": listing,
            "ms": 5.0,
        },
    ]
    return doc


def run_plan(doc: dict[str, Any], spec: HostSpec | None = None) -> dict[str, str]:
    spec = spec or spec_with()
    facts = parse_facts("mini-01", json.dumps(doc), spec.models)
    changes = plan(spec, facts)
    assert all(c.reason and c.host == "mini-01" for c in changes)
    assert sum(c.action in ("start", "restart") for c in changes) <= 1
    return {c.resource: c.action for c in changes}


def test_in_sync_host_needs_nothing() -> None:
    assert run_plan(in_sync_doc()) == {}


Mutate = Callable[[dict[str, Any]], None]


def _set(path: str, value: Any) -> Mutate:
    def mutate(doc: dict[str, Any]) -> None:
        target = doc
        keys = path.split(".")
        for key in keys[:-1]:
            target = target[key]
        target[keys[-1]] = value

    return mutate


def _both(*mutations: Mutate) -> Mutate:
    def mutate(doc: dict[str, Any]) -> None:
        for one in mutations:
            one(doc)

    return mutate


def _dists(*names: str) -> Mutate:
    # torch's CPU build is part of every Linux host's set (see desired_packages).
    return _set("venv.dist_infos", [*names, "torch-2.13.0+cpu.dist-info"])


def _no_model(doc: dict[str, Any]) -> None:
    doc["models"] = []


def _drop_http(path: str, status: str = "HTTP/1.1 500 Internal Server Error") -> Mutate:
    def mutate(doc: dict[str, Any]) -> None:
        for entry in doc["http"]:
            if entry["path"] == path:
                entry["status_line"] = status

    return mutate


def _unlisted(doc: dict[str, Any]) -> None:
    for entry in doc["http"]:
        entry["body"] = json.dumps({"data": []})


BASE_DISTS = ["mlx_omni_server-0.5.1.dist-info", "mlx_lm-0.28.2.dist-info"]

CASES: list[tuple[str, Mutate, dict[str, str]]] = [
    (
        "package-older",
        _dists("mlx_omni_server-0.5.1.dist-info", "mlx_lm-0.28.1.dist-info"),
        {"package mlx-lm": "update", "service": "restart"},
    ),
    (
        "package-missing",
        _dists("mlx_omni_server-0.5.1.dist-info"),
        {"package mlx-lm": "create", "service": "restart"},
    ),
    ("extra-packages-are-fine", _dists(*BASE_DISTS, "numpy-2.3.5.dist-info"), {}),
    (
        "package-half-installed",
        _set("venv.half_installed", {"mlx_lm-0.28.2.dist-info": "mlx_lm/__init__.py"}),
        {"package mlx-lm": "update", "service": "restart"},
    ),
    (
        "extra-package-half-installed-is-not-ours",
        _set("venv.half_installed", {"numpy-2.3.5.dist-info": "numpy/__init__.py"}),
        {},
    ),
    (
        "no-venv",
        _set("venv.exists", False),
        {
            "venv": "create",
            "package mlx-omni-server": "create",
            "package mlx-lm": "create",
            "package torch": "create",
            "shim": "create",
            "service": "restart",
        },
    ),
    (
        "venv-python-gone",
        _set("venv.python_exists", False),
        {
            "venv": "update",
            "package mlx-omni-server": "create",
            "package mlx-lm": "create",
            "package torch": "create",
            "shim": "create",
            "service": "restart",
        },
    ),
    (
        "venv-incomplete",
        _both(_set("venv.complete", False), _set("venv.owned", True)),
        {
            "venv": "update",
            "package mlx-omni-server": "create",
            "package mlx-lm": "create",
            "package torch": "create",
            "shim": "create",
            "service": "restart",
        },
    ),
    (
        "venv-other-python",
        _set("venv.pyvenv_cfg", "version = 3.10.12\n"),
        {
            "venv": "update",
            "package mlx-omni-server": "create",
            "package mlx-lm": "create",
            "package torch": "create",
            "shim": "create",
            "service": "restart",
        },
    ),
    ("python-missing", _set("python.fallback", True), {"python": "fail"}),
    ("no-config", _set("server_config", None), {"server-config": "create", "service": "restart"}),
    ("server-stopped", _set("service.process", None), {"service": "start"}),
    ("server-dead-pid", _set("service.process.alive", False), {"service": "start"}),
    ("server-old-config", _set("service.process.config_hash", "0000"), {"service": "restart"}),
    ("model-missing", _no_model, {"model org/tiny-a": "create", "service": "restart"}),
    ("endpoint-failing", _drop_http("/anthropic/v1/models"), {"service": "restart"}),
    ("model-not-listed", _unlisted, {"service": "restart"}),
]


@pytest.mark.parametrize(("mutate", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_plan_table(mutate: Mutate, expected: dict[str, str]) -> None:
    doc = in_sync_doc()
    mutate(doc)
    assert run_plan(doc) == expected


def test_port_held_by_another_program() -> None:
    doc = in_sync_doc()
    doc["service"]["process"] = None
    doc["service"]["server_processes"] = "77 /usr/bin/python3 -m mlx_omni_server.main --port 18999"
    spec = spec_with()
    facts = parse_facts("mini-01", json.dumps(doc), spec.models)
    [change] = plan(spec, facts)
    assert change.action == "start" and "held by another program (pid 77" in change.reason
    assert "other mlx-omni-server" in plan_warnings(spec, facts)[0]


def test_config_change_says_what_changed_but_not_secret_values() -> None:
    spec = spec_with(log_level="debug", env={"HF_TOKEN": "hf_secret_value"})
    changes = plan(spec, parse_facts("mini-01", json.dumps(in_sync_doc()), spec.models))
    config = next(c for c in changes if c.resource == "server-config")
    assert "arguments" in config.reason and "HF_TOKEN" in config.reason
    assert "hf_secret_value" not in json.dumps([c.as_dict() for c in changes])
    assert [c.resource for c in changes] == ["server-config", "service"]


@pytest.mark.hostile
@pytest.mark.parametrize("marker", [None, "complete", "owned"])
def test_a_venv_the_tool_did_not_make_is_never_planned_for_deletion(marker: str | None) -> None:
    """Another program's venv where the site's venv goes (a prefix that is not a dedicated
    folder): apply would delete it to rebuild it. Refused, unless a marker says it is ours
    (`.localai-owned`, written first; `.localai-complete` of older versions); an empty
    folder is nobody's loss."""
    doc = in_sync_doc()
    doc["venv"]["complete"] = marker == "complete"
    doc["venv"]["owned"] = marker == "owned"
    changes = plan(spec_with(), parse_facts("mini-01", json.dumps(doc), spec_with().models))
    venv = {c.action: c.reason for c in changes if c.resource == "venv"}
    expected = {None: "fail", "complete": None, "owned": "update"}[marker]
    assert list(venv) == ([expected] if expected else [])
    if marker is None:
        assert "not made by localai-provision" in venv["fail"]
    doc["venv"]["empty"] = True
    changes = plan(spec_with(), parse_facts("mini-01", json.dumps(doc), spec_with().models))
    assert all(c.action != "fail" for c in changes)


def test_config_difference_names_what_changed_from_digests_alone() -> None:
    """The host sends no value of server.json's environment, only salted digests: plan still
    tells which arguments and which variables changed, and shows no value."""
    import os

    os.environ["LOCALAI_TEST_PLAN_SECRET"] = "hf_from_env_secret"
    text = SITE.replace(
        "server: {port: 18999}",
        "server:\n      port: 18999\n      extra_args: [--debug]\n      env:\n"
        "        MODE: fast\n        HF_TOKEN: {from_env: LOCALAI_TEST_PLAN_SECRET}\n",
    )
    spec = parse_site(text, "s.yaml").hosts["mini-01"]
    changes = plan(spec, parse_facts("mini-01", json.dumps(in_sync_doc()), spec.models))
    reason = next(c for c in changes if c.resource == "server-config").reason
    assert "--log-level info -> " in reason and "--debug" in reason
    assert "environment HF_TOKEN added, MODE added" in reason
    assert "hf_from_env_secret" not in json.dumps([c.as_dict() for c in changes])
    # Same names, other values: a changed value is found through the digests.
    doc = in_sync_doc()
    config = desired_config(spec, parse_facts("mini-01", json.dumps(doc), spec.models))
    env = dict(config["env"])  # type: ignore[call-overload]
    env["MODE"], env["HF_TOKEN"] = "slow", "hf_old"
    doc["server_config"] = host_summary({**config, "env": env, "hash": "old"})
    reason = next(
        c for c in plan(spec, parse_facts("mini-01", json.dumps(doc), spec.models))
    ).reason
    assert reason == "changed: environment HF_TOKEN changed, MODE changed"


def test_package_versions_compare_exactly() -> None:
    doc = in_sync_doc()
    doc["venv"]["dist_infos"] = [
        "mlx_omni_server-0.5.1.dist-info",
        "mlx_lm-0.28.20.dist-info",
        "torch-2.13.0+cpu.dist-info",
    ]
    assert run_plan(doc) == {"package mlx-lm": "update", "service": "restart"}


def test_exposed_server_warns() -> None:
    spec = spec_with(host="0.0.0.0")
    facts = parse_facts("mini-01", json.dumps(in_sync_doc()), spec.models)
    assert any("all interfaces" in w for w in plan_warnings(spec, facts))


def test_linux_hosts_get_the_cpu_backends_and_the_shim() -> None:
    spec = parse_site(SITE.replace("mlx-lm: 0.28.2}", "mlx-lm: 0.28.2, mlx: 0.29.3}"), "s.yaml")
    host = spec.hosts["mini-01"]
    doc = in_sync_doc()
    doc["venv"]["dist_infos"] = ["mlx_omni_server-0.5.1.dist-info", "mlx_lm-0.28.2.dist-info"]
    doc["venv"]["shims"] = {}
    doc["system"]["portaudio"] = False
    changes = {
        c.resource: c for c in plan(host, parse_facts("mini-01", json.dumps(doc), host.models))
    }
    assert changes["package mlx"].after == "0.29.3"
    assert (
        changes["package mlx-cpu"].after == "0.29.3"
        and "CPU back end" in changes["package mlx-cpu"].reason
    )
    assert (
        changes["package torch"].after == "2.13.0+cpu" and "CUDA" in changes["package torch"].reason
    )
    assert changes["shim"].action == "create"
    assert changes["system libportaudio2"].action == "fail"
    assert "apt-get install libportaudio2" in changes["system libportaudio2"].reason


def test_macos_hosts_get_no_linux_additions() -> None:
    from tests.unit.test_facts_parse import macos_doc

    doc = macos_doc()
    doc["venv"]["dist_infos"] = ["mlx_omni_server-0.5.1.dist-info", "mlx_lm-0.28.2.dist-info"]
    spec = spec_with()
    kinds = {c.resource for c in plan(spec, parse_facts("mini-01", json.dumps(doc), spec.models))}
    assert not {"package torch", "package mlx-cpu", "system libportaudio2"} & kinds


def test_prewarmed_models_are_kept_loaded() -> None:
    spec = spec_with()
    config = desired_config(spec, parse_facts("mini-01", json.dumps(in_sync_doc()), spec.models))
    env = config["env"]
    assert isinstance(env, dict)
    assert env["MLX_OMNI_MODEL_CACHE_TTL"] == "0" and env["MLX_OMNI_MODEL_CACHE_SIZE"] == "3"


def test_warns_when_prewarm_will_not_last() -> None:
    spec = spec_with(env={"MLX_OMNI_MODEL_CACHE_SIZE": "0", "MLX_OMNI_MODEL_CACHE_TTL": "60"})
    facts = parse_facts("mini-01", json.dumps(in_sync_doc()), spec.models)
    warnings = " ".join(plan_warnings(spec, facts))
    assert "keeps 0 loaded" in warnings and "unloaded after 60 s" in warnings


def test_warns_about_a_wrong_clock() -> None:
    import dataclasses

    spec = spec_with()
    facts = parse_facts("mini-01", json.dumps(in_sync_doc()), spec.models)
    assert not any(
        "clock" in w for w in plan_warnings(spec, dataclasses.replace(facts, clock_offset_s=2.0))
    )
    late = dataclasses.replace(facts, clock_offset_s=-3600.0)
    assert any("clock is -3600 s off" in w for w in plan_warnings(spec, late))


# --- pull mode: the timer and the last pull's report ------------------------------------------


PULL = {"checkout": "~/lab", "site": "playbooks/lab.yaml", "command": "/usr/local/bin/localai"}


def pull_spec(**pull: Any) -> HostSpec:
    text = SITE + "    pull: " + json.dumps({**PULL, **pull}) + "\n"
    return parse_site(text, "s.yaml").hosts["mini-01"]


def _cron(definition: str | None, available: bool = True) -> Mutate:
    def mutate(doc: dict[str, Any]) -> None:
        doc["pull_timer"] = {"kind": "cron", "available": available, "definition": definition}

    return mutate


def _cron_as_site_asks(**pull: Any) -> Mutate:
    from localai_provision.layout import pull_cron_block

    return _cron(pull_cron_block(pull_spec(**pull)))


@pytest.mark.parametrize(
    ("declared", "mutate", "expected"),
    [
        # No `pull:` and no timer: nothing.
        (False, lambda doc: None, {}),
        (False, _cron(None), {}),
        # Declared: created when missing, left alone when it is the site's, else replaced.
        (True, _cron(None), {"pull-timer": "create"}),
        (True, _cron_as_site_asks(), {}),
        (True, _cron_as_site_asks(interval_s=300), {"pull-timer": "update"}),
        (True, _cron_as_site_asks(git_pull=False), {"pull-timer": "update"}),
        (
            True,
            _cron("# BEGIN localai-provision pull\n* * * * * edited by hand\n"),
            {"pull-timer": "update"},
        ),
        # No crontab program on a Linux host: a failure with what to install.
        (True, _cron(None, available=False), {"pull-timer": "fail"}),
        # `pull:` left out of the site: the installed timer goes.
        (False, _cron_as_site_asks(), {"pull-timer": "remove"}),
    ],
)
def test_pull_timer_table(declared: bool, mutate: Mutate, expected: dict[str, str]) -> None:
    doc = in_sync_doc()
    mutate(doc)
    spec = pull_spec() if declared else spec_with()
    assert run_plan(doc, spec) == expected


def test_a_missing_crontab_says_what_to_install() -> None:
    doc = in_sync_doc()
    _cron(None, available=False)(doc)
    spec = pull_spec()
    [change] = plan(spec, parse_facts("mini-01", json.dumps(doc), spec.models))
    assert "apt-get install cron" in change.reason


def test_pull_enabled_false_removes_the_timer() -> None:
    doc = in_sync_doc()
    _cron_as_site_asks()(doc)
    assert run_plan(doc, pull_spec(enabled=False)) == {"pull-timer": "remove"}


def test_pull_timer_on_a_mac_is_a_launchd_plist() -> None:
    from localai_provision.plan import desired_pull_timer
    from tests.unit.test_facts_parse import macos_doc

    spec = pull_spec()
    doc = macos_doc()
    doc["pull_timer"] = {"kind": "launchd", "path": "/Library/LaunchDaemons/x", "definition": None}
    facts = parse_facts("mini-01", json.dumps(doc), spec.models)
    [change] = [c for c in plan(spec, facts) if c.kind == "pull-timer"]
    assert change.action == "create" and "launchd job" in change.reason
    wanted = desired_pull_timer(spec, facts)
    assert wanted is not None and "<key>StartInterval</key>" in wanted
    doc["pull_timer"]["definition"] = wanted
    facts = parse_facts("mini-01", json.dumps(doc), spec.models)
    assert not [c for c in plan(spec, facts) if c.kind == "pull-timer"]


NOW = 1795654939.9673183  # the recorded host's clock


def _report(age_s: float, **fields: Any) -> str:
    import datetime

    finished = datetime.datetime.fromtimestamp(NOW - age_s, datetime.UTC)
    report = {
        "v": 1,
        "host": "mini-01",
        "finished_at": finished.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "result": "changed",
        "changes": 2,
        **fields,
    }
    return json.dumps(report)


@pytest.mark.parametrize(
    ("declared", "report", "expected"),
    [
        (True, None, []),
        (True, _report(60), []),
        (True, _report(60, result="converged"), []),
        (
            True,
            _report(60, result="failed", failed_step="packages", error="no wheel"),
            ["failed at step packages: no wheel"],
        ),
        (
            True,
            _report(60, git_pull={"ok": False, "error": "could not resolve host"}),
            ["could not update its checkout (git pull: could not resolve host)"],
        ),
        # Older than 3 intervals (900 s by default): the timer or the host is not running.
        (True, _report(2000), []),
        (True, _report(2800), ["the last pull ran 46 min ago"]),
        (True, _report(3 * 86400), ["the last pull ran 3 days ago"]),
        # Without `pull:` in the site, the report's own interval says what is stale.
        (False, _report(2800), []),
        (False, _report(2800, interval_s=600), ["the last pull ran 46 min ago"]),
        (True, "{not json", ["the last pull (localai apply --local, an unknown time) failed"]),
    ],
)
def test_pull_report_warnings(declared: bool, report: str | None, expected: list[str]) -> None:
    doc = in_sync_doc()
    doc["pull_report"] = report
    spec = pull_spec() if declared else spec_with()
    facts = parse_facts("mini-01", json.dumps(doc), spec.models)
    warnings = [w for w in plan_warnings(spec, facts) if "pull" in w]
    assert len(warnings) == len(expected), warnings
    for warning, part in zip(warnings, expected, strict=True):
        assert part in warning
    # Warnings, never changes: a failed or stale pull does not make a host drift.
    if declared:
        _cron_as_site_asks()(doc)
        assert run_plan(doc, spec) == {}


def test_a_half_installed_package_is_reinstalled_at_its_version() -> None:
    doc = in_sync_doc()
    doc["venv"]["half_installed"] = {"mlx_lm-0.28.2.dist-info": "mlx_lm/__init__.py"}
    spec = spec_with()
    [change, _service] = plan(spec, parse_facts("mini-01", json.dumps(doc), spec.models))
    assert (change.before, change.after) == ("half-installed", "0.28.2")
    assert "mlx_lm/__init__.py is missing" in change.reason
