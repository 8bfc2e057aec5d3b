#!/bin/sh
# localai-provision-root: the one program localai-provision runs as root on a Mac.
#
# Installed root:wheel 0755 as /usr/local/libexec/localai-provision-root by the installer the
# tool writes to PREFIX/libexec/install-root-helper.sh (docs/macos.md, "The root helper"),
# with one sudoers line per account:   USER ALL=(root) NOPASSWD: <this file>
#
# Why a helper and not a sudoers list of commands: argument-free `cp`, `mv`, `chown`,
# `chmod` or `launchctl` under NOPASSWD are each enough to become root. This program has
# fixed verbs; every argument is checked; it touches only launchd labels that start with
# com.localai-provision. and only plists in the one folder its configuration names; a job
# it installs always runs as an account the admin allowed (UserName), never as root. The
# only job that runs as root is the wired-limit boot job, whose whole content it writes.
#
# Its configuration, per calling account (sudo sets SUDO_USER; the caller cannot change it),
# is /etc/localai-provision/ACCOUNT.conf, root-owned, written by the installer:
#   DAEMONS=/Library/LaunchDaemons   where plists go
#   RUN_AS="lab"                     accounts a job may run as
#   TOOLS=                           (test machines only: where stand-ins of Apple's tools are)
set -eu
umask 022
PATH=/usr/bin:/bin:/usr/sbin:/sbin
export PATH
VERSION=1
PREFIX_LABEL=com.localai-provision.
MAX_PLIST_BYTES=262144

die() {
    echo "localai-provision-root: $*" >&2
    exit 64
}

[ "$(id -u)" = 0 ] || die "run through sudo: sudo -n $0 VERB ..."
caller=${SUDO_USER:-}
case $caller in
'' | *[!A-Za-z0-9._-]* | -*) die "SUDO_USER is missing or not an account name" ;;
esac
conf=/etc/localai-provision/$caller.conf
[ -f "$conf" ] || die "$caller is not set up: $conf is missing (run the installer again)"
DAEMONS=
RUN_AS=
TOOLS=
# Root-owned, written only by the installer: its values are trusted.
. "$conf"
[ -n "$DAEMONS" ] || die "$conf names no DAEMONS folder"
if [ -n "$TOOLS" ]; then
    PATH=$TOOLS:$PATH
fi

check_label() {
    case $1 in
    "$PREFIX_LABEL"*) ;;
    *) die "label $1 is not one of localai-provision's ($PREFIX_LABEL*)" ;;
    esac
    case $1 in
    *[!A-Za-z0-9.-]* | *..*) die "label $1 has characters a label may not have" ;;
    esac
}

allowed_account() {
    for account in $RUN_AS; do
        [ "$account" = "$1" ] && return 0
    done
    return 1
}

check_number() {
    case $1 in
    '' | *[!0-9]*) die "$2 must be a whole number, not '$1'" ;;
    esac
    [ "${#1}" -le 7 ] || die "$2 is too large: $1"
}

