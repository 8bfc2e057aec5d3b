# Sent to a host and run as `python -I -S -c <this> JSON`: point PREFIX/current and
# PREFIX/previous at generations, and (for a rollback) swap server.json with
# server.json.previous. JSON: {"prefix", "current", "previous", "swap_config"}; a link's
# target is relative to PREFIX ("generations/ID", or "venv"), null to remove the link.
#
# Each link is made beside and renamed over the old one (rename is atomic), `current` last:
# whatever moment this is cut at, `current` names a complete generation. The swap keeps
# both files 0600 (rename keeps a file's mode) and never has both names missing at once
# for longer than between two renames of one process.
import json
import os
import sys

cfg = json.loads(sys.argv[1])
prefix = cfg["prefix"]


def point(name, target):
    link = os.path.join(prefix, name)
    if target is None:
        try:
            os.unlink(link)
        except FileNotFoundError:
            pass
        return
    tmp = link + ".localai-tmp"
    try:
        os.unlink(tmp)
    except FileNotFoundError:
        pass
    os.symlink(target, tmp)
    os.replace(tmp, link)


if cfg.get("swap_config"):
    config = os.path.join(prefix, "server.json")
    previous = config + ".previous"
    if os.path.exists(previous):
        swap = config + ".localai-swap"
        os.replace(config, swap)
        os.replace(previous, config)
        os.replace(swap, previous)
point("previous", cfg.get("previous"))
point("current", cfg.get("current"))
print(json.dumps({"current": cfg.get("current"), "previous": cfg.get("previous")}))
