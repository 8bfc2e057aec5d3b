# Sent to a host and run as `python -I -S -c <this> MODE JSON`. Two modes:
#   list  {"base": DIR}: print {blob name: size} of DIR/blobs, so the controller sends only
#         the blobs a host lacks (the cache names blobs by content hash).
#   link  {"base": DIR, "commit": C, "revision": R, "files": {relpath: [sha256, size]},
#         "marker": NAME}: lay out snapshots/C/relpath -> ../../blobs/sha256 as
#         huggingface_hub does, then point refs/R at C and write the completeness marker
#         DIR/NAME (Layout's COMPLETE_MARKER), each atomically and in that
#         order, so an interrupted copy never looks complete.
import json
import os
import sys

mode, cfg = sys.argv[1], json.loads(sys.argv[2])
base = cfg["base"]
blobs = os.path.join(base, "blobs")


def write_atomic(path, text):
    tmp = path + ".localai-tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


if mode == "list":
    sizes = {}
    try:
        names = os.listdir(blobs)
    except OSError:
        names = []
    for name in names:
        try:
            sizes[name] = os.stat(os.path.join(blobs, name)).st_size
        except OSError:
            pass
    print(json.dumps(sizes))
elif mode == "link":
    snapshot = os.path.join(base, "snapshots", cfg["commit"])
    for rel, (sha, size) in sorted(cfg["files"].items()):
        blob = os.path.join(blobs, sha)
        if os.stat(blob).st_size != size:
            sys.stderr.write("blob %s of %s has the wrong size\n" % (sha, rel))
            sys.exit(3)
        link = os.path.join(snapshot, rel)
        os.makedirs(os.path.dirname(link), exist_ok=True)
        target = os.path.relpath(blob, os.path.dirname(link))
        tmp = link + ".localai-tmp"
        if os.path.lexists(tmp):
            os.unlink(tmp)
        os.symlink(target, tmp)
        os.replace(tmp, link)
    os.makedirs(os.path.join(base, "refs"), exist_ok=True)
    write_atomic(os.path.join(base, "refs", cfg["revision"]), cfg["commit"])
    marker = {"commit": cfg["commit"], "files": {rel: v[1] for rel, v in cfg["files"].items()}}
    write_atomic(os.path.join(base, cfg["marker"]), json.dumps(marker, sort_keys=True))
    print(json.dumps({"linked": len(cfg["files"])}))
else:
    sys.stderr.write("unknown mode %s\n" % mode)
    sys.exit(2)
