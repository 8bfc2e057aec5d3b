"""Models that fit and only the declared models, over real sshd with the STAND-IN server
(tests/support): a host whose prewarmed models do not fit its memory fails in plan with the
numbers and nothing is sent; with `models_prune` an undeclared model is drift and apply
removes it, old snapshots and the blobs only they use go, shared blobs stay; a cache the
tool did not make is never touched."""

from __future__ import annotations

import json
import os
import urllib.request
from pathlib import Path

import pytest

from localai_provision.layout import CACHE_MARKER
from localai_provision.tinymodel import write_model_folder
from tests.conftest import CAN_SSH
from tests.support import hostprep
from tests.support.lab import Lab
from tests.support.sshfleet import TestHost

pytestmark = [
    pytest.mark.ssh,
    pytest.mark.skipif(not CAN_SSH, reason="needs root and openssh-server"),
]


@pytest.fixture(scope="module")
def sources(shared_dir: Path) -> dict[str, Path]:
    """Two tiny models and a "huge" one: 64 GB of weights as a sparse file (no disk used),
    more than this machine's memory."""
    folders = {
        "a": write_model_folder(shared_dir / "fit" / "a", seed=1),
        "b": write_model_folder(shared_dir / "fit" / "b", seed=2),
    }
    huge = shared_dir / "fit" / "huge"
    huge.mkdir(parents=True, exist_ok=True)
    (huge / "config.json").write_text(json.dumps({"model_type": "llama"}))
    with open(huge / "model.safetensors", "wb") as f:
        f.truncate(64 * 1024**3)
    folders["huge"] = huge
    return folders


def listed(lab: Lab, host: TestHost) -> set[str]:
    url = f"http://127.0.0.1:{lab.ports[host.name]}/v1/models"
    with urllib.request.urlopen(url, timeout=5) as response:
        return {m["id"] for m in json.loads(response.read())["data"]}


def hub(host: TestHost) -> Path:
    return hostprep.host_paths(host)[1] / "hub"


def test_a_host_whose_models_do_not_fit_fails_in_plan_with_the_numbers_and_nothing_is_sent(
    lab: Lab, sources: dict[str, Path]
) -> None:
    host = lab.fleet.hosts[0]
    hostprep.reset_host(host)
    site = lab.site([host], models=[{"id": "org/huge", "source": str(sources["huge"])}])
    _code, result = lab.json("plan", site)
    [fail] = [c for c in result[host.name]["changes"] if c["resource"] == "memory"]
    assert fail["action"] == "fail"
    assert "org/huge 64.0 GB + 1024 MB headroom = 65.0 GB" in fail["reason"]
    assert "more than this host's memory" in fail["reason"]

    code, result = lab.json("apply", site)
    assert code == 1
    assert result[host.name]["failed_step"] == "memory", result
    prefix, hf_home = hostprep.host_paths(host)
    assert not (prefix / "generations").exists()  # no venv built
    assert not hf_home.exists()  # no model byte sent


def test_an_undeclared_model_is_drift_and_apply_removes_it_and_the_files_no_revision_uses(
    lab: Lab, sources: dict[str, Path]
) -> None:
    host = lab.fleet.hosts[0]
    hostprep.reset_host(host)
    both = [{"id": f"org/{n}", "source": str(sources[n])} for n in ("a", "b")]
    site = lab.site([host], models=both, models_prune=True)
    code, result = lab.json("apply", site)
    assert code == 0, result
    assert (hub(host) / CACHE_MARKER).exists()  # the tool made the cache: it is the site's
    assert listed(lab, host) == {"org/a", "org/b"}

    # An older revision of org/a: one blob it shares with the current one, one of its own.
    base = hub(host) / "models--org--a"
    current = (base / "refs" / "main").read_text().strip()
    shared = os.readlink(next((base / "snapshots" / current).iterdir()))
    old = base / "snapshots" / ("0" * 40)
    old.mkdir()
    (old / "config.json").symlink_to(shared)
    (base / "blobs" / ("f" * 64)).write_bytes(b"only the old revision uses this")
    (old / "model.safetensors").symlink_to("../../blobs/" + "f" * 64)
    (base / "refs" / "v0").write_text("0" * 40)
    hostprep.chown_tree(base, host.user)

    site = lab.site([host], models=both[:1], models_prune=True)
    code, result = lab.json("drift", site)
    assert code == 2
    changes = {c["resource"]: c for c in result[host.name]["differences"]}
    assert changes["model org/b"]["expected"] is None  # removed
    assert "listed by the server" in changes["model org/b"]["actual"]
    assert "1 snapshot(s)" in changes["model-files org/a"]["actual"]

    code, result = lab.json("apply", site)
    assert code == 0, result
    assert not (hub(host) / "models--org--b").exists()
    assert not old.exists() and not (base / "refs" / "v0").exists()
    assert not (base / "blobs" / ("f" * 64)).exists()  # used by the old revision only
    assert (base / "snapshots" / current / "config.json").resolve().exists()  # shared: kept
    assert listed(lab, host) == {"org/a"}  # restarted: the server no longer lists it
    code, result = lab.json("drift", site)
    assert code == 0, result


def test_a_cache_the_tool_did_not_make_is_never_pruned_and_the_warning_says_why(
    lab: Lab, sources: dict[str, Path]
) -> None:
    host = lab.fleet.hosts[0]
    hostprep.reset_host(host)
    theirs = hub(host) / "models--someone--else" / "blobs"
    theirs.mkdir(parents=True)
    (theirs / "data").write_bytes(b"x" * 4096)
    hostprep.chown_tree(hostprep.host_paths(host)[1], host.user)
    site = lab.site(
        [host], models=[{"id": "org/a", "source": str(sources["a"])}], models_prune=True
    )
    code, result = lab.json("apply", site)
    assert code == 0, result
    assert (theirs / "data").exists()
    assert not (hub(host) / CACHE_MARKER).exists()
    warnings = " ".join(result[host.name]["warnings"])
    assert "someone/else" in warnings and f"touch {hub(host)}" in warnings
