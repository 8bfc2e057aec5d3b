"""apply's steps, without a host: each step's commands come from a pure function (tables
below), and each step's handling of the host's answers is driven through the fake
connector (tests/support/fakehost.py). What only a real server proves stays in tests/ssh."""

from __future__ import annotations

import json
import re

import pytest

from localai_provision.apply import (
    ApplyOptions,
    HostContext,
    acquire_lock,
    build_venv,
    ensure_uv,
    release_lock,
    verify,
    write_server_config,
    write_state,
)
from localai_provision.apply.host_models import download_command
from localai_provision.apply.hostlock import leftovers_command, lock_command, unlock_command
from localai_provision.apply.install import (
    PackageWork,
    install_shim,
    package_commands,
    shim_files,
    uv_bootstrap_command,
    venv_command,
)
from localai_provision.apply.pull_timer import cron_command
from localai_provision.apply.verification import port_check_argv, verify_config
from localai_provision.errors import CommandError, HostError
from localai_provision.facts.model import Facts
from localai_provision.facts.parse import parse_facts
from localai_provision.layout import Layout
from localai_provision.site import parse_site
from localai_provision.site.model import HostSpec
from tests.support.fakehost import Call, FakeConnector, Reply, rules
from tests.unit.test_facts_parse import linux_doc

PREFIX = "/tmp/rec/home/.localai"  # the recorded host's prefix (tests/fixtures)
LAYOUT = Layout(PREFIX)
PY = f"{PREFIX}/venv/bin/python"
UV = f"{PREFIX}/tools/bin/uv"
PIP = [PY, "-m", "pip"]
QUIET = ["--disable-pip-version-check", "--no-input"]

SITE = """
version: 1
hosts:
  mini-01:
    connection: local
    prefix: /tmp/rec/home/.localai
    hf_home: /tmp/rec/home/hf
    python: /usr/bin/python3
    packages: {mlx-omni-server: 0.5.1, mlx-lm: 0.28.2}
    models: [org/tiny-a, {id: org/tiny-b, prewarm: false}]
    server: SERVER
"""


def spec_with(server: str = "{port: 18999}", extra: str = "") -> HostSpec:
    return parse_site(SITE.replace("SERVER", server) + extra, "s.yaml").hosts["mini-01"]


def facts_for(spec: HostSpec) -> Facts:
    return parse_facts(spec.name, json.dumps(linux_doc()), spec.models)


def host_for(spec: HostSpec | None = None, handler: object = None) -> HostContext:
    spec = spec or spec_with()
    connector = FakeConnector(handler or (lambda call: None), spec=spec)  # type: ignore[arg-type]
    return HostContext.of(connector, spec, facts_for(spec))


def commands(host: HostContext) -> list[str]:
    assert isinstance(host.connector, FakeConnector)
    return host.connector.commands


# --- packages: the commands, by installer, lock and damage -----------------------------------

PINS = ["mlx-omni-server==0.5.1", "mlx-lm==0.28.2"]
LOCKFILE = f"{PREFIX}/requirements.lock.txt"
INDEX = ["--index-url", "https://pypi.example/simple"]


@pytest.mark.parametrize(
    ("work", "use_uv", "lock_file", "expected"),
    [
        pytest.param(
            PackageWork(PINS, [], []),
            True,
            None,
            [[UV, "pip", "install", "--python", PY, *INDEX, *PINS]],
            id="without a lock, uv installs the changed pins only",
        ),
        pytest.param(
            PackageWork(PINS, [], ["mlx-lm"]),
            True,
            None,
            [[UV, "pip", "install", "--python", PY,
              "--reinstall-package", "mlx-lm", *INDEX, *PINS]],
            id="uv reinstalls a package whose files are gone",
        ),
        pytest.param(
            PackageWork(PINS, [], []),
            False,
            None,
            [[*PIP, "install", *QUIET, *INDEX, *PINS]],
            id="without a lock, pip installs the changed pins only",
        ),
        pytest.param(
            PackageWork(PINS, [], ["mlx-lm"]),
            False,
            None,
            [
                [*PIP, "install", *QUIET, *INDEX, *PINS],
                [*PIP, "install", *QUIET, "--force-reinstall", "--no-deps", *INDEX, PINS[1]],
            ],
            id="pip then forces a damaged package back, without its dependencies",
        ),
        pytest.param(
            PackageWork([], [], []),
            True,
            None,
            [],
            id="nothing to install without a lock runs nothing",
        ),
        pytest.param(
            PackageWork([], ["extra"], []),
            True,
            LOCKFILE,
            [[UV, "pip", "sync", "--python", PY, "--require-hashes", *INDEX, LOCKFILE]],
            id="with a lock, uv syncs the exact set, which removes extras itself",
        ),
        pytest.param(
            PackageWork([], ["extra"], ["mlx-lm"]),
            False,
            LOCKFILE,
            [
                [*PIP, "install", *QUIET, "--require-hashes", "--no-deps", *INDEX,
                 "--force-reinstall", "-r", LOCKFILE],
                [*PIP, "uninstall", *QUIET, "--yes", "extra"],
            ],
            id="with a lock, pip installs the set with hashes, then uninstalls the rest",
        ),
    ],
)  # fmt: skip
def test_package_commands(
    work: PackageWork, use_uv: bool, lock_file: str | None, expected: list[list[str]]
) -> None:
    got = package_commands(LAYOUT, work, use_uv=use_uv, index_args=INDEX, lock_file=lock_file)
    assert got == expected


