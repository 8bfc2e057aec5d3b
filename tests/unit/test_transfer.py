"""transfer.py and the Distributor without a host: the fake connector answers as blobs.py
would (tests/support/fakehost.py). The real copies, resumes and peer servers are proven over
real sshd in tests/ssh/test_fanout.py and tests/faults."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from localai_provision import transfer
from localai_provision.errors import CommandError
from localai_provision.transfer import (
    PARTIAL,
    Artifact,
    Distributor,
    Placement,
    list_files,
    missing_placements,
)
from tests.support.fakehost import Call, FakeConnector, Reply, fake_spec, rules

PY = "/usr/bin/python3"
SITE = """
version: 1
defaults: {packages: {mlx-omni-server: 0.5.1}}
hosts:
  a: {connection: ssh, address: 10.0.0.1, prefix: /h/.localai, python: /usr/bin/python3}
  b: {connection: ssh, address: 10.0.0.2, prefix: /h/.localai, python: /usr/bin/python3}
"""


def artifact(tmp_path: Path, name: str, data: bytes) -> Artifact:
    path = tmp_path / name
    path.write_bytes(data)
    return Artifact(f"sha256:{name}", len(data), path)


A = Artifact("sha256:a", 10, Path("/a"))
B = Artifact("sha256:b", 20, Path("/b"))


@pytest.mark.parametrize(
    ("present", "files", "expected"),
    [
        ({}, [("a", A)], [Placement(A, "/w/a", 0)]),
        ({"a": 10}, [("a", A)], []),
        ({"a": 3}, [("a", A)], [Placement(A, "/w/a", 0)]),
        ({"a" + PARTIAL: 4}, [("a", A)], [Placement(A, "/w/a", 4)]),
        ({}, [("a", A), ("a", A), ("b", B)], [Placement(A, "/w/a"), Placement(B, "/w/b")]),
    ],
    ids=[
        "a file the host lacks is placed",
        "a file there at its size is skipped",
        "a file there at another size is sent again",
        "a partial copy is resumed from its size",
        "a name given twice is sent once",
    ],
)
def test_missing_placements(
    present: dict[str, int], files: list[tuple[str, Artifact]], expected: list[Placement]
) -> None:
    assert missing_placements(present, "/w", files) == expected


def test_listing_a_folder_is_one_command_that_may_create_it_and_keep_only_some() -> None:
    connector = FakeConnector(rules(("list", Reply(stdout='{"x.whl": 5}'))))
    spec = connector.host
    assert list_files(connector, spec, PY, "/w", "packages", create=True, keep=["x.whl"]) == {
        "x.whl": 5
    }
    (command,) = connector.commands
    assert command.endswith(" list " + "'" + json.dumps(
        {"dir": "/w", "create": True, "owned_marker": ".localai-owned", "keep": ["x.whl"]}
    ) + "'")  # fmt: skip


def test_a_folder_that_cannot_be_listed_fails_the_step() -> None:
    connector = FakeConnector(rules(("", Reply(exit_status=1, stderr="Permission denied"))))
    with pytest.raises(CommandError) as caught:
        list_files(connector, connector.host, PY, "/w", "models")
    assert caught.value.step == "models" and "cannot list /w" in caught.value.message


def test_small_files_come_from_the_controller_resumed_and_checked_in_one_commit(
    tmp_path: Path,
) -> None:
    one = artifact(tmp_path, "one", b"0123456789")
    two = artifact(tmp_path, "two", b"abc")
    connector = FakeConnector()
    delivery = Distributor().deliver(
        connector,
        connector.host,
        PY,
        [Placement(one, "/w/one", 4), Placement(two, "/w/two")],
        "models",
    )
    sent = [c for c in connector.calls if c.kind == "append_file"]
    assert [(c.path, c.offset, c.data) for c in sent] == [
        ("/w/one.incomplete", 4, b"456789"),
        ("/w/two.incomplete", 0, b"abc"),
    ]
    (commit,) = connector.commands
    assert " commit " in commit and '"path": "/w/one"' in commit and '"size": 10' in commit
    assert delivery.as_dict() == {
        "files_sent": 2,
        "bytes_from_controller": 9,
        "bytes_from_peers": 0,
        "bytes_resumed": 4,
        "sources": {"controller": 2},
    }


def test_a_file_that_arrives_wrong_names_it() -> None:
    bad = {"bad": {"/w/one": "sha256 mismatch"}}
    connector = FakeConnector(rules(("commit", Reply(exit_status=1, stdout=json.dumps(bad)))))
    placement = Placement(Artifact("sha256:x", 0, Path("/dev/null")), "/w/one")
    with pytest.raises(CommandError) as caught:
        Distributor().deliver(connector, connector.host, PY, [placement], "models")
    assert "/w/one: sha256 mismatch" in caught.value.message


def test_a_large_file_passes_from_the_host_that_has_it_to_the_next(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(transfer, "PEER_MIN_BYTES", 4)
    big = artifact(tmp_path, "big", b"x" * 64)
    first = FakeConnector(
        rules((" serve -$", Reply(stdout='{"port": 41000}'))), spec=fake_spec(SITE, "a")
    )
    second = FakeConnector(
        rules((" fetch -$", Reply(stdout='{"received": 64}'))), spec=fake_spec(SITE, "b")
    )
    distributor = Distributor()
    from_controller = distributor.deliver(first, first.host, PY, [Placement(big, "/w/big")], "m")
    from_peer = distributor.deliver(second, second.host, PY, [Placement(big, "/w/big")], "m")
    assert from_controller.sources == {"controller": 1}
    assert from_peer.sources == {"a": 1} and from_peer.from_peers_bytes == 64
    serve = next(c for c in first.calls if c.command.endswith(" serve -"))
    assert serve.stdin is not None and json.loads(serve.stdin)["bind"] == "10.0.0.1"
    fetch = next(c for c in second.calls if c.command.endswith(" fetch -"))
    assert fetch.stdin is not None
    assert json.loads(fetch.stdin)["token"] == json.loads(serve.stdin)["token"]
    assert second.bytes_sent == 0  # nothing of it left the controller for b


def test_a_peer_that_cannot_serve_falls_back_to_the_controller_with_a_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(transfer, "PEER_MIN_BYTES", 4)
    big = artifact(tmp_path, "big", b"x" * 64)
    refusing = rules((" serve -$", Reply(exit_status=1, stderr="no port free")))
    first = FakeConnector(refusing, spec=fake_spec(SITE, "a"))
    second = FakeConnector(spec=fake_spec(SITE, "b"))
    distributor = Distributor()
    distributor.deliver(first, first.host, PY, [Placement(big, "/w/big")], "m")
    delivery = distributor.deliver(second, second.host, PY, [Placement(big, "/w/big")], "m")
    assert delivery.sources == {"controller": 1}
    assert (
        delivery.warnings
        and "could not get a file from a (it could not serve" in (delivery.warnings[0])
    )
    assert any(c.kind == "append_file" for c in second.calls)


def test_what_every_host_needs_is_computed_once() -> None:
    distributor = Distributor()
    calls: list[int] = []
    gate = threading.Barrier(4)

    def compute() -> object:
        calls.append(1)
        return "manifest"

    def job() -> None:
        gate.wait()
        assert distributor.once(("model", "m"), compute) == "manifest"

    threads = [threading.Thread(target=job) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert calls == [1]


def test_the_fake_connector_keeps_what_was_appended(tmp_path: Path) -> None:
    connector = FakeConnector()
    connector.append_file(artifact(tmp_path, "f", b"hello").local_path, "/p", 0)
    assert connector.get("/p") == b"hello"
    assert connector.calls[-1] == Call("get", path="/p")
