# Sent to a host and run as `python -I -S -c <this> CONFIG_JSON`: wait for the server to
# answer, check the endpoints and the model list, then prewarm models. Runs on the host
# because the server listens on loopback by default. Prints one JSON document.
import json
import os
import socket
import sys
import time

cfg = json.loads(sys.argv[1])
host = cfg["host"]
port = cfg["port"]
deadline = time.time() + cfg["timeout_s"]


def request(method, path, body=None, timeout=10.0):
    start = time.perf_counter()
    sock = socket.create_connection((host, port), timeout=timeout)
    try:
        data = json.dumps(body).encode("utf-8") if body is not None else b""
        head = "%s %s HTTP/1.0\r\nHost: %s:%d\r\nContent-Type: application/json\r\n" % (
            method,
            path,
            host,
            port,
        )
        head += "Content-Length: %d\r\n\r\n" % len(data)
        sock.sendall(head.encode("ascii") + data)
        chunks = []
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        sock.close()
    raw = b"".join(chunks)
    status_line, _, rest = raw.partition(b"\r\n")
    _, _, payload = rest.partition(b"\r\n\r\n")
    parts = status_line.split()
    status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else None
    return status, payload.decode("utf-8", "replace"), (time.perf_counter() - start) * 1000


def server_alive():
    """False once the server's process has exited: no point waiting for it then."""
    try:
        with open(cfg["pid_file"]) as f:
            pid = int(f.read().strip())
    except (OSError, ValueError):
        return True  # not started through a pid file (another service manager): wait
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def log_tail(lines=30):
    try:
        with open(cfg["log"], "rb") as f:
            f.seek(0, 2)
            f.seek(max(0, f.tell() - 65536))
            text = f.read().decode("utf-8", "replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def fail(message):
    out["error"] = message
    out["log_tail"] = log_tail()
    print(json.dumps(out))
    sys.exit(0)


out = {"waited_s": None, "endpoints": [], "listed": [], "prewarm": [], "error": None}
start = time.time()
while True:
    try:
        status, payload, ms = request("GET", "/v1/models", timeout=5)
        if status == 200:
            out["waited_s"] = time.time() - start
            break
    except OSError:
        pass
    if not server_alive():
        fail("the server exited while starting")
    if time.time() > deadline:
        fail("the server did not answer on %s:%d within %g s" % (host, port, cfg["timeout_s"]))
    time.sleep(0.2)

for path in cfg["endpoints"]:
    try:
        status, payload, ms = request("GET", path)
    except OSError as exc:
        out["endpoints"].append({"path": path, "status": None, "error": str(exc)})
        continue
    entry = {"path": path, "status": status, "ms": ms}
    if path == "/v1/models" and status == 200:
        try:
            out["listed"] = [m["id"] for m in json.loads(payload).get("data", [])]
        except (ValueError, TypeError, KeyError):
            entry["error"] = "not a model list"
    elif status != 200:
        entry["error"] = payload[-300:]
    out["endpoints"].append(entry)

for model in cfg["prewarm"]:
    body = {
        "model": model,
        "messages": [{"role": "user", "content": "hi"}],
        # 2, not 1: mlx-omni-server 0.5.1 with mlx-lm 0.28.2 answers 500 to max_tokens 1.
        "max_tokens": 2,
        "stream": False,
    }
    try:
        status, payload, ms = request(
            "POST", "/v1/chat/completions", body, timeout=cfg["prewarm_timeout_s"]
        )
        entry = {"model": model, "status": status, "ms": ms}
        if status != 200:
            entry["error"] = payload[-300:]
    except OSError as exc:
        entry = {"model": model, "status": None, "error": str(exc)}
    out["prewarm"].append(entry)


def exited_within(seconds):
    end = time.time() + seconds
    while time.time() < end:
        if not server_alive():
            return True
        time.sleep(0.05)
    return not server_alive()


# It answered, then died: a server that crashes under its first requests (or in a loop). A
# request left unanswered gives it a moment to be gone: a dying process is not gone at once.
unanswered = any(e.get("status") is None for e in out["endpoints"] + out["prewarm"])
if not server_alive() or (unanswered and exited_within(2.0)):
    fail("the server exited after it started answering (it crashes; a crash loop?)")
print(json.dumps(out))
