"""Controller-side model sourcing: what a model's `source:` holds, file by file.

Touches no host: a folder on this machine (or the built-in tiny model) is hashed into a
manifest, a hub model is downloaded once into this machine's own cache; either becomes a
``ModelSource`` that the host model layout (apply/host_models.py) sends and links.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from localai_provision import tinymodel
from localai_provision.errors import HostError
from localai_provision.site.model import HUB_PREFIX, HostSpec, ModelSpec
from localai_provision.transfer import sha256_file


@dataclass(frozen=True)
class ModelFile:
    blob: str  # its name under blobs/: sha256, or git's blob id for Hugging Face's small files
    size: int
    local_path: Path

    @property
    def digest(self) -> str:
        return f"sha256:{self.blob}" if len(self.blob) == 64 else f"gitsha1:{self.blob}"


@dataclass(frozen=True)
class ModelSource:
    commit: str  # the snapshot's name: the hub's commit, or one derived from the content
    files: dict[str, ModelFile]  # relative path -> file


def model_manifest(source: Path) -> dict[str, tuple[str, int]]:
    """Every file under a model folder on the controller: relative path -> (sha256, size)."""
    files: dict[str, tuple[str, int]] = {}
    for path in sorted(source.rglob("*")):
        if path.is_file() and not any(
            part.startswith(".") for part in path.relative_to(source).parts
        ):
            files[path.relative_to(source).as_posix()] = (sha256_file(path), path.stat().st_size)
    return files


def escaping_links(source: Path) -> list[tuple[Path, Path]]:
    """Symbolic links in a model folder on the controller that point outside it, with their
    targets. Copying follows links: one to ~/.ssh/id_rsa would ship this machine's key to
    every host."""
    root = source.resolve()
    found = []
    for path in sorted(source.rglob("*")):
        if path.is_symlink():
            target = path.resolve()
            if not target.is_relative_to(root):
                found.append((path, target))
    return found


def refuse_escaping_links(spec: HostSpec, model: ModelSpec) -> None:
    if not model.source or model.source.startswith((tinymodel.BUILTIN_PREFIX, HUB_PREFIX)):
        return
    links = escaping_links(Path(model.source))
    if links:
        path, target = links[0]
        raise HostError(
            host=spec.name,
            step="models",
            message=f"{path} in the `source:` folder of {model.id} is a symbolic link to "
            f"{target}, outside that folder: refused (it would be copied to the host)"
            + (f"; {len(links) - 1} more such link(s)" if len(links) > 1 else ""),
            hint="copy the file itself into the model folder, or remove the link",
        )


def manifest_commit(files: dict[str, tuple[str, int]]) -> str:
    """A stable 40-hex revision for a copied model, derived from its content."""
    text = "\n".join(f"{name} {sha}" for name, (sha, _) in sorted(files.items()))
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


def folder_source(source: Path) -> ModelSource:
    manifest = model_manifest(source)
    return ModelSource(
        commit=manifest_commit(manifest),
        files={rel: ModelFile(sha, size, source / rel) for rel, (sha, size) in manifest.items()},
    )


def hub_source(repo_id: str, revision: str) -> ModelSource:
    """Download a model once into the controller's own Hugging Face cache (or find it there,
    offline with HF_HUB_OFFLINE=1) and describe it blob by blob, exactly as the cache holds
    it: hosts then get the same blob names, snapshot and ref as huggingface_hub would write."""
    try:
        from huggingface_hub import snapshot_download
    except ImportError:
        raise HostError(
            host="",
            step="models",
            message=f"`source: hf:{repo_id}` needs huggingface_hub on the controller",
            hint="pip install 'localai-provision[hub]' (or huggingface_hub) where localai runs",
        ) from None
    try:
        snapshot = Path(snapshot_download(repo_id, revision=revision))
    except Exception as exc:  # noqa: BLE001 - huggingface_hub raises many kinds; all mean the same
        raise HostError(
            host="",
            step="models",
            message=f"the controller could not download {repo_id}@{revision}: "
            f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}",
            hint="check the controller's network and HF_TOKEN, or fill its cache "
            "(huggingface-cli download) and set HF_HUB_OFFLINE=1",
        ) from None
    files: dict[str, ModelFile] = {}
    for path in sorted(snapshot.rglob("*")):
        if path.is_dir():
            continue
        blob = path.resolve()
        files[path.relative_to(snapshot).as_posix()] = ModelFile(
            blob.name, blob.stat().st_size, blob
        )
    return ModelSource(commit=snapshot.name, files=files)


def model_source(model: ModelSpec) -> ModelSource:
    assert model.source is not None
    if model.source.startswith(HUB_PREFIX):
        return hub_source(model.source.removeprefix(HUB_PREFIX), model.revision)
    source = (
        tinymodel.materialize(model.source)
        if model.source.startswith(tinymodel.BUILTIN_PREFIX)
        else Path(model.source)
    )
    if not source.is_dir():
        raise HostError(
            host="",
            step="models",
            message=f"the source folder {source} of {model.id} does not exist on this machine",
            hint="fix `source` in the site file (it is relative to the site file's folder)",
        )
    found = folder_source(source)
    if not found.files:
        raise HostError(host="", step="models", message=f"{source} holds no files")
    return found
