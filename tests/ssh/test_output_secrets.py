"""What leaves a host, over real SSH: no secret in any output, server.json private from its
first byte, a chatty login ignored, and files sent without SFTP when sshd has none."""

from __future__ import annotations

import contextlib
import json
import os
import re
import stat
import subprocess
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest

from localai_provision.connectors.ssh import SSHConnector
from tests.conftest import CAN_SSH
from tests.support import hostprep
from tests.support.lab import Lab
from tests.support.sshfleet import SSHFleet, TestHost

pytestmark = [
    pytest.mark.ssh,
    pytest.mark.skipif(not CAN_SSH, reason="needs root and openssh-server"),
]

SECRET = "hf_ChattyLoginSecret_7d2e90"
CHATTER = "Welcome to the lab Mac! Last login: today"


@contextlib.contextmanager
def sshd_with(fleet: SSHFleet, host: TestHost, sftp: str | None) -> Iterator[None]:
    """The host's sshd restarted with another `Subsystem sftp` line; set back afterwards."""
    before = host.sftp
    host.sftp = sftp
    fleet.stop_host(host)
    fleet.start_host(host)
    try:
        yield
    finally:
        host.sftp = before
        fleet.stop_host(host)
        fleet.start_host(host)


@contextlib.contextmanager
def chatty_login(fleet: SSHFleet, host: TestHost) -> Iterator[Path]:
    """A ~/.bashrc that prints on both streams in every session, before anything else (bash
    reads it for sshd's commands), and a `python` that prints a line before it runs."""
    bashrc = host.home / ".bashrc"
    old = bashrc.read_text() if bashrc.exists() else None
    bashrc.write_text(f'echo "{CHATTER}"\necho "motd: disk 91% full" >&2\n' + (old or ""))
    wrapper = host.home / "bin" / "python3-wrapper"
    wrapper.parent.mkdir(exist_ok=True)
    wrapper.write_text('#!/bin/sh\necho "pyenv: using system python"\nexec /usr/bin/python3 "$@"\n')
    wrapper.chmod(0o755)
    hostprep.chown_tree(wrapper.parent, host.user)
    try:
        yield wrapper
    finally:
        if old is None:
            bashrc.unlink()
        else:
            bashrc.write_text(old)


