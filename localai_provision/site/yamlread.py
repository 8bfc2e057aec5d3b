"""Safe YAML reading that remembers where every key and value came from.

PyYAML's ``safe_load`` forgets positions and silently keeps the last of two equal keys. We
compose the node tree instead (no object construction, so no code runs) and turn it into plain
Python values ourselves, recording the position of every key and value by its path. That lets
every later error point at a line, and lets us refuse what safe_load would accept quietly:
repeated keys, unknown tags, and alias bombs.
"""

from __future__ import annotations

import dataclasses
import datetime
import re
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from localai_provision.errors import Problem
from localai_provision.site.document import MAX_FILE_BYTES, Document, Mark, Path, dotted

# A realistic site file has a few thousand nodes; 500 hosts about 20 000. An alias bomb
# ("billion laughs") reuses one node exponentially often; counting visits while we walk stops
# it after this many, long before the expansion would be built.
MAX_NODES = 200_000
MAX_DEPTH = 64

# libyaml's parser is several times faster and keeps marks; PyYAML may be built without it.
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

_STANDARD_TAGS = {
    "tag:yaml.org,2002:str",
    "tag:yaml.org,2002:int",
    "tag:yaml.org,2002:float",
    "tag:yaml.org,2002:bool",
    "tag:yaml.org,2002:null",
    "tag:yaml.org,2002:timestamp",
    "tag:yaml.org,2002:map",
    "tag:yaml.org,2002:seq",
    "tag:yaml.org,2002:merge",
}

_COLLECTION_TAGS = {"tag:yaml.org,2002:map", "tag:yaml.org,2002:seq", "tag:yaml.org,2002:merge"}


class _TooBig(Exception):
    pass


def _expanded_size(node: Node, memo: dict[int, int]) -> int:
    """How many values the tree would have with every alias written out, without building it.

    Aliases make the composed tree a DAG, so memoising by node identity keeps this linear in
    the size of the file even when the expansion is exponential.
    """
    known = memo.get(id(node))
    if known is not None:
        return known
    size = 1
    if isinstance(node, SequenceNode):
        for child in node.value:
            size += _expanded_size(child, memo)
            if size > MAX_NODES:
                raise _TooBig
    elif isinstance(node, MappingNode):
        for key_node, value_node in node.value:
            size += _expanded_size(key_node, memo) + _expanded_size(value_node, memo)
            if size > MAX_NODES:
                raise _TooBig
    memo[id(node)] = size
    return size


class _Refused(Exception):
    """A scalar that cannot be read; the problem is already recorded."""


