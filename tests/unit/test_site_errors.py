"""A table of bad site files, each with the line (and words) its error must name."""

from __future__ import annotations

import textwrap

import pytest

from localai_provision.errors import SiteError
from localai_provision.site import parse_site

GOOD_HEAD = "version: 1\nhosts:\n  mini-01:\n    address: 10.0.0.1\n"

# (id, file text, expected line, expected column or None, a fragment of the message)
BAD_FILES: list[tuple[str, str, int, int | None, str]] = [
    ("empty", "", 1, 1, "empty"),
    ("comment-only", "# nothing\n", 1, 1, "empty"),
    ("not-a-mapping", "- a\n- b\n", 1, 1, "top level must be a mapping"),
    # The parser marks the end of the file on the line after the last \n: no such line.
    ("syntax", "version: 1\nhosts:\n  mini-01: {address: [\n", 3, 23, "YAML syntax"),
    ("tab-indent", "version: 1\nhosts:\n\tmini: {}\n", 3, None, "YAML syntax"),
    ("no-version", "hosts:\n  a: {}\n", 1, 1, "needs the key `version`"),
    ("no-hosts", "version: 1\n", 1, 1, "needs the key `hosts`"),
    ("empty-hosts", "version: 1\nhosts: {}\n", 2, 8, "at least one"),
    ("version-2", "version: 2\nhosts:\n  a: {}\n", 1, 10, "only value is 1"),
    ("unknown-top", GOOD_HEAD + "hostz: {}\n", 5, 1, "did you mean `hosts`"),
    (
        "misspelt-address",
        "version: 1\nhosts:\n  a:\n    adress: x\n",
        4,
        5,
        "did you mean `address`",
    ),
    (
        "port-too-high",
        GOOD_HEAD + "    server:\n      port: 70000\n",
        6,
        13,
        "70000 is above the maximum 65535",
    ),
    ("port-zero", GOOD_HEAD + "    ssh_port: 0\n", 5, 15, "below the minimum 1"),
    ("port-string", GOOD_HEAD + "    ssh_port: '22'\n", 5, 15, "expected an integer"),
    (
        "range-version",
        GOOD_HEAD + "    packages:\n      mlx-lm: '>=0.28'\n",
        6,
        15,
        "exact version",
    ),
    (
        "wildcard-version",
        GOOD_HEAD + "    packages:\n      mlx-lm: 0.28.*\n",
        6,
        15,
        "exact version",
    ),
    (
        "compatible-version",
        GOOD_HEAD + "    packages:\n      mlx-lm: ~=0.28.2\n",
        6,
        15,
        "exact version",
    ),
    ("bad-model-id", GOOD_HEAD + "    models:\n      - justaname\n", 6, 9, "org/name"),
    ("model-id-dotdot", GOOD_HEAD + "    models:\n      - org/../etc\n", 6, 9, "org/name"),
    (
        "model-missing-id",
        GOOD_HEAD + "    models:\n      - {prewarm: true}\n",
        6,
        9,
        "needs the key `id`",
    ),
    (
        "model-bad-prewarm",
        GOOD_HEAD + "    models:\n      - {id: a/b, prewarm: maybe}\n",
        6,
        None,
        "true or false",
    ),
    (
        "address-shell",
        "version: 1\nhosts:\n  a:\n    address: 'x; rm -rf /'\n",
        4,
        14,
        "shell characters",
    ),
    (
        "address-dash",
        "version: 1\nhosts:\n  a:\n    address: -oProxyCommand=x\n",
        4,
        14,
        "leading '-'",
    ),
    ("address-space", "version: 1\nhosts:\n  a:\n    address: 'a b'\n", 4, 14, "no spaces"),
    ("bad-ipv4", "version: 1\nhosts:\n  a:\n    address: 10.0.0.300\n", 4, 14, "0-255"),
    ("bad-host-name", "version: 1\nhosts:\n  'bad host': {}\n", 3, 3, "bad name"),
    (
        "unknown-group",
        "version: 1\ngroups:\n  big: {}\nhosts:\n  a:\n    groups: [bigg]\n",
        6,
        14,
        "unknown group `bigg`",
    ),
    ("duplicate-key", GOOD_HEAD + "  mini-01:\n    address: 10.0.0.2\n", 5, 3, "repeated"),
    ("duplicate-nested", GOOD_HEAD + "    ssh_port: 22\n    ssh_port: 23\n", 6, 5, "repeated"),
    (
        "same-address",
        GOOD_HEAD + "  mini-02:\n    address: 10.0.0.1\n",
        6,
        14,
        "same address and SSH port",
    ),
    ("bad-enum", GOOD_HEAD + "    host_key_checking: maybe\n", 5, 24, "not one of"),
    ("bad-connection", GOOD_HEAD + "    connection: telnet\n", 5, 17, "not one of"),
    ("python-tag", GOOD_HEAD + "    user: !!python/object:os.system x\n", 5, 11, "tag"),
    ("custom-tag", GOOD_HEAD + "    user: !vault abc\n", 5, 11, "tag"),
    ("two-documents", GOOD_HEAD + "---\nversion: 1\n", 6, 1, "more than one YAML document"),
    ("env-bad-name", GOOD_HEAD + "    server:\n      env: {'A B': x}\n", 6, 13, "bad name"),
    ("unknown-server-key", GOOD_HEAD + "    server:\n      prot: 1\n", 6, 7, "did you mean `port`"),
    (
        "endpoint-not-path",
        GOOD_HEAD + "    verify:\n      endpoints: [v1/models]\n",
        6,
        19,
        "starting with '/'",
    ),
    ("negative-timeout", GOOD_HEAD + "    connect_timeout_s: -1\n", 5, 24, "greater than 0"),
    (
        "index-url-dash",
        GOOD_HEAD + "    package_index:\n      index_url: --evil\n",
        6,
        18,
        "start with '-'",
    ),
    (
        "duplicate-group-item",
        "version: 1\ngroups:\n  g: {}\nhosts:\n  a:\n    groups: [g, g]\n",
        6,
        13,
        "twice",
    ),
    ("unquoted-off", GOOD_HEAD + "    host_key_checking: off\n", 5, 24, 'write "off" in quotes'),
    ("null-version", "version:\nhosts:\n  a: {}\n", 1, None, "only value is 1"),
    # Hostile input: sizes and nesting.
    ("huge-file", GOOD_HEAD + "# " + "x" * (9 * 2**20) + "\n", 1, 1, "larger than 8 MiB"),
    (
        "nesting-70",
        GOOD_HEAD + "    server:\n      env:\n        A: " + "[" * 70 + "]" * 70 + "\n",
        7,
        None,
        "nesting deeper than 64 levels",
    ),
    # Hostile input: folders on the host are absolute or under ~, normalized.
    ("prefix-relative", GOOD_HEAD + "    prefix: opt/localai\n", 5, 13, "a folder on the host"),
    ("prefix-dotdot", GOOD_HEAD + "    prefix: ~/../../etc\n", 5, 13, "no '.' or '..' parts"),
    ("prefix-other-home", GOOD_HEAD + "    prefix: ~root/x\n", 5, 13, "a folder on the host"),
    ("prefix-double-slash", GOOD_HEAD + "    prefix: /opt//x\n", 5, 13, "no '//'"),
    ("hf-home-dot", GOOD_HEAD + "    hf_home: /data/./hf\n", 5, 14, "a folder on the host"),
    ("hf-home-dotdot-end", GOOD_HEAD + "    hf_home: /data/hf/..\n", 5, 14, "'..' parts"),
    ("hf-home-trailing-slash", GOOD_HEAD + "    hf_home: /data/hf/\n", 5, 14, "trailing '/'"),
    # Hostile input: model ids and revisions name folders in the hub: no way out of it.
    ("model-id-escape", GOOD_HEAD + "    models:\n      - ../../etc\n", 6, 9, "org/name"),
    (
        "model-id-escape-mapping",
        GOOD_HEAD + "    models:\n      - {id: ../../etc/passwd}\n",
        6,
        14,
        "org/name",
    ),
    (
        "revision-escape",
        GOOD_HEAD + "    models:\n      - {id: org/m, revision: main/../../../../etc}\n",
        6,
        31,
        "without '..'",
    ),
    (
        "revision-hidden-part",
        GOOD_HEAD + "    models:\n      - {id: org/m, revision: refs/.git}\n",
        6,
        31,
        "a revision is",
    ),
    (
        "max-rate-too-low",
        GOOD_HEAD + "    transfer: {max_rate: 1000}\n",
        5,
        26,
        "below the minimum 65536",
    ),
    ("max-rate-kilobytes", GOOD_HEAD + "    transfer: {max_rate: 50kB}\n", 5, None, "a rate is"),
    ("max-rate-bare-text", GOOD_HEAD + "    transfer: {max_rate: fast}\n", 5, None, "a rate is"),
]


