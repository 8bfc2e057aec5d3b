"""localai-provision start-up shim for an mlx-omni-server virtualenv.

Installed by `localai apply` as ``localai_server_shim.py`` beside ``localai_server_shim.pth``
(one line: ``import localai_server_shim``) in the venv's site-packages, so that it loads at
interpreter start. Python 3.8+, standard library only.

It imports nothing heavy at start-up: it only puts a tiny finder at the front
of ``sys.meta_path`` that reacts to two module names, and patches each module
right after it has been executed:

* ``mlx.core`` -- only when Metal is unavailable (Linux/CPU test hosts):
  ``mx.fast.metal_kernel(...)`` failures ("No Metal back-end") are deferred
  until the kernel is actually called.  Libraries such as ``vocos_mlx`` build
  kernels at import time; with the shim the server starts and only the routes
  that really run such a kernel (TTS) fail.  On a Mac with Metal it does
  nothing.
* ``mlx_omni_server.chat.mlx.wrapper_cache`` -- when MLX_OMNI_MODEL_CACHE_TTL
  and/or MLX_OMNI_MODEL_CACHE_SIZE are set, the module-level ``wrapper_cache``
  (hard-coded ``max_size=3, ttl_seconds=300`` in mlx-omni-server <= 0.5.1) is
  replaced by one built with those values (non-negative integers; TTL 0 =
  never expire, SIZE 0 = do not cache), the same variables that later
  releases read themselves.  If the module already reads them (newer
  releases), the shim leaves it alone.  With LOCALAI_LOADED_MODELS set it
  also publishes which models the cache holds and which are being loaded, as
  JSON in that file (``{"pid", "updated", "loaded", "loading"}``), rewritten
  atomically whenever that changes: 0.5.1 has no route that says so.

With LOCALAI_LOG_PATH, LOCALAI_LOG_MAX_BYTES and LOCALAI_LOG_KEEP set and the
process's stdout being that file, a daemon thread rotates it by size while the
server runs (logrotate.py, whose text is in front of this one on a host).

Set LOCALAI_SHIM_DISABLE=1 to turn the shim off.
"""

import os
import sys
import threading
import time

if False:  # for linters only: on a host scripts/logrotate.py's text is in front of this one
    from localai_provision.scripts.logrotate import localai_log_settings, localai_rotate

_ENV_TTL = "MLX_OMNI_MODEL_CACHE_TTL"
_ENV_SIZE = "MLX_OMNI_MODEL_CACHE_SIZE"


def _warn(msg):
    try:
        sys.stderr.write("localai_server_shim: %s\n" % msg)
    except Exception:
        pass


# --------------------------------------------------------------- mlx.core ---
def _patch_mlx_core(mx):
    try:
        if mx.metal.is_available():
            return  # real Metal: nothing to do
    except Exception:
        pass
    fast = getattr(mx, "fast", None)
    orig = getattr(fast, "metal_kernel", None)
    if orig is None or getattr(orig, "_localai_deferred", False):
        return

    def metal_kernel(*args, **kwargs):
        try:
            return orig(*args, **kwargs)
        except RuntimeError as exc:
            if "Metal" not in str(exc):
                raise
            error = exc
            name = kwargs.get("name", args[0] if args else "?")

            def unavailable_kernel(*a, **k):
                raise RuntimeError(
                    "%s (metal_kernel %r was deferred by localai_server_shim)" % (error, name)
                )

            unavailable_kernel._localai_deferred_error = error
            return unavailable_kernel

    metal_kernel._localai_deferred = True
    metal_kernel.__doc__ = getattr(orig, "__doc__", None)
    metal_kernel.__wrapped__ = orig
    fast.metal_kernel = metal_kernel


# ----------------------------------------------------- model cache settings ---
def _read_non_negative(name):
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return None
    try:
        value = int(raw)
    except ValueError:
        value = -1
    if value < 0:
        _warn("ignoring %s=%r: not a non-negative integer" % (name, raw))
        return None
    return value


def _patch_wrapper_cache(mod):
    _apply_cache_settings(mod)
    _publish_loaded_models(mod)


def _apply_cache_settings(mod):
    if hasattr(mod, "get_model_cache_config_from_env"):
        return  # this release reads the variables itself
    ttl = _read_non_negative(_ENV_TTL)
    size = _read_non_negative(_ENV_SIZE)
    if ttl is None and size is None:
        return
    old = getattr(mod, "wrapper_cache", None)
    cls = getattr(mod, "MLXWrapperCache", None)
    if old is None or cls is None:
        _warn("wrapper_cache layout not recognised; model cache left as is")
        return
    if ttl is None:
        ttl = getattr(old, "_ttl_seconds", 300)
    if size is None:
        size = getattr(old, "_max_size", 3)
    # The old instance is still empty (module just executed): stop its
    # cleanup thread and replace it.  ChatGenerator.get_or_create imports
    # ``wrapper_cache`` from the module at call time, so it sees the new one.
    stop = getattr(old, "_stop_cleanup_thread", None)
    if stop is not None:
        stop()
    mod.wrapper_cache = cls(max_size=size, ttl_seconds=ttl)
    mod._localai_shim_patched = {"max_size": size, "ttl_seconds": ttl}
    try:
        mod.logger.info(
            "localai_server_shim: model cache max_size=%d ttl_seconds=%d%s"
            % (size, ttl, " (never expire)" if ttl == 0 else "")
        )
    except Exception:
        pass


