"""`python -m localai_provision.cli`."""

from localai_provision.cli.main import entry_point

entry_point()
