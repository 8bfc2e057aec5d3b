# Sent to a host and run as `python -I -S -c <this> MODE JSON`: moves content-addressed files
# (model blobs, wheels) into place. Every file arrives as NAME.incomplete (the suffix
# huggingface_hub uses for its own partial downloads, so either can resume the other's), is
# checked against its digest, and only then renamed to NAME: a reader never sees a file that
# is partial or wrong. Digests are "sha256:HEX", or "gitsha1:HEX" for the small files the
# Hugging Face cache names by their git blob id.
#   list    {"dir": D, "create": B, "keep": [NAME], "owned_marker": M}: print {name: size}
#           of the files in D (partial ones included); with create, make D first (marked
#           ours with M when new); with keep, first delete the files of D not named there
#           (nor partial copies of them), in a folder marked M only.
#   commit  {"files": [{"path": P, "digest": G, "size": N}]}: check each P.incomplete, rename
#           it to P; a wrong one is deleted. Prints {"ok": [...], "bad": {path: why}}.
#   serve   {"path": P, "size": N, "token": T, "bind": ADDR, "ports": [LO, HI], "timeout_s": S,
#           "stall_s": W, "max_rate": R}: pass P on to another host: listen on ADDR (one port
#           of LO..HI), print {"port": N} and return at once; a detached child serves GET /T (Range
#           allowed) until one whole copy went out or S seconds passed, then exits. Nothing
#           else is served. P may still be arriving (P.incomplete) or not be there yet (the
#           child waits W seconds for it, else answers 404): its bytes are sent as they
#           land (cut-through), and a copy with no new byte for W seconds is cut. With R
#           (bytes/s, null: no cap) the copy is paced to R (Pace: scripts/pacing.py, whose
#           text is sent ahead of this one).
#   fetch   {"host": H, "port": N, "token": T, "path": P, "digest": G, "size": N}: get P from a
#           host serving it, resuming P.incomplete (created before the request, for a host
#           this one passes P on to), check the digest, rename. Prints
#           {"received": BYTES, "seconds": S}, S from the first byte of the answer to the last.
import hashlib
import hmac
import json
import os
import random
import socket
import sys
import time

CHUNK = 1 << 20
PARTIAL = ".incomplete"


def fail(code, text):
    sys.stderr.write(text + "\n")
    sys.exit(code)


def hasher(digest, size):
    kind = digest.split(":", 1)[0]
    if kind == "sha256":
        return hashlib.sha256()
    if kind == "gitsha1":
        h = hashlib.sha1()
        h.update(b"blob %d\0" % size)
        return h
    fail(2, "unknown digest kind " + kind)


def hash_file(path, digest, size):
    h = hasher(digest, size)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(CHUNK), b""):
            h.update(chunk)
    return h


def settle(path, digest, size, h):
    """Check the partial file against its digest; rename it into place, or delete it."""
    part = path + PARTIAL
    got = os.stat(part).st_size
    if got != size:
        return "has %d bytes, not %d" % (got, size)
    if digest.split(":", 1)[1] != h.hexdigest():
        os.unlink(part)
        return "its content does not match %s (deleted; it is sent again next time)" % digest
    # On disk before it gets its final name: after a power cut the name never points at
    # content that was not written.
    with open(part, "rb+") as f:
        os.fsync(f.fileno())
    os.chmod(part, 0o644)
    os.replace(part, path)
    return None


