"""plan(spec, facts) is pure: a table of observed states and the changes each one needs."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from localai_provision.facts.parse import parse_facts
from localai_provision.plan import desired_config, desired_shim, plan, plan_warnings
from localai_provision.site import parse_site
from localai_provision.site.model import HostSpec
from tests.unit.test_facts_parse import linux_doc

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


def in_sync_doc() -> dict[str, Any]:
    """The recorded Linux host, with its server up and answering as the site asks."""
    doc = linux_doc()
    spec = spec_with()
    config = desired_config(spec, parse_facts("mini-01", json.dumps(doc), spec.models))
    doc["server_config"] = json.dumps(config)
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
        "server_processes": "4242 python /tmp/rec/home/.localai/venv/bin/mlx-omni-server",
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
        _set("venv.complete", False),
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


def test_a_half_installed_package_is_reinstalled_at_its_version() -> None:
    doc = in_sync_doc()
    doc["venv"]["half_installed"] = {"mlx_lm-0.28.2.dist-info": "mlx_lm/__init__.py"}
    spec = spec_with()
    [change, _service] = plan(spec, parse_facts("mini-01", json.dumps(doc), spec.models))
    assert (change.before, change.after) == ("half-installed", "0.28.2")
    assert "mlx_lm/__init__.py is missing" in change.reason
