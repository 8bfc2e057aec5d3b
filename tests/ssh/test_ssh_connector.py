"""The SSH connector's command runner against a real sshd: output, exit status, stdin, large
output on both streams at once, a command timeout and a connection lost mid-command."""

from __future__ import annotations

import pytest

from localai_provision.connectors.ssh import SSHConnector
from localai_provision.errors import CommandError, ConnectError
from tests.conftest import CAN_SSH
from tests.support.lab import Lab

pytestmark = [
    pytest.mark.ssh,
    pytest.mark.skipif(not CAN_SSH, reason="needs root and openssh-server"),
]


@pytest.fixture
def connector(lab: Lab) -> SSHConnector:
    host = lab.fleet.hosts[0]
    site = lab.site([host])
    return SSHConnector(lab.spec(site, host))


def test_output_exit_status_and_stdin(connector: SSHConnector) -> None:
    with connector:
        result = connector.run("echo out; echo err >&2; exit 3")
        assert (result.exit_status, result.stdout, result.stderr) == (3, "out\n", "err\n")
        result = connector.run("tr a-z A-Z", stdin="héllo\n".encode())
        assert result.ok and result.stdout == "HéLLO\n"
        # No stdin given: the command reads end-of-file at once instead of hanging.
        result = connector.run("cat; echo done", timeout=5)
        assert result.ok and result.stdout == "done\n"
        assert connector.commands_run == 3


def test_large_output_on_both_streams(connector: SSHConnector) -> None:
    # More than paramiko's window (2 MB) on each stream, written at the same time.
    script = "import sys\nfor _ in range(3000):\n    sys.stdout.write('o' * 1000)\n"
    script += "    sys.stderr.write('e' * 1000)\n"
    with connector:
        result = connector.run(f'python3 -c "{script}"', timeout=60)
    assert result.ok, result.tail()
    assert len(result.stdout) == 3_000_000 and set(result.stdout) == {"o"}
    assert len(result.stderr) == 3_000_000 and set(result.stderr) == {"e"}


def test_a_command_that_outlives_its_timeout(connector: SSHConnector) -> None:
    with connector:
        with pytest.raises(CommandError, match=r"did not finish within 1 s") as caught:
            connector.run("echo started; sleep 30", timeout=1)
        assert "started" in caught.value.output_tail
        # The busy connection was dropped; the next command opens a new one.
        assert connector.run("echo again").stdout == "again\n"


def test_a_connection_lost_during_a_command(connector: SSHConnector) -> None:
    # The shell's parent is the sshd process that serves this connection.
    with connector, pytest.raises(ConnectError, match="lost during a command"):
        connector.run("kill -9 $PPID; sleep 5", timeout=20)


def test_a_connection_lost_with_its_command_is_still_a_lost_connection(
    connector: SSHConnector,
) -> None:
    # A dropped session kills the command and the sshd process serving it. When the command
    # dies first, sshd closes the channel (no exit status) before the socket ends: that must
    # not read as a command that failed with no output (what the CI run of 2026-12-02
    # reported). Here sshd is killed 0.2 s after the command, by a process left behind.
    later = "(sleep 0.2; kill -9 $PPID) </dev/null >/dev/null 2>&1 &"
    with connector, pytest.raises(ConnectError, match="lost during a command"):
        connector.run(f"{later} kill -9 $$", timeout=20)


def test_a_command_killed_by_a_signal_leaves_the_connection_usable(
    connector: SSHConnector,
) -> None:
    with connector:
        result = connector.run("echo before; kill -9 $$", timeout=20)
        assert not result.ok and result.stdout == "before\n"
        assert connector._client is not None
        transport = connector._client.get_transport()
        assert connector.run("echo after").stdout == "after\n"
        assert connector._client.get_transport() is transport  # the same connection


def test_aes_gcm_is_preferred(connector: SSHConnector) -> None:
    """Cheaper than AES-CTR with HMAC-SHA2 for large copies (no separate MAC pass)."""
    with connector:
        assert connector._client is not None
        transport = connector._client.get_transport()
        assert transport is not None
        assert transport.remote_cipher == transport.local_cipher == "aes128-gcm@openssh.com"
