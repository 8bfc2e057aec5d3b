"""Facts: what a host looks like, learnt in one command and parsed by pure functions."""

from localai_provision.facts.gather import facts_command, gather
from localai_provision.facts.model import Facts

__all__ = ["Facts", "facts_command", "gather"]