# ------------------------------------------------------ loaded models ---
_ENV_LOADED = "LOCALAI_LOADED_MODELS"


class _LoadedModels:
    """Writes the cache's model ids (and those being loaded) to ``path`` when they change."""

    def __init__(self, path, cache):
        self._path = path
        self._cache = cache
        self._lock = threading.Lock()
        self._loading = {}  # model id -> requests waiting for it to load
        self._last = None

    def _loaded(self):
        for _ in range(5):  # the cache's OrderedDict may change while it is read
            try:
                keys = list(self._cache._cache.keys())
                return sorted({str(getattr(k, "model_id", k)) for k in keys})
            except RuntimeError:
                continue
        return None

    def loading(self, model_id, delta):
        with self._lock:
            count = self._loading.get(model_id, 0) + delta
            if count > 0:
                self._loading[model_id] = count
            else:
                self._loading.pop(model_id, None)
        self.publish()

    def publish(self):
        try:
            loaded = self._loaded()
            if loaded is None:
                return
            with self._lock:
                loading = sorted(m for m in self._loading if m not in loaded)
                if (loaded, loading) == self._last:
                    return
                if _write_loaded(self._path, loaded, loading):
                    self._last = (loaded, loading)
        except Exception as exc:  # never fail the server's request for it
            _warn("publishing the loaded models: %r" % (exc,))


def _write_loaded(path, loaded, loading):
    """Atomically (a temporary file, then a rename): a reader never sees half a file. With
    `--workers N` each worker process has a model cache of its own: a worker (a process the
    server started, _first_process) merges its part in under a lock, so that the file names
    the server's pid and the union of the live workers' models."""
    try:
        server = int(os.environ.get("LOCALAI_SERVER_PID") or 0)
        if server in (0, os.getpid()):
            data = {"pid": os.getpid(), "updated": time.time(), "loaded": loaded}
            data["loading"] = loading
            _write_json(path, data)
        else:
            _merge_worker(path, server, loaded, loading)
        return True
    except Exception as exc:  # a full disk, a damaged file of a worker: said, never raised
        _warn("cannot write %s: %r" % (path, exc))
        return False


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        pass  # another user's process: alive
    return True


def _merge_worker(path, server, loaded, loading):
    import fcntl
    import json

    folder = os.path.dirname(path)
    if folder:
        os.makedirs(folder, exist_ok=True)
    with open(path + ".lock", "a") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)  # released when closed
        try:
            with open(path) as f:
                data = json.load(f)
        except (OSError, ValueError):
            data = {}
        workers = data.get("workers") if isinstance(data, dict) else None
        if not isinstance(workers, dict) or data.get("pid") != server:
            workers = {}  # a file of an earlier server
        workers[str(os.getpid())] = {"loaded": loaded, "loading": loading}
        workers = {k: v for k, v in workers.items() if k.isdigit() and _alive(int(k))}
        parts = [w for w in workers.values() if isinstance(w, dict)]
        models = {m for w in parts for m in w.get("loaded") or [] if isinstance(m, str)}
        waiting = {m for w in parts for m in w.get("loading") or [] if isinstance(m, str)}
        waiting -= models
        data = {"pid": server, "updated": time.time(), "loaded": sorted(models)}
        data.update(loading=sorted(waiting), workers=workers)
        _write_json(path, data)


def _write_json(path, data):
    import json

    folder = os.path.dirname(path)
    if folder:
        os.makedirs(folder, exist_ok=True)
    tmp = "%s.%d.tmp" % (path, os.getpid())
    with open(tmp, "w") as f:
        json.dump(data, f)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def _publish_loaded_models(mod):
    path = os.environ.get(_ENV_LOADED, "")
    cache = getattr(mod, "wrapper_cache", None)
    if not path or cache is None:
        return
    if not isinstance(getattr(cache, "_cache", None), dict) or not hasattr(cache, "get_wrapper"):
        _warn("wrapper_cache layout not recognised; loaded models not published")
        return
    published = _LoadedModels(path, cache)
    get_wrapper = cache.get_wrapper

    def publishing_get_wrapper(model_id, *args, **kwargs):
        # A model not in the cache yet is loaded by this call (ChatGenerator.create, under the
        # cache's lock): "loading" until it returns.
        cold = str(model_id) not in (published._loaded() or ())
        if cold:
            published.loading(str(model_id), 1)
        try:
            return get_wrapper(model_id, *args, **kwargs)
        finally:
            if cold:
                published.loading(str(model_id), -1)
            else:
                published.publish()

    cache.get_wrapper = publishing_get_wrapper
    # Models leave the cache by TTL (the cleanup thread), LRU (inside get_wrapper) or by hand.
    for name in ("_evict_expired_items", "clear_cache", "set_max_size", "cleanup_expired_items"):
        method = getattr(cache, name, None)
        if method is not None:
            setattr(cache, name, _then_publish(method, published))
    published.publish()  # nothing loaded yet, said by this process


