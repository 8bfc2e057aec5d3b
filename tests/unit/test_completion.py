"""`localai completion`: the bash script run by a real bash (its completion function called
as bash calls it), the zsh script checked by a real zsh; host and group names from a site."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from localai_provision.cli.completion import commands_and_flags, script
from localai_provision.cli.parser import build_parser

SITE = """version: 1
defaults: {packages: {mlx-omni-server: 0.5.1}}
groups: {minis: {}, studios: {}}
hosts:
  mini-01: {groups: [minis]}
  mini-02: {groups: [minis]}
  studio-01: {groups: [studios]}
"""


def complete(tmp_path: Path, *words: str) -> list[str]:
    """What bash offers for ``localai WORDS...`` (the last word being completed)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    shim = bin_dir / "localai"  # the scripts call `localai`: this interpreter's
    shim.write_text(f'#!/bin/sh\nexec {sys.executable} -m localai_provision.cli "$@"\n')
    shim.chmod(0o755)
    (tmp_path / "completion.bash").write_text(script("bash", build_parser()))
    quoted = " ".join(f"'{w}'" for w in ("localai", *words))
    program = (
        f"source {tmp_path}/completion.bash; COMP_WORDS=({quoted}); "
        f"COMP_CWORD={len(words)}; _localai; printf '%s\\n' \"${{COMPREPLY[@]}}\""
    )
    done = subprocess.run(
        ["bash", "--norc", "-c", program],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={"PATH": f"{bin_dir}:/usr/bin:/bin"},
        timeout=60,
        check=True,
    )
    return [line for line in done.stdout.splitlines() if line]


def test_bash_completes_commands_flags_and_the_sites_hosts_and_groups(tmp_path: Path) -> None:
    (tmp_path / "site.yaml").write_text(SITE)
    assert complete(tmp_path, "dr") == ["drift"]
    assert complete(tmp_path, "status", "site.yaml", "--h") == ["--help", "--html"]
    assert complete(tmp_path, "import", "") == ["ansible"]
    hosts = complete(tmp_path, "drift", "site.yaml", "--limit", "")
    assert hosts == ["mini-01", "mini-02", "studio-01", "minis", "studios"]
    assert complete(tmp_path, "apply", "site.yaml", "-l", "mini") == ["mini-01", "mini-02", "minis"]


def test_every_command_and_its_flags_come_from_the_parser() -> None:
    table = commands_and_flags(build_parser())
    assert {"metrics", "import", "completion", "status"} <= set(table)
    assert "--listen" in table["metrics"] and "--server-version" in table["import"]


@pytest.mark.skipif(shutil.which("zsh") is None, reason="needs zsh (bash .ci/run installs it)")
def test_the_zsh_script_is_valid_zsh(tmp_path: Path) -> None:
    path = tmp_path / "_localai"
    path.write_text(script("zsh", build_parser()))
    done = subprocess.run(["zsh", "-n", str(path)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "(metrics) compadd -- " in path.read_text()
