"""Where the site schema file is (apart from schema.py, which imports jsonschema)."""

from __future__ import annotations

from pathlib import Path as FsPath

SCHEMA_NAME = "site.schema.json"


def schema_path() -> FsPath:
    """Where the schema file is: inside the installed package, else the source checkout's."""
    # A path from __file__, not importlib.resources.files(): that imports zipfile, 5.8 ms of
    # every drift's start-up, for a package that is never installed zipped.
    packaged = FsPath(__file__).parents[1] / "schemas" / SCHEMA_NAME
    if packaged.is_file():
        return packaged
    # An editable install runs from the checkout, where schemas/ sits beside the package.
    return FsPath(__file__).resolve().parents[2] / "schemas" / SCHEMA_NAME
