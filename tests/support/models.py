"""Model folders on the controller, as a site's `source:` names them, for the tests."""

from __future__ import annotations

import json
import os
from pathlib import Path


def model_folder(folder: Path, weights: int, tokenizer: bool = True) -> Path:
    """``folder`` with config.json, ``weights`` random bytes of model.safetensors (random: no
    two tests' blobs are alike, so no copy is found where it should not be) and, unless told
    not to, tokenizer.json. Written in 1 MiB pieces: a large model is never whole in memory."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps({"model_type": "llama", "hidden_size": 64}))
    with open(folder / "model.safetensors", "wb") as f:
        for start in range(0, weights, 1 << 20):
            f.write(os.urandom(min(1 << 20, weights - start)))
    if tokenizer:
        (folder / "tokenizer.json").write_text(json.dumps({"model": {"vocab": {"a": 0}}}))
    return folder
