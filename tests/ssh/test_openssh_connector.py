"""The OpenSSH connector against a real sshd: commands, files, a master reused by the next
run (counted in the host's sshd log, never timed), and every connect error in the same words
as the paramiko connector's."""

from __future__ import annotations

import socket
import stat
import subprocess
import threading
import time
from pathlib import Path

import pytest

from localai_provision.connectors.base import connector_for
from localai_provision.connectors.openssh import OpenSSHConnector
from localai_provision.errors import (
    AuthenticationError,
    CommandError,
    ConnectError,
    ConnectionRefused,
    ConnectTimeout,
    HostKeyError,
    NameNotResolved,
)
from tests.conftest import CAN_SSH
from tests.support import hostprep
from tests.support.lab import Lab
from tests.support.sshfleet import TestHost

pytestmark = [
    pytest.mark.ssh,
    pytest.mark.skipif(not CAN_SSH, reason="needs root and openssh-server"),
]


def sshd_counts(host: TestHost, since: int) -> tuple[int, int]:
    """New connections and sessions in the host's sshd log (LogLevel VERBOSE) since ``since``."""
    time.sleep(0.3)  # sshd writes its last lines after the client has gone
    with host.log_path.open("rb") as fh:
        fh.seek(since)
        text = fh.read().decode(errors="replace")
    return text.count("Accepted publickey for "), text.count("Starting session: command")


def site_of(lab: Lab, hosts: list[TestHost], **settings: object) -> Path:
    """A site whose hosts use the OpenSSH connector for every command."""
    return lab.site(hosts, ssh_client="openssh", **settings)  # type: ignore[arg-type]


def log_size(host: TestHost) -> int:
    return host.log_path.stat().st_size


@pytest.fixture
def connector(lab: Lab) -> OpenSSHConnector:
    host = lab.fleet.hosts[1]
    spec = lab.spec(site_of(lab, [host]), host)
    made = connector_for(spec)
    assert isinstance(made, OpenSSHConnector)
    return made


def test_output_exit_status_and_stdin(connector: OpenSSHConnector) -> None:
    with connector:
        result = connector.run("echo out; echo err >&2; exit 3")
        assert (result.exit_status, result.stdout, result.stderr) == (3, "out\n", "err\n")
        result = connector.run("tr a-z A-Z", stdin="héllo\n".encode())
        assert result.ok and result.stdout == "HéLLO\n"
        result = connector.run("cat; echo done", timeout=5)
        assert result.ok and result.stdout == "done\n"
        # A command's own exit 255 is its status, not a lost connection.
        assert connector.run("exit 255").exit_status == 255
        assert connector.commands_run == 4


def test_files_are_written_whole_with_their_mode_and_read_back(
    connector: OpenSSHConnector, tmp_path: Path
) -> None:
    local = tmp_path / "big.bin"
    local.write_bytes(bytes(range(256)) * 8192)  # 2 MiB
    with connector:
        home = connector.run("echo $HOME").stdout.strip()
        connector.put(b"secret=1\n", f"{home}/conf.json", 0o600)
        mode = connector.run(f"stat -c %a {home}/conf.json").stdout.strip()
        assert mode == "600" and connector.get(f"{home}/conf.json") == b"secret=1\n"
        connector.put_file(local, f"{home}/big.bin")
        assert connector.get(f"{home}/big.bin") == local.read_bytes()
        connector.run(
            f"truncate -s 1000 {home}/part.bin; head -c 1000 {home}/big.bin > {home}/part.bin"
        )
        connector.append_file(local, f"{home}/part.bin", offset=1000)
        assert connector.get(f"{home}/part.bin") == local.read_bytes()
        with pytest.raises(CommandError, match="cannot read"):
            connector.get(f"{home}/missing")
        with pytest.raises(CommandError, match="cannot write"):
            connector.put(b"x", "/nonexistent-dir/f")
        assert not connector.run(f"ls -a {home} | grep localai-tmp").stdout
        assert connector.bytes_sent == 9 + 2 * local.stat().st_size - 1000


# cold: the command is the one that connects (an `ssh` process, which then leaves the
# master); warm: it goes through the master, with no `ssh` process (mux.py).
WARMTH = pytest.mark.parametrize("warm", [False, True], ids=["cold", "through the master"])


def warm_up(connector: OpenSSHConnector, warm: bool) -> None:
    if warm:
        assert connector.run("true").ok and connector.master_alive()


@WARMTH
def test_a_command_that_outlives_its_timeout(connector: OpenSSHConnector, warm: bool) -> None:
    with connector:
        warm_up(connector, warm)
        with pytest.raises(CommandError, match=r"did not finish within 1 s") as caught:
            connector.run("echo started; sleep 30", timeout=1)
        assert "started" in caught.value.output_tail
        assert connector.run("echo again").stdout == "again\n"


@WARMTH
def test_a_connection_lost_during_a_command(connector: OpenSSHConnector, warm: bool) -> None:
    with connector, pytest.raises(ConnectError, match="lost during a command"):
        warm_up(connector, warm)
        connector.run("kill -9 $PPID; sleep 5", timeout=20)


@WARMTH
def test_close_ends_a_running_command_at_once(connector: OpenSSHConnector, warm: bool) -> None:
    connector.open()
    warm_up(connector, warm)
    caught: list[BaseException] = []

    def run() -> None:
        try:
            connector.run("sleep 60", timeout=120)
        except ConnectError as exc:
            caught.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    time.sleep(1.5)
    connector.close()
    thread.join(timeout=30)
    assert not thread.is_alive() and caught


