"""Merging, defaults, --limit and the schema itself."""

from __future__ import annotations

import operator
import re
import string
import textwrap
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from localai_provision.errors import UsageError
from localai_provision.site import load_site, parse_site, select_hosts
from localai_provision.site.schema import check_schema, load_schema
from tests.support.examples import examples

REPO = Path(__file__).resolve().parents[2]
# The server pin every site needs (the loader refuses a site without one).
PIN = "defaults: {packages: {mlx-omni-server: 0.5.1}}\n"

SITE = textwrap.dedent("""\
    version: 1
    defaults:
      user: lab
      server: {port: 10240, log_level: info, env: {A: "1", B: "2"}}
      packages: {mlx-omni-server: 0.5.1, mlx-lm: "==0.28.2"}
      models:
        - org/small
        - {id: org/shared, prewarm: false}
    groups:
      big:
        server: {port: 11000, env: {B: big}}
        models: [{id: org/shared, prewarm: true}, org/large]
      minis:
        user: mini
        ssh_port: 2222
    hosts:
      mini-01: {address: 10.0.0.1, groups: [minis]}
      mini-02: {address: 10.0.0.2, groups: [minis]}
      studio:
        address: studio.lab
        groups: [minis, big]
        server: {env: {A: own}}
        packages: {MLX_LM: 0.28.3}
      local:
        connection: local
""")


def test_precedence_defaults_groups_host() -> None:
    site = parse_site(SITE, "s.yaml")
    studio = site.hosts["studio"]
    assert studio.user == "mini"  # group minis over defaults
    assert studio.ssh_port == 2222
    assert studio.server.port == 11000  # group big
    assert studio.server.log_level == "info"  # mappings merge key by key
    assert studio.server.env == {"A": "own", "B": "big"}
    # `MLX_LM` is the same distribution as `mlx-lm`: the host's pin replaces the default's.
    assert studio.packages == {"mlx-omni-server": "0.5.1", "mlx-lm": "0.28.3"}
    models = {m.id: m.prewarm for m in studio.models}
    assert models == {"org/small": True, "org/shared": True, "org/large": True}
    mini = site.hosts["mini-01"]
    assert mini.server.port == 10240 and mini.packages["mlx-lm"] == "0.28.2"
    assert [m.id for m in mini.models] == ["org/small", "org/shared"]


def test_defaults_of_the_format() -> None:
    site = parse_site("version: 1\nhosts:\n  box:\n" + PIN, "s.yaml")
    box = site.hosts["box"]
    assert box.address == "box"
    assert box.connection == "ssh" and box.ssh_port == 22
    assert box.host_key_checking == "accept-new"
    assert box.prefix == "~/.localai" and box.service == "auto"
    assert box.server.host == "127.0.0.1" and box.server.port == 10240
    assert box.verify.endpoints == ("/v1/models", "/anthropic/v1/models")


def test_group_order_is_the_hosts_order() -> None:
    text = (
        textwrap.dedent("""\
        version: 1
        groups:
          a: {ssh_port: 1001}
          b: {ssh_port: 1002}
        hosts:
          x: {groups: [a, b]}
          y: {groups: [b, a]}
    """)
        + PIN
    )
    site = parse_site(text, "s.yaml")
    assert site.hosts["x"].ssh_port == 1002
    assert site.hosts["y"].ssh_port == 1001


def test_model_source_is_relative_to_the_site_file(tmp_path: Path) -> None:
    site_file = tmp_path / "sub" / "site.yaml"
    site_file.parent.mkdir()
    site_file.write_text(
        "version: 1\nhosts:\n  a:\n    models: [{id: o/m, source: ../models/m}]\n" + PIN
    )
    site = load_site(site_file)
    assert site.hosts["a"].models[0].source == str(tmp_path / "models" / "m")


@pytest.mark.parametrize(
    ("limit", "expected"),
    [
        (None, ["mini-01", "mini-02", "studio", "local"]),
        ("mini-01", ["mini-01"]),
        ("mini-*", ["mini-01", "mini-02"]),
        ("big", ["studio"]),
        ("minis", ["mini-01", "mini-02", "studio"]),
        ("minis,!studio", ["mini-01", "mini-02"]),
        ("!minis", ["local"]),
        ("local, big", ["studio", "local"]),
    ],
)
def test_limit(limit: str | None, expected: list[str]) -> None:
    site = parse_site(SITE, "s.yaml")
    assert [h.name for h in select_hosts(site, limit)] == expected


def test_limit_that_matches_nothing_is_an_error() -> None:
    site = parse_site(SITE, "s.yaml")
    with pytest.raises(UsageError, match="'nope' matches no host or group"):
        select_hosts(site, "mini-01,nope")
    with pytest.raises(UsageError, match="leaves no host"):
        select_hosts(site, "mini-01,!minis")


def test_schema_is_a_valid_2020_12_schema() -> None:
    check_schema()
    assert load_schema()["$schema"].endswith("2020-12/schema")


def test_playbooks_are_valid() -> None:
    for playbook in sorted((REPO / "playbooks").glob("*.yaml")):
        load_site(playbook)


# --- property: every file the validator accepts resolves ------------------------------------

# No control characters, line or paragraph separators or direction marks: the loader
# refuses them in every value (tests/unit/test_site_hostile.py).
plain_text = st.text(
    st.characters(
        exclude_categories=("Cc", "Cs", "Zl", "Zp"),
        exclude_characters="\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069",
    ),
    max_size=10,
)
LOWER, UPPER, DIGITS = string.ascii_lowercase, string.ascii_uppercase, string.digits


