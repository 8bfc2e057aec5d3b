"""A STAND-IN for mlx-omni-server, used only by localai-provision's fast reconciler tests.

It accepts the real server's command line (--host --port --workers --log-level), lists the
models of the Hugging Face cache (HF_HOME/hub) on /v1/models and /anthropic/v1/models, scanned
once at the first request as the real server does, and answers chat completions and Anthropic
messages for listed models with a fixed reply. A model is "loaded" by the first request naming
it, as the real server loads it lazily; with LOCALAI_LOADED_MODELS set, the set is published
in that file as the tool's start-up shim does for the real server
(localai_provision/scripts/server_shim.py `_LoadedModels`: {"pid", "updated", "loaded",
"loading"}, written atomically whenever it changes, "loading" while a request waits for it).
The real server is covered by the e2e tests.
Standard library only: it runs in a venv with nothing else installed.

Streamed chat completions (`stream: true`, what `localai bench` measures) follow
mlx-omni-server 0.5.1 as read from its wheel (chat/openai/router.py, openai_adapter.py
generate_stream, chat/mlx/chat_generator.py, chat/mlx/prompt_cache.py) and mlx-lm 0.28.2's
stream_generate: an HTTP/1.1 chunked `text/event-stream` of `data: {chunk}` events, one per
token, each chunk's delta `{"role": "assistant", "content": TEXT}` with finish_reason "stop"
(the adapter writes `chunk.finish_reason or "stop"`), then `data: [DONE]`. With max_tokens N
only N-1 token chunks come (the server drops the chunk that carries mlx-lm's finish_reason,
and with it the last token), and `usage` only with stream_options.include_usage, in a last
chunk whose delta has no content: prompt_tokens counts the whole prompt, cached ones
included, `prompt_tokens_details.cached_tokens` appears only when some were cached (the
per-model prompt cache reuses the longest common token prefix, at most all but one token).
Tokens here are the prompt's words plus a chat template's 5; each processed prompt token
costs STANDIN_PROMPT_DELAY_S and each generated one STANDIN_TOKEN_DELAY_S, so that tokens/s
is finite.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

STANDIN_BANNER = "localai STAND-IN mlx-omni-server"
_models: list[str] | None = None
_served = 0
_prompt_cache: dict[str, list[str]] = {}  # model -> the tokens its cache holds
TEMPLATE_TOKENS = 5  # what a chat template adds around one user message
DEFAULT_MAX_TOKENS = 4096  # chat/mlx/chat_generator.py
_loaded: set[str] = set()
_loaded_lock = threading.Lock()


def publish_loaded(loading: tuple[str, ...] = ()) -> None:
    """The same file, written the same way, as the shim writes for the real server."""
    path = os.environ.get("LOCALAI_LOADED_MODELS")
    if not path:
        return
    data = {
        "pid": os.getpid(),
        "updated": time.time(),
        "loaded": sorted(_loaded),
        "loading": sorted(m for m in loading if m not in _loaded),
    }
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w") as f:
        json.dump(data, f)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def load_model(model: str) -> None:
    """Loaded on the first request that names it (and kept: the tool sets TTL 0)."""
    with _loaded_lock:
        if model in _loaded:
            return
        publish_loaded(loading=(model,))
        _loaded.add(model)
        publish_loaded()


def scan_models() -> list[str]:
    """Models in the cache whose ref `main` points at an existing snapshot."""
    hub = os.path.join(os.environ.get("HF_HOME", os.path.expanduser("~/.cache/huggingface")), "hub")
    found = []
    try:
        names = sorted(os.listdir(hub))
    except OSError:
        return found
    for name in names:
        if not name.startswith("models--"):
            continue
        base = os.path.join(hub, name)
        try:
            with open(os.path.join(base, "refs", "main"), encoding="utf-8") as f:
                commit = f.read().strip()
        except OSError:
            continue
        if os.path.isfile(os.path.join(base, "snapshots", commit, "config.json")):
            found.append(name[len("models--") :].replace("--", "/"))
    return found


def models() -> list[str]:
    global _models
    if _models is None:  # once per process, like the real server
        _models = scan_models()
    return _models


class Handler(BaseHTTPRequestHandler):
    server_version = "standin-mlx-omni-server/0.1"

    def log_message(self, format: str, *args: object) -> None:
        sys.stderr.write(f"{self.address_string()} - {format % args}\n")

    def _send(self, status: int, body: object) -> None:
        data = json.dumps(body).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        self.wfile.flush()
        # A crash loop, on request: the server dies after answering N requests.
        global _served
        _served += 1
        crash_after = int(os.environ.get("STANDIN_CRASH_AFTER_REQUESTS") or 0)
        if crash_after and _served >= crash_after:
            sys.stderr.write(f"standin: crashing after {_served} requests as asked\n")
            sys.stderr.flush()
            os._exit(3)

    def do_GET(self) -> None:
        path = self.path.split("?")[0].rstrip("/")
        if path in ("/v1/models", "/models"):
            self._send(
                200,
                {
                    "object": "list",
                    "data": [
                        {"id": m, "object": "model", "created": 0, "owned_by": "standin"}
                        for m in models()
                    ],
                },
            )
        elif path in ("/anthropic/v1/models", "/anthropic/models"):
            self._send(
                200,
                {
                    "data": [{"id": m, "type": "model", "display_name": m} for m in models()],
                    "has_more": False,
                },
            )
        else:
            self._send(404, {"detail": "Not Found"})

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        try:
            request = json.loads(self.rfile.read(length) or b"{}")
        except json.JSONDecodeError:
            self._send(400, {"detail": "bad json"})
            return
        model = request.get("model")
        path = self.path.split("?")[0].rstrip("/")
        if model not in models():
            self._send(404, {"detail": f"model {model} not found"})
            return
        load_model(str(model))
        if path in ("/v1/chat/completions", "/chat/completions") and request.get("stream"):
            self._stream(model, request)
        elif path in ("/v1/chat/completions", "/chat/completions"):
            self._send(
                200,
                {
                    "id": "standin",
                    "object": "chat.completion",
                    "created": int(time.time()),
                    "model": model,
                    "choices": [
                        {
                            "index": 0,
                            "finish_reason": "length",
                            "message": {"role": "assistant", "content": "ok"},
                        }
                    ],
                    "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
                },
            )
        elif path in ("/anthropic/v1/messages", "/anthropic/messages"):
            self._send(
                200,
                {
                    "id": "standin",
                    "type": "message",
                    "role": "assistant",
                    "model": model,
                    "content": [{"type": "text", "text": "ok"}],
                    "stop_reason": "max_tokens",
                    "usage": {"input_tokens": 1, "output_tokens": 1},
                },
            )
        else:
            self._send(404, {"detail": "Not Found"})

    def _stream(self, model: str, request: dict[str, object]) -> None:
        """A streamed chat completion as mlx-omni-server 0.5.1 sends it (module docstring)."""
        if os.environ.get("STANDIN_STREAM_ERROR"):  # a fault, on request: streams fail
            self._send(500, {"detail": "standin: streaming fails as asked"})
            return
        prompt = ["<tpl>"] * TEMPLATE_TOKENS
        for message in request.get("messages") or []:  # type: ignore[attr-defined]
            prompt += str(message.get("content", "")).split()
        cached = _cached_prefix(model, prompt)
        limit = request.get("max_completion_tokens") or request.get("max_tokens")
        max_tokens = int(limit) if isinstance(limit, int) else DEFAULT_MAX_TOKENS
        self.protocol_version = "HTTP/1.1"
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "keep-alive")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        chat_id = f"chatcmpl-{os.urandom(5).hex()}"
        per_prompt_token = float(os.environ.get("STANDIN_PROMPT_DELAY_S", "0.0002"))
        time.sleep(per_prompt_token * (len(prompt) - cached))
        delay = float(os.environ.get("STANDIN_TOKEN_DELAY_S", "0.002"))
        generated = 0
        for n in range(max_tokens - 1):  # the last token's chunk is dropped (docstring)
            if n:
                time.sleep(delay)
            generated += 1
            delta = {"role": "assistant", "content": f" w{n}"}
            self._event(_chunk(chat_id, model, delta))
        _prompt_cache[model] = prompt + [f"w{n}" for n in range(generated)]
        options = request.get("stream_options")
        if isinstance(options, dict) and options.get("include_usage") and generated:
            usage: dict[str, object] = {
                "prompt_tokens": len(prompt),
                "completion_tokens": generated,
                "total_tokens": len(prompt) + generated,
            }
            if cached:
                usage["prompt_tokens_details"] = {"cached_tokens": cached}
            self._event({**_chunk(chat_id, model, {"role": "assistant"}), "usage": usage})
        self._write(b"data: [DONE]\n\n")
        self.wfile.write(b"0\r\n\r\n")  # the end of the chunked body
        self.wfile.flush()
        self.close_connection = True

    def _event(self, body: object) -> None:
        self._write(f"data: {json.dumps(body)}\n\n".encode())

    def _write(self, data: bytes) -> None:
        """One HTTP/1.1 chunk (uvicorn sends each event the generator yields as one)."""
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()


def _chunk(chat_id: str, model: str, delta: dict[str, object]) -> dict[str, object]:
    return {
        "id": chat_id,
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": "stop"}],
    }


def _cached_prefix(model: str, prompt: list[str]) -> int:
    """How many of the prompt's tokens the model's prompt cache serves: the common prefix
    with what it holds, leaving at least one token to process (prompt_cache.py)."""
    held = _prompt_cache.get(model, [])
    common = 0
    for a, b in zip(held, prompt, strict=False):
        if a != b:
            break
        common += 1
    return min(common, len(prompt) - 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=STANDIN_BANNER)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=10240)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--log-level", default="info")
    args, _unknown = parser.parse_known_args()
    delay = float(os.environ.get("STANDIN_START_DELAY_S", "0"))
    if os.environ.get("STANDIN_FAIL_AT_START"):
        sys.stderr.write("standin: failing at start as asked (STANDIN_FAIL_AT_START)\n")
        raise SystemExit(3)
    time.sleep(delay)
    publish_loaded()  # nothing loaded yet, said by this process
    httpd = ThreadingHTTPServer((args.host, args.port), Handler)
    sys.stderr.write(f"{STANDIN_BANNER} listening on {args.host}:{args.port}\n")
    sys.stderr.flush()
    httpd.serve_forever()


if __name__ == "__main__":
    main()
