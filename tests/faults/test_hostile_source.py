"""Hostile input over real SSH: a `source:` folder holding a link to a private key outside it
is refused before anything of the model is sent; the key never reaches the host."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.conftest import CAN_SSH
from tests.faults.conftest import models
from tests.support import hostprep
from tests.support.lab import Lab

pytestmark = [
    pytest.mark.hostile,
    pytest.mark.ssh,
    pytest.mark.skipif(not CAN_SSH, reason="needs root and openssh-server"),
]


def test_a_source_folder_linking_to_a_key_is_refused(
    lab: Lab, small_model: Path, shared_dir: Path
) -> None:
    host = lab.fleet.hosts[2]
    hostprep.reset_host(host)
    secret = shared_dir / "controller-ssh" / "id_rsa"
    secret.parent.mkdir(exist_ok=True)
    marker = "PRIVATE-KEY-" + os.urandom(8).hex()
    secret.write_text(marker + "\n")
    folder = shared_dir / "fault-models" / "leaky"
    folder.mkdir(exist_ok=True)
    for name in ("config.json", "model.safetensors"):
        (folder / name).write_bytes((small_model / name).read_bytes())
    link = folder / "tokenizer.json"
    link.unlink(missing_ok=True)
    os.symlink(secret, link)
    site = lab.site([host], models=models(folder, "org/leaky"))
    code, result = lab.json("apply", site)
    assert code == 1
    error = result[host.name]["error"]
    assert error["step"] == "models"
    assert str(link) in error["message"] and str(secret) in error["message"]
    assert "refused" in error["message"]
    _, hf_home = hostprep.host_paths(host)
    for path in hf_home.rglob("*") if hf_home.exists() else []:
        if path.is_file():
            assert marker.encode() not in path.read_bytes(), path
