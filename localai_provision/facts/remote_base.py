# This file is not imported by localai-provision: its text is sent to each host and run there
# with `python3 -I -S -c <this text> <config json>`, in the single command that gathers facts.
# The script is four files sent as one text, in this order (facts/gather.py `remote_script`):
# remote_base.py (this: reading files, JSON, sockets, commands), remote_mac.py (what only a
# Mac has: launchd, the root helper, pmset, the pull timer), remote_cache.py (memory, and
# the model cache beyond the declared models) and remote.py (the other sections and main).
# The later files import the earlier ones' names under `if False:` for linters only: on the
# host those names are already defined, and the block compiles to nothing.
#
# Rules for this file, because it runs on hosts we do not control:
# - standard library only, and only cheap modules (no importlib.metadata, no urllib: they
#   cost a second of imports per host); Python 3.8 or newer (macOS ships 3.9);
# - never raise: every section catches its own errors and reports them by name;
# - print raw material (file contents, directory names, `ps` text) and leave interpretation to
#   the pure parsers in localai_provision/facts/parse.py, which are tested with recorded
#   outputs from Linux and macOS;
# - never print secrets: of the server's environment only LOCALAI_CONFIG_HASH is read, and
#   of PREFIX/server.json (which holds the environment's values) only the hash, the argv,
#   the variables' names and a salted digest of each value (server_config_section);
# - frame the output: the JSON is printed between BEGIN and END lines, so that whatever a
#   login shell or a `python` wrapper prints around it is told apart and ignored;
# - import little: the script runs once per host per check, and on a loopback fleet of 100
#   its imports were a third of its CPU. json (through re and enum) and socket are replaced
#   by their C parts (_json, _socket) below, with the modules themselves as the fallback.
import os
import time

try:
    import _json
except ImportError:  # not CPython: the json module then
    _json = None
import _socket

MAX_TEXT = 256 * 1024
# The lines around the JSON (facts/parse.py reads between them).
BEGIN = "--- localai facts begin ---"
END = "--- localai facts end ---"


def read_text(path, limit=MAX_TEXT):
    try:
        with open(path, "rb") as f:
            return f.read(limit).decode("utf-8", "replace")
    except OSError:
        return None


def listdir(path):
    try:
        return sorted(os.listdir(path))
    except OSError:
        return None


class _ScanContext:
    """What _json's C scanner reads from a json.JSONDecoder: json.loads' defaults."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = float  # NaN, Infinity, -Infinity


def json_loads(text):
    if _json is not None:
        try:
            value, end = _json.make_scanner(_ScanContext)(text, 0)
            if end == len(text):
                return value
        except Exception:  # noqa: BLE001 - the json module decides
            pass
    import json

    return json.loads(text)


def json_dumps(value):
    """json.dumps(value) for what this script prints (dict, list, str, int, float, bool,
    None); anything else goes to the json module."""
    if _json is not None:
        parts = []
        try:
            _encode(value, parts.append)
            return "".join(parts)
        except TypeError:
            pass
    import json

    return json.dumps(value)


def _encode(value, emit):
    if isinstance(value, str):
        emit(_json.encode_basestring_ascii(value))
    elif value is None:
        emit("null")
    elif value is True:
        emit("true")
    elif value is False:
        emit("false")
    elif isinstance(value, int):
        emit(int.__repr__(value))
    elif isinstance(value, float):
        if value != value:
            emit("NaN")
        elif value in (float("inf"), float("-inf")):
            emit("Infinity" if value > 0 else "-Infinity")
        else:
            emit(float.__repr__(value))
    elif isinstance(value, dict):
        emit("{")
        for i, (key, item) in enumerate(value.items()):
            if not isinstance(key, str):
                raise TypeError("key")
            emit(", " if i else "")
            emit(_json.encode_basestring_ascii(key))
            emit(": ")
            _encode(item, emit)
        emit("}")
    elif isinstance(value, (list, tuple)):
        emit("[")
        for i, item in enumerate(value):
            emit(", " if i else "")
            _encode(item, emit)
        emit("]")
    else:
        raise TypeError(type(value).__name__)


def create_connection(host, port, timeout):
    """socket.create_connection((host, port), timeout) with _socket alone. A bytes name:
    a str one makes getaddrinfo load the idna codec."""
    try:
        name = host.encode("ascii")
    except UnicodeError:
        name = host
    error = None
    for family, kind, proto, _, address in _socket.getaddrinfo(name, port, 0, _socket.SOCK_STREAM):
        sock = None
        try:
            sock = _socket.socket(family, kind, proto)
            sock.settimeout(timeout)
            sock.connect(address)
            return sock
        except OSError as exc:
            error = exc
            if sock is not None:
                sock.close()
    if error is not None:
        raise error
    raise OSError("getaddrinfo returns an empty list")


def run(argv, timeout=10):
    """(exit status, stdout, stderr) of a command; (None, "", error) if it cannot run."""
    import subprocess  # only where a command is needed (macOS): 3 ms per host otherwise

    try:
        done = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)
    except (OSError, subprocess.SubprocessError) as exc:
        return None, "", str(exc)
    return (
        done.returncode,
        done.stdout.decode("utf-8", "replace"),
        done.stderr.decode("utf-8", "replace"),
    )


def sha256_of(path):
    """sha256 of a file, or None when it cannot be read."""
    try:
        with open(path, "rb") as f:
            return sha256_type()(f.read(1024 * 1024)).hexdigest()
    except OSError:
        return None


def sha256_type():
    try:  # the builtin module: hashlib would load OpenSSL's (2-3 ms)
        from _sha256 import sha256
    except ImportError:
        try:
            from _sha2 import sha256  # Python 3.12 and later
        except ImportError:
            from hashlib import sha256
    return sha256


def http_get(host, port, path, timeout):
    start = time.perf_counter()
    sock = None
    try:
        sock = create_connection(host, port, timeout)
        request = f"GET {path} HTTP/1.0\r\nHost: {host}:{port}\r\nAccept: application/json\r\n\r\n"
        sock.sendall(request.encode("ascii"))
        chunks = []
        size = 0
        while size <= MAX_TEXT:
            chunk = sock.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        raw = b"".join(chunks)
        ms = (time.perf_counter() - start) * 1000
        head, _, body = raw.partition(b"\r\n\r\n")
        return {
            "path": path,
            "status_line": head.split(b"\r\n", 1)[0].decode("latin-1"),
            "body": body[:MAX_TEXT].decode("utf-8", "replace"),
            "ms": ms,
        }
    except OSError as exc:
        return {"path": path, "error": f"{type(exc).__name__}: {exc}"}
    finally:
        if sock is not None:
            sock.close()


def port_open(host, port, timeout):
    try:
        create_connection(host, port, timeout).close()
        return True
    except OSError:
        return False
