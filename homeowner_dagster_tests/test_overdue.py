"""A renewal window not `done` by its Monday shows as overdue in the UI (a failed asset check on
the Evergreen campaign, naming the clients behind)."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pandas as pd
from dagster import AssetCheckKey, AssetKey, instance_for_test

from homeowner_dagster import db, registry
from homeowner_dagster.leads.calendar import RenewalWindow, month_key, windows_of_month
from homeowner_dagster.leads.overdue import overdue_windows
from homeowner_dagster.leads.territories import parse_clients

CLIENTS = """
clients:
  - {slug: on-time, name: On Time, workspace: OT, package_tier: 100, licensed_states: [NJ]}
  - {slug: behind, name: Behind, workspace: BH, package_tier: 100, licensed_states: [NJ]}
  - {slug: retired, name: Retired, workspace: RT, package_tier: 100, licensed_states: [NJ], active: no}
"""


def test_overdue_rule_counts_only_windows_past_their_monday_and_not_over() -> None:
    month = date(2027, 3, 1)
    windows = windows_of_month(month)
    today = windows[1].due_monday + timedelta(days=1)  # the first two windows' Mondays passed
    ledger = pd.DataFrame(
        [["a", windows[0].start, "done"], ["b", windows[0].start, "attached"]],
        columns=["client_slug", "window_start", "status"],
    )
    pulled = pd.DataFrame(
        [["a", "2027-03"], ["b", "2027-03"], ["c", "2027-03"]], columns=["client_slug", "month"]
    )
    out = overdue_windows(ledger, pulled, ["a", "b"], today)  # c is inactive
    assert [tuple(r) for r in out[["client", "window", "state"]].itertuples(index=False)] == [
        ("b", "2027-03-01", "attached"),
        ("a", "2027-03-08", "pending"),
        ("b", "2027-03-08", "pending"),
    ]
    assert overdue_windows(
        ledger, pulled, ["a", "b"], windows[0].due_monday
    ).empty  # due today: not yet


def test_overdue_check_names_the_clients_behind(database_url: str) -> None:
    registry.upsert_clients(parse_clients(CLIENTS, "clients.yaml"), database_url)
    today = datetime.now(ZoneInfo("America/Chicago")).date()
    window = RenewalWindow.containing(today + timedelta(days=20))  # its Monday has passed
    month = month_key(window.month)
    with db.connect(database_url) as conn:
        for slug in ("on-time", "behind", "retired"):
            conn.execute(
                "insert into monthly_cleaned_leads (client_slug, client_name, workspace_name, month, target_count, gap) "
                "values (%s, %s, %s, %s, 15000, 0)",
                [slug, slug, slug, month],
            )
        for w in windows_of_month(window.month):  # on-time: every window done
            conn.execute(
                "insert into client_lead_batches (client_slug, window_start, window_end, month, list_name, status) "
                "values ('on-time', %s, %s, %s, %s, 'done')",
                [w.start, w.end, month, w.list_name],
            )
        conn.execute(
            "insert into client_lead_batches (client_slug, window_start, window_end, month, list_name, status) "
            "values ('behind', %s, %s, %s, %s, 'list_created')",
            [window.start, window.end, month, window.list_name],
        )
    from homeowner_dagster.definitions import build_definitions

    with instance_for_test() as instance:
        result = (
            build_definitions()
            .resolve_job_def("overdue_windows")
            .execute_in_process(instance=instance)
        )
        evaluation = result.get_asset_check_evaluations()[0]
    assert evaluation.asset_check_key == AssetCheckKey(
        AssetKey("evergreen_campaign"), "windows_done_by_their_monday"
    )
    assert not evaluation.passed
    metadata = evaluation.metadata
    assert metadata["clients_behind"].value == "behind"
    rows = [dict(r.data) for r in metadata["overdue"].value.records]
    assert {
        "client": "behind",
        "window": window.key,
        "list_name": window.list_name,
        "due_monday": window.due_monday.isoformat(),
        "state": "list_created",
    } in rows
    assert {r["client"] for r in rows} == {"behind"}
