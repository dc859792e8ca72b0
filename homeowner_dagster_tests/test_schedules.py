"""Schedule ticks at real dates, and the client registry sensor, against a real database."""

from __future__ import annotations

import os
from datetime import date, datetime
from zoneinfo import ZoneInfo

import pytest
from dagster import (
    MultiPartitionKey,
    RunRequest,
    SensorResult,
    SkipReason,
    build_schedule_context,
    build_sensor_context,
    instance_for_test,
)

from homeowner_dagster import registry, store
from homeowner_dagster.leads.calendar import RenewalWindow
from homeowner_dagster.leads.territories import parse_clients
from homeowner_dagster.partitions import client_partitions
from homeowner_dagster.resources.database import PostgresResource
from homeowner_dagster.resources.slack import HomeownerSlackResource
from homeowner_dagster.sandbox import Sandbox
from homeowner_dagster.schedules import (
    monthly_pull_schedule,
    weekly_upload_schedule,
    windows_to_upload,
)
from homeowner_dagster.sensors import client_registry_sensor

CHICAGO = ZoneInfo("America/Chicago")
CLIENTS = """
clients:
  - {slug: garden-state, name: Garden State, workspace: GS, package_tier: 100, licensed_states: [NJ, NY]}
  - {slug: lone-star, name: Lone Star, workspace: LS, package_tier: 200, licensed_states: [TX]}
  - {slug: retired, name: Retired Agency, workspace: RA, package_tier: 100, licensed_states: [FL], active: no}
"""


@pytest.fixture
def clients(database_url: str) -> str:
    registry.upsert_clients(parse_clients(CLIENTS, "clients.yaml"), database_url)
    return database_url


def tick(schedule, when: datetime, dsn: str) -> list[RunRequest] | SkipReason:  # noqa: ANN001
    context = build_schedule_context(scheduled_execution_time=when, resources={"database": PostgresResource()})
    result = schedule(context)
    return result if isinstance(result, SkipReason) else list(result)


def keys(requests: list[RunRequest]) -> list[dict[str, str]]:
    return [dict(MultiPartitionKey(r.partition_key).keys_by_dimension) if isinstance(r.partition_key, MultiPartitionKey) else r.partition_key for r in requests]


def test_monthly_tick_on_the_15th_pulls_m_plus_2_once_per_active_client(clients: str) -> None:
    requests = tick(monthly_pull_schedule, datetime(2026, 11, 15, 9, tzinfo=CHICAGO), clients)
    assert [str(r.partition_key) for r in requests] == ["garden-state|2027-01", "lone-star|2027-01"]
    assert requests[0].run_key == "monthly-garden-state-2027-01"
    assert requests[0].tags["cole-login-NJ"] and requests[0].tags["cole-login-NY"]
    assert "cole-login-TX" in requests[1].tags
    again = tick(monthly_pull_schedule, datetime(2026, 11, 15, 9, tzinfo=CHICAGO), clients)
    assert [r.run_key for r in again] == [r.run_key for r in requests]  # the daemon dedupes by run key


@pytest.mark.parametrize(
    ("monday", "window"),
    [
        (date(2027, 2, 22), RenewalWindow(date(2027, 3, 22), date(2027, 3, 31))),  # before a 31-day month
        (date(2028, 1, 24), RenewalWindow(date(2028, 2, 22), date(2028, 2, 29))),  # February, leap year
        (date(2024, 1, 1), RenewalWindow(date(2024, 2, 1), date(2024, 2, 7))),
    ],
)
def test_weekly_tick_requests_the_due_window_per_client(clients: str, monday: date, window: RenewalWindow) -> None:
    requests = tick(weekly_upload_schedule, datetime(monday.year, monday.month, monday.day, 9, tzinfo=CHICAGO), clients)
    assert [str(r.partition_key) for r in requests] == [f"garden-state|{window.key}", f"lone-star|{window.key}"]
    assert all(r.tags["late"] == "false" for r in requests)


def test_a_monday_with_no_due_window_skips(clients: str) -> None:
    result = tick(weekly_upload_schedule, datetime(2026, 12, 28, 9, tzinfo=CHICAGO), clients)
    assert isinstance(result, SkipReason)


def test_a_window_that_never_uploaded_is_requested_late(clients: str) -> None:
    # 2027-01 was pulled for garden-state; its Jan 8 window never reached Bison. On Mon Jan 4
    # the due window is Feb 1; Jan 8 starts within 34 days and is flagged late.
    store.write_monthly_totals(
        clients,
        {"client_slug": "garden-state", "month": "2027-01", "client_name": "Garden State",
         "workspace_name": "GS", "raw_count": 10, "cleaned_count": 5, "rejected_count": 5,
         "routed_count": 0, "target_count": 15000, "gap": 14995},
    )
    requests = tick(weekly_upload_schedule, datetime(2027, 1, 4, 9, tzinfo=CHICAGO), clients)
    gs = [(str(r.partition_key), r.tags["late"]) for r in requests if str(r.partition_key).startswith("garden")]
    assert ("garden-state|2027-01-08", "true") in gs
    assert ("garden-state|2027-02-01", "false") in gs


def test_windows_to_upload_skips_uploaded_and_unpulled() -> None:
    monday = date(2027, 1, 4)
    out = windows_to_upload(monday, uploaded={date(2027, 1, 8)}, pulled_months={"2027-01"})
    assert [(w.start, late) for w, late in out] == [
        (date(2027, 1, 15), True), (date(2027, 1, 22), True), (date(2027, 2, 1), False)
    ]
    assert windows_to_upload(monday, set(), set()) == [(RenewalWindow.starting(date(2027, 2, 1)), False)]


def registry_sensor_resources() -> dict[str, object]:
    """The sensor's resources; Slack on a sandbox started by the caller (SLACK_API_URL)."""
    return {
        "database": PostgresResource(),
        "slack": HomeownerSlackResource(
            token=os.environ.get("SLACK_BOT_TOKEN", "xoxb-sandbox"),
            base_url=os.environ.get("SLACK_API_URL", "http://127.0.0.1:9/api/"),
        ),
    }


def test_registry_sensor_adds_active_clients_and_drops_deleted_ones(
    clients: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    sandbox = Sandbox().start()
    for key, value in sandbox.env().items():
        monkeypatch.setenv(key, value)
    try:
        _registry_sensor_adds_and_reports(sandbox)
    finally:
        sandbox.stop()


def _registry_sensor_adds_and_reports(sandbox: Sandbox) -> None:
    with instance_for_test() as instance:
        instance.add_dynamic_partitions(client_partitions.name, ["gone-client"])
        context = build_sensor_context(instance=instance, resources=registry_sensor_resources())
        result = client_registry_sensor(context)
        assert isinstance(result, SensorResult)
        requests = {type(r).__name__: sorted(r.partition_keys) for r in result.dynamic_partitions_requests}
        assert requests == {
            "AddDynamicPartitionsRequest": ["garden-state", "lone-star"],
            "DeleteDynamicPartitionsRequest": ["gone-client"],
        }
        alerts = sandbox.slack.messages_in("#homeowner-ops")
        assert len(alerts) == 1 and "not in the client registry: gone-client" in alerts[0]
        instance.add_dynamic_partitions(client_partitions.name, ["garden-state", "lone-star"])
        instance.delete_dynamic_partition(client_partitions.name, "gone-client")
        assert isinstance(client_registry_sensor(build_sensor_context(instance=instance, resources=registry_sensor_resources())), SkipReason)
