"""How the tool reaches a host: one small interface, a local and an SSH implementation."""

from localai_provision.connectors.base import CommandResult, Connector, connector_for

__all__ = ["CommandResult", "Connector", "connector_for"]
