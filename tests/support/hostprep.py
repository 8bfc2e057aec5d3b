"""Put a test host into a known state with plain commands, independently of `localai apply`.

Plan and drift are tested against hosts prepared here, so that a bug in apply cannot hide a
bug in plan (they would otherwise agree with each other). Everything runs as the host's user
through SSHFleet.run_as, except package installs, which use root's pip with --python and
then hand the files to the user.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from localai_provision import scripts
from localai_provision.layout import (
    GENERATION_META,
    OWNED_MARKER,
    SHIM_MODULE,
    Layout,
    config_hash,
    server_config,
)
from localai_provision.plan import desired_shim, shim_pth
from localai_provision.plan.generations import set_id
from localai_provision.site.model import HostSpec
from tests.support.sshfleet import SSHFleet, TestHost

SYSTEM_PYTHON = "/usr/bin/python3"  # root's pyenv Python lives under /root (mode 700)
# What `localai apply` adds on a Linux host (linux.linux_additions) when mlx is not pinned.
LINUX_ADDITIONS = {"torch": "2.13.0+cpu"}


def host_paths(host: TestHost) -> tuple[Path, Path]:
    """(prefix, hf_home) of a test host, as the test sites set them."""
    return host.home / ".localai", host.home / "hf"


def kill_servers(host: TestHost) -> None:
    """Kill every process of the host's user that runs a (stand-in or real) server."""
    uid = pwd.getpwnam(host.user).pw_uid
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if os.stat(f"/proc/{pid}").st_uid != uid:
                continue
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if b"mlx-omni-server" in cmd or b"http.server" in cmd or b"sleep" in cmd:
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid), signal.SIGKILL)


def reset_host(host: TestHost) -> None:
    """Back to a fresh machine: no server, no prefix, no model cache."""
    kill_servers(host)
    prefix, hf_home = host_paths(host)
    for path in (prefix, hf_home):
        shutil.rmtree(path, ignore_errors=True)


def chown_tree(path: Path, user: str) -> None:
    entry = pwd.getpwnam(user)
    for root, dirs, files in os.walk(path):
        for name in [*dirs, *files]:
            os.lchown(os.path.join(root, name), entry.pw_uid, entry.pw_gid)
    os.lchown(path, entry.pw_uid, entry.pw_gid)


def root_pip(*args: str) -> None:
    """Root's pip, without root's own configuration (/opt/wheels, local indexes): those would
    pull real packages, the real torch among them, instead of the wheelhouse's stand-ins."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env["PIP_CONFIG_FILE"] = os.devnull
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    subprocess.run(
        [sys.executable, "-m", "pip", *args], check=True, capture_output=True, text=True, env=env
    )


def make_venv(
    fleet: SSHFleet,
    host: TestHost,
    packages: dict[str, str],
    wheelhouse: Path,
    generation: str | None = None,
) -> Path:
    """A venv with ``packages``: the single venv of versions before generations, or, with
    ``generation``, that generation's, named by the `current` link as apply leaves it."""
    prefix, _ = host_paths(host)
    venv = Path(Layout(str(prefix), generation).venv)
    fleet.run_as(host, ["mkdir", "-p", str(venv.parent)])
    if generation:
        fleet.run_as(host, ["ln", "-s", f"generations/{generation}", str(prefix / "current")])
    fleet.run_as(host, [SYSTEM_PYTHON, "-m", "venv", "--without-pip", str(venv)])
    fleet.run_as(host, ["touch", str(venv / ".localai-complete")])
    if packages:
        root_pip(
            "--python",
            str(venv / "bin" / "python"),
            "install",
            "-q",
            "--no-index",
            "--find-links",
            str(wheelhouse),
            "--no-deps",
            *[f"{k}=={v}" for k, v in packages.items()],
        )
        chown_tree(venv, host.user)
    return venv


