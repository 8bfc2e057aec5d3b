"""The site schema (schemas/site.schema.json) and the translation of its errors into plain words.

jsonschema finds every error; this module decides where each one points (the key for an
unknown or misspelt key, the value for a wrong value) and says it the way a person would.

Three keywords are checked more strictly than JSON Schema's defaults, for every key of the
schema at once (so a pattern or an integer added later is covered without thinking of it):

- `pattern` must match the whole string. jsonschema uses `re.search`, and Python's `$` also
  matches before a final newline: `prefix: "~\n"` passed `^(~|...)$` and the venv was written
  into the controller's working folder.
- `integer` is an int, never a float: JSON Schema counts 11000.0 as an integer, and the server
  was started with `--port 11000.0`. `number` is finite: `.nan` passes every comparison.
- `const` and `enum` compare types too: `version: 1.0` is not `version: 1`.

One keyword is ours: `x-dedicated-folder` (on `prefix` and `hf_home`) lists the folders
localai must never take as its own (`/`, `~`, /usr, /Users/NAME...), in the schema itself.
"""

from __future__ import annotations

import difflib
import json
import math
import re
from collections.abc import Iterator
from functools import cache
from importlib import resources
from pathlib import Path as FsPath
from typing import Any

import jsonschema
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError
from jsonschema.protocols import Validator

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
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def _pattern(validator: Validator, pattern: str, instance: Any, schema: Any) -> Iterator[Any]:
    if isinstance(instance, str) and not _compiled(pattern).fullmatch(instance):
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


def _same(a: Any, b: Any) -> bool:
    """Equal and of the same type: the schema's consts and enums are strings and ints, and
    YAML's 1.0 or true must not stand for them."""
    return type(a) is type(b) and bool(a == b)


def _const(validator: Validator, const: Any, instance: Any, schema: Any) -> Iterator[Any]:
    if not _same(instance, const):
        yield ValidationError(f"{const!r} was expected")


def _enum(validator: Validator, enums: Any, instance: Any, schema: Any) -> Iterator[Any]:
    if not any(_same(instance, each) for each in enums):
        yield ValidationError(f"{instance!r} is not one of {enums!r}")


def _folder_key(path: str) -> str:
    """How two spellings of one folder compare: `//` and a trailing `/` dropped, and letter
    case ignored (macOS's disks ignore it: /users/Alice is /Users/alice)."""
    parts = [p for p in path.split("/") if p]
    if path.startswith("/"):
        return ("/" + "/".join(parts)).lower()
    return "/".join(parts).lower()


def _dedicated_folder(
    validator: Validator, rule: dict[str, Any], instance: Any, schema: Any
) -> Iterator[Any]:
    """`x-dedicated-folder` (ours, on `prefix` and `hf_home`): refuse the root, the home folder
    and folders other programs share, listed in the schema itself."""
    if not isinstance(instance, str) or not instance.strip():
        return
    key = _folder_key(instance)
    parent = key.rpartition("/")[0] or ("/" if key.startswith("/") and key != "/" else None)
    folders = {_folder_key(f) for f in rule.get("folders", ())}
    parents = {_folder_key(f) for f in rule.get("parents", ())}
    if key in folders or (parent is not None and parent in parents):
        yield ValidationError(f"{instance!r} is not a dedicated folder")


def _is_integer(checker: Any, instance: Any) -> bool:
    return isinstance(instance, int) and not isinstance(instance, bool)


def _is_number(checker: Any, instance: Any) -> bool:
    if isinstance(instance, bool):
        return False
    return isinstance(instance, int) or (isinstance(instance, float) and math.isfinite(instance))


_StrictValidator = jsonschema.validators.extend(  # type: ignore[no-untyped-call]
    Draft202012Validator,
    validators={
        "pattern": _pattern,
        "const": _const,
        "enum": _enum,
        "x-dedicated-folder": _dedicated_folder,
    },
    type_checker=Draft202012Validator.TYPE_CHECKER.redefine_many(
        {"integer": _is_integer, "number": _is_number}
    ),
)


@cache
def validator() -> Validator:
    return _StrictValidator(load_schema())  # type: ignore[no-any-return]


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


_NOT_FINITE = (
    "`.nan` and `.inf` are not numbers a setting can use; write a plain number "
    "(or put the value in quotes if you mean the text)"
)


def _not_finite(value: Any) -> bool:
    return isinstance(value, float) and not math.isfinite(value)


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
        if _not_finite(value):
            return [doc.problem(path, _NOT_FINITE)]
        reason = schema.get("x-error") or "is not any of the kinds of value allowed here"
        return [doc.problem(path, f"{_show(value)} {reason}")]
    if kind == "x-dedicated-folder":
        return [doc.problem(path, f"{_show(value)} {expected['x-error']}")]
    if kind == "pattern" and schema.get("x-error"):
        return [doc.problem(path, f"{_show(value)}: {schema['x-error']}")]
    if kind == "type":
        wanted_list: list[str] = expected if isinstance(expected, list) else [expected]
        if _not_finite(value) and "number" in wanted_list:
            return [doc.problem(path, _NOT_FINITE)]
        words = " or ".join(_TYPE_WORDS.get(w, w) for w in wanted_list)
        got = "null" if value is None else f"{_json_type(value)} {_show(value)}"
        advice = ""
        if isinstance(value, float) and "integer" in wanted_list:
            advice = "; write a whole number without a decimal point"
        return [doc.problem(path, f"expected {words}, got {got}{advice}")]
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
