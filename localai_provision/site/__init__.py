"""The site file: reading, validating, merging and selecting hosts."""

from localai_provision.site.load import load_site, parse_site
from localai_provision.site.model import HostSpec, ModelSpec, Site
from localai_provision.site.select import select_hosts

__all__ = ["HostSpec", "ModelSpec", "Site", "load_site", "parse_site", "select_hosts"]
