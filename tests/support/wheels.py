"""Build small, real wheels for the tests' own wheelhouse (no network, no build backend).

A wheel is a zip with a dist-info folder; pip installs these like any other. The tests use
them to give test hosts real packages at chosen versions, and to ship the stand-in server.
"""

from __future__ import annotations

import base64
import hashlib
import re
import zipfile
from collections.abc import Mapping
from pathlib import Path


def _record_hash(data: bytes) -> str:
    digest = hashlib.sha256(data).digest()
    return "sha256=" + base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def build_wheel(
    wheelhouse: Path,
    name: str,
    version: str,
    files: Mapping[str, str | bytes] | None = None,
    *,
    console_scripts: Mapping[str, str] | None = None,
    requires: list[str] | None = None,
    summary: str = "",
) -> Path:
    """Write NAME-VERSION-py3-none-any.whl into ``wheelhouse`` and return its path."""
    wheelhouse.mkdir(parents=True, exist_ok=True)
    dist = re.sub(r"[-_.]+", "_", name)
    info = f"{dist}-{version}.dist-info"
    content: dict[str, bytes] = {}
    for path, data in (files or {}).items():
        content[path] = data.encode("utf-8") if isinstance(data, str) else data
    metadata = ["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}"]
    if summary:
        metadata.append(f"Summary: {summary}")
    metadata += [f"Requires-Dist: {r}" for r in requires or []]
    content[f"{info}/METADATA"] = ("\n".join(metadata) + "\n").encode()
    content[f"{info}/WHEEL"] = (
        b"Wheel-Version: 1.0\nGenerator: localai-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    )
    if console_scripts:
        lines = ["[console_scripts]"] + [f"{k} = {v}" for k, v in console_scripts.items()]
        content[f"{info}/entry_points.txt"] = ("\n".join(lines) + "\n").encode()
    record = [f"{p},{_record_hash(d)},{len(d)}" for p, d in content.items()]
    record.append(f"{info}/RECORD,,")
    content[f"{info}/RECORD"] = ("\n".join(record) + "\n").encode()
    path = wheelhouse / f"{dist}-{version}-py3-none-any.whl"
    tmp = path.with_suffix(".tmp")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
        for member, data in content.items():
            zf.writestr(zipfile.ZipInfo(member, date_time=(2020, 1, 1, 0, 0, 0)), data)
    tmp.replace(path)
    return path


STANDIN_SOURCE = Path(__file__).with_name("standin_server.py")


def build_standin_server(
    wheelhouse: Path, version: str = "0.5.1", *, crash_at_start: bool = False
) -> Path:
    """The STAND-IN for mlx-omni-server: a wheel named `mlx-omni-server` whose command runs
    tests/support/standin_server.py. Only for fast multi-host reconciler tests; the real
    server is covered by the e2e tests. ``crash_at_start``: a release whose server exits 3
    as it starts (a broken upgrade)."""
    source = STANDIN_SOURCE.read_text("utf-8")
    if crash_at_start:
        source += '\nos.environ["STANDIN_FAIL_AT_START"] = "1"  # a broken release\n'
    return build_wheel(
        wheelhouse,
        "mlx-omni-server",
        version,
        {"localai_standin_server.py": source},
        console_scripts={"mlx-omni-server": "localai_standin_server:main"},
        summary="STAND-IN for mlx-omni-server, built by localai-provision's tests",
    )