def list_dir(cfg):
    folder = cfg["dir"]
    # In a folder the tool made (Layout's owned_MARKER): only there does `keep` delete.
    owned = cfg["owned_marker"]
    keep = cfg.get("keep")
    if cfg.get("create"):
        os.makedirs(folder, exist_ok=True)
        try:
            if keep is not None and not os.listdir(folder):  # new: the tool's own from now on
                open(os.path.join(folder, owned), "a").close()
        except OSError:
            pass
    # Files not in `keep` go only from a folder the tool made: a folder of the same name
    # that was there before (a prefix shared with other things) keeps every file it had.
    if keep is not None and os.path.exists(os.path.join(folder, owned)):
        wanted = set(keep) | set(name + PARTIAL for name in keep) | {owned}
        for name in os.listdir(folder):
            if name not in wanted:
                try:
                    os.unlink(os.path.join(cfg["dir"], name))
                except OSError:
                    pass
    sizes = {}
    try:
        names = os.listdir(cfg["dir"])
    except OSError:
        names = []
    for name in names:
        try:
            sizes[name] = os.stat(os.path.join(cfg["dir"], name)).st_size
        except OSError:
            pass
    print(json.dumps(sizes))


def commit(cfg):
    ok, bad = [], {}
    for entry in cfg["files"]:
        path = entry["path"]
        try:
            h = hash_file(path + PARTIAL, entry["digest"], entry["size"])
            why = settle(path, entry["digest"], entry["size"], h)
        except OSError as exc:
            why = str(exc)
        if why:
            bad[path] = why
        else:
            ok.append(path)
    print(json.dumps({"ok": ok, "bad": bad}))
    if bad:
        sys.exit(4)


def read_request(conn):
    data = b""
    while b"\r\n\r\n" not in data:
        more = conn.recv(4096)
        if not more or len(data) > 16384:
            return None, 0
        data += more
    lines = data.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    start = 0
    for line in lines[1:]:
        name, _, value = line.partition(":")
        value = value.strip()
        if name.strip().lower() == "range" and value.startswith("bytes=") and value.endswith("-"):
            start = int(value[6:-1] or "0")
    return (parts[1] if len(parts) > 1 else ""), start


def open_growing(path, wait_s):
    """The file, whole or still arriving (PATH.incomplete); waits for it to appear."""
    deadline = time.time() + wait_s
    while True:
        for candidate in (path, path + PARTIAL):
            try:
                return open(candidate, "rb")
            except FileNotFoundError:
                pass
        if time.time() > deadline:
            return None
        time.sleep(0.05)


def send_growing(conn, f, start, size, stall_s, pace):
    """Send bytes start..size of f as they arrive on disk (this host may still be receiving
    the file itself), at most at pace's rate; give up after stall_s seconds without a new
    byte."""
    sent = start
    idle_since = time.time()
    while sent < size:
        available = min(os.fstat(f.fileno()).st_size, size)
        if available > sent:
            count = available - sent
            if pace.rate:
                count = min(count, PIECE)  # noqa: F821 (from pacing.py, sent first)
                pace.take(count)
            sent += conn.sendfile(f, offset=sent, count=count)
            idle_since = time.time()
        elif time.time() - idle_since > stall_s:
            return False
        else:
            time.sleep(0.01)
    return True


def serve(cfg):
    path, token, size = cfg["path"], cfg["token"], cfg["size"]
    family = socket.AF_INET6 if ":" in cfg["bind"] else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    low, high = cfg["ports"]
    port = None
    for _ in range(64):
        candidate = random.randint(low, high)
        try:
            sock.bind((cfg["bind"], candidate))
        except OSError:
            continue
        port = candidate
        break
    if port is None:
        fail(5, "no free port in %d-%d on %s" % (low, high, cfg["bind"]))
    sock.listen(8)
    if os.fork():
        print(json.dumps({"port": port}))
        sys.stdout.flush()
        os._exit(0)
    # The child: leave the SSH session (it ends when the parent exits), serve, exit.
    os.setsid()
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    # The file may not be here yet: this host's own copy may be starting at this moment (a
    # chain of hosts passing it on is set up all at once, not hop after hop). Waiting for it
    # here, after the port went out, is what lets every hop of a 30-host chain start within
    # a second: waiting before it cost each hop one command's round trip, 0.3-0.5 s each.
    f = open_growing(path, cfg["stall_s"])
    if f is None:
        not_here(sock, path, cfg["stall_s"])
        os._exit(0)
    deadline = time.time() + cfg["timeout_s"]
    pace = Pace(cfg.get("max_rate"))  # noqa: F821 (from pacing.py, sent first)
    while time.time() < deadline:
        sock.settimeout(max(0.1, deadline - time.time()))
        try:
            conn, _ = sock.accept()
        except OSError:
            break
        try:
            conn.settimeout(60)
            wanted, start = read_request(conn)
            if wanted is None or not hmac.compare_digest(wanted, "/" + token):
                conn.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
                continue
            start = min(start, size)
            status = b"206 Partial Content" if start else b"200 OK"
            head = b"HTTP/1.1 %s\r\nContent-Length: %d\r\nConnection: close\r\n\r\n"
            conn.sendall(head % (status, size - start))
            whole = send_growing(conn, f, start, size, cfg["stall_s"], pace)
            conn.shutdown(socket.SHUT_WR)
            # Wait for the receiver to close: it has then read everything.
            conn.recv(1)
            if whole:
                break
        except OSError:
            continue
        finally:
            conn.close()
    os._exit(0)


