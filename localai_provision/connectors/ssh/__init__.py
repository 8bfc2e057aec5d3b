"""Reach a host over SSH with paramiko.

The only package that imports paramiko (connector.py, hostkeys.py, channel.py). (fabric was
used here before: its Config and Connection cost about 3 ms of controller CPU per host and its
command runner polls in three threads per command, which a 100-host run pays in GIL
contention; what is used of it, one client, one command at a time, one SFTP session, is a few
lines of paramiko.)

Every SSH failure is translated here into the project's own errors, each naming the host and
saying what to do. One connection per host is opened and reused for every command.

The site file is the whole truth about a host: ~/.ssh/config is not read (it could silently
change the address, user or port the site names).
"""

from __future__ import annotations

import logging

from localai_provision.connectors.ssh.connector import SSHConnector
from localai_provision.connectors.ssh.hostkeys import known_hosts_path

# paramiko logs a traceback at ERROR from its transport thread when a connection dies during
# the handshake (a hung host we close on Ctrl-C or timeout). We report that failure ourselves,
# as a ConnectError; without a handler, Python's last-resort logger would print the traceback.
logging.getLogger("paramiko").addHandler(logging.NullHandler())
logging.getLogger("paramiko").propagate = False

__all__ = ["SSHConnector", "known_hosts_path"]
