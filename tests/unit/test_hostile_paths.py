"""Hostile paths: a model folder on the controller whose symbolic links point outside it is
refused, naming the file (a link to ~/.ssh/id_rsa would ship this machine's key to every
host); links that stay inside are fine."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from localai_provision.apply import escaping_links, refuse_escaping_links
from localai_provision.errors import HostError
from localai_provision.site.model import HostSpec, ModelSpec

pytestmark = pytest.mark.hostile


def model_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    (folder / "sub").mkdir()
    return folder


def spec_with(folder: Path) -> tuple[HostSpec, ModelSpec]:
    model = ModelSpec(id="org/m", source=str(folder))
    return HostSpec(name="mini-01", address="10.0.0.1", models=(model,)), model


@pytest.mark.parametrize(
    "link",
    [
        "id_rsa",  # a file link to outside
        "sub/deeper",  # further down
        "escape-dir",  # a folder link to outside
        "relative",  # ../ in the link text
    ],
)
def test_a_link_out_of_the_source_folder_is_refused(tmp_path: Path, link: str) -> None:
    folder = model_folder(tmp_path)
    secret = tmp_path / "secret" / "id_rsa"
    secret.parent.mkdir()
    secret.write_text("-----BEGIN OPENSSH PRIVATE KEY-----\n")
    target: str | Path = secret
    if link == "escape-dir":
        target = secret.parent
    elif link == "relative":
        target = "../secret/id_rsa"
    os.symlink(target, folder / link)
    [(path, resolved)] = escaping_links(folder)
    assert path == folder / link
    spec, model = spec_with(folder)
    with pytest.raises(HostError) as caught:
        refuse_escaping_links(spec, model)
    error = caught.value
    assert error.host == "mini-01" and error.step == "models"
    assert str(folder / link) in error.message and str(resolved) in error.message
    assert "refused" in error.message and error.hint


def test_links_inside_the_folder_are_fine(tmp_path: Path) -> None:
    folder = model_folder(tmp_path)
    (folder / "sub" / "weights.bin").write_bytes(b"\0" * 10)
    os.symlink("sub/weights.bin", folder / "model.safetensors")
    os.symlink(folder / "sub", folder / "alias")
    assert escaping_links(folder) == []
    refuse_escaping_links(*spec_with(folder))


def test_the_folder_itself_may_be_reached_through_a_link(tmp_path: Path) -> None:
    folder = model_folder(tmp_path)
    os.symlink("config.json", folder / "params.json")
    alias = tmp_path / "alias"
    os.symlink(folder, alias)
    assert escaping_links(alias) == []