def test_a_chatty_login_without_sftp_converges_and_no_output_holds_the_secret(
    lab: Lab, monkeypatch: pytest.MonkeyPatch, shared_dir: Path
) -> None:
    """End to end: a host whose shell prints on every session, whose `python` prints a
    line, whose sshd has no SFTP, and a server env with a {from_env} secret. plan, apply,
    drift --json --junit and status work, and none of their outputs holds the secret."""
    monkeypatch.setenv("LOCALAI_TEST_CHATTY_SECRET", SECRET)
    model = shared_dir / "models" / "chatty-tiny"
    model.mkdir(parents=True, exist_ok=True)
    (model / "config.json").write_text(json.dumps({"model_type": "llama"}))
    (model / "model.safetensors").write_bytes(os.urandom(64 * 1024))
    host = lab.fleet.hosts[5]
    hostprep.reset_host(host)
    with sshd_with(lab.fleet, host, None), chatty_login(lab.fleet, host) as python:
        # The chatter is real: a plain `ssh host true` prints it.
        raw = subprocess.run(
            ["ssh", "-i", str(lab.fleet.client_key_path), "-p", str(host.port),
             "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
             f"{host.user}@127.0.0.1", "true"],
            capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip
        assert CHATTER in raw.stdout, raw
        site = lab.site(
            [host],
            python=str(python),
            models=[{"id": "org/tiny-a", "source": str(model)}],
            server={
                "port": lab.ports[host.name],
                "env": {"HF_TOKEN": {"from_env": "LOCALAI_TEST_CHATTY_SECRET"}, "MODE": "x"},
            },
        )
        junit = lab.tmp_path / "drift.xml"
        outputs: dict[str, str] = {}
        stdouts: dict[str, str] = {}
        try:
            for argv, expected in (
                (("plan",), 2),
                (("apply", "--json"), 0),
                (("apply",), 0),
                (("drift", "--json", "--junit", str(junit)), 0),
                (("drift",), 0),
                (("status",), 0),
                (("status", "--json"), 0),
                (("plan",), 0),
            ):
                code, out, err = lab.cli(argv[0], str(site), *argv[1:])
                outputs[" ".join(argv)] = out + err
                stdouts[" ".join(argv)] = out
                assert code == expected, f"{argv}: {out}{err}"
        finally:
            lab.cli("stop", str(site))
        outputs["junit"] = junit.read_text()
        ET.parse(junit)
        for name, text in outputs.items():
            assert SECRET not in text, name
            assert CHATTER not in text, name
        applied = json.loads(stdouts["apply --json"])["hosts"][0]
        assert applied["status"] == "changed" and "server-config" in {
            c["resource"] for c in applied["changes"]
        }
        config = host.home / ".localai" / "server.json"
        assert SECRET in config.read_text()  # the one place it is...
        assert stat.S_IMODE(config.stat().st_mode) == 0o600  # ...readable by its user only
        # The files the tool writes itself hold no secret either.
        for path in (host.home / ".localai").glob("*.json"):
            if path.name != "server.json":
                assert SECRET not in path.read_text(), path
    hostprep.reset_host(host)


def test_files_go_over_the_command_channel_when_sshd_has_no_sftp(lab: Lab, tmp_path: Path) -> None:
    host = lab.fleet.hosts[6]
    hostprep.reset_host(host)
    spec = lab.spec(lab.site([host]), host)
    folder = host.home / "upload"
    lab.fleet.run_as(host, ["mkdir", "-p", str(folder)])
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(3 * 1024 * 1024 + 17))
    with sshd_with(lab.fleet, host, None):
        connector = SSHConnector(spec)
        with connector:
            connector.put(b"TOKEN=" + SECRET.encode(), f"{folder}/server.json", mode=0o600)
            connector.put(b"plain\n", f"{folder}/plain.txt")
            connector.put_file(big, f"{folder}/big.bin", mode=0o640)
            connector.append_file(big, f"{folder}/part.bin", 0)
            # A resumed copy: the partial file is cut where it is said to end, then the rest.
            (folder / "resumed.bin").write_bytes(big.read_bytes()[:1000] + b"garbage")
            os.chown(folder / "resumed.bin", *_ids(host))
            connector.append_file(big, f"{folder}/resumed.bin", 1000)
            got = connector.get(f"{folder}/big.bin")
    assert got == big.read_bytes()
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in folder.iterdir()}
    assert modes["server.json"] == 0o600 and modes["plain.txt"] == 0o644
    assert modes["big.bin"] == 0o640
    for name in ("big.bin", "part.bin", "resumed.bin"):
        assert (folder / name).read_bytes() == big.read_bytes(), name
    assert (folder / "server.json").read_bytes() == b"TOKEN=" + SECRET.encode()
    assert not [p for p in folder.iterdir() if p.name.startswith(".localai-tmp")]


def test_server_json_is_never_readable_by_others_over_sftp(lab: Lab) -> None:
    """OpenSSH's SFTP server logs each open with the mode the file is created with: every
    temporary file the tool uploads (server.json first among them) is created 0600, then
    given its mode and renamed over the target. (Its log, with -e, goes to stderr: the
    subsystem's command line, run by the user's shell, sends it to a file.)"""
    host = lab.fleet.hosts[6]
    spec = lab.spec(lab.site([host]), host)
    folder = host.home / "sftp-upload"
    lab.fleet.run_as(host, ["mkdir", "-p", str(folder)])
    log_file = host.home / "sftp-server.log"
    server = f"/usr/lib/openssh/sftp-server -e -l INFO 2>>{log_file}"
    with sshd_with(lab.fleet, host, server), SSHConnector(spec) as connector:
        connector.put(b"TOKEN=" + SECRET.encode(), f"{folder}/server.json", mode=0o600)
        connector.put(b"plain\n", f"{folder}/plain.txt")
    log = log_file.read_text(errors="replace")
    opens = re.findall(r'open "([^"]*\.localai-tmp-[^"]*)" flags (\S+) mode (0\d+)', log)
    assert len(opens) == 2, log
    assert {mode for _, _, mode in opens} == {"0600"}
    assert all("CREATE" in flags and "EXCL" in flags for _, flags, _ in opens)
    assert stat.S_IMODE((folder / "server.json").stat().st_mode) == 0o600
    assert stat.S_IMODE((folder / "plain.txt").stat().st_mode) == 0o644


def _ids(host: TestHost) -> tuple[int, int]:
    import pwd

    entry = pwd.getpwnam(host.user)
    return entry.pw_uid, entry.pw_gid
