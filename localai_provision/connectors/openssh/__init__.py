"""Reach a host with the system's OpenSSH client (`ssh`), one master connection per host
kept open between runs (ControlMaster/ControlPersist, as Ansible does).

Why beside the paramiko connector (connectors/ssh/): a repeated check of the same hosts
within ControlPersist pays no handshake at all, and a first one pays OpenSSH's handshake in C
in its own process instead of paramiko's in Python threads on the controller's GIL (issue 19,
docs/BENCHMARKS.md "Drift at the floor"). The user's ~/.ssh/config, agent, certificates and
ProxyJump come with it; every setting the site names is given on the command line, where
it wins over ~/.ssh/config. Errors are the same classes, messages and hints as paramiko's.
"""

from __future__ import annotations

from localai_provision.connectors.openssh.connector import OpenSSHConnector
from localai_provision.connectors.openssh.control import control_dir

__all__ = ["OpenSSHConnector", "control_dir"]