def word(first: str, rest: str, most: int) -> st.SearchStrategy[str]:
    """The strings of the regex [FIRST][REST]{0,MOST}: the same strings st.from_regex
    draws, at a fraction of its cost (measured 2026-12-02: from_regex drew 3/4 of this
    file's property test's 8 s)."""
    return st.builds(operator.add, st.sampled_from(first), st.text(rest, max_size=most))


def digits(most: int) -> st.SearchStrategy[str]:
    return st.text(DIGITS, min_size=1, max_size=most)


names = word(LOWER, LOWER + DIGITS + "-", 10)
versions = st.builds(
    lambda eq, a, b, c: f"{eq}{a}.{b}.{c}",
    st.sampled_from(["", "=="]),
    digits(2),
    digits(2),
    digits(2),
)
model_part = word(LOWER + UPPER + DIGITS, LOWER + UPPER + DIGITS + "._", 10)
env_names = word(UPPER + "_", UPPER + DIGITS + "_", 8)
package_names = word(LOWER, LOWER + DIGITS, 10)
# Each strategy and the regex whose strings it draws (checked below).
DRAWN_AS = [
    (names, r"[a-z][a-z0-9-]{0,10}"),
    (versions, r"(==)?[0-9]{1,2}\.[0-9]{1,2}\.[0-9]{1,2}"),
    (model_part, r"[A-Za-z0-9][A-Za-z0-9._]{0,10}"),
    (env_names, r"[A-Z_][A-Z0-9_]{0,8}"),
    (package_names, r"[a-z][a-z0-9]{0,10}"),
]
model_ids = st.builds(lambda a, b: f"{a}/{b}", model_part, model_part).filter(
    lambda m: ".." not in m
)
settings_strategy = st.fixed_dictionaries(
    {},
    optional={
        "user": names,
        "ssh_port": st.integers(1, 65535),
        "connect_timeout_s": st.floats(0.1, 600),
        # A folder on the host: absolute or under ~, normalized (parts that are not '.',
        # '..' or empty), any other character; a dedicated one (not / or ~ themselves).
        "prefix": st.builds(
            lambda root, parts: root + "/".join(parts),
            st.sampled_from(["/srv/", "~/"]),
            st.lists(
                st.text(
                    st.characters(
                        min_codepoint=32,
                        max_codepoint=0x2FF,
                        exclude_categories=("Cc",),
                        exclude_characters="/",
                    ),
                    min_size=1,
                    max_size=8,
                ).filter(lambda part: part not in (".", "..")),
                min_size=1,
                max_size=3,
            ),
        ),
        "service": st.sampled_from(["auto", "launchd", "process"]),
        "server": st.fixed_dictionaries(
            {},
            optional={
                "port": st.integers(1, 65535),
                "workers": st.integers(1, 8),
                "env": st.dictionaries(
                    env_names,
                    st.one_of(plain_text, st.integers(), st.booleans()),
                    max_size=3,
                ),
                "extra_args": st.lists(plain_text, max_size=3),
            },
        ),
        "packages": st.dictionaries(package_names, versions, max_size=4),
        "models": st.lists(
            st.one_of(
                model_ids,
                st.fixed_dictionaries(
                    {"id": model_ids}, optional={"prewarm": st.booleans(), "revision": names}
                ),
            ),
            max_size=4,
        ),
    },
)


@st.composite
def sites(draw: st.DrawFn) -> dict[str, object]:
    group_names = draw(st.lists(names, max_size=3, unique=True))
    groups = {g: draw(settings_strategy) for g in group_names}
    host_names = draw(st.lists(names, min_size=1, max_size=5, unique=True))
    hosts: dict[str, object] = {}
    for i, name in enumerate(host_names):
        host = dict(draw(settings_strategy))
        host["address"] = f"10.0.0.{i + 1}"
        host["ssh_port"] = 22
        if group_names:
            host["groups"] = draw(st.lists(st.sampled_from(group_names), unique=True))
        hosts[name] = host
    defaults = dict(draw(settings_strategy))
    defaults["packages"] = {**defaults.get("packages", {}), "mlx-omni-server": "0.5.1"}
    return {"version": 1, "defaults": defaults, "groups": groups, "hosts": hosts}


@settings(max_examples=examples(200), deadline=None)
@given(st.sampled_from(DRAWN_AS).flatmap(lambda p: st.tuples(st.just(p[1]), p[0])))
def test_the_property_draws_only_strings_of_its_regexes(case: tuple[str, str]) -> None:
    pattern, value = case
    assert re.fullmatch(pattern, value), (pattern, value)


@settings(max_examples=examples(150), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sites())
def test_every_accepted_file_resolves(data: dict[str, object]) -> None:
    import json

    # JSON is YAML: the text goes through the same reader as a hand-written file. (YAML has
    # no surrogate escapes, so characters are written out rather than \u-escaped.)
    site = parse_site(json.dumps(data, ensure_ascii=False), "prop.yaml")
    hosts = data["hosts"]
    assert isinstance(hosts, dict)
    assert list(site.hosts) == list(hosts)
    for host in site.hosts.values():
        assert host.to_dict()["name"] == host.name
        assert all("==" not in v for v in host.packages.values())
        assert len({m.id for m in host.models}) == len(host.models)


def test_schema_has_no_repeated_keys() -> None:
    import json

    def refuse_repeats(pairs: list[tuple[str, object]]) -> dict[str, object]:
        keys = [k for k, _ in pairs]
        assert len(keys) == len(set(keys)), f"repeated keys: {keys}"
        return dict(pairs)

    json.loads(
        (REPO / "schemas" / "site.schema.json").read_text(), object_pairs_hook=refuse_repeats
    )
