"""End to end with the REAL mlx-omni-server: installed by `localai apply`, started as a
service, serving builtin:tiny-llama through the OpenAI and the Anthropic API.

Slow (the server's packages are several GB): marked `e2e`, and run by .ci/run all the same.
The module applies once and the tests then look at the result in order.
"""

from __future__ import annotations

import io
import json
import os
import signal
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml

from localai_provision.cli import Output, main
from tests.conftest import CAN_SSH
from tests.support import hostprep
from tests.support.sshfleet import SSHFleet

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
MODEL = "localai-test/tiny-llama"


def cli(*argv: str) -> tuple[int, Any, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), Output(out, err))
    text = out.getvalue()
    try:
        return code, json.loads(text), err.getvalue()
    except json.JSONDecodeError:
        return code, text, err.getvalue()


def call(port: int, path: str, body: dict[str, Any] | None = None) -> tuple[int, Any, float]:
    headers = {
        "Content-Type": "application/json",
        "x-api-key": "none",
        "anthropic-version": "2023-06-01",
    }
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data, headers=headers)
    start = time.perf_counter()
    with urllib.request.urlopen(request, timeout=120) as response:
        payload = json.loads(response.read())
        return int(response.status), payload, (time.perf_counter() - start) * 1000


def demo_site(tmp: Path, port: int, **overrides: Any) -> Path:
    """playbooks/demo.yaml, moved to a private prefix and port."""
    site = yaml.safe_load((REPO / "playbooks" / "demo.yaml").read_text())
    host = site["hosts"]["this-machine"]
    host.update(prefix=str(tmp / "prefix"), hf_home=str(tmp / "hf"))
    host["lock"] = str(REPO / "playbooks" / "locks" / "demo")  # relative to the original
    host["server"]["port"] = port
    host.update(overrides)
    path = tmp / "demo.yaml"
    path.write_text(yaml.safe_dump(site, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def applied(tmp_path_factory: pytest.TempPathFactory) -> Any:
    tmp = tmp_path_factory.mktemp("e2e")
    port = hostprep.free_port()
    # verify.bench: the fresh apply also measures the server and records it (test_bench...).
    site = demo_site(tmp, port, verify={"timeout_s": 180, "bench": True})
    try:
        start = time.perf_counter()
        code, result, err = cli("apply", str(site), "--json")
        elapsed = time.perf_counter() - start
        print(f"\nfresh apply of the real server: {elapsed:.1f} s")
        assert code == 0, (result, err)
        yield {"site": site, "port": port, "result": result["hosts"][0], "tmp": tmp}
    finally:
        cli("stop", str(site))  # also when apply failed after starting the server


def test_fresh_apply_installs_and_prewarms_the_real_server(applied: Any) -> None:
    host = applied["result"]
    assert host["status"] == "changed"
    resources = {c["resource"] for c in host["changes"]}
    assert {
        "package mlx-omni-server",
        "package torch",
        "package mlx-cpu",
        "shim",
        f"model {MODEL}",
        "service",
    } <= resources
    assert [p["model"] for p in host["prewarm"]] == [MODEL]
    log = (applied["tmp"] / "prefix" / "logs" / "server.log").read_text()
    assert "model cache max_size=3 ttl_seconds=0" in log  # prewarm lasts: never unloaded


def test_status_lists_the_prewarmed_model_as_loaded_by_the_real_server(applied: Any) -> None:
    """0.5.1 has no route that says which models are loaded: the shim publishes its cache."""
    code, status, _ = cli("status", str(applied["site"]), "--json")
    assert code == 0
    host = status["hosts"][0]
    assert host["models_loaded"] == [MODEL] and host["models_loading"] == [], host
    published = applied["tmp"] / "prefix" / "state" / "loaded-models.json"
    data = json.loads(published.read_text())
    assert data["pid"] == host["pid"] and data["loaded"] == [MODEL]
    assert host["log"]["path"] == str(applied["tmp"] / "prefix" / "logs" / "server.log")
    assert host["log"]["size_bytes"] > 0 and host["log"]["crash_tail"] == []


def test_four_real_api_calls(applied: Any) -> None:
    port = applied["port"]
    status, models, ms = call(port, "/v1/models")
    assert status == 200 and MODEL in [m["id"] for m in models["data"]]
    print(f"/v1/models {ms:.1f} ms")
    status, models, ms = call(port, "/anthropic/v1/models")
    assert status == 200 and MODEL in [m["id"] for m in models["data"]]
    print(f"/anthropic/v1/models {ms:.1f} ms")
    status, chat, ms = call(
        port,
        "/v1/chat/completions",
        {
            "model": MODEL,
            "messages": [{"role": "user", "content": "hello"}],
            "max_tokens": 8,
        },
    )
    assert status == 200 and chat["choices"][0]["message"]["content"]
    print(f"chat completion (prewarmed) {ms:.1f} ms")
    status, message, ms = call(
        port,
        "/anthropic/v1/messages",
        {
            "model": MODEL,
            "max_tokens": 8,
            "messages": [{"role": "user", "content": "hello"}],
        },
    )
    assert status == 200 and message["content"][0]["text"]
    print(f"anthropic message {ms:.1f} ms")


def test_bench_reports_tokens_per_second_for_the_tiny_model_next_to_applys_record(
    applied: Any,
) -> None:
    recorded = json.loads((applied["tmp"] / "prefix" / "state.json").read_text())["bench"]
    assert recorded["model"] == MODEL and recorded["gen_tps"] > 0, recorded
    code, result, err = cli("bench", str(applied["site"]), "--json")
    assert code == 0, (result, err)
    host = result["hosts"][0]
    assert host["status"] == "measured" and host["model"] == MODEL
    for key in ("prompt_tps", "gen_tps", "first_token_ms", "total_ms"):
        assert isinstance(host[key], float) and 0 < host[key] < float("inf"), (key, host)
    assert host["tokens_from"] == "usage"  # 0.5.1 sends usage with include_usage
    assert host["memory"]["rss_kb"] > 0 and host["memory"]["peak_kb"] >= host["memory"]["rss_kb"]
    assert host["previous"]["gen_tps"] == recorded["gen_tps"]
    print(
        f"bench {MODEL}: prompt {host['prompt_tps']} tok/s ({host['prompt_tokens']} tokens), "
        f"generation {host['gen_tps']} tok/s ({host['completion_tokens']} tokens), first "
        f"token {host['first_token_ms']} ms, total {host['total_ms']} ms, memory "
        f"{host['memory']['rss_kb']} KiB (peak {host['memory']['peak_kb']})"
    )
    code, table, _ = cli("bench", str(applied["site"]))
    print(table)
    assert code == 0 and MODEL in table and "was " in table


def test_second_apply_changes_nothing(applied: Any) -> None:
    pid = (applied["tmp"] / "prefix" / "run" / "server.pid").read_text()
    start = time.perf_counter()
    code, result, _ = cli("apply", str(applied["site"]), "--json")
    print(f"no-op apply {time.perf_counter() - start:.2f} s")
    assert code == 0
    assert result["hosts"][0]["status"] == "ok" and result["hosts"][0]["changes"] == []
    assert (applied["tmp"] / "prefix" / "run" / "server.pid").read_text() == pid


def test_killed_server_is_drift_and_apply_repairs_it(applied: Any) -> None:
    pid = int((applied["tmp"] / "prefix" / "run" / "server.pid").read_text())
    os.killpg(pid, signal.SIGKILL)
    time.sleep(0.5)
    code, drift, _ = cli("drift", str(applied["site"]), "--json")
    assert code == 2
    assert [d["resource"] for d in drift["hosts"][0]["differences"]] == ["service"]
    code, result, _ = cli("apply", str(applied["site"]), "--json")
    assert code == 0 and result["hosts"][0]["status"] == "changed"
    status, _, _ = call(
        applied["port"],
        "/v1/chat/completions",
        {
            "model": MODEL,
            "messages": [{"role": "user", "content": "hi"}],
            "max_tokens": 4,
        },
    )
    assert status == 200


def test_status_and_stop(applied: Any) -> None:
    code, status, _ = cli("status", str(applied["site"]), "--json")
    assert code == 0
    host = status["hosts"][0]
    assert host["status"] == "running" and host["models_listed"] == [MODEL]
    assert host["packages"]["mlx-omni-server"] == "0.5.1"
    code, stopped, _ = cli("stop", str(applied["site"]), "--json")
    assert code == 0 and stopped["hosts"][0]["status"] == "stopped"
    code, drift, _ = cli("drift", str(applied["site"]), "--json")
    assert code == 2
    # Everything is still installed: only the service is missing.
    assert [d["resource"] for d in drift["hosts"][0]["differences"]] == ["service"]


@pytest.mark.skipif(not CAN_SSH, reason="needs root and openssh-server")
def test_real_server_on_an_ssh_host(fleet: SSHFleet, tmp_path: Path, ports: dict[str, int]) -> None:
    host = fleet.hosts[-1]
    hostprep.reset_host(host)
    site = yaml.safe_load((REPO / "playbooks" / "demo.yaml").read_text())
    spec = site["hosts"].pop("this-machine")
    spec.update(
        connection="ssh",
        address="127.0.0.1",
        ssh_port=host.port,
        user=host.user,
        identity_file=str(fleet.client_key_path),
        known_hosts_file=str(tmp_path / "kh"),
        python="/usr/bin/python3",
        prefix="~/.localai",
        hf_home="~/hf",
        lock=str(REPO / "playbooks" / "locks" / "demo"),
    )
    # The offline lab: the controller downloads the locked set once and sends it; the host
    # installs it with no index (and builds the few sdists with the setuptools it was sent).
    spec["package_index"] = {**spec.get("package_index", {}), "push": True}
    spec["server"]["port"] = ports[host.name]
    site["hosts"] = {host.name: spec}
    path = tmp_path / "ssh-demo.yaml"
    path.write_text(yaml.safe_dump(site, sort_keys=False))
    try:
        start = time.perf_counter()
        code, result, _err = cli("apply", str(path), "--json")
        print(f"\nreal server over SSH: {time.perf_counter() - start:.1f} s")
        # The error first: the whole result is long and pytest cuts it.
        assert code == 0, json.dumps(result["hosts"][0]["error"])[:2000]
        (entry,) = result["hosts"]
        wheels = next(s for s in entry["steps"] if s["step"] == "wheels")
        assert wheels["wheels"] > 200
        # The server listens on the host's loopback (here the same loopback).
        status, _chat, _ = call(
            ports[host.name],
            "/v1/chat/completions",
            {
                "model": MODEL,
                "messages": [{"role": "user", "content": "hi"}],
                "max_tokens": 4,
            },
        )
        assert status == 200
        assert cli("drift", str(path))[0] == 0
    finally:
        cli("stop", str(path))
        hostprep.reset_host(host)
