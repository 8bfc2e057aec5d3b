"""The server's log rotation (scripts/logrotate.py) and the start-up shim's two new duties:
rotating the log while the server runs, and publishing the loaded models. The rotation runs
on real files and file descriptors; the shim runs in a real Python process, or on a model
cache built as mlx-omni-server 0.5.1 builds its own (a STAND-IN of its class, below)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import types
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from localai_provision import scripts


def logrotate() -> dict[str, Any]:
    namespace: dict[str, Any] = {}
    exec(compile(scripts.load("logrotate"), "logrotate.py", "exec"), namespace)
    return namespace


def fill(path: Path, text: str) -> None:
    path.write_text(text)


def test_rotation_shifts_the_kept_files_drops_the_oldest_and_touches_nothing_else(
    tmp_path: Path,
) -> None:
    log = tmp_path / "server.log"
    fill(log, "now")
    fill(tmp_path / "server.log.1", "one")
    fill(tmp_path / "server.log.2", "two")
    fill(tmp_path / "server.log.3", "three")
    fill(tmp_path / "server.log.7", "left by a larger keep")
    others = {"server.log.old": "mine", "server.log.01": "mine too", "pull.log": "pull"}
    for name, text in others.items():
        fill(tmp_path / name, text)
    logrotate()["localai_rotate"](str(log), 3)
    assert log.read_text() == ""
    assert (log.stat().st_mode & 0o777) == 0o600
    assert [(tmp_path / f"server.log.{n}").read_text() for n in (1, 2, 3)] == [
        "now",
        "one",
        "two",
    ]
    assert not (tmp_path / "server.log.4").exists() and not (tmp_path / "server.log.7").exists()
    for name, text in others.items():
        assert (tmp_path / name).read_text() == text


def test_rotation_puts_the_new_log_on_the_given_descriptors(tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    fill(log, "x" * 50)
    fd = os.open(log, os.O_WRONLY | os.O_APPEND)
    spare = os.dup(fd)
    try:
        rotate = logrotate()["localai_rotate_if_large"]
        assert not rotate(str(log), 51, 2, (fd,))
        assert rotate(str(log), 50, 2, (fd,))
        os.write(fd, b"after")
        os.write(spare, b"!")  # a descriptor not handed over still writes the old file
    finally:
        os.close(fd)
        os.close(spare)
    assert log.read_text() == "after"
    assert (tmp_path / "server.log.1").read_text() == "x" * 50 + "!"


def test_log_settings_come_from_the_servers_environment_or_not_at_all() -> None:
    settings = logrotate()["localai_log_settings"]
    env = {
        "LOCALAI_LOG_PATH": "/p/logs/server.log",
        "LOCALAI_LOG_MAX_BYTES": "10",
        "LOCALAI_LOG_KEEP": "2",
    }
    assert settings(env) == ("/p/logs/server.log", 10, 2)
    assert settings({**env, "LOCALAI_LOG_KEEP": "0"}) is None
    assert settings({**env, "LOCALAI_LOG_MAX_BYTES": "ten"}) is None
    assert settings({}) is None


def test_the_shim_rotates_the_log_of_a_running_server(tmp_path: Path) -> None:
    """A real Python process with the shim loaded, its output to server.log (as launchd or
    the launcher give it), printing until the log has been rotated twice."""
    (tmp_path / "logs").mkdir()
    log = tmp_path / "logs" / "server.log"
    shim = tmp_path / "localai_server_shim.py"
    shim.write_text(scripts.load("server_shim"))
    program = (
        "import os, sys, time\n"
        "sys.path.insert(0, sys.argv[1]); import localai_server_shim\n"
        "for i in range(3000):\n"
        "    print('line %d ' % i + 'x' * 100, flush=True)\n"
        "    if os.path.exists(sys.argv[2] + '.2'): break\n"
        "    time.sleep(0.005)\n"
        "time.sleep(0.5); print('done', flush=True)\n"
    )
    env = {
        "PATH": os.environ["PATH"],
        "LOCALAI_LOG_PATH": str(log),
        "LOCALAI_LOG_MAX_BYTES": "2000",
        "LOCALAI_LOG_KEEP": "2",
        "LOCALAI_LOG_CHECK_S": "0.05",
    }
    with open(log, "ab") as out:
        subprocess.run(
            [sys.executable, "-c", program, str(tmp_path), str(log)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            check=True,
            timeout=120,
        )
    names = sorted(p.name for p in log.parent.iterdir())
    assert names == ["server.log", "server.log.1", "server.log.2"]
    assert "done" in log.read_text()  # written after the rotation, to the new file
    assert "localai_server_shim" not in log.read_text()  # no warning


# --- loaded models --------------------------------------------------------------------------
# A STAND-IN of mlx-omni-server 0.5.1's mlx_omni_server/chat/mlx/wrapper_cache.py (read from
# its wheel): an OrderedDict `_cache` keyed by a frozen WrapperCacheKey(model_id, adapter_path,
# draft_model_id); get_wrapper(model_id, adapter_path, draft_model_id) creates the generator
# (the slow model load) under the cache's lock, after evicting expired and LRU entries;
# _evict_expired_items (TTL, also run by a cleanup thread), clear_cache, set_max_size.


@dataclass(frozen=True)
class WrapperCacheKey:
    model_id: str
    adapter_path: str | None = None
    draft_model_id: str | None = None


class MLXWrapperCache:
    def __init__(self, max_size: int = 3, ttl_seconds: int = 300) -> None:
        self._cache: OrderedDict[WrapperCacheKey, object] = OrderedDict()
        self._access_times: dict[WrapperCacheKey, float] = {}
        self._lock = threading.Lock()
        self._max_size = max_size
        self._ttl_seconds = ttl_seconds
        self.gate = threading.Event()
        self.gate.set()

    def _evict_expired_items(self) -> None:
        now = time.time()
        for key in [k for k, t in self._access_times.items() if now - t > self._ttl_seconds]:
            self._cache.pop(key, None)
            self._access_times.pop(key, None)

    def _evict_lru_if_needed(self) -> None:
        if len(self._cache) >= self._max_size and self._max_size > 0:
            lru = min(self._access_times, key=lambda k: self._access_times[k])
            self._cache.pop(lru, None)
            self._access_times.pop(lru, None)

    def get_wrapper(
        self, model_id: str, adapter_path: str | None = None, draft_model_id: str | None = None
    ) -> object:
        key = WrapperCacheKey(model_id, adapter_path, draft_model_id)
        with self._lock:
            self._evict_expired_items()
            if key in self._cache:
                self._access_times[key] = time.time()
                return self._cache[key]
            self._evict_lru_if_needed()
            self.gate.wait(30)  # the model's load
            wrapper = object()
            self._cache[key] = wrapper
            self._access_times[key] = time.time()
            return wrapper

    def clear_cache(self) -> None:
        with self._lock:
            self._cache.clear()
            self._access_times.clear()

    def set_max_size(self, max_size: int) -> None:
        self._max_size = max_size

    def _stop_cleanup_thread(self) -> None:
        pass


def shim(monkeypatch: pytest.MonkeyPatch, path: Path) -> dict[str, Any]:
    """The shim's functions, without installing its import hook in this process."""
    monkeypatch.setenv("LOCALAI_SHIM_DISABLE", "1")
    monkeypatch.setenv("LOCALAI_LOADED_MODELS", str(path))
    namespace: dict[str, Any] = {"__name__": "localai_server_shim"}
    exec(compile(scripts.load("server_shim"), "localai_server_shim.py", "exec"), namespace)
    return namespace


