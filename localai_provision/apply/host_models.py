"""The host's model cache: a model copied from the controller, or downloaded on the host,
laid out exactly as huggingface_hub would (blobs, a snapshot of links, a ref)."""

from __future__ import annotations

import json
from typing import Any

from localai_provision import scripts, shell
from localai_provision.apply.context import INSTALL_TIMEOUT_S, HostContext
from localai_provision.apply.sources import ModelSource, model_source
from localai_provision.errors import CommandError, HostError
from localai_provision.facts.model import Facts
from localai_provision.layout import COMPLETE_MARKER, Layout
from localai_provision.site.model import ModelSpec
from localai_provision.transfer import Artifact, Distributor, list_files, missing_placements

_DOWNLOAD = (
    "import sys; from huggingface_hub import snapshot_download; "
    "print(snapshot_download(sys.argv[1], revision=sys.argv[2]))"
)


def link_argv(python: str, base: str, source: ModelSource, model: ModelSpec) -> list[str]:
    """model_files.py link: the snapshot's links and the ref, written last."""
    link = {
        "base": base,
        "commit": source.commit,
        "revision": model.revision,
        "files": {rel: [f.blob, f.size] for rel, f in source.files.items()},
        "marker": COMPLETE_MARKER,
    }
    return [python, "-I", "-S", "-c", scripts.load("model_files"), "link", json.dumps(link)]


def download_command(layout: Layout, facts: Facts, model: ModelSpec) -> str:
    """huggingface_hub's snapshot_download, run with the venv's Python into HF_HOME."""
    return f"HF_HOME={shell.quote(facts.hf_home)} " + shell.join(
        [layout.venv_python, "-c", _DOWNLOAD, model.id, model.revision]
    )


def copy_model(host: HostContext, model: ModelSpec, distributor: Distributor) -> dict[str, Any]:
    """Copy a model from the controller into the host's cache, in huggingface_hub's layout.
    Blobs are named by content, so a blob the host already has is never sent again; each
    arrives as a partial file that resumes after an interruption and is checked before it is
    renamed; the ref and the marker are written last, so an interrupted copy is never taken
    for a complete one. Large blobs pass from host to host (see transfer.py)."""
    connector, spec, facts = host.connector, host.spec, host.facts
    try:
        source = distributor.once(
            ("model", model.source, model.revision), lambda: model_source(model)
        )
    except HostError as exc:
        exc.host = spec.name
        raise
    assert isinstance(source, ModelSource)
    base = host.layout.model_cache(facts.hf_home, model.cache_dir_name)
    python = facts.python.executable
    blobs = f"{base}/blobs"
    present = list_files(connector, spec, python, blobs, "models", create=True)
    placements = missing_placements(
        present,
        blobs,
        [(f.blob, Artifact(f.digest, f.size, f.local_path)) for f in source.files.values()],
    )
    delivery = distributor.deliver(connector, spec, python, placements, "models")
    host.run_step(
        "models", link_argv(python, base, source, model), f"cannot lay out {model.id} in the cache"
    )
    return {
        "model": model.id,
        "commit": source.commit,
        **delivery.as_dict(),
        "warnings": delivery.warnings,
    }


def download_model(host: HostContext, model: ModelSpec) -> dict[str, Any]:
    """Download on the host with huggingface_hub (installed with mlx-lm)."""
    command = download_command(host.layout, host.facts, model)
    result = host.connector.run(command, timeout=INSTALL_TIMEOUT_S)
    if not result.ok:
        raise CommandError.of(
            host.name,
            "models",
            f"could not download {model.id}@{model.revision}",
            command,
            result,
            hint="check the host's network, or copy the model from this machine with `source:`",
        )
    return {"model": model.id, "downloaded": True}
