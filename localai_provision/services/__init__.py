"""Service managers: how the server is kept running on a host (one interface, several kinds)."""

from localai_provision.services.base import ServiceManager, service_manager_for

__all__ = ["ServiceManager", "service_manager_for"]