class _Builder:
    def __init__(self, file: str) -> None:
        self.doc = Document(file=file, data=None)
        self.problems: list[Problem] = []
        self.visited = 0
        self._scalars = yaml.constructor.SafeConstructor()

    def _mark(self, node: Node) -> Mark:
        return Mark(node.start_mark.line + 1, node.start_mark.column + 1)

    def _problem(self, node: Node, path: Path, message: str) -> None:
        mark = self._mark(node)
        self.problems.append(Problem(self.doc.file, mark.line, mark.column, message, dotted(path)))

    def build(self, node: Node, path: Path, depth: int = 0) -> Any:
        self.visited += 1
        if self.visited > MAX_NODES:
            raise _TooBig
        if depth > MAX_DEPTH:
            self._problem(node, path, f"nesting deeper than {MAX_DEPTH} levels; flatten the file")
            return None
        self.doc.value_marks.setdefault(path, self._mark(node))
        if node.tag not in _STANDARD_TAGS:
            self._problem(node, path, f"YAML tag {node.tag!r} is not allowed; use plain values")
            return None
        if isinstance(node, ScalarNode):
            try:
                return self._scalar(node, path)
            except _Refused:
                return None
        if isinstance(node, SequenceNode):
            return [self.build(item, (*path, i), depth + 1) for i, item in enumerate(node.value)]
        if isinstance(node, MappingNode):
            return self._mapping(node, path, depth)
        return None  # pragma: no cover - PyYAML has no other node kinds

    def _scalar(self, node: ScalarNode, path: Path) -> Any:
        if node.tag == "tag:yaml.org,2002:timestamp":
            # A date in a site file is a string to us (for example a revision name).
            return str(node.value)
        try:
            if node.tag in _COLLECTION_TAGS:
                # PyYAML would build an empty one and never look at the text.
                raise ValueError(node.tag)
            value = self._scalars.construct_object(node)
        except (yaml.YAMLError, ValueError, KeyError, TypeError, OverflowError):
            # A standard tag on a value it cannot take (`!!int abc`, `!!bool maybe`, `!!map x`),
            # or an integer of thousands of digits.
            kind = node.tag.rsplit(":", 1)[-1]
            self._problem(
                node,
                path,
                f"{_show_text(node.value)} cannot be read as {kind}; "
                "write a plain value, without a `!!` tag",
            )
            raise _Refused from None
        if isinstance(value, (datetime.date, bytes)):
            return str(node.value)
        return value

    def _mapping(self, node: MappingNode, path: Path, depth: int) -> dict[Any, Any]:
        result: dict[Any, Any] = {}
        explicit: set[Any] = set()
        merged: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                merged.update(self._merge_sources(value_node, path, depth))
                continue
            if not isinstance(key_node, ScalarNode):
                self._problem(key_node, path, "a key must be a plain value, not a list or mapping")
                continue
            self.visited += 1
            written = str(key_node.value)
            if key_node.tag not in _STANDARD_TAGS:
                self._problem(
                    key_node,
                    (*path, written),
                    f"YAML tag {key_node.tag!r} is not allowed on a key; write the key plainly",
                )
                continue
            try:
                key = self._scalar(key_node, (*path, written))
            except _Refused:
                continue
            if not isinstance(key, str):
                # Every key of a site file is a name. YAML 1.1 reads `on:`, `yes:` or `1:` as
                # true or a number, which would then be compared, sorted and printed as Python
                # values (`True`); refuse it, spelled as in the file, and keep the key as written
                # so that the rest of the mapping is still checked.
                self._problem(
                    key_node,
                    (*path, written),
                    f"key `{written}` is read by YAML as {_yaml_kind(key)}, not as a name; "
                    f"put it in quotes: '{written}':",
                )
                key = written
            key_path = (*path, key)
            if key in explicit:
                first = self.doc.key_marks.get(key_path)
                where = f" (first at line {first.line})" if first else ""
                self._problem(
                    key_node, key_path, f"key `{written}` is repeated{where}; keep only one"
                )
                continue
            explicit.add(key)
            self.doc.key_marks[key_path] = self._mark(key_node)
            result[key] = self.build(value_node, key_path, depth + 1)
        for key, value in merged.items():
            result.setdefault(key, value)
        return result

    def _merge_sources(self, node: Node, path: Path, depth: int) -> dict[Any, Any]:
        """`<<: *anchor` or `<<: [*a, *b]`: earlier sources win, as YAML specifies."""
        sources = node.value if isinstance(node, SequenceNode) else [node]
        merged: dict[Any, Any] = {}
        for source in sources:
            if not isinstance(source, MappingNode):
                self._problem(source, path, "`<<` merges only mappings")
                continue
            for key, value in self._mapping(source, path, depth + 1).items():
                merged.setdefault(key, value)
        return merged


def _show_text(text: str) -> str:
    return repr(text) if len(text) <= 40 else repr(text[:37] + "...")


def _yaml_kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"a boolean ({str(value).lower()})"
    return f"a number ({value})"


# YAML 1.1 (and so PyYAML) ends a line at NEL, LINE SEPARATOR, PARAGRAPH SEPARATOR and a lone
# carriage return; editors and `grep -n` count only \n (a lone \r shows as ^M in vim). In a
# comment such a character hides what follows from the reader's eye while YAML reads it as a
# line of the file, and every later line number would be off by one. Refused anywhere in the
# file, so that every position we report is the one an editor shows.
_HIDDEN_BREAK = re.compile("[\x85\u2028\u2029]|\r(?!\n)")
_BREAK_NAMES = {
    "\x85": "NEXT LINE",
    "\u2028": "LINE SEPARATOR",
    "\u2029": "PARAGRAPH SEPARATOR",
    "\r": "CARRIAGE RETURN, without a \\n after it,",
}


def _position(text: str, offset: int) -> tuple[int, int]:
    """1-based line and column of ``offset``, lines counted by \n as editors do."""
    before = text[:offset]
    return before.count("\n") + 1, offset - (before.rfind("\n") + 1) + 1


def _hidden_break(text: str, file: str) -> Problem | None:
    found = _HIDDEN_BREAK.search(text)
    if found is None:
        return None
    char = found.group()
    line, col = _position(text, found.start())
    return Problem(
        file,
        line,
        col,
        f"character U+{ord(char):04X} ({_BREAK_NAMES[char]}) is not allowed: YAML reads it "
        "as the end of a line but editors do not; remove it (end lines with \\n)",
    )


# (values, depth) each kind of event adds.
_EVENT_STEPS: dict[type, tuple[int, int]] = {
    yaml.ScalarEvent: (1, 0),
    yaml.AliasEvent: (1, 0),
    yaml.SequenceStartEvent: (1, 1),
    yaml.MappingStartEvent: (1, 1),
    yaml.SequenceEndEvent: (0, -1),
    yaml.MappingEndEvent: (0, -1),
}


