"""`localai import ansible INVENTORY > site.yaml`: a site file from an Ansible inventory."""

from __future__ import annotations

import argparse

from localai_provision.cli.exits import EXIT_OK
from localai_provision.cli.render import Output
from localai_provision.errors import UsageError

MAX_INVENTORY_BYTES = 16 << 20


def cmd_import_ansible(args: argparse.Namespace, io: Output) -> int:
    from localai_provision.ansible_inventory import read_inventory
    from localai_provision.ansible_site import import_inventory, site_text
    from localai_provision.errors import UnreadableFile
    from localai_provision.files import read_small_regular_file
    from localai_provision.site import parse_site

    try:
        raw = read_small_regular_file(args.inventory, MAX_INVENTORY_BYTES, "inventory")
    except UnreadableFile as exc:
        raise UsageError(f"{exc}; {exc.hint}") from None
    inventory = read_inventory(raw.decode("utf-8", errors="replace"), args.inventory)
    if not inventory.hosts:
        raise UsageError(f"{args.inventory}: no hosts in this inventory; a site needs one")
    imported = import_inventory(inventory, args.inventory, args.server_version)
    text = site_text(imported, args.inventory)
    # What is printed must validate: an inventory value the site refuses (a user name with
    # a space) is said here, at its line of the would-be site file, not at its first use.
    parse_site(text, f"{args.inventory} (as a site file)")
    if args.json:
        io.json({"site": text, "warnings": list(imported.warnings)})
        return EXIT_OK
    io.out.write(text)
    for warning in imported.warnings:
        io.error(f"warning: {warning}")
    return EXIT_OK
