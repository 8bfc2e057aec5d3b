# Sent with the facts script and run as `python -I -S -c <this> DIGEST SCRIPT CONFIG`
# (facts/gather.py). Compiling the script's 35 KB costs 12 ms of the host's CPU per check,
# more than running it (8 ms): the compiled code is kept in the user's cache folder, named by
# the script's digest and the Python's version, and loaded (0.2 ms) on the next check. The
# folder is the user's own (0700, checked before use); an entry is written whole (a private
# file renamed into place), entries of other versions are removed, and any failure here only
# means compiling. Python 3.8+, standard library, never raises.
import marshal
import os
import sys

digest, source = sys.argv.pop(1), sys.argv.pop(1)
code = folder = None
try:
    home = os.environ.get("XDG_CACHE_HOME") or os.environ["HOME"] + (
        "/Library/Caches" if sys.platform == "darwin" else "/.cache"
    )
    folder = home + "/localai-provision/facts"
    name = "%s-%s-%x" % (digest, sys.implementation.cache_tag, sys.hexversion)
    st = os.stat(folder)
    if st.st_uid == os.getuid() and not st.st_mode & 0o077:
        with open(folder + "/" + name, "rb") as f:
            code = marshal.load(f)
except Exception:  # noqa: BLE001 - no cache: compile
    pass
if code is None:
    code = compile(source, "<localai facts>", "exec")
    try:
        os.makedirs(folder, 0o700, exist_ok=True)
        st = os.stat(folder)
        if st.st_uid == os.getuid() and not st.st_mode & 0o077:
            for old in os.listdir(folder):
                if old.endswith(".tmp") or (len(old) > 65 and old[64] == "-"):
                    os.unlink(folder + "/" + old)
            tmp = "%s/%s.%d.tmp" % (folder, name, os.getpid())
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(marshal.dumps(code))
            os.replace(tmp, folder + "/" + name)
    except Exception:  # noqa: BLE001 - no cache: the next check compiles again
        pass
exec(code, {"__name__": "__main__"})
