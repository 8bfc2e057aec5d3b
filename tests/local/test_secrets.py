"""Secrets ({from_env: VAR}) never appear in any output, command line or log of the tool.

A real apply on this machine (`connection: local`) with the STAND-IN server from the tests'
wheelhouse; every output of every command is searched for the secret's value.
"""

from __future__ import annotations

import io
import json
import os
import stat
from pathlib import Path

import pytest
import yaml

from localai_provision.cli import Output, main
from localai_provision.site import parse_site
from tests.support.hostprep import free_port

SECRET = "hf_SuperSecretValue_8c1f0a"


def run(*argv: str) -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), Output(out, err))
    return code, out.getvalue() + err.getvalue()


def test_missing_variable_is_a_planned_failure(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LOCALAI_TEST_TOKEN", raising=False)
    site = parse_site(
        "version: 1\nhosts:\n  a:\n    packages: {mlx-omni-server: 0.5.1}\n"
        "    server:\n      env:\n        HF_TOKEN: {from_env: LOCALAI_TEST_TOKEN}\n",
        "s.yaml",
    )
    assert site.hosts["a"].server.missing_env == {"HF_TOKEN": "LOCALAI_TEST_TOKEN"}
    assert site.hosts["a"].server.secret_env == ("HF_TOKEN",)


def test_a_secret_is_never_shown(
    tmp_path: Path, wheelhouse: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LOCALAI_TEST_TOKEN", SECRET)
    # The local host is this machine: root's pip settings (/opt/wheels) would pull the real
    # torch instead of the wheelhouse's stand-in.
    for name in [n for n in os.environ if n.startswith("PIP_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text('{"model_type": "llama"}')
    site = tmp_path / "site.yaml"
    site.write_text(
        yaml.safe_dump(
            {
                "version": 1,
                "hosts": {
                    "here": {
                        "connection": "local",
                        "prefix": str(tmp_path / "prefix"),
                        "hf_home": str(tmp_path / "hf"),
                        "python": "/usr/bin/python3",
                        "packages": {"mlx-omni-server": "0.5.1"},
                        "package_index": {"no_index": True, "find_links": [str(wheelhouse)]},
                        "models": [{"id": "org/tiny", "source": str(model)}],
                        "server": {
                            "port": free_port(),
                            "env": {
                                "HF_TOKEN": {"from_env": "LOCALAI_TEST_TOKEN"},
                                "PLAIN": "visible",
                            },
                        },
                    }
                },
            }
        )
    )
    outputs = []
    try:
        for argv in (
            ("validate", str(site)),
            ("hosts", str(site)),
            ("hosts", str(site), "--json"),
            ("plan", str(site)),
            ("plan", str(site), "--json"),
            ("apply", str(site)),
            ("apply", str(site), "--json"),
            ("drift", str(site), "--json", "--junit", str(tmp_path / "drift.xml")),
            ("status", str(site)),
            ("status", str(site), "--json"),
        ):
            code, text = run(*argv)
            outputs.append(text)
            assert code in (0, 2), text
        outputs.append((tmp_path / "drift.xml").read_text())
        assert "visible" in outputs[1]  # plain values are shown, secrets are masked
        prefix = tmp_path / "prefix"
        config = prefix / "server.json"
        assert SECRET in config.read_text()  # the one place it must be...
        assert stat.S_IMODE(config.stat().st_mode) == 0o600  # ...readable by the user only
        pid = int((prefix / "run" / "server.pid").read_text())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode()
        assert SECRET not in cmdline  # not visible in `ps`
        assert SECRET.encode() in Path(f"/proc/{pid}/environ").read_bytes()  # the server has it
        outputs.append((prefix / "logs" / "server.log").read_text())
        outputs.append((prefix / "state.json").read_text())
    finally:
        run("stop", str(site))
    for text in outputs:
        assert SECRET not in text
    assert json.loads(outputs[2])["hosts"][0]["server"]["env"]["HF_TOKEN"] == "<secret>"
    assert os.environ["LOCALAI_TEST_TOKEN"] == SECRET
