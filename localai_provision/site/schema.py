"""The site schema (schemas/site.schema.json) and the translation of its errors into plain words.

jsonschema finds every error; this module decides where each one points (the key for an
unknown or misspelt key, the value for a wrong value) and says it the way a person would.
"""

from __future__ import annotations

import difflib
import json
from functools import cache
from importlib import resources
from pathlib import Path as FsPath
from typing import Any

import jsonschema
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

from localai_provision.errors import Problem
from localai_provision.site.yamlread import Document, Path

SCHEMA_NAME = "site.schema.json"


def schema_path() -> FsPath:
    """Where the schema file is: inside the installed package, else the source checkout's."""
    packaged = resources.files("localai_provision") / "schemas" / SCHEMA_NAME
    if packaged.is_file():
        return FsPath(str(packaged))
    # An editable install runs from the checkout, where schemas/ sits beside the package.
    return FsPath(__file__).resolve().parents[2] / "schemas" / SCHEMA_NAME


@cache
def load_schema() -> dict[str, Any]:
    with open(schema_path(), encoding="utf-8") as f:
        schema: dict[str, Any] = json.load(f)
    return schema


@cache
def validator() -> Draft202012Validator:
    return Draft202012Validator(load_schema())


def _resolve(schema: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        target: dict[str, Any] = load_schema()["$defs"][ref.split("/")[-1]]
        return target
    return schema


def _known_properties(schema: dict[str, Any]) -> list[str]:
    """Every key a mapping validated by ``schema`` may have, following $ref (one level deep)."""
    names: list[str] = list(schema.get("properties", {}))
    if "$ref" in schema:
        names += _known_properties(_resolve(schema))
    return names


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


_TYPE_WORDS = {
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "true or false",
    "object": "a mapping",
    "array": "a list",
    "null": "null",
}


def _show(value: Any) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= 60 else text[:57] + "..."


def problems_from_schema(doc: Document) -> list[Problem]:
    problems: list[Problem] = []
    for error in validator().iter_errors(doc.data):
        problems.extend(_translate(doc, error))
    # The same location can fail through two routes (anyOf branches); report it once.
    return sorted(set(problems))


def _translate(doc: Document, error: ValidationError) -> list[Problem]:
    path: Path = tuple(error.absolute_path)
    schema = error.schema if isinstance(error.schema, dict) else {}
    kind = str(error.validator)
    value: Any = error.instance
    expected: Any = error.validator_value

    if "propertyNames" in error.relative_schema_path and kind != "propertyNames":
        # jsonschema reports a bad key with the mapping's path; point at the key itself.
        reason = schema.get("x-error") or error.message
        return [doc.problem((*path, str(value)), f"bad name `{value}`: {reason}", key=True)]

    if kind in ("unevaluatedProperties", "additionalProperties") and isinstance(value, dict):
        allowed = _known_properties(schema)
        problems = []
        for key in value:
            if key in allowed:
                continue
            hint = difflib.get_close_matches(str(key), allowed, n=1, cutoff=0.6)
            suggestion = (
                f"; did you mean `{hint[0]}`?"
                if hint
                else (f"; allowed here: {', '.join(sorted(allowed))}" if allowed else "")
            )
            problems.append(
                doc.problem((*path, str(key)), f"unknown key `{key}`{suggestion}", key=True)
            )
        return problems
    if kind == "required":
        missing = [k for k in expected if k not in value]
        where = "the file needs" if not path else "needs"
        return [doc.problem(path, f"{where} the key `{k}`") for k in missing]
    if kind == "propertyNames":
        # The failing name is the instance of a sub-error; point at that key.
        bad = [e.instance for e in error.context] or [value]
        problems = []
        for name in bad:
            sub = next((e for e in error.context if e.instance == name), None)
            sub_schema = _resolve(sub.schema) if sub and isinstance(sub.schema, dict) else {}
            reason = sub_schema.get("x-error") or (sub.message if sub else "is not allowed")
            problems.append(
                doc.problem((*path, str(name)), f"bad name `{name}`: {reason}", key=True)
            )
        return problems
    if kind in ("anyOf", "oneOf"):
        # Report the branch that matches the value's type, so a mapping gets the mapping's
        # errors rather than "is not valid under any of the given schemas".
        branches: dict[int, list[ValidationError]] = {}
        for sub in error.context:
            branches.setdefault(sub.relative_schema_path[0], []).append(sub)  # type: ignore[arg-type]
        for subs in branches.values():
            if not any(s.validator == "type" and not s.relative_path for s in subs):
                return [p for s in subs for p in _translate(doc, s)]
        return [
            doc.problem(
                path,
                f"{_show(value)} is neither a model id nor a model mapping "
                "(`id`, `revision`, `prewarm`, `source`)",
            )
        ]
    if kind == "pattern" and schema.get("x-error"):
        return [doc.problem(path, f"{_show(value)}: {schema['x-error']}")]
    if kind == "type":
        wanted_list: list[str] = expected if isinstance(expected, list) else [expected]
        words = " or ".join(_TYPE_WORDS.get(w, w) for w in wanted_list)
        got = "null" if value is None else f"{_json_type(value)} {_show(value)}"
        return [doc.problem(path, f"expected {words}, got {got}")]
    if kind == "enum" and isinstance(value, bool) and ("off" in expected or "on" in expected):
        word = "off" if not value else "on"
        return [
            doc.problem(
                path,
                f'YAML reads an unquoted {word} as {str(value).lower()}; write "{word}" in quotes',
            )
        ]
    if kind == "enum":
        options = ", ".join(str(v) for v in expected)
        return [doc.problem(path, f"{_show(value)} is not one of: {options}")]
    if kind == "const":
        return [
            doc.problem(
                path,
                f"{_show(value)} is not supported; the only value is {_show(expected)}",
            )
        ]
    if kind == "maximum":
        return [doc.problem(path, f"{value} is above the maximum {expected}")]
    if kind == "minimum":
        return [doc.problem(path, f"{value} is below the minimum {expected}")]
    if kind == "exclusiveMinimum":
        return [doc.problem(path, f"{value} must be greater than {expected}")]
    if kind == "minProperties":
        return [doc.problem(path, "needs at least one entry")]
    if kind == "minLength":
        return [doc.problem(path, "may not be empty")]
    if kind == "maxLength":
        return [doc.problem(path, f"is longer than {expected} characters")]
    if kind == "uniqueItems":
        return [doc.problem(path, f"{_show(value)} lists an item twice")]
    return [doc.problem(path, error.message)]


def check_schema() -> None:
    """Raise if the schema itself is not a valid 2020-12 schema (used by tests)."""
    Draft202012Validator.check_schema(load_schema())


__all__ = ["check_schema", "jsonschema", "load_schema", "problems_from_schema", "schema_path"]