# --- the venv -------------------------------------------------------------------------------


def test_the_venv_is_marked_ours_before_it_is_built_and_complete_after() -> None:
    command = venv_command("/usr/bin/python3", LAYOUT)
    owned = command.index(": > /tmp/rec/home/.localai/venv/.localai-owned")
    built = command.index("/usr/bin/python3 -m venv")
    complete = command.index("touch /tmp/rec/home/.localai/venv/.localai-complete")
    assert command.index("exit 3") < owned < built < complete


@pytest.mark.parametrize(
    ("exit_status", "error", "words"),
    [
        (3, HostError, "not made by localai-provision"),
        (1, CommandError, "could not build the venv with /usr/bin/python3"),
    ],
    ids=["a venv that is not ours is refused", "a failed build names the Python"],
)
def test_a_failed_venv_build_says_why(exit_status: int, error: type, words: str) -> None:
    host = host_for(handler=lambda call: Reply(exit_status=exit_status))
    with pytest.raises(error) as caught:
        build_venv(host)
    assert words in caught.value.message
    assert caught.value.step == "venv"


def test_a_venv_build_is_one_command() -> None:
    host = host_for()
    build_venv(host)
    assert commands(host) == [venv_command("/usr/bin/python3", host.layout, pip=False)]


def test_a_venv_for_uv_has_no_pip_and_one_for_pip_has_it() -> None:
    assert "-m venv --without-pip" in venv_command("/usr/bin/python3", LAYOUT, pip=False)
    with_pip = venv_command("/usr/bin/python3", LAYOUT, pip=True)
    assert "--without-pip" not in with_pip and "-m pip --version" in with_pip
    host = host_for(spec_with(extra="    installer: pip\n"))
    build_venv(host)
    assert commands(host) == [venv_command("/usr/bin/python3", host.layout, pip=True)]


def test_uv_is_bootstrapped_by_the_pip_wheel_the_hosts_python_carries_else_by_ensurepip() -> None:
    command = uv_bootstrap_command("/usr/bin/python3", LAYOUT, ["--no-index"])
    from_wheel = command.index('"$w/pip" install')
    ensurepip = command.index("-m ensurepip --default-pip")
    assert "_WHEEL_PKG_DIR" in command and "_bundled" in command
    assert from_wheel < ensurepip < command.index("-m pip install")
    assert command.count("--target /tmp/rec/home/.localai/tools") == 2


# --- uv -------------------------------------------------------------------------------------


def test_uv_already_there_costs_one_command() -> None:
    host = host_for()
    assert ensure_uv(host, [])
    assert commands(host) == [f"test -x {UV}"]


def test_uv_that_cannot_be_had_falls_back_to_pip_with_a_warning() -> None:
    host = host_for(
        handler=rules(
            ("^test -x", Reply(exit_status=1)),
            ("pip install", Reply(exit_status=1, stderr="No matching distribution for uv")),
        )
    )
    assert not ensure_uv(host, [])
    assert host.log.warnings == [
        "uv could not be had (No matching distribution for uv); installed with pip instead"
    ]