def wrapper_cache_module(max_size: int) -> types.ModuleType:
    mod = types.ModuleType("mlx_omni_server.chat.mlx.wrapper_cache")
    mod.MLXWrapperCache = MLXWrapperCache  # type: ignore[attr-defined]
    mod.wrapper_cache = MLXWrapperCache(max_size=max_size)  # type: ignore[attr-defined]
    return mod


def published(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def test_the_shim_publishes_loaded_and_loading_models_as_the_cache_changes(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    path = tmp_path / "state" / "loaded-models.json"
    mod = wrapper_cache_module(max_size=2)
    shim(monkeypatch, path)["_patch_wrapper_cache"](mod)
    cache = mod.wrapper_cache  # type: ignore[attr-defined]
    assert published(path)["loaded"] == [] and published(path)["pid"] == os.getpid()
    cache.gate.clear()  # the next load takes until the gate opens
    loading = threading.Thread(target=cache.get_wrapper, args=("org/a",))
    loading.start()
    deadline = time.monotonic() + 30
    while published(path)["loading"] != ["org/a"] and time.monotonic() < deadline:
        time.sleep(0.01)
    assert published(path)["loading"] == ["org/a"] and published(path)["loaded"] == []
    cache.gate.set()
    loading.join(30)
    assert (published(path)["loaded"], published(path)["loading"]) == (["org/a"], [])
    cache.get_wrapper("org/b")
    cache.get_wrapper("org/c")  # the cache holds 2: org/a, the least recently used, goes
    assert published(path)["loaded"] == ["org/b", "org/c"]
    cache.clear_cache()
    assert published(path)["loaded"] == []
    assert (path.stat().st_mode & 0o777) == 0o644
    assert sorted(p.name for p in path.parent.iterdir()) == ["loaded-models.json"]


def test_the_shim_publishes_ttl_evictions_done_by_the_cleanup_thread(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    path = tmp_path / "loaded-models.json"
    mod = wrapper_cache_module(max_size=3)
    shim(monkeypatch, path)["_patch_wrapper_cache"](mod)
    cache = mod.wrapper_cache  # type: ignore[attr-defined]
    cache.get_wrapper("org/a")
    cache._ttl_seconds = -1  # everything has expired
    with cache._lock:  # as the cleanup thread calls it: with the lock held
        cache._evict_expired_items()
    assert published(path)["loaded"] == []


def test_without_the_variable_the_shim_publishes_nothing(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    namespace = shim(monkeypatch, tmp_path / "unused.json")
    monkeypatch.delenv("LOCALAI_LOADED_MODELS")
    mod = wrapper_cache_module(max_size=3)
    original = mod.wrapper_cache.get_wrapper  # type: ignore[attr-defined]
    namespace["_patch_wrapper_cache"](mod)
    assert mod.wrapper_cache.get_wrapper == original  # type: ignore[attr-defined]
    assert list(tmp_path.iterdir()) == []


def test_a_worker_process_merges_its_models_into_the_servers_file_and_drops_dead_workers(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """`--workers N`: each worker has its own cache; the file names the server's pid (here
    this test's parent, alive) and the union of the live workers' models."""
    path = tmp_path / "loaded-models.json"
    server = os.getppid()
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    dead_pid = dead.stdout.strip()
    path.write_text(
        json.dumps(
            {
                "pid": server,
                "loaded": ["org/old"],
                "loading": [],
                "workers": {dead_pid: {"loaded": ["org/old"], "loading": []}},
            }
        )
    )
    monkeypatch.setenv("LOCALAI_SERVER_PID", str(server))
    mod = wrapper_cache_module(max_size=3)
    shim(monkeypatch, path)["_patch_wrapper_cache"](mod)
    mod.wrapper_cache.get_wrapper("org/a")  # type: ignore[attr-defined]
    data = published(path)
    assert (data["pid"], data["loaded"], data["loading"]) == (server, ["org/a"], [])
    assert data["workers"] == {str(os.getpid()): {"loaded": ["org/a"], "loading": []}}
