# Part of the facts script sent to hosts (see remote_base.py): the host's memory, and the
# model cache beyond the models the site declares (what `models_prune` would remove).

import os

if False:  # for linters only (see remote_base.py): on the host these are defined above
    from localai_provision.facts.remote_base import listdir, read_text, run


def memory_section(is_mac):
    """Linux: /proc/meminfo (a file, no process). macOS: `vm_stat` for what is in use; the
    total and the GPU's wired limit come from the `mac` section's one sysctl."""
    if not is_mac:
        return {"meminfo": read_text("/proc/meminfo", 65536)}
    status, out, err = run(["vm_stat"])
    return {"vm_stat": out if status == 0 else None, "error": err.strip()[-300:] or None}


def folder_bytes(path):
    """The size of a model folder's blobs (flat: huggingface_hub keeps them in one folder)."""
    total = 0
    for name in listdir(os.path.join(path, "blobs")) or []:
        try:
            total += os.lstat(os.path.join(path, "blobs", name)).st_size
        except OSError:
            pass
    return total


def snapshot_blobs(base):
    """Each snapshot's files as the blob names they link to (huggingface_hub's layout:
    snapshots/COMMIT/FILE -> ../../blobs/BLOB), and every blob with its size."""
    snapshots = {}
    snaps = os.path.join(base, "snapshots")
    for commit in listdir(snaps) or []:
        used = []
        for folder, _dirs, names in os.walk(os.path.join(snaps, commit)):
            for name in names:
                try:
                    used.append(os.path.basename(os.readlink(os.path.join(folder, name))))
                except OSError:
                    pass  # a plain file: it uses no blob
        snapshots[commit] = used
    blobs = {}
    for name in listdir(os.path.join(base, "blobs")) or []:
        try:
            blobs[name] = os.lstat(os.path.join(base, "blobs", name)).st_size
        except OSError:
            pass
    return {"snapshots": snapshots, "blobs": blobs}


def cache_section(hub, cfg):
    """The model cache's folders that the site does not declare, with their size; with
    `models_prune`, each declared model's snapshots and blobs too (the stale ones go)."""
    cache = cfg.get("cache") or {}
    names = listdir(hub)
    declared = set(m["dir"] for m in cfg["models"])
    info = {
        "exists": names is not None,
        "owned": os.path.exists(os.path.join(hub, cache.get("marker", ".localai-cache"))),
        "undeclared": {},
        "leftovers": [],
        "declared": {},
    }
    for name in names or []:
        path = os.path.join(hub, name)
        if name.startswith(cache.get("removing", ".localai-removing-")):
            info["leftovers"].append(name)
        elif name.startswith("models--") and name not in declared:
            info["undeclared"][name] = {
                "bytes": folder_bytes(path),
                "link": os.path.islink(path),
            }
    if cache.get("prune"):
        for name in sorted(declared):
            if os.path.isdir(os.path.join(hub, name)):
                info["declared"][name] = snapshot_blobs(os.path.join(hub, name))
    return info