def _then_publish(method, published):
    def wrapper(*args, **kwargs):
        try:
            return method(*args, **kwargs)
        finally:
            published.publish()

    return wrapper


# ------------------------------------------------------------ log rotation ---
_LOG_CHECK_S = 5.0  # how often the log's size is looked at (LOCALAI_LOG_CHECK_S overrides)


def _same_file(a, b):
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def _watch_log(path, max_bytes, keep, owner, interval):
    """Rotate the log when it reaches max_bytes (the first process of the server only), and
    follow a rotation done by another (a worker process of `--workers N`, which inherited
    the same fds 1 and 2): when PATH is no longer our stdout, reopen it."""
    while True:
        time.sleep(interval)
        try:
            out = os.fstat(1)
            try:
                now = os.stat(path)
            except OSError:
                now = None
            if now is None or not _same_file(now, out):
                fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
                os.dup2(fd, 1)
                os.dup2(fd, 2)
                os.close(fd)
            elif owner and out.st_size >= max_bytes:
                for stream in (sys.stdout, sys.stderr):
                    try:
                        stream.flush()
                    except Exception:
                        pass
                localai_rotate(path, keep, (1, 2))
        except Exception as exc:  # never let the server die of its log
            _warn("log rotation: %r" % (exc,))


def _first_process():
    """Is this the server's first process, the one its service started? The processes it
    starts (workers, multiprocessing helpers) inherit the variable set here."""
    me = str(os.getpid())
    return os.environ.setdefault("LOCALAI_SERVER_PID", me) == me


def _start_log_rotation():
    settings = localai_log_settings(os.environ)
    if settings is None:
        return
    path, max_bytes, keep = settings
    try:
        if not _same_file(os.fstat(1), os.stat(path)):
            return  # our output is not that log: not ours to rotate
        interval = float(os.environ.get("LOCALAI_LOG_CHECK_S") or _LOG_CHECK_S)
    except (OSError, ValueError):
        return
    # The server's first process rotates; the processes it starts only follow.
    owner = _first_process()
    thread = threading.Thread(
        target=_watch_log,
        args=(path, max_bytes, keep, owner, max(0.1, interval)),
        name="localai-log-rotation",
        daemon=True,
    )
    thread.start()


_HOOKS = {
    "mlx.core": _patch_mlx_core,
    "mlx_omni_server.chat.mlx.wrapper_cache": _patch_wrapper_cache,
}


# ------------------------------------------------------------ import hook ---
class _PatchingLoader:
    """Delegates to the real loader, then runs the hook on the new module."""

    def __init__(self, loader, hook):
        self._loader = loader
        self._hook = hook

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        spec = getattr(module, "__spec__", None)
        if spec is not None:
            spec.loader = self._loader
        try:
            module.__loader__ = self._loader
        except Exception:
            pass
        self._loader.exec_module(module)
        try:
            self._hook(module)
        except Exception as exc:  # never break the import itself
            _warn("patching %s failed: %r" % (module.__name__, exc))

    def __getattr__(self, name):
        return getattr(self._loader, name)


class _ShimFinder:
    """Meta path finder that only answers for the module names in _HOOKS."""

    def find_spec(self, fullname, path=None, target=None):
        hook = _HOOKS.get(fullname)
        if hook is None:
            return None
        for finder in sys.meta_path:
            if finder is self or isinstance(finder, _ShimFinder):
                continue
            find_spec = getattr(finder, "find_spec", None)
            if find_spec is None:
                continue
            spec = find_spec(fullname, path, target)
            if spec is not None:
                break
        else:
            return None
        loader = spec.loader
        if loader is None or not hasattr(loader, "exec_module"):
            return spec
        spec.loader = _PatchingLoader(loader, hook)
        return spec


def _install():
    if os.environ.get("LOCALAI_SHIM_DISABLE", "") not in ("", "0"):
        return
    if any(isinstance(f, _ShimFinder) for f in sys.meta_path):
        return
    # Modules imported before the shim (not expected) are patched directly.
    for name, hook in _HOOKS.items():
        module = sys.modules.get(name)
        if module is not None:
            try:
                hook(module)
            except Exception as exc:
                _warn("patching %s failed: %r" % (name, exc))
    sys.meta_path.insert(0, _ShimFinder())
    try:
        _start_log_rotation()
    except Exception as exc:
        _warn("log rotation not started: %r" % (exc,))
    if os.environ.get(_ENV_LOADED) and _first_process():
        # 0.5.1 imports wrapper_cache at the first chat request: until then, this process
        # (the server, started now) has nothing loaded, and says so.
        _write_loaded(os.environ[_ENV_LOADED], [], [])


_install()