def test_uv_that_cannot_be_had_fails_a_site_that_asks_for_uv() -> None:
    spec = spec_with(extra="    installer: uv\n")
    host = host_for(spec, handler=rules(("", Reply(exit_status=1))))
    with pytest.raises(CommandError, match=r"installer: uv"):
        ensure_uv(host, [])


# --- the lock -------------------------------------------------------------------------------


def test_the_lock_is_taken_in_the_prefix_and_released_only_by_its_session() -> None:
    take = lock_command(LAYOUT, 2.0, "{}")
    assert f"L_LOCK={PREFIX}/lock;" in take and "L_TRIES=20;" in take
    assert f"L_PREFIX={PREFIX};" in take
    release = unlock_command(LAYOUT)
    assert release.startswith(f"L_LOCK={PREFIX}/lock;") and "$PPID" in release


@pytest.mark.parametrize(
    ("reply", "waited", "warnings"),
    [
        (Reply(), False, []),
        (Reply(stdout="waited\n"), True, []),
        (Reply(stderr="took over a stale lock: {}\nnoise"), False, ["took over a stale lock: {}"]),
    ],
    ids=["free", "waited for another apply", "a stale lock is taken over with a warning"],
)
def test_taking_the_lock(reply: Reply, waited: bool, warnings: list[str]) -> None:
    host = host_for(handler=lambda call: reply)
    assert acquire_lock(host, 1.0) == (waited, warnings)


def test_a_held_lock_names_its_holder() -> None:
    owner = {"tool_version": "9.9", "controller": "ctl", "controller_pid": 7, "started": "T"}
    host = host_for(handler=lambda call: Reply(exit_status=75, stdout=json.dumps(owner)))
    with pytest.raises(HostError) as caught:
        acquire_lock(host, 1.0)
    assert "held by localai 9.9 on ctl, pid 7, since T" in caught.value.message
    assert caught.value.step == "lock"


def test_releasing_the_lock_sends_the_unlock_script() -> None:
    host = host_for()
    release_lock(host)
    assert commands(host) == [unlock_command(host.layout)]


def test_leftovers_are_looked_for_only_where_the_tool_writes() -> None:
    spec = spec_with()
    command = leftovers_command(spec, facts_for(spec), LAYOUT)
    folders = re.findall(r"find (\S+) -mindepth 1 -maxdepth 1", command)
    hub = "/tmp/rec/home/hf/hub"
    assert folders[:3] == [PREFIX, f"{PREFIX}/state", f"{PREFIX}/wheels"]
    assert f"{hub}/models--org--tiny-a/refs" in folders
    assert re.findall(r"find (\S+) -mindepth 2", command) == [
        f"{hub}/models--org--tiny-a/snapshots",
        f"{hub}/models--org--tiny-b/snapshots",
    ]
    assert command.endswith("; true")


# --- the shim and the server's configuration -------------------------------------------------


def test_the_shim_goes_into_the_venvs_site_packages_and_is_compiled() -> None:
    host = host_for()
    install_shim(host)
    site = f"{host.layout.venv}/lib/python3.11/site-packages"
    assert host.layout.venv == f"{PREFIX}/generations/{host.generation}"
    assert list(shim_files(host.layout, "3.11")) == [
        f"{site}/localai_server_shim.py",
        f"{site}/localai_server_shim.pth",
    ]
    python = f"{host.layout.venv_python}"
    assert commands(host) == [f"{python} -I -m py_compile {site}/localai_server_shim.py"]


def test_the_server_configuration_is_written_0600() -> None:
    host = host_for()
    write_server_config(host)
    assert isinstance(host.connector, FakeConnector)
    put = host.connector.puts()[f"{PREFIX}/server.json"]
    assert put.mode == 0o600
    server = f"{PREFIX}/generations/{host.generation}/bin/mlx-omni-server"
    assert json.loads(put.data)["argv"][0] == server  # the generation the site wants


def test_a_model_is_downloaded_into_the_hosts_hf_home() -> None:
    spec = spec_with()
    command = download_command(LAYOUT, facts_for(spec), spec.models[0])
    assert command.startswith(f"HF_HOME=/tmp/rec/home/hf {PY} -c ")
    assert command.endswith(" org/tiny-a main")


