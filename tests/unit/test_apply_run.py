"""apply's orchestration without a host: gather, plan, lock, steps, unlock, as the fake
connector sees them (tests/support/fakehost.py). What the steps do to a real host is
proven over real sshd in tests/ssh/test_apply.py."""

from __future__ import annotations

import json

from localai_provision.apply import FAILED, OK, ApplyOptions, apply_hosts
from localai_provision.apply.hostlock import unlock_command
from localai_provision.facts.parse import FRAME_BEGIN, FRAME_END
from localai_provision.fleet import HostResult
from localai_provision.layout import Layout
from localai_provision.site.model import HostSpec
from tests.support.fakehost import Call, FakeConnector, Handler, Reply
from tests.unit.test_plan import in_sync_doc, spec_with

PREFIX = "/tmp/rec/home/.localai"


def facts_reply(doc: dict[str, object]) -> Reply:
    return Reply(stdout=f"banner\n{FRAME_BEGIN}\n{json.dumps(doc)}\n{FRAME_END}\n")


def is_gather(call: Call) -> bool:
    return call.is_run and call.command.startswith("LOCALAI_UNAME=")


def run(spec: HostSpec, handler: Handler) -> tuple[FakeConnector, HostResult]:
    made: list[FakeConnector] = []

    def factory(host: HostSpec) -> FakeConnector:
        made.append(FakeConnector(handler, spec=host))
        return made[-1]

    (result,) = apply_hosts([spec], ApplyOptions(lock_wait_s=0.1), connector_factory=factory)
    return made[0], result


def test_a_host_in_sync_costs_one_command_and_takes_no_lock() -> None:
    doc = in_sync_doc()
    connector, result = run(spec_with(), lambda call: facts_reply(doc) if is_gather(call) else None)
    assert result.status == OK
    assert len(connector.calls) == 1 and is_gather(connector.calls[0])
    assert not connector.opened  # released


def test_a_step_that_fails_ends_the_host_under_its_lock_and_says_what_it_changed() -> None:
    doc = in_sync_doc()

    def handler(call: Call) -> Reply | None:
        if is_gather(call):
            return facts_reply(doc)
        if call.is_run and "prefix, timeout" in call.command:  # scripts/stop.py
            return Reply(exit_status=1, stderr="stop: permission denied")
        return None

    # Another log level: a new server configuration, then a restart, whose stop fails.
    connector, result = run(spec_with(log_level="debug"), handler)
    assert result.status == FAILED
    error = result.error
    assert error is not None
    assert error.step == "service" and "restart failed" in error.message
    assert [c.resource for c in result.changes] == ["server-config"]
    kinds = [c.kind for c in connector.calls]
    assert kinds[0] == "run" and is_gather(connector.calls[0])
    assert "L_LOCK=" in connector.calls[1].command  # the lock, then the leftovers
    assert f"{PREFIX}/server.json" in connector.puts()
    assert connector.calls[-1].command == unlock_command(Layout(PREFIX))
