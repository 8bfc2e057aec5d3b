# Sent to a host and run as `python -I -S -c <this> CONFIG_JSON` by `localai bench` and by
# apply with `verify.bench: true`: one warm-up request, then RUNS streamed chat completions
# of a fixed prompt on the host's own server (it listens on loopback by default), timed
# here, on the host, so that the SSH link is not in the figures. Also reads the server's
# memory, the serving generation and the figures recorded by the last apply. Prints one
# JSON document; the controller turns the timings into figures (localai_provision/bench.py).
import json
import os
import subprocess
import sys
import time

cfg = json.loads(sys.argv[1])
prefix = os.path.expanduser(cfg["prefix"])
out = {
    "error": None,
    "reason": None,
    "runs": [],
    "memory": None,
    "pid": None,
    "generation": None,
    "previous": None,
    "platform": sys.platform,
}


def stream(label):
    """One streamed chat completion; its timings (perf_counter seconds from sending) and
    token counts. mlx-omni-server 0.5.1 sends `data: {chunk}` events, one per token, and
    with stream_options.include_usage a last chunk carrying `usage`
    (chat/openai/openai_adapter.py, generate_stream)."""
    import http.client

    body = {
        "model": cfg["model"],
        # A different first word per request: the server keeps a prompt cache per model and
        # reuses the longest common prefix, so the same text twice would be "processed" in
        # one token (bench.py's RUN_LABELS says why these words).
        "messages": [{"role": "user", "content": "%s %s" % (label, cfg["prompt"])}],
        "max_tokens": cfg["max_tokens"],
        "temperature": 0,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    data = json.dumps(body).encode("utf-8")
    conn = http.client.HTTPConnection(cfg["host"], cfg["port"], timeout=cfg["timeout_s"])
    start = time.perf_counter()
    try:
        conn.request("POST", "/v1/chat/completions", data, {"Content-Type": "application/json"})
        response = conn.getresponse()
        if response.status != 200:
            tail = response.read()[-400:].decode("utf-8", "replace")
            raise Failed("http", "HTTP %d from the server: %s" % (response.status, tail))
        run = {"chunks": 0, "first_s": None, "last_s": None, "usage": None}
        while True:
            line = response.readline()
            if not line:
                break
            line = line.strip()
            if not line.startswith(b"data:"):
                continue
            payload = line[5:].strip()
            if payload == b"[DONE]":
                break
            chunk = json.loads(payload.decode("utf-8"))
            now = time.perf_counter() - start
            if chunk.get("usage"):
                run["usage"] = chunk["usage"]
                continue
            choices = chunk.get("choices") or []
            if choices and (choices[0].get("delta") or {}).get("content") is not None:
                run["chunks"] += 1
                if run["first_s"] is None:
                    run["first_s"] = now
                run["last_s"] = now
        run["total_s"] = time.perf_counter() - start
        return run
    finally:
        conn.close()


class Failed(Exception):
    def __init__(self, reason, message):
        Exception.__init__(self, message)
        self.reason = reason


def server_pid():
    """The pid as the service knows it: the pid file (the Linux process service), else
    launchd's `pid = N` for the job."""
    try:
        with open(os.path.join(prefix, cfg["pid_file"])) as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        pass
    job = cfg.get("launchd")
    if not job:
        return None
    try:
        text = subprocess.run(
            ["launchctl", "print", "%s/%s" % (job["domain"], job["label"])],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            timeout=10,
        ).stdout.decode("utf-8", "replace")
    except (OSError, subprocess.SubprocessError):
        return None
    # Top level only, as facts/parse_mac.py reads it: nested blocks (`endpoints = {`) may
    # have a `pid = 1` of their own, and a job that is not running has no top-level pid.
    depth = 0
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.endswith("{"):
            depth += 1
        elif stripped == "}":
            depth -= 1
        elif depth == 1:
            key, _, value = stripped.partition(" = ")
            if key == "pid" and value.isdigit():
                return int(value)
    return None


def memory(pid):
    """Resident and peak resident KiB: Linux /proc/PID/status VmRSS and VmHWM; macOS has no
    peak there, `ps -o rss=` gives the resident size only."""
    found = {"rss_kb": None, "peak_kb": None}
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                key, _, value = line.partition(":")
                if key in ("VmRSS", "VmHWM"):
                    found["rss_kb" if key == "VmRSS" else "peak_kb"] = int(value.split()[0])
        return found
    except (OSError, ValueError, IndexError):
        pass
    try:
        text = subprocess.run(
            ["ps", "-o", "rss=", "-p", str(pid)],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            timeout=10,
        ).stdout.decode()
        found["rss_kb"] = int(text.strip())
    except (OSError, subprocess.SubprocessError, ValueError):
        return None
    return found


def facts():
    try:
        out["generation"] = os.path.basename(os.readlink(os.path.join(prefix, "current")))
    except OSError:
        pass
    try:
        with open(os.path.join(prefix, cfg["state"])) as f:
            out["previous"] = json.load(f).get("bench")
    except (OSError, ValueError, AttributeError):
        pass
    out["pid"] = server_pid()
    if out["pid"] is not None:
        out["memory"] = memory(out["pid"])


def measure():
    try:
        warm_up, runs = cfg["labels"][0], cfg["labels"][1:]
        stream(warm_up)  # loads the model if it is not loaded: not counted
        for label in runs:
            out["runs"].append(stream(label))
    except Failed as exc:
        out["reason"], out["error"] = exc.reason, str(exc)
    except (OSError, ValueError) as exc:
        # ConnectionRefused: nothing listens; a timeout or a cut stream: a server in trouble.
        refused = isinstance(exc, ConnectionRefusedError)
        out["reason"] = "no-server" if refused else "stream"
        out["error"] = "%s: %s" % (type(exc).__name__, exc)


measure()
facts()
print(json.dumps(out))
