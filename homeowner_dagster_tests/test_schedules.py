"""Schedule ticks at real dates, and the client registry sensor, against a real database."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import date, datetime
from zoneinfo import ZoneInfo

import psycopg
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
from homeowner_dagster.assets.overdue import missed_windows_notice, missed_windows_schedule
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


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    with Sandbox(seed=3) as running:
        yield running


@pytest.fixture
def slack(sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> Iterator[HomeownerSlackResource]:
    sandbox.slack.messages.clear()
    for key, value in sandbox.env().items():
        monkeypatch.setenv(key, value)  # SLACK_API_URL: the resource reads its address there
    yield HomeownerSlackResource(token=sandbox.slack.token)


def tick(
    schedule, when: datetime, dsn: str, slack: HomeownerSlackResource | None = None
) -> list[RunRequest] | SkipReason:  # noqa: ANN001
    resources: dict[str, object] = {"database": PostgresResource()}
    if slack is not None:
        resources["slack"] = slack
    # Entered, so its resources (and the instance Dagster makes for them) are closed after.
    with build_schedule_context(scheduled_execution_time=when, resources=resources) as context:
        result = schedule(context)
        return result if isinstance(result, SkipReason) else list(result)


def keys(requests: list[RunRequest]) -> list[dict[str, str]]:
    return [
        dict(MultiPartitionKey(r.partition_key).keys_by_dimension)
        if isinstance(r.partition_key, MultiPartitionKey)
        else r.partition_key
        for r in requests
    ]


def test_monthly_tick_on_the_15th_pulls_m_plus_2_once_per_active_client(clients: str) -> None:
    requests = tick(monthly_pull_schedule, datetime(2026, 11, 15, 9, tzinfo=CHICAGO), clients)
    assert [str(r.partition_key) for r in requests] == ["garden-state|2027-01", "lone-star|2027-01"]
    assert requests[0].run_key == "monthly-garden-state-2027-01"
    assert requests[0].tags["cole-login-NJ"] and requests[0].tags["cole-login-NY"]
    assert "cole-login-TX" in requests[1].tags
    again = tick(monthly_pull_schedule, datetime(2026, 11, 15, 9, tzinfo=CHICAGO), clients)
    assert [r.run_key for r in again] == [
        r.run_key for r in requests
    ]  # the daemon dedupes by run key


@pytest.mark.parametrize(
    ("monday", "window"),
    [
        (
            date(2027, 2, 22),
            RenewalWindow(date(2027, 3, 22), date(2027, 3, 31)),
        ),  # before a 31-day month
        (
            date(2028, 1, 24),
            RenewalWindow(date(2028, 2, 22), date(2028, 2, 29)),
        ),  # February, leap year
        (date(2024, 1, 1), RenewalWindow(date(2024, 2, 1), date(2024, 2, 7))),
    ],
)
def test_weekly_tick_requests_the_due_window_per_client(
    clients: str, slack: HomeownerSlackResource, monday: date, window: RenewalWindow
) -> None:
    requests = tick(
        weekly_upload_schedule,
        datetime(monday.year, monday.month, monday.day, 9, tzinfo=CHICAGO),
        clients,
        slack,
    )
    assert [str(r.partition_key) for r in requests] == [
        f"garden-state|{window.key}",
        f"lone-star|{window.key}",
    ]
    assert all(r.tags["late"] == "false" for r in requests)


def test_a_monday_with_no_due_window_skips(clients: str, slack: HomeownerSlackResource) -> None:
    result = tick(weekly_upload_schedule, datetime(2026, 12, 28, 9, tzinfo=CHICAGO), clients, slack)
    assert isinstance(result, SkipReason)


def pulled(dsn: str, client: str, month: str) -> None:
    store.write_monthly_totals(
        dsn,
        {
            "client_slug": client,
            "month": month,
            "client_name": client,
            "workspace_name": "GS",
            "raw_count": 10,
            "cleaned_count": 5,
            "rejected_count": 5,
            "routed_count": 0,
            "target_count": 15000,
            "gap": 14995,
        },
    )


def set_state(dsn: str, client: str, start: date, state: str) -> None:
    window = RenewalWindow.starting(start)
    store.ensure_window(dsn, client, window)
    with psycopg.connect(dsn) as conn:
        conn.execute(
            "update client_lead_batches set status = %s, "
            "evergreen_announced_at = case when %s = 'done' then now() end "
            "where client_slug = %s and window_start = %s",
            [state, state, client, start],
        )


def at(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, 9, tzinfo=CHICAGO)


def test_a_window_that_never_uploaded_is_requested_late(
    clients: str, slack: HomeownerSlackResource
) -> None:
    # 2027-01 was pulled for garden-state; its Jan 8 window never reached Bison. On Mon Jan 4
    # the due window is Feb 1; Jan 8 starts within 34 days and is flagged late.
    pulled(clients, "garden-state", "2027-01")
    requests = tick(weekly_upload_schedule, at(date(2027, 1, 4)), clients, slack)
    gs = [
        (str(r.partition_key), r.tags["late"])
        for r in requests
        if str(r.partition_key).startswith("garden")
    ]
    assert ("garden-state|2027-01-08", "true") in gs
    assert ("garden-state|2027-02-01", "false") in gs
    # One run per window and Monday: next Monday may ask again for a window still not done.
    assert {r.run_key for r in requests} >= {"weekly-garden-state-2027-01-08-2027-01-04"}


@pytest.mark.parametrize("stopped_in", ["pending", "list_created", "list_verified", "attached"])
def test_a_window_not_done_is_asked_for_every_monday_until_its_first_day(
    clients: str, slack: HomeownerSlackResource, stopped_in: str
) -> None:
    """PT5 failed after PT4 (or any other stop): the next Mondays request the window again."""
    pulled(clients, "garden-state", "2027-02")
    window = RenewalWindow.starting(date(2027, 2, 1))
    set_state(clients, "garden-state", window.start, stopped_in)
    asked = []
    for monday in (
        date(2026, 12, 28),
        date(2027, 1, 4),
        date(2027, 1, 11),
        date(2027, 1, 18),
        date(2027, 1, 25),
        date(2027, 2, 1),
    ):
        result = tick(weekly_upload_schedule, at(monday), clients, slack)
        requests = [] if isinstance(result, SkipReason) else result
        if any(str(r.partition_key) == f"garden-state|{window.key}" for r in requests):
            asked.append(monday)
    assert asked == [date(2027, 1, 4), date(2027, 1, 11), date(2027, 1, 18), date(2027, 1, 25)]
    with psycopg.connect(clients) as conn:  # done, its Slack message not posted: asked for again
        conn.execute(
            "update client_lead_batches set status = 'done' where window_start = %s", [window.start]
        )
    requests = tick(weekly_upload_schedule, at(date(2027, 1, 25)), clients, slack)
    assert f"garden-state|{window.key}" in [str(r.partition_key) for r in requests]
    set_state(clients, "garden-state", window.start, "done")
    requests = tick(weekly_upload_schedule, at(date(2027, 1, 25)), clients, slack)
    assert f"garden-state|{window.key}" not in [str(r.partition_key) for r in requests]


def _ledger(dsn: str) -> list[tuple]:  # type: ignore[type-arg]
    with psycopg.connect(dsn) as conn:
        return conn.execute(
            "select client_slug, window_start, status, missed_reported_at from client_lead_batches order by 1, 2"
        ).fetchall()


def _notice_runs(requests: list[RunRequest] | SkipReason, slack: HomeownerSlackResource) -> None:
    """Execute the notice runs the schedule asked for, as the daemon would."""
    for request in [] if isinstance(requests, SkipReason) else requests:
        missed_windows_notice.execute_in_process(
            run_config=request.run_config,
            tags=request.tags,
            resources={"database": PostgresResource(), "slack": slack},
        )


def test_a_window_whose_first_day_came_without_being_done_is_posted_once_by_a_run(
    clients: str, sandbox: Sandbox, slack: HomeownerSlackResource
) -> None:
    """The Monday schedules only read and request runs: evaluating them (as the UI's "Preview
    tick result" does) posts nothing and writes nothing; the notices are posted by the run the
    missed-windows schedule requests for the client, once per window.

    Fails against the old weekly schedule: it posted and wrote the ledger inside its evaluation."""
    pulled(clients, "garden-state", "2027-02")
    set_state(clients, "garden-state", date(2027, 2, 1), "list_verified")
    set_state(clients, "garden-state", date(2027, 2, 8), "done")
    ledger_before = _ledger(clients)
    for schedule in (weekly_upload_schedule, missed_windows_schedule):  # previews
        tick(schedule, at(date(2027, 2, 1)), clients)
    assert sandbox.slack.messages == [] and _ledger(clients) == ledger_before
    requests = tick(missed_windows_schedule, at(date(2027, 2, 1)), clients)
    assert [r.tags["client"] for r in requests] == [
        "garden-state"
    ]  # one run per client with misses
    _notice_runs(requests, slack)
    _notice_runs(requests, slack)  # the same run again (a retry): nothing posted twice
    for monday in (date(2027, 2, 8), date(2027, 2, 15)):
        _notice_runs(tick(missed_windows_schedule, at(monday), clients), slack)
    missed = [m for m in sandbox.slack.messages if m["text"].startswith("\u26d4 Missed window")]
    titles = sorted(m["text"].splitlines()[1] for m in missed)
    # Feb 1 (stopped list_verified) and Feb 15 (never uploaded) once each; Feb 8 was done.
    assert titles == [
        "Window: (February 15th - 21st renewals) 2027 began without being done (state: pending).",
        "Window: (February 1st - 7th renewals) 2027 began without being done (state: list_verified).",
    ]
    assert all(
        "homeowner windows force --client garden-state --window 2027-02-" in m["text"]
        for m in missed
    )
    assert isinstance(tick(missed_windows_schedule, at(date(2027, 2, 15)), clients), SkipReason)


def test_a_slack_outage_stops_no_clients_uploads(clients: str, sandbox: Sandbox) -> None:
    """Slack down on a Monday with a missed window: the weekly schedule still asks for every
    client's uploads (it never calls Slack); only the notice run fails, and Dagster retries it.

    Fails against the old weekly schedule: the Slack error ended the evaluation, no run at all."""
    pulled(clients, "garden-state", "2027-02")
    set_state(clients, "garden-state", date(2027, 2, 1), "list_verified")
    sandbox.faults.fired.clear()
    sandbox.faults.on("slack", "http_500")
    try:
        requests = tick(weekly_upload_schedule, at(date(2027, 2, 1)), clients)
    finally:
        sandbox.faults.off()
    assert {r.tags["client"] for r in requests} == {"garden-state", "lone-star"}
    assert ("slack", "http_500") not in sandbox.faults.fired


def test_windows_to_upload_skips_done_and_unpulled() -> None:
    monday = date(2027, 1, 4)
    out = windows_to_upload(monday, done={date(2027, 1, 8)}, pulled_months={"2027-01"})
    assert [(w.start, late) for w, late in out] == [
        (date(2027, 1, 15), True),
        (date(2027, 1, 22), True),
        (date(2027, 2, 1), False),
    ]
    assert windows_to_upload(monday, set(), set()) == [
        (RenewalWindow.starting(date(2027, 2, 1)), False)
    ]


def registry_sensor_resources() -> dict[str, object]:
    """The sensor's resources; Slack on a sandbox started by the caller (SLACK_API_URL)."""
    return {
        "database": PostgresResource(),
        "slack": HomeownerSlackResource(token=os.environ.get("SLACK_BOT_TOKEN", "xoxb-sandbox")),
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
        requests = {
            type(r).__name__: sorted(r.partition_keys) for r in result.dynamic_partitions_requests
        }
        assert requests == {
            "AddDynamicPartitionsRequest": ["garden-state", "lone-star"],
            "DeleteDynamicPartitionsRequest": ["gone-client"],
        }
        alerts = sandbox.slack.messages_in("#homeowner-ops")
        assert len(alerts) == 1 and "not in the client registry: gone-client" in alerts[0]
        instance.add_dynamic_partitions(client_partitions.name, ["garden-state", "lone-star"])
        instance.delete_dynamic_partition(client_partitions.name, "gone-client")
        assert isinstance(
            client_registry_sensor(
                build_sensor_context(instance=instance, resources=registry_sensor_resources())
            ),
            SkipReason,
        )