@pytest.mark.hostile  # each bad file counts as a hostile input tried (bench/faults.py)
@pytest.mark.parametrize(
    ("text", "line", "column", "fragment"),
    [case[1:] for case in BAD_FILES],
    ids=[case[0] for case in BAD_FILES],
)
def test_bad_file_names_its_line(text: str, line: int, column: int | None, fragment: str) -> None:
    with pytest.raises(SiteError) as caught:
        parse_site(text, "site.yaml")
    problems = caught.value.problems
    matching = [p for p in problems if fragment in p.message]
    assert matching, f"no problem mentions {fragment!r}: {[p.render() for p in problems]}"
    problem = matching[0]
    assert problem.line == line, problem.render()
    if column is not None:
        assert problem.column == column, problem.render()
    assert problem.render().startswith(f"site.yaml:{line}:")


def test_every_error_is_reported_not_just_the_first() -> None:
    text = textwrap.dedent("""\
        version: 1
        defaults:
          adress: x
          server: {port: 70000}
        hosts:
          a:
            groups: [nope]
            ssh_port: "22"
          b:
            address: 10.0.0.999
    """)
    with pytest.raises(SiteError) as caught:
        parse_site(text, "s.yaml")
    lines = [p.line for p in caught.value.problems]
    assert lines == sorted(lines)
    assert {3, 4, 7, 8, 10} <= set(lines)