# --- verify ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("server", "prewarm", "address", "models"),
    [
        ("{port: 18999}", True, "127.0.0.1", ["org/tiny-a"]),
        ("{port: 18999, host: 0.0.0.0}", True, "127.0.0.1", ["org/tiny-a"]),
        ("{port: 18999, host: 10.0.0.5}", False, "10.0.0.5", []),
    ],
    ids=[
        "loopback, prewarming what the site prewarms",
        "a wildcard bind is asked on loopback",
        "a bound address is asked there; no prewarm when not asked",
    ],
)
def test_what_verify_asks(server: str, prewarm: bool, address: str, models: list[str]) -> None:
    spec = spec_with(server)
    config = verify_config(spec, LAYOUT, ApplyOptions(), prewarm)
    assert (config["host"], config["prewarm"]) == (address, models)
    assert config["endpoints"][0] == "/v1/models"
    assert config["pid_file"] == f"{PREFIX}/run/server.pid"
    assert port_check_argv(spec, LAYOUT)[-2:] == [address, "18999"]


def verified(**changes: object) -> Reply:
    result: dict[str, object] = {
        "endpoints": [{"path": "/v1/models", "status": 200, "ms": 3.0}],
        "listed": ["org/tiny-a", "org/tiny-b"],
        "prewarm": [{"model": "org/tiny-a", "status": 200, "ms": 40.0}],
    }
    result.update(changes)
    return Reply(stdout=json.dumps(result))


@pytest.mark.parametrize(
    ("reply", "step", "words"),
    [
        (verified(error="the server exited", log_tail="boom"), "verify", "the server exited"),
        (verified(endpoints=[{"path": "/v1/models", "status": 500}]), "verify", "answered 500"),
        (verified(endpoints=[{"path": "/v1/models"}]), "verify", "answered nothing"),
        (verified(listed=["org/tiny-a"]), "verify", "does not list org/tiny-b"),
        (verified(prewarm=[{"model": "org/tiny-a", "status": 503}]), "prewarm", "HTTP 503"),
    ],
    ids=[
        "a server that died",
        "an endpoint that fails",
        "an endpoint that does not answer",
        "a model the server does not list",
        "a model that does not prewarm",
    ],
)
def test_verify_fails_for(reply: Reply, step: str, words: str) -> None:
    host = host_for(handler=lambda call: reply)
    with pytest.raises(HostError) as caught:
        verify(host, ApplyOptions(), prewarm=True)
    assert caught.value.step == step and words in caught.value.message
    hint = "model_type" if "does not list" in words else f"{PREFIX}/logs/server.log"
    assert hint in caught.value.hint


def test_verify_passes_a_server_that_answers() -> None:
    host = host_for(handler=lambda call: verified())
    assert verify(host, ApplyOptions(), prewarm=True)["listed"] == ["org/tiny-a", "org/tiny-b"]


# --- the pull timer and the state file -------------------------------------------------------


@pytest.mark.parametrize(
    ("block", "marker"),
    [("*/15 * * * * localai\n", ': > "$C_MARKER"'), (None, 'rm -f "$C_MARKER"')],
    ids=["a timer is written with its marker", "a removed timer leaves no marker"],
)
def test_the_crontab_keeps_other_lines(block: str | None, marker: str) -> None:
    command = cron_command(LAYOUT, block)
    assert f"C_MARKER={PREFIX}/state/pull-cron;" in command and marker in command
    assert ("C_BLOCK='';" in command) == (block is None)


def test_the_state_file_records_the_apply() -> None:
    host = host_for()
    host.log.prewarm = [{"model": "org/tiny-a", "ms": 1.0}]
    write_state(host, ApplyOptions(site_hash="abc"))
    assert isinstance(host.connector, FakeConnector)
    state = json.loads(host.connector.files[f"{PREFIX}/state.json"])
    assert state["site_hash"] == "abc" and state["prewarm"] == host.log.prewarm
    assert state["packages"] == {"mlx-omni-server": "0.5.1", "mlx-lm": "0.28.2"}


def test_the_fake_connector_records_every_call() -> None:
    host = host_for()
    host.connector.run("true", timeout=5)
    host.connector.put(b"x", "/p", mode=0o600)
    assert isinstance(host.connector, FakeConnector)
    assert host.connector.calls == [
        Call("run", command="true", timeout=5),
        Call("put", path="/p", data=b"x", mode=0o600),
    ]
    assert host.connector.commands_run == 1 and host.connector.bytes_sent == 1
