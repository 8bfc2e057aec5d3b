from localai_provision.cli import entry_point

entry_point()