def _count_nodes(text: str, file: str) -> Problem | None:
    """Refuse a file with too many values, or nested too deep, from its events alone.

    Composing builds every node before anything can be counted: a flat list of 4 million
    items (8 MiB of `1,`) cost tens of seconds and a gigabyte before it was refused. The
    events stream by one at a time, so this stops after MAX_NODES of them, in a fraction of a
    second, and names the line where the limit was reached.
    """
    count = depth = 0
    for event in yaml.parse(text, Loader=_LOADER):
        step = _EVENT_STEPS.get(type(event))
        if step is None:
            continue  # stream and document events
        count += step[0]
        depth += step[1]
        if count > MAX_NODES or depth > MAX_DEPTH + 1:
            mark = event.start_mark
            message = (
                f"the file has more than {MAX_NODES} values; a site file this large is "
                "almost certainly not one (500 hosts are about 20 000)"
                if count > MAX_NODES
                else f"nesting deeper than {MAX_DEPTH} levels; flatten the file"
            )
            line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
            return Problem(file, line, col, message)
    return None


def _within_file(text: str, problems: list[Problem]) -> list[Problem]:
    """Positions past the end (a syntax error at the end of the file is marked on the line
    after the last \n, or past a last line without one) point at the end of the last line."""
    lines = text.split("\n")
    if len(lines) > 1 and lines[-1] == "":
        lines.pop()  # the \n that ends the last line does not start another
    fixed = []
    for problem in problems:
        line, column = problem.line, problem.column
        if line > len(lines):
            line, column = len(lines), len(lines[-1]) + 1
        column = min(column, len(lines[line - 1]) + 1)
        fixed.append(dataclasses.replace(problem, line=line, column=column))
    return fixed


def read_yaml(text: str, file: str) -> tuple[Document, list[Problem]]:
    """Parse ``text`` into a Document. Never raises for bad input; returns the problems."""
    doc, problems = _read_yaml(text, file)
    return doc, _within_file(text, problems)


def _read_yaml(text: str, file: str) -> tuple[Document, list[Problem]]:
    builder = _Builder(file)
    refused = _refuse_text(text, file)
    if refused is not None:
        return builder.doc, [refused]
    nodes, refused = _compose(text, file)
    if refused is not None:
        return builder.doc, [refused]
    refused = _one_document(nodes, file)
    if refused is not None:
        return builder.doc, [refused]
    try:
        _expanded_size(nodes[0], {})
        builder.doc.data = builder.build(nodes[0], ())
    except _TooBig:
        return builder.doc, [
            Problem(
                file,
                1,
                1,
                f"the file expands to more than {MAX_NODES} values "
                "(aliases repeated too often); write it out without nested aliases",
            )
        ]
    except RecursionError:
        return builder.doc, [Problem(file, 1, 1, "nesting too deep to read; flatten the file")]
    return builder.doc, builder.problems


def _refuse_text(text: str, file: str) -> Problem | None:
    """What is refused before YAML reads a character: size, and hidden line breaks."""
    if len(text.encode("utf-8", "surrogatepass")) > MAX_FILE_BYTES:
        return Problem(
            file,
            1,
            1,
            f"the file is larger than {MAX_FILE_BYTES // 2**20} MiB; "
            "a site file this size is almost certainly not one",
        )
    return _hidden_break(text, file)


def _compose(text: str, file: str) -> tuple[list[Node], Problem | None]:
    """The documents' node trees, once the events show the file is not too large or deep."""
    try:
        too_many = _count_nodes(text, file)
        if too_many is not None:
            return [], too_many
        nodes = list(yaml.compose_all(text, Loader=_LOADER))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        message = f"YAML syntax: {exc.problem or exc.context}"
        if exc.context and exc.problem:
            message = f"YAML syntax: {exc.problem} ({exc.context})"
        return [], Problem(file, line, col, message)
    except yaml.reader.ReaderError as exc:
        line, col = _position(text, exc.position)
        code = exc.character if isinstance(exc.character, int) else ord(exc.character)
        return [], Problem(
            file,
            line,
            col,
            f"character U+{code:04X} is not allowed in YAML; "
            "remove it or write it as an escape inside double quotes",
        )
    except yaml.YAMLError as exc:
        return [], Problem(file, 1, 1, f"YAML: {exc}")
    except RecursionError:
        return [], Problem(file, 1, 1, "nesting too deep to read; flatten the file")
    return [n for n in nodes if n is not None], None


def _one_document(nodes: list[Node], file: str) -> Problem | None:
    if not nodes:
        return Problem(
            file, 1, 1, "the file is empty; a site needs at least `version: 1` and `hosts:`"
        )
    if len(nodes) > 1:
        mark = nodes[1].start_mark
        return Problem(
            file,
            mark.line + 1,
            mark.column + 1,
            "the file holds more than one YAML document (`---`); keep one site per file",
        )
    return None