def not_here(sock, path, wait_s):
    """Tell the host that came for the file that it never arrived here."""
    sock.settimeout(wait_s)
    try:
        conn, _ = sock.accept()
        reason = "%s is not on this host" % os.path.basename(path)
        conn.sendall(("HTTP/1.1 404 %s\r\nContent-Length: 0\r\n\r\n" % reason).encode())
        conn.close()
    except OSError:
        pass


def fetch(cfg):
    path, digest, size = cfg["path"], cfg["digest"], cfg["size"]
    part = path + PARTIAL
    have = os.path.getsize(part) if os.path.exists(part) else 0
    if have > size:
        os.unlink(part)
        have = 0
    # What an earlier copy left is hashed first; the rest is hashed as it arrives.
    h = hash_file(part, digest, size) if have else hasher(digest, size)
    if not have:
        # There from the start: a host this one passes the file on to (cut-through) may
        # already be waiting for it.
        open(part, "wb").close()
    try:
        conn = socket.create_connection((cfg["host"], cfg["port"]), timeout=cfg.get("stall_s", 30))
    except OSError as exc:
        fail(6, "cannot reach %s:%s: %s" % (cfg["host"], cfg["port"], exc))
    conn.sendall(
        (
            "GET /%s HTTP/1.1\r\nHost: peer\r\nRange: bytes=%d-\r\n\r\n" % (cfg["token"], have)
        ).encode()
    )
    data = b""
    while b"\r\n\r\n" not in data:
        more = conn.recv(65536)
        if not more:
            fail(6, "the peer closed the connection before answering")
        data += more
    began = time.monotonic()
    head, body = data.split(b"\r\n\r\n", 1)
    status = head.split(b" ", 2)[1]
    if status not in (b"200", b"206"):
        fail(6, "the peer answered " + head.split(b"\r\n", 1)[0].decode("latin-1"))
    if status == b"200" and have:
        have = 0
        h = hasher(digest, size)
    got = have
    with open(part, "r+b" if have else "wb") as out:
        out.seek(have)
        out.truncate()
        while body or got < size:
            if body:
                out.write(body)
                h.update(body)
                got += len(body)
            if got >= size:
                break
            body = conn.recv(CHUNK)
            if not body:
                break
    conn.close()
    seconds = time.monotonic() - began
    why = settle(path, digest, size, h)
    if why:
        fail(4, "%s from %s: %s" % (os.path.basename(path), cfg["host"], why))
    print(json.dumps({"received": got - have, "seconds": round(seconds, 3)}))


mode = sys.argv[1]
# "-": the configuration comes on stdin (it holds a peer's token, kept out of `ps`).
cfg = json.loads(sys.stdin.read() if sys.argv[2] == "-" else sys.argv[2])
{"list": list_dir, "commit": commit, "serve": serve, "fetch": fetch}[mode](cfg)
