"""localai-provision: declarative provisioning of MLX Omni Server across a fleet of Macs."""

__version__ = "0.1.0"
