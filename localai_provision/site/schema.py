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
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache
from typing import Any

import jsonschema
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError
from jsonschema.protocols import Validator

from localai_provision.errors import Problem
from localai_provision.site.document import Document, Path
from localai_provision.site.schema_path import SCHEMA_NAME, schema_path  # noqa: F401


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


@dataclass(frozen=True)
class _Failure:
    """One schema error, with what every message builder reads from it."""

    doc: Document
    error: ValidationError
    path: Path
    schema: dict[str, Any]
    value: Any
    expected: Any

    def at(self, message: str) -> list[Problem]:
        return [self.doc.problem(self.path, message)]


def _translate(doc: Document, error: ValidationError) -> list[Problem]:
    failure = _Failure(
        doc=doc,
        error=error,
        path=tuple(error.absolute_path),
        schema=error.schema if isinstance(error.schema, dict) else {},
        value=error.instance,
        expected=error.validator_value,
    )
    kind = str(error.validator)
    if "propertyNames" in error.relative_schema_path and kind != "propertyNames":
        return _bad_key_name(failure)
    build = _MESSAGES.get(kind)
    problems = build(failure) if build is not None else None
    # A builder that has nothing better to say (None) leaves jsonschema's own words.
    return problems if problems is not None else failure.at(error.message)


def _bad_key_name(f: _Failure) -> list[Problem]:
    # jsonschema reports a bad key with the mapping's path; point at the key itself.
    reason = f.schema.get("x-error") or f.error.message
    return [f.doc.problem((*f.path, str(f.value)), f"bad name `{f.value}`: {reason}", key=True)]


def _unknown_keys(f: _Failure) -> list[Problem] | None:
    if not isinstance(f.value, dict):
        return None
    allowed = _known_properties(f.schema)
    problems = []
    for key in f.value:
        if key in allowed:
            continue
        hint = difflib.get_close_matches(str(key), allowed, n=1, cutoff=0.6)
        suggestion = (
            f"; did you mean `{hint[0]}`?"
            if hint
            else (f"; allowed here: {', '.join(sorted(allowed))}" if allowed else "")
        )
        problems.append(
            f.doc.problem((*f.path, str(key)), f"unknown key `{key}`{suggestion}", key=True)
        )
    return problems


def _missing_keys(f: _Failure) -> list[Problem]:
    missing = [k for k in f.expected if k not in f.value]
    where = "the file needs" if not f.path else "needs"
    return [f.doc.problem(f.path, f"{where} the key `{k}`") for k in missing]


def _bad_names(f: _Failure) -> list[Problem]:
    # The failing name is the instance of a sub-error; point at that key.
    context = f.error.context
    bad = [e.instance for e in context] or [f.value]
    problems = []
    for name in bad:
        sub = next((e for e in context if e.instance == name), None)
        sub_schema = _resolve(sub.schema) if sub and isinstance(sub.schema, dict) else {}
        reason = sub_schema.get("x-error") or (sub.message if sub else "is not allowed")
        problems.append(
            f.doc.problem((*f.path, str(name)), f"bad name `{name}`: {reason}", key=True)
        )
    return problems


def _no_branch(f: _Failure) -> list[Problem]:
    # Report the branch that matches the value's type, so a mapping gets the mapping's
    # errors rather than "is not valid under any of the given schemas".
    branches: dict[int, list[ValidationError]] = {}
    for sub in f.error.context:
        branches.setdefault(sub.relative_schema_path[0], []).append(sub)  # type: ignore[arg-type]
    for subs in branches.values():
        if not any(s.validator == "type" and not s.relative_path for s in subs):
            return [p for s in subs for p in _translate(f.doc, s)]
    if _not_finite(f.value):
        return f.at(_NOT_FINITE)
    reason = f.schema.get("x-error") or "is not any of the kinds of value allowed here"
    return f.at(f"{_show(f.value)} {reason}")


def _bound(f: _Failure, text: str) -> str:
    """A bound's message, with the key's own words (`x-error`) when the schema has them."""
    words = f.schema.get("x-error")
    return f"{text}: {words}" if words else text


def _pattern_explained(f: _Failure) -> list[Problem] | None:
    if not f.schema.get("x-error"):
        return None
    return f.at(f"{_show(f.value)}: {f.schema['x-error']}")


def _wrong_type(f: _Failure) -> list[Problem]:
    wanted_list: list[str] = f.expected if isinstance(f.expected, list) else [f.expected]
    if _not_finite(f.value) and "number" in wanted_list:
        return f.at(_NOT_FINITE)
    words = " or ".join(_TYPE_WORDS.get(w, w) for w in wanted_list)
    got = "null" if f.value is None else f"{_json_type(f.value)} {_show(f.value)}"
    advice = ""
    if isinstance(f.value, float) and "integer" in wanted_list:
        advice = "; write a whole number without a decimal point"
    return f.at(f"expected {words}, got {got}{advice}")


def _not_one_of(f: _Failure) -> list[Problem]:
    value, expected = f.value, f.expected
    if isinstance(value, bool) and ("off" in expected or "on" in expected):
        word = "off" if not value else "on"
        return f.at(
            f'YAML reads an unquoted {word} as {str(value).lower()}; write "{word}" in quotes'
        )
    options = ", ".join(str(v) for v in expected)
    return f.at(f"{_show(value)} is not one of: {options}")


# How each failed keyword is said; None from a builder: jsonschema's own message.
_MESSAGES: dict[str, Callable[[_Failure], list[Problem] | None]] = {
    "unevaluatedProperties": _unknown_keys,
    "additionalProperties": _unknown_keys,
    "required": _missing_keys,
    "propertyNames": _bad_names,
    "anyOf": _no_branch,
    "oneOf": _no_branch,
    "x-dedicated-folder": lambda f: f.at(f"{_show(f.value)} {f.expected['x-error']}"),
    "pattern": _pattern_explained,
    "type": _wrong_type,
    "enum": _not_one_of,
    "const": lambda f: f.at(
        f"{_show(f.value)} is not supported; the only value is {_show(f.expected)}"
    ),
    "maximum": lambda f: f.at(_bound(f, f"{f.value} is above the maximum {f.expected}")),
    "minimum": lambda f: f.at(_bound(f, f"{f.value} is below the minimum {f.expected}")),
    "exclusiveMinimum": lambda f: f.at(f"{f.value} must be greater than {f.expected}"),
    "minProperties": lambda f: f.at("needs at least one entry"),
    "minLength": lambda f: f.at("may not be empty"),
    "maxLength": lambda f: f.at(f"is longer than {f.expected} characters"),
    "uniqueItems": lambda f: f.at(f"{_show(f.value)} lists an item twice"),
}


def check_schema() -> None:
    """Raise if the schema itself is not a valid 2020-12 schema (used by tests)."""
    Draft202012Validator.check_schema(load_schema())


__all__ = ["check_schema", "jsonschema", "load_schema", "problems_from_schema", "schema_path"]
