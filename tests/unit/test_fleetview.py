"""A host's result as the page and the metrics see it: status and drift flattened."""

from __future__ import annotations

import pytest

from localai_provision.cli.fleetview import epoch, host_view
from localai_provision.errors import ConnectError
from localai_provision.fleet import HostResult
from localai_provision.plan import Action, Change, Kind
from localai_provision.results import HostStatus
from tests.support.fakehost import fake_spec
from tests.unit.test_cli_render import SERVER

PKG = Change("m1", Kind.PACKAGE, "mlx-lm", Action.UPDATE, "0.1", "0.2", "0.2 wanted")
MODEL = Change("m1", Kind.MODEL, "org/a", Action.CREATE, None, "main", "not there")


def test_a_running_host_shows_its_server_latency_and_drift_by_kind() -> None:
    result = HostResult(
        name="m1", status=HostStatus.RUNNING, details=SERVER, changes=[PKG, PKG, MODEL]
    )
    view = host_view(fake_spec(), result)
    assert view.up and view.running and not view.in_sync
    assert view.drift == {"package": 2, "model": 1}
    assert view.server_version == "0.5.1" and view.latency_ms == 12.34
    assert view.memory_bytes is None  # no facts: "-" on the page, no sample in the metrics
    assert view.last_apply_epoch == epoch("2026-12-01T19:00:00Z")


def test_an_unreachable_host_is_down_with_its_error_and_nothing_else() -> None:
    error = ConnectError(host="m1", step="connect", message="refused")
    view = host_view(None, HostResult(name="m1", status=HostStatus.UNREACHABLE, error=error))
    assert not view.up and not view.in_sync and view.error == "refused"
    assert view.server_version is None and view.drift == {} and view.package_set == "pins"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-12-01T19:00:00Z", 1796151600.0),
        ("2026-12-01T19:00:00+00:00", 1796151600.0),
        ("2026-12-01T19:00:00", 1796151600.0),  # no zone: the tool writes UTC
        ("yesterday", None),
        (None, None),
    ],
)
def test_a_hosts_time_is_read_as_seconds_or_not_at_all(
    text: str | None, expected: float | None
) -> None:
    assert epoch(text) == expected