@pytest.mark.hostile
def test_alias_bomb_is_refused_quickly() -> None:
    rows = ["a: &a [1,1,1,1,1,1,1,1,1]"]
    for prev, name in zip("abcdefgh", "bcdefghi", strict=True):
        rows.append(f"{name}: &{name} [" + ",".join([f"*{prev}"] * 9) + "]")
    with pytest.raises(SiteError) as caught:
        parse_site("\n".join(rows) + "\n", "bomb.yaml")
    assert "aliases" in caught.value.problems[0].message


@pytest.mark.hostile
def test_deep_nesting_is_refused() -> None:
    text = "version: 1\nhosts:\n  a:\n    server:\n      env: " + "[" * 5000 + "]" * 5000 + "\n"
    with pytest.raises(SiteError) as caught:
        parse_site(text, "deep.yaml")
    assert "nesting" in caught.value.problems[0].message or "expected" in str(caught.value)


def test_aliases_and_merge_keys_are_allowed() -> None:
    text = textwrap.dedent("""\
        version: 1
        x-common: &common
          ssh_port: 2222
        hosts:
          a:
            <<: *common
            address: 10.0.0.1
    """)
    # `x-common` is not a key of the format: the anchor must live somewhere valid.
    with pytest.raises(SiteError):
        parse_site(text, "s.yaml")
    text = textwrap.dedent("""\
        version: 1
        defaults: &common
          ssh_port: 2222
          packages: {mlx-omni-server: 0.5.1}
        hosts:
          a:
            <<: *common
            address: 10.0.0.1
            ssh_port: 2200
    """)
    site = parse_site(text, "s.yaml")
    assert site.hosts["a"].ssh_port == 2200
