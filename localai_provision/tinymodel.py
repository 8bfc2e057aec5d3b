"""A tiny, real, randomly initialised Llama model, made by our own code: `builtin:tiny-llama`.

No model hub is reachable from a test machine, yet the end-to-end tests and the demo need a
model the real mlx-omni-server loads and serves. This writes one deterministically (fixed
seed, sorted JSON; the same bytes on every machine and Python) with the standard library
only: hidden size 64, 2 layers, 4 heads, a WordLevel tokenizer with a chat template, about
400 KB. mlx_lm loads it and the server answers both the OpenAI and the Anthropic API with it.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import struct
import tempfile
from pathlib import Path
from typing import Any

BUILTIN_PREFIX = "builtin:"
BUILTIN_MODELS = ("tiny-llama",)

HIDDEN = 64
LAYERS = 2
HEADS = 4
KV_HEADS = 4
INTERMEDIATE = 128
FIXED_MTIME = 1700000000  # 2023-11-14T22:13:20Z: stable "created" in /v1/models

SPECIAL = ["<unk>", "<s>", "</s>"]
WORDS = [
    "<|system|>",
    "<|user|>",
    "<|assistant|>",
    "hello",
    "hi",
    "world",
    "yes",
    "no",
    "ok",
    "the",
    "a",
    "is",
    "are",
    "I",
    "you",
    "we",
    "it",
    "this",
    "that",
    "what",
    "how",
    "why",
    "when",
    "where",
    "who",
    "and",
    "or",
    "not",
    "to",
    "of",
    "in",
    "on",
    "for",
    "with",
    "from",
    "model",
    "test",
    "tiny",
    "llama",
    "answer",
    "question",
    "please",
    "thanks",
    "good",
    "bad",
    "fine",
    "one",
    "two",
    "three",
    "four",
    "five",
    "up",
    "down",
    ",",
    ".",
    "?",
    "!",
]
VOCAB = {tok: i for i, tok in enumerate(SPECIAL + WORDS)}
VOCAB_SIZE = len(VOCAB)

CHAT_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "<|{{ message['role'] }}|> {{ message['content'] }} {{ eos_token }} "
    "{% endfor %}{% if add_generation_prompt %}<|assistant|> {% endif %}"
)


def dumps(obj: Any) -> bytes:
    # Same style as transformers/huggingface (indent 2, UTF-8) and sorted keys.
    return (json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode()


def config_json() -> bytes:
    return dumps(
        {
            "architectures": ["LlamaForCausalLM"],
            "attention_bias": False,
            "bos_token_id": VOCAB["<s>"],
            "eos_token_id": VOCAB["</s>"],
            "head_dim": HIDDEN // HEADS,
            "hidden_act": "silu",
            "hidden_size": HIDDEN,
            "intermediate_size": INTERMEDIATE,
            "max_position_embeddings": 512,
            "mlp_bias": False,
            "model_type": "llama",
            "num_attention_heads": HEADS,
            "num_hidden_layers": LAYERS,
            "num_key_value_heads": KV_HEADS,
            "rms_norm_eps": 1e-05,
            "rope_theta": 10000.0,
            "tie_word_embeddings": False,
            "torch_dtype": "float32",
            "vocab_size": VOCAB_SIZE,
        }
    )


def _added(content: str) -> dict[str, Any]:
    return {
        "content": content,
        "lstrip": False,
        "normalized": False,
        "rstrip": False,
        "single_word": False,
        "special": True,
    }


def tokenizer_json() -> bytes:
    # What tokenizers.Tokenizer(WordLevel(...)) + WhitespaceSplit saves.
    # Key order as tokenizers writes it (Tokenizer.save / to_str(pretty=True)).
    added = [
        {
            "id": VOCAB[tok],
            "content": tok,
            "single_word": False,
            "lstrip": False,
            "rstrip": False,
            "normalized": False,
            "special": True,
        }
        for tok in SPECIAL
    ]
    obj = {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": added,
        "normalizer": None,
        "pre_tokenizer": {"type": "WhitespaceSplit"},
        "post_processor": None,
        "decoder": None,
        "model": {"type": "WordLevel", "vocab": VOCAB, "unk_token": "<unk>"},
    }
    # Vocab in id order, no sort_keys, no trailing newline: byte-identical to
    # what `tokenizers` itself saves for this tokenizer.
    return json.dumps(obj, indent=2, ensure_ascii=False).encode()


def tokenizer_config_json() -> bytes:
    return dumps(
        {
            "added_tokens_decoder": {str(VOCAB[t]): _added(t) for t in SPECIAL},
            "bos_token": "<s>",
            "chat_template": CHAT_TEMPLATE,
            "clean_up_tokenization_spaces": False,
            "eos_token": "</s>",
            "extra_special_tokens": {},
            "model_max_length": 512,
            "tokenizer_class": "PreTrainedTokenizerFast",
            "unk_token": "<unk>",
        }
    )


def special_tokens_map_json() -> bytes:
    return dumps({"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>"})


def weight_shapes() -> dict[str, tuple[int, ...]]:
    head_dim = HIDDEN // HEADS
    shapes = {"model.embed_tokens.weight": (VOCAB_SIZE, HIDDEN), "model.norm.weight": (HIDDEN,)}
    for i in range(LAYERS):
        p = f"model.layers.{i}."
        shapes[p + "input_layernorm.weight"] = (HIDDEN,)
        shapes[p + "post_attention_layernorm.weight"] = (HIDDEN,)
        shapes[p + "self_attn.q_proj.weight"] = (HEADS * head_dim, HIDDEN)
        shapes[p + "self_attn.k_proj.weight"] = (KV_HEADS * head_dim, HIDDEN)
        shapes[p + "self_attn.v_proj.weight"] = (KV_HEADS * head_dim, HIDDEN)
        shapes[p + "self_attn.o_proj.weight"] = (HIDDEN, HEADS * head_dim)
        shapes[p + "mlp.gate_proj.weight"] = (INTERMEDIATE, HIDDEN)
        shapes[p + "mlp.up_proj.weight"] = (INTERMEDIATE, HIDDEN)
        shapes[p + "mlp.down_proj.weight"] = (HIDDEN, INTERMEDIATE)
    shapes["lm_head.weight"] = (VOCAB_SIZE, HIDDEN)  # untied, see below
    return shapes


def tensor_values(name: str, count: int, rng: random.Random) -> list[float]:
    """Random N(0, 0.02) weights, shaped so that the model never samples a
    special token: every embedding row carries the same offset vector u
    (|u| = 1), which dominates the residual stream, and the lm_head rows of
    <unk>, <s>, </s> point along -u (logit about -4 * sqrt(HIDDEN) = -32),
    while the other rows are small and random (near-uniform sampling over the
    ordinary words).  So every answer has exactly the tokens asked for and is
    never empty (mlx-omni-server 0.5.1 answers HTTP 500 "No tokens
    generated" when the first token is EOS)."""
    if name.endswith("norm.weight"):
        return [1.0] * count
    values = [rng.gauss(0.0, 0.02) for _ in range(count)]
    u = [(-1.0) ** i / HIDDEN**0.5 for i in range(HIDDEN)]
    if name == "model.embed_tokens.weight":
        values = [v + u[i % HIDDEN] for i, v in enumerate(values)]
    elif name == "lm_head.weight":
        for tok in SPECIAL:
            row = VOCAB[tok] * HIDDEN
            values[row : row + HIDDEN] = [-4.0 * x for x in u]
    return values


def safetensors_bytes(seed: int) -> bytes:
    """float32 tensors in the safetensors format, written by hand."""
    rng = random.Random(seed)
    header: dict[str, Any] = {"__metadata__": {"format": "mlx"}}
    chunks = []
    offset = 0
    for name in sorted(weight_shapes()):
        shape = weight_shapes()[name]
        count = 1
        for d in shape:
            count *= d
        values = tensor_values(name, count, rng)
        data = struct.pack(f"<{count}f", *values)
        header[name] = {
            "dtype": "F32",
            "shape": list(shape),
            "data_offsets": [offset, offset + len(data)],
        }
        chunks.append(data)
        offset += len(data)
    head = json.dumps(header, separators=(",", ":"), sort_keys=True).encode()
    head += b" " * (-len(head) % 8)  # 8-byte alignment of the data section
    return struct.pack("<Q", len(head)) + head + b"".join(chunks)


def git_blob_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def model_files(seed: int = 0) -> dict[str, bytes]:
    """Every file of the model folder, by name."""
    return {
        "config.json": config_json(),
        "tokenizer.json": tokenizer_json(),
        "tokenizer_config.json": tokenizer_config_json(),
        "special_tokens_map.json": special_tokens_map_json(),
        "model.safetensors": safetensors_bytes(seed),
    }


def write_model_folder(folder: Path, seed: int = 0) -> Path:
    """Write the model as a plain folder (what `source:` copies), atomically: built beside
    the target and renamed, so a half-written folder is never taken for the model."""
    folder = Path(folder)
    if (folder / "model.safetensors").exists():
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}-"))
    for name, data in model_files(seed).items():
        (tmp / name).write_bytes(data)
    try:
        os.replace(tmp, folder)
    except OSError:
        # Another process finished first: keep its folder, drop ours.
        for child in tmp.iterdir():
            child.unlink()
        tmp.rmdir()
    return folder


def builtin_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    return Path(base) / "localai-provision" / "builtin"


def materialize(source: str) -> Path:
    """The folder on this machine for a `builtin:NAME` source, written on first use."""
    name = source.removeprefix(BUILTIN_PREFIX)
    if name not in BUILTIN_MODELS:
        raise ValueError(f"unknown built-in model {name!r}; known: {', '.join(BUILTIN_MODELS)}")
    return write_model_folder(builtin_cache_dir() / name)


def describe() -> dict[str, Any]:
    files = model_files()
    return {
        name: {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
        for name, data in files.items()
    }
