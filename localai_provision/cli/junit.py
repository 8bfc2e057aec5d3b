"""`drift --junit FILE`: one test case per host, for any CI or dashboard."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from localai_provision.cli.render import clean, count
from localai_provision.fleet import DRIFT, IN_SYNC, HostResult


def xml_text(text: str) -> str:
    """``text`` as XML 1.0 may hold it: the characters XML forbids (controls but tab, newline
    and carriage return; lone surrogates; U+FFFE, U+FFFF) would make the file unreadable,
    so they are shown escaped like everything else a host sends (clean)."""
    cleaned = clean(text)
    return "".join(
        ch
        if ch in "\t\n"
        or ("\x20" <= ch <= "\ud7ff")
        or ("\ue000" <= ch <= "\ufffd")
        or ch > "\uffff"
        else f"\\u{ord(ch):04x}"
        for ch in cleaned
    )


def write_junit(path: Path, results: Sequence[HostResult]) -> None:
    """One test case per host, so any CI or dashboard can show the fleet's state. Every
    text in it passes xml_text: a host's output could otherwise make it invalid XML."""
    from xml.etree import ElementTree as ET

    failures = sum(1 for r in results if r.status == DRIFT)
    errors = sum(1 for r in results if r.failed)
    suite = ET.Element(
        "testsuite",
        name="localai drift",
        tests=str(len(results)),
        failures=str(failures),
        errors=str(errors),
        time=f"{max((r.elapsed_ms for r in results), default=0) / 1000:.3f}",
    )
    for r in results:
        case = ET.SubElement(
            suite,
            "testcase",
            classname="localai.drift",
            name=xml_text(r.name),
            time=f"{r.elapsed_ms / 1000:.3f}",
        )
        if r.status == DRIFT:
            failure = ET.SubElement(
                case,
                "failure",
                message=f"{count(len(r.changes), 'difference')}",
                type="drift",
            )
            failure.text = xml_text("\n".join(f"{c.resource}: {c.reason}" for c in r.changes))
        elif r.failed and r.error:
            error = ET.SubElement(
                case, "error", message=xml_text(clean(r.error.message, True)), type=r.status
            )
            error.text = xml_text(str(r.error))
        assert r.status in (DRIFT, IN_SYNC) or r.failed
    tree = ET.ElementTree(suite)
    ET.indent(tree)
    tmp = path.with_name(f".{path.name}.tmp")
    tree.write(tmp, encoding="utf-8", xml_declaration=True)
    tmp.replace(path)
