"""Every value that reaches a remote shell arrives as one literal argument (hostile input).

A property test on a real /bin/sh: shell metacharacters, quotes, newlines, unicode, leading
dashes and long values, through the command builders the tool uses.
"""

from __future__ import annotations

import os
import subprocess

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from localai_provision import shell
from tests.support.examples import examples
from tests.support.reliability import count_example

# Each value fed through a builder counts as a hostile input tried (bench/faults.py).
pytestmark = pytest.mark.hostile

# NUL cannot be in an argument at all; everything else can.
values = st.text(
    st.characters(exclude_characters="\x00", exclude_categories=("Cs",)), max_size=200
)  # surrogates cannot be encoded at all (nor come from YAML)
hostile = st.one_of(
    values,
    st.sampled_from(
        [
            "; rm -rf /",
            "$(touch /tmp/pwned)",
            "`id`",
            "a'b\"c",
            "-rf",
            "--help",
            "\n",
            "*",
            "~",
            "~root",
            "$HOME",
            "a\\",
            "${IFS}",
            "x" * 5000,
            "ünï©ødé",
            "'",
            '"',
        ]
    ),
)


def run_sh(command: str) -> list[str]:
    out = subprocess.run(
        ["/bin/sh", "-c", command],
        capture_output=True,
        check=True,
        env={"PATH": os.environ["PATH"], "HOME": "/home/test"},
    ).stdout
    return out.decode("utf-8", "surrogateescape").split("\0")[:-1]


@settings(max_examples=examples(300), deadline=None)
@given(st.lists(hostile, min_size=1, max_size=5))
def test_join_delivers_each_value_as_one_literal_argument(args: list[str]) -> None:
    command = shell.join(["printf", "%s\\0", *args])
    assert run_sh(command) == args
    for _ in args:
        count_example("test_join_delivers_each_value_as_one_literal_argument")


@settings(max_examples=examples(200), deadline=None)
@given(hostile)
def test_path_word_expands_only_a_leading_home(value: str) -> None:
    path = "~/" + value
    [got] = run_sh("printf '%s\\0' " + shell.path_word(path))
    assert got == "/home/test/" + value
    [got] = run_sh("printf '%s\\0' " + shell.path_word(value))
    # A bare ~ is the home itself, and a value that itself starts with ~/ is a home path too
    # (hypothesis found "~/"); anything else stays literal.
    expected = "/home/test" + value[1:] if value == "~" or value.startswith("~/") else value
    assert got == expected
    count_example("test_path_word_expands_only_a_leading_home")


@settings(max_examples=examples(100), deadline=None)
@given(hostile, hostile)
def test_environment_assignments_stay_literal(name_value: str, other: str) -> None:
    command = f"X={shell.quote(name_value)} Y={shell.quote(other)} " + shell.join(
        ["sh", "-c", 'printf "%s\\0%s\\0" "$X" "$Y"']
    )
    assert run_sh(command) == [name_value, other]
    count_example("test_environment_assignments_stay_literal")
    count_example("test_environment_assignments_stay_literal")
