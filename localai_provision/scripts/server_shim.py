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
  releases), the shim leaves it alone.

Set LOCALAI_SHIM_DISABLE=1 to turn the shim off.
"""

import os
import sys

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


_install()
