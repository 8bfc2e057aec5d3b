"""`localai bench` and `verify.bench` over real sshd, with the STAND-IN server (tests/support),
which streams chat completions as mlx-omni-server 0.5.1 does, with a fixed delay per token.
The real server is measured in tests/e2e/test_real_server.py."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from tests.conftest import CAN_SSH
from tests.support import hostprep
from tests.support.lab import Lab
from tests.support.models import model_folder
from tests.support.sshfleet import TestHost

pytestmark = [
    pytest.mark.ssh,
    pytest.mark.skipif(not CAN_SSH, reason="needs root and openssh-server"),
]


@pytest.fixture(scope="module")
def model_source(shared_dir: Path) -> Path:
    """A model folder on the controller, copied to hosts through `source:`."""
    return model_folder(shared_dir / "models" / "tiny-bench", 64 * 1024, tokenizer=False)


def positive(value: object) -> bool:
    return isinstance(value, int | float) and math.isfinite(value) and value > 0


def state(host: TestHost) -> dict[str, object]:
    data: dict[str, object] = json.loads((host.home / ".localai" / "state.json").read_text())
    return data


def test_apply_with_verify_bench_records_the_figures_and_bench_shows_them_as_before(
    lab: Lab, model_source: Path
) -> None:
    hosts = lab.fleet.hosts[:2]
    for host in hosts:
        hostprep.reset_host(host)
    models = [{"id": "org/tiny-bench", "source": str(model_source)}]
    site = lab.site(hosts, models=models, verify={"bench": True})

    code, applied = lab.json("apply", site)
    assert code == 0, applied
    for host in hosts:
        recorded = state(host)["bench"]
        assert isinstance(recorded, dict), state(host)
        assert recorded["model"] == "org/tiny-bench"
        assert positive(recorded["gen_tps"]) and positive(recorded["prompt_tps"])
        assert recorded["generation"] and recorded["tokens_from"] == "usage"
        steps = [s["step"] for s in applied[host.name]["steps"]]
        assert steps[-1] == "bench", steps

    code, measured = lab.json("bench", site)
    assert code == 0, measured
    for host in hosts:
        entry = measured[host.name]
        assert entry["status"] == "measured", entry
        assert positive(entry["gen_tps"]) and positive(entry["prompt_tps"])
        assert positive(entry["first_token_ms"]) and positive(entry["total_ms"])
        assert entry["completion_tokens"] == 63 and entry["runs"] == 3
        assert positive(entry["memory"]["rss_kb"]) and positive(entry["memory"]["peak_kb"])
        assert entry["previous"]["gen_tps"] == state(host)["bench"]["gen_tps"]  # type: ignore[index]
        assert entry["generation"] == entry["previous"]["generation"]

    code, out, err = lab.cli("bench", str(site), "--limit", hosts[0].name)
    assert code == 0, err
    header, row = out.splitlines()[:2]
    assert header.split()[:3] == ["HOST", "MODEL", "PROMPT"]
    assert row.startswith(hosts[0].name) and "org/tiny-bench" in row
    assert "was " in row and "tok/s (generation " in row

    code, status = lab.json("status", site)
    assert status[hosts[0].name]["bench"]["model"] == "org/tiny-bench"


def test_a_host_without_a_server_or_a_model_fails_by_name_and_the_others_are_measured(
    lab: Lab, model_source: Path
) -> None:
    hosts = lab.fleet.hosts[2:5]
    for host in hosts:
        hostprep.reset_host(host)
    models = [{"id": "org/tiny-bench", "source": str(model_source)}]
    with_model: dict[str, dict[str, object]] = {h.name: {"models": models} for h in hosts[:2]}
    site = lab.site(hosts, models=[], per_host=with_model)  # the third has none
    code, applied = lab.json("apply", site)
    assert code == 0, applied
    code, stopped = lab.json("stop", site, "--limit", hosts[1].name)
    assert code == 0, stopped

    code, out, _ = lab.cli("bench", str(site))
    assert code == 1
    rows = out.splitlines()
    assert rows[1].startswith(hosts[0].name) and "org/tiny-bench" in rows[1]
    assert rows[2].split()[:2] == [hosts[1].name, "error"]
    assert f"{hosts[1].name} [bench]: no server answers on 127.0.0.1:" in out
    assert "localai apply FILE" in out
    assert f"{hosts[2].name} [bench]: the host has no model to measure" in out

    code, measured = lab.json("bench", site, "--model", "org/not-there")
    assert code == 1
    error = measured[hosts[0].name]["error"]["message"]
    assert "measuring org/not-there" in error and "HTTP 404" in error


def test_a_bench_that_fails_after_apply_is_a_warning_and_the_apply_succeeds(
    lab: Lab, model_source: Path
) -> None:
    [host] = hosts = [lab.fleet.hosts[5]]
    hostprep.reset_host(host)
    models = [{"id": "org/tiny-bench", "source": str(model_source)}]
    faulty = {"env": {"STANDIN_STREAM_ERROR": "1"}, "port": lab.ports[host.name]}
    site = lab.site(hosts, models=models, verify={"bench": True}, server=faulty)
    code, applied = lab.json("apply", site)
    assert code == 0, applied
    entry = applied[host.name]
    assert entry["status"] == "changed"
    [warning] = [w for w in entry["warnings"] if "verify.bench" in w]
    assert "could not be measured" in warning and "HTTP 500" in warning
    assert "the apply itself succeeded" in warning
    assert "bench" not in state(host) and lab.serves(host)


def test_on_a_stand_in_mac_the_memory_is_the_launchd_jobs_server(
    lab: Lab, mac: TestHost, model_source: Path
) -> None:
    from tests.support.macos import have_sudo

    if not have_sudo():
        pytest.skip("needs Debian's sudo (the stand-in Macs use the real one)")
    models = [{"id": "org/tiny-bench", "source": str(model_source)}]
    site = lab.site(
        [mac], models=models, launchd={"plist_dir": "~/fake-root/Library/LaunchDaemons"}
    )
    code, applied = lab.json("apply", site)
    assert code == 0, applied
    # launchd runs the server itself: no pid file, the pid is launchd's `pid = N`.
    assert not (mac.home / ".localai" / "run" / "server.pid").exists()
    code, status = lab.json("status", site)
    code, measured = lab.json("bench", site)
    assert code == 0, measured
    entry = measured[mac.name]
    assert entry["pid"] == status[mac.name]["pid"] and entry["pid"] != 1
    assert positive(entry["gen_tps"]) and positive(entry["memory"]["rss_kb"])
