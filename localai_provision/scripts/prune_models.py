# Sent to a host and run as `python -I -S -c <this> JSON`: remove from the model cache what
# the site does not declare (`models_prune`). JSON: {"hub": HF_HOME/hub, "marker": M,
# "removing": PREFIX, "remove": [models--X folders], "clean": [{"dir": D, "revision": R}],
# "leftovers": [folders], "loaded_file": F or null}. Prints {"removed": [...], "cleaned":
# {dir: [what]}, "skipped": {name: why}, "freed_bytes": N}.
#
# Refuses a cache without the tool's marker M (it may be another program's), never follows
# a symbolic link out of the cache, and skips a model the server is loading right now (F,
# the server's own list of what it loads, read again just before each removal): deleting
# files under a load makes that request fail half way. A model is first renamed to
# REMOVING+NAME (atomic) and then deleted, so no reader finds it half gone; what a cut-short
# removal left so is deleted by the next run ("leftovers").
import json
import os
import shutil
import sys

cfg = json.loads(sys.argv[1])
hub = cfg["hub"]
out = {"removed": [], "cleaned": {}, "skipped": {}, "freed_bytes": 0}


def size_of(path):
    total = 0
    for folder, _dirs, names in os.walk(path):
        for name in names:
            try:
                total += os.lstat(os.path.join(folder, name)).st_size
            except OSError:
                pass
    return total


def loading():
    """Models the server is loading now, by its own file (a dead server's file is stale)."""
    path = cfg.get("loaded_file")
    if not path:
        return set()
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
        os.kill(int(data["pid"]), 0)
    except (OSError, ValueError, KeyError, TypeError):
        return set()
    return set(data.get("loading") or [])


def safe_name(name):
    return name and "/" not in name and name not in (".", "..")


def remove_folder(name):
    path = os.path.join(hub, name)
    if not safe_name(name) or not name.startswith("models--"):
        out["skipped"][name] = "not a model folder"
        return
    if os.path.islink(path) or not os.path.isdir(path):
        out["skipped"][name] = "a symbolic link or not a folder: left alone"
        return
    model = name[len("models--") :].replace("--", "/", 1)
    if model in loading():
        out["skipped"][name] = "the server is loading it right now; the next apply removes it"
        return
    size = size_of(path)
    doomed = os.path.join(hub, cfg["removing"] + name)
    os.rename(path, doomed)
    shutil.rmtree(doomed)
    out["removed"].append(name)
    out["freed_bytes"] += size


def clean_model(base, revision):
    """Keep the snapshot `revision` names and the blobs it links to; remove the rest."""
    try:
        with open(os.path.join(base, "refs", revision), encoding="utf-8") as f:
            keep = f.read().strip()
    except OSError:
        keep = revision
    snapshots = os.path.join(base, "snapshots")
    if not keep or not os.path.isdir(os.path.join(snapshots, keep)):
        out["skipped"][os.path.basename(base)] = "the declared revision has no snapshot"
        return
    used = set()
    for folder, _dirs, names in os.walk(os.path.join(snapshots, keep)):
        for name in names:
            try:
                used.add(os.path.basename(os.readlink(os.path.join(folder, name))))
            except OSError:
                pass
    done = []
    for commit in sorted(os.listdir(snapshots)):
        path = os.path.join(snapshots, commit)
        if commit == keep or os.path.islink(path):
            continue
        shutil.rmtree(path)
        done.append("snapshot " + commit[:12])
    refs = os.path.join(base, "refs")
    for ref in os.listdir(refs) if os.path.isdir(refs) else []:
        try:
            with open(os.path.join(refs, ref), encoding="utf-8") as f:
                target = f.read().strip()
        except OSError:
            continue
        if target != keep and not os.path.isdir(os.path.join(snapshots, target)):
            os.remove(os.path.join(refs, ref))
            done.append("ref " + ref)
    blobs = os.path.join(base, "blobs")
    for name in sorted(os.listdir(blobs)) if os.path.isdir(blobs) else []:
        path = os.path.join(blobs, name)
        if name in used or name.endswith(".incomplete") or os.path.isdir(path):
            continue
        out["freed_bytes"] += os.lstat(path).st_size
        os.remove(path)
        done.append("blob " + name[:12])
    if done:
        out["cleaned"][os.path.basename(base)] = done


if not os.path.exists(os.path.join(hub, cfg["marker"])):
    sys.stderr.write(
        "%s has no %s: not a cache localai-provision made; nothing removed\n" % (hub, cfg["marker"])
    )
    sys.exit(3)
for name in cfg.get("leftovers", []):
    path = os.path.join(hub, name)
    if safe_name(name) and name.startswith(cfg["removing"]) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
        out["removed"].append(name)
for name in cfg.get("remove", []):
    remove_folder(name)
for item in cfg.get("clean", []):
    base = os.path.join(hub, item["dir"])
    if safe_name(item["dir"]) and os.path.isdir(base) and not os.path.islink(base):
        clean_model(base, item["revision"])
print(json.dumps(out))