def test_commands_through_the_master_start_no_ssh_process(
    connector: OpenSSHConnector, monkeypatch: pytest.MonkeyPatch
) -> None:
    with connector:
        warm_up(connector, True)

        def refuse(*args: object, **kwargs: object) -> None:
            raise AssertionError("an ssh process was started")

        with monkeypatch.context() as patch:
            patch.setattr(subprocess, "Popen", refuse)
            result = connector.run("echo out; echo err >&2; exit 3")
            assert (result.exit_status, result.stdout, result.stderr) == (3, "out\n", "err\n")
            assert connector.run("tr a-z A-Z", stdin=b"abc" * 100_000).stdout == "ABC" * 100_000
            script = "import sys\nfor _ in range(3000):\n    sys.stdout.write('o' * 1000)\n"
            script += "    sys.stderr.write('e' * 1000)\n"
            both = connector.run(f'python3 -c "{script}"', timeout=60)
            assert len(both.stdout) == len(both.stderr) == 3_000_000
            assert connector.run("exit 255").exit_status == 255
            assert connector.run("cat; echo done", timeout=5).stdout == "done\n"


def test_a_repeated_drift_reuses_the_master_and_makes_no_new_connection(lab: Lab) -> None:
    host = lab.fleet.hosts[2]
    hostprep.reset_host(host)
    site = site_of(lab, [host])
    mark = log_size(host)
    _, first = lab.drift_json(site)
    assert sshd_counts(host, mark) == (1, 1)
    assert first[host.name]["cost"]["connections"] == 1
    mark = log_size(host)
    _, again = lab.drift_json(site)
    assert sshd_counts(host, mark) == (0, 1)
    assert again[host.name]["cost"] == {"connections": 0, "commands": 1, "bytes_sent": 0}
    assert again[host.name]["status"] == first[host.name]["status"] == "drift"


def test_the_control_folder_is_private_and_the_socket_path_short(
    lab: Lab, ssh_masters: Path
) -> None:
    host = lab.fleet.hosts[2]
    spec = lab.spec(site_of(lab, [host]), host)
    with connector_for(spec) as connector:
        assert connector.run("true").ok
    assert stat.S_IMODE(ssh_masters.stat().st_mode) == 0o700
    (sock,) = list(ssh_masters.iterdir())
    assert stat.S_ISSOCK(sock.stat().st_mode) and len(str(sock)) < 90


def test_a_persist_of_zero_keeps_no_master(lab: Lab, ssh_masters: Path) -> None:
    host = lab.fleet.hosts[2]
    spec = lab.spec(site_of(lab, [host], ssh_persist_s=0), host)
    for _ in range(2):
        mark = log_size(host)
        with connector_for(spec) as connector:
            assert connector.run("true").ok
        assert sshd_counts(host, mark) == (1, 1)
    assert not list(ssh_masters.iterdir())


def test_strict_refuses_an_unknown_key_with_the_keyscan_hint(lab: Lab) -> None:
    host = lab.fleet.hosts[3]
    spec = lab.spec(site_of(lab, [host], host_key_checking="strict"), host)
    with pytest.raises(HostKeyError, match=r"not in .* and host_key_checking is `strict`") as e:
        connector_for(spec).run("true")
    assert "ssh-keyscan" in e.value.hint and e.value.step == "connect"


def test_accept_new_records_the_key_and_a_changed_key_is_refused(lab: Lab) -> None:
    host = lab.fleet.hosts[3]
    spec = lab.spec(site_of(lab, [host], ssh_persist_s=0), host)
    assert connector_for(spec).run("true").ok
    recorded = lab.known_hosts.read_text()
    assert recorded.startswith(f"[127.0.0.1]:{host.port} ssh-ed25519 ")
    lab.fleet.regenerate_host_key(host)
    with pytest.raises(HostKeyError, match=r"CHANGED: .* \(line 1\)") as e:
        connector_for(spec).run("true")
    assert "ssh-keygen -R" in e.value.hint
    assert lab.known_hosts.read_text() == recorded


def test_a_wrong_key_is_refused_with_the_user_named(lab: Lab, tmp_path: Path) -> None:
    host = lab.fleet.hosts[3]
    other = tmp_path / "other_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    spec = lab.spec(site_of(lab, [host], identity_file=str(other)), host)
    with pytest.raises(AuthenticationError, match=f"login of user `{host.user}` with {other}"):
        connector_for(spec).run("true")
    missing = lab.spec(site_of(lab, [host], identity_file=str(tmp_path / "none")), host)
    with pytest.raises(AuthenticationError, match="does not exist on this machine"):
        connector_for(missing).open()


def test_a_closed_port_an_unknown_name_and_a_silent_host(lab: Lab) -> None:
    host = lab.fleet.hosts[3]
    free = socket.socket()
    free.bind(("127.0.0.1", 0))
    port = free.getsockname()[1]
    free.close()
    closed = lab.spec(site_of(lab, [host], per_host={host.name: {"ssh_port": port}}), host)
    with pytest.raises(ConnectionRefused, match="nothing listens there"):
        connector_for(closed).run("true")
    unknown = lab.spec(
        site_of(lab, [host], per_host={host.name: {"address": "no-such-host.invalid"}}), host
    )
    with pytest.raises(NameNotResolved, match="does not resolve"):
        connector_for(unknown).run("true")
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(4)  # accepts (the kernel does), never says a word
    try:
        hung = lab.spec(
            site_of(
                lab,
                [host],
                per_host={host.name: {"ssh_port": silent.getsockname()[1]}},
                connect_timeout_s=1,
            ),
            host,
        )
        with pytest.raises(ConnectTimeout, match=r"no answer from .* within 1 s"):
            connector_for(hung).run("true")
    finally:
        silent.close()
