"""The root helper: the one narrow path to root on a Mac (docs/macos.md, "The root helper").

What the tool must do as root (write a LaunchDaemon's plist, load it in the `system` domain,
`pmset`, the GPU wired limit) goes through one root-owned program with fixed verbs,
`/usr/local/libexec/localai-provision-root` (scripts/root_helper.sh), which the admin grants
with one sudoers line. A sudoers list of commands cannot be narrow: argument-free `cp`, `mv`,
`chown`, `chmod`, `launchctl` or `sysctl` are each enough to become root.

The admin installs it once per Mac with the installer this module renders (apply also writes
it to PREFIX/libexec/install-root-helper.sh on the host): `sudo sh install-root-helper.sh`.
"""

from __future__ import annotations

import hashlib
import posixpath
import re
from functools import cache
from importlib import resources

from localai_provision import shell

HELPER_PATH = "/usr/local/libexec/localai-provision-root"
CONF_DIR = "/etc/localai-provision"
SUDOERS_DIR = "/etc/sudoers.d"
INSTALLER_NAME = "install-root-helper.sh"
LABEL_PREFIX = "com.localai-provision."
# sudo skips files in sudoers.d whose names hold a '.' (sudoers(5), "#includedir").
_SUDOERS_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


@cache
def helper_text() -> str:
    return (resources.files("localai_provision.scripts") / "root_helper.sh").read_text("utf-8")


def helper_digest() -> str:
    """sha256 of the helper as this version of the tool writes it: a host whose helper has
    another digest runs an older (or edited) one, and is told to install it again."""
    return hashlib.sha256(helper_text().encode("utf-8")).hexdigest()


def conf_path(account: str) -> str:
    return posixpath.join(CONF_DIR, f"{account}.conf")


def sudoers_path(account: str) -> str:
    return posixpath.join(SUDOERS_DIR, "localai-provision-" + _SUDOERS_UNSAFE.sub("_", account))


def sudoers_line(account: str) -> str:
    """The whole grant: this account may run the helper (and only it) without a password."""
    return f"{account} ALL=(root) NOPASSWD: {HELPER_PATH}"


def conf_text(daemons: str, run_as: tuple[str, ...]) -> str:
    """The helper's configuration for one account (sourced by the helper as root)."""
    return f"DAEMONS={shell.quote(daemons)}\nRUN_AS={shell.quote(' '.join(run_as))}\n"


def command(verb: str, *args: str) -> str:
    """The shell command that runs one verb of the helper as root, never asking a password."""
    return shell.join(["sudo", "-n", HELPER_PATH, verb, *args])


def setup_command(account: str, address: str, installer: str) -> str:
    """The one step an admin runs from the controller (ssh -t: sudo asks the password)."""
    return f"ssh -t {account}@{address} sudo sh {shell.quote(installer)}"


_INSTALLER = """\
#!/bin/sh
# Installs localai-provision's root helper for the account {account} on this Mac.
# Run it once, as root:   sudo sh {installer_name}
# It writes, all root-owned:
#   {helper}   the helper (fixed verbs; read it below)
#   {conf}   its settings for {account}
#   {sudoers}   the one sudoers line:
#       {line}
# To remove: sudo rm {helper} {conf} {sudoers}
set -eu
umask 022
PATH=/usr/bin:/bin:/usr/sbin:/sbin
ACCOUNT={q_account}
DAEMONS={q_daemons}
# Test machines only: where stand-ins of Apple's tools live (root-owned). Empty on a Mac.
TOOLS=${{LOCALAI_ROOT_HELPER_TOOLS:-}}
case $TOOLS in *[!A-Za-z0-9/._-]*) echo "bad LOCALAI_ROOT_HELPER_TOOLS" >&2; exit 1 ;; esac
if [ "$(id -u)" != 0 ]; then
    echo "run this as root: sudo sh $0" >&2
    exit 1
fi
mkdir -p {libexec} {conf_dir} {sudoers_dir} "$DAEMONS"
tmp={q_helper}.tmp.$$
cat >"$tmp" <<'LOCALAI_PROVISION_HELPER_END'
{helper_text}LOCALAI_PROVISION_HELPER_END
chown 0:0 "$tmp"
chmod 0755 "$tmp"
mv -f "$tmp" {q_helper}
tmp={q_conf}.tmp.$$
cat >"$tmp" <<'LOCALAI_PROVISION_CONF_END'
{conf_text}LOCALAI_PROVISION_CONF_END
printf "TOOLS='%s'\\n" "$TOOLS" >>"$tmp"
chown 0:0 "$tmp"
chmod 0644 "$tmp"
mv -f "$tmp" {q_conf}
tmp={q_sudoers}.tmp
printf '%s\\n' {q_line} >"$tmp"
chown 0:0 "$tmp"
chmod 0440 "$tmp"
if ! visudo -cf "$tmp" >/dev/null; then
    rm -f "$tmp"
    echo "visudo refuses the sudoers line; nothing changed in {sudoers_dir}" >&2
    exit 1
fi
mv -f "$tmp" {q_sudoers}
echo "localai-provision-root installed for $ACCOUNT: {line}"
"""


def installer(account: str, daemons: str, run_as: tuple[str, ...] = ()) -> str:
    """The installer script for one account on one Mac. ``daemons`` is where the account's
    LaunchDaemons go (/Library/LaunchDaemons unless the site's `launchd.plist_dir` says)."""
    accounts = tuple(dict.fromkeys((account, *run_as)))
    return _INSTALLER.format(
        account=account,
        installer_name=INSTALLER_NAME,
        helper=HELPER_PATH,
        conf=conf_path(account),
        sudoers=sudoers_path(account),
        line=sudoers_line(account),
        q_account=shell.quote(account),
        q_daemons=shell.quote(daemons),
        libexec=shell.quote(posixpath.dirname(HELPER_PATH)),
        conf_dir=shell.quote(CONF_DIR),
        sudoers_dir=shell.quote(SUDOERS_DIR),
        q_helper=shell.quote(HELPER_PATH),
        helper_text=helper_text(),
        q_conf=shell.quote(conf_path(account)),
        conf_text=conf_text(daemons, accounts),
        q_sudoers=shell.quote(sudoers_path(account)),
        q_line=shell.quote(sudoers_line(account)),
    )
