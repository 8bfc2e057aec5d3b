"""Where the site schema file is (apart from schema.py, which imports jsonschema)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path as FsPath

SCHEMA_NAME = "site.schema.json"


def schema_path() -> FsPath:
    """Where the schema file is: inside the installed package, else the source checkout's."""
    packaged = resources.files("localai_provision") / "schemas" / SCHEMA_NAME
    if packaged.is_file():
        return FsPath(str(packaged))
    # An editable install runs from the checkout, where schemas/ sits beside the package.
    return FsPath(__file__).resolve().parents[2] / "schemas" / SCHEMA_NAME