# Write stdin (at most MAX_PLIST_BYTES) to the daemon folder as LABEL.plist after checking it.
install_plist() {
    label=$1
    mkdir -p "$DAEMONS"
    tmp=$DAEMONS/.$label.plist.localai-tmp
    rm -f "$tmp"
    head -c "$MAX_PLIST_BYTES" >"$tmp"
    refuse() {
        rm -f "$tmp"
        die "refused the plist for $label: $*"
    }
    plutil -convert xml1 "$tmp" >/dev/null 2>&1 || refuse "not a property list"
    plutil -lint "$tmp" >/dev/null 2>&1 || refuse "plutil -lint fails"
    # plutil's XML puts each top-level key alone on a line with one tab of indent (a key or
    # string with '<' or a newline in it cannot fake one: '<' is written &lt;).
    all=$(grep -c '^	<key>' "$tmp" || true)
    plain=$(grep -c '^	<key>[A-Za-z]*</key>$' "$tmp" || true)
    [ "$all" = "$plain" ] || refuse "a key that is not a plain name"
    for key in $(sed -n 's/^	<key>\([A-Za-z]*\)<\/key>$/\1/p' "$tmp"); do
        case $key in
        Label | ProgramArguments | EnvironmentVariables | WorkingDirectory | StandardOutPath | \
            StandardErrorPath | RunAtLoad | KeepAlive | ThrottleInterval | ProcessType | \
            UserName | StartInterval | ExitTimeOut) ;;
        *) refuse "key $key is not one the tool writes" ;;
        esac
    done
    [ "$(plutil -extract Label raw -o - "$tmp" 2>/dev/null)" = "$label" ] ||
        refuse "its Label is not $label"
    account=$(plutil -extract UserName raw -o - "$tmp" 2>/dev/null) ||
        refuse "it has no UserName (the job would run as root)"
    allowed_account "$account" || refuse "UserName $account is not allowed (allowed: $RUN_AS)"
    chown 0:0 "$tmp"
    chmod 0644 "$tmp"
    mv -f "$tmp" "$DAEMONS/$label.plist"
}

verb=${1:-}
[ $# -gt 0 ] && shift
case $verb in
version)
    echo "localai-provision-root $VERSION"
    ;;
install-plist)
    [ $# = 1 ] || die "usage: install-plist LABEL < PLIST"
    check_label "$1"
    install_plist "$1"
    ;;
remove-plist)
    [ $# = 1 ] || die "usage: remove-plist LABEL"
    check_label "$1"
    rm -f "$DAEMONS/$1.plist"
    ;;
bootstrap)
    [ $# = 1 ] || die "usage: bootstrap LABEL"
    check_label "$1"
    exec launchctl bootstrap system "$DAEMONS/$1.plist"
    ;;
bootout | enable)
    [ $# = 1 ] || die "usage: $verb LABEL"
    check_label "$1"
    exec launchctl "$verb" "system/$1"
    ;;
kickstart)
    [ $# = 1 ] || die "usage: kickstart LABEL"
    check_label "$1"
    exec launchctl kickstart -k "system/$1"
    ;;
never-sleep)
    [ $# = 0 ] || die "usage: never-sleep"
    exec pmset -a sleep 0 disksleep 0
    ;;
autorestart)
    [ $# = 1 ] || die "usage: autorestart 0|1"
    case $1 in 0 | 1) ;; *) die "autorestart takes 0 or 1" ;; esac
    exec pmset -a autorestart "$1"
    ;;
wired-limit)
    [ $# = 1 ] || die "usage: wired-limit MB"
    check_number "$1" "the wired limit"
    exec sysctl "iogpu.wired_limit_mb=$1"
    ;;
wired-limit-at-boot)
    # The boot job that sets the limit again after a reboot (it resets): written here in
    # full, since it is the one job that runs as root.
    [ $# = 1 ] || die "usage: wired-limit-at-boot MB|off"
    label=${PREFIX_LABEL}wired-limit
    if [ "$1" = off ]; then
        rm -f "$DAEMONS/$label.plist"
        exit 0
    fi
    check_number "$1" "the wired limit"
    mkdir -p "$DAEMONS"
    tmp=$DAEMONS/.$label.plist.localai-tmp
    cat >"$tmp" <<EOF
<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0">
<dict>
	<key>Label</key>
	<string>$label</string>
	<key>ProgramArguments</key>
	<array>
		<string>/usr/sbin/sysctl</string>
		<string>iogpu.wired_limit_mb=$1</string>
	</array>
	<key>RunAtLoad</key>
	<true/>
</dict>
</plist>
EOF
    chown 0:0 "$tmp"
    chmod 0644 "$tmp"
    mv -f "$tmp" "$DAEMONS/$label.plist"
    ;;
*)
    die "unknown verb '$verb' (version, install-plist, remove-plist, bootstrap, bootout, enable, kickstart, never-sleep, autorestart, wired-limit, wired-limit-at-boot)"
    ;;
esac