def write_model(fleet: SSHFleet, host: TestHost, model_id: str, commit: str = "a" * 40) -> Path:
    """A small model in the Hugging Face cache layout (content is made up: plan and drift
    only look at the layout)."""
    _, hf_home = host_paths(host)
    base = hf_home / "hub" / ("models--" + model_id.replace("/", "--"))
    snapshot = base / "snapshots" / commit
    snapshot.mkdir(parents=True, exist_ok=True)
    (base / "blobs").mkdir(exist_ok=True)
    (base / "refs").mkdir(exist_ok=True)
    (snapshot / "config.json").write_text(json.dumps({"model_type": "llama"}))
    (snapshot / "model.safetensors").write_bytes(b"\0" * 1024)
    (base / "refs" / "main").write_text(commit)
    chown_tree(hf_home, host.user)
    return base


def write_server_config(
    host: TestHost, spec: HostSpec, generation: str | None = None
) -> dict[str, object]:
    prefix, hf_home = host_paths(host)
    config = server_config(spec, Layout(str(prefix), generation), str(hf_home))
    config = {**config, "hash": config_hash(config)}
    path = prefix / "server.json"
    path.write_text(json.dumps(config))
    os.chmod(path, 0o600)
    chown_tree(prefix, host.user)
    return config


def start_server(fleet: SSHFleet, host: TestHost, config: dict[str, object], port: int) -> int:
    prefix, _ = host_paths(host)
    argv = config["argv"]
    env = config["env"]
    assert isinstance(argv, list) and isinstance(env, dict)
    for sub in ("run", "logs"):
        fleet.run_as(host, ["mkdir", "-p", str(prefix / sub)])
    script = (
        'cd "$1" && shift && '
        'setsid "$@" > logs/server.log 2>&1 < /dev/null & echo $! > "$PREFIX/run/server.pid"'
    )
    fleet.run_as(
        host,
        ["sh", "-c", script, "sh", str(prefix), *argv],
        env={**env, "LOCALAI_CONFIG_HASH": str(config["hash"]), "PREFIX": str(prefix)},
    )
    wait_port(port)
    return int((prefix / "run" / "server.pid").read_text())


def wait_port(port: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"nothing listens on port {port} after {timeout} s")


def prepare_in_sync(fleet: SSHFleet, host: TestHost, spec: HostSpec, wheelhouse: Path) -> None:
    """Make the host exactly what ``spec`` asks for, by hand."""
    reset_host(host)
    packages = LINUX_ADDITIONS | dict(spec.packages)
    python = subprocess.run(
        [SYSTEM_PYTHON, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    generation = set_id(packages, python)
    venv = make_venv(fleet, host, packages, wheelhouse, generation)
    site = next((venv / "lib").glob("python3.*")) / "site-packages"
    (site / f"{SHIM_MODULE}.py").write_text(scripts.load("server_shim"))
    (site / f"{SHIM_MODULE}.pth").write_text(shim_pth())
    (venv / OWNED_MARKER).write_text("")
    meta = {"created": "2026-12-01T00:00:00Z", "python": python, "packages": packages}
    (venv / GENERATION_META).write_text(json.dumps({**meta, "shims": desired_shim()}))
    chown_tree(venv, host.user)
    for model in spec.models:
        write_model(fleet, host, model.id)
    config = write_server_config(host, spec, generation)
    start_server(fleet, host, config, spec.server.port)
    # The server reads the model cache at its first request; make that happen now, as
    # apply's verify step does, so that later cache changes behave as on a real host.
    urllib.request.urlopen(f"http://127.0.0.1:{spec.server.port}/v1/models", timeout=10).read()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def hold_port(host: TestHost, port: int) -> Iterator[None]:
    """Another program (a plain HTTP server, run as the host's user) holds ``port``."""
    other = subprocess.Popen(
        [
            "runuser",
            "-u",
            host.user,
            "--",
            SYSTEM_PYTHON,
            "-m",
            "http.server",
            str(port),
            "--bind",
            "127.0.0.1",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_port(port)
        yield
    finally:
        other.kill()
        other.wait()
        # runuser forks: the server is its child, and survives runuser's SIGKILL.
        kill_servers(host)
