"""A renewal window's life through real weekly runs: states, identity, late windows, titles, campaigns.

The month's cleaned leads are written with the pipeline's own store functions (the monthly pull is
covered elsewhere), then the weekly job runs through Dagster against the sandbox's Email Bison and
Slack and the real ledger.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
import pytest
from dagster import DagsterEventType, build_schedule_context
from dagster._core.test_utils import freeze_time

from homeowner_dagster import db, registry, settings, store
from homeowner_dagster.cli import main as homeowner
from homeowner_dagster.leads.calendar import (
    RenewalWindow,
    add_months,
    windows_of_month,
)
from homeowner_dagster.leads.territories import parse_clients
from homeowner_dagster.resources.database import PostgresResource
from homeowner_dagster.resources.slack import HomeownerSlackResource
from homeowner_dagster.schedules import weekly_upload_schedule
from homeowner_dagster_tests import pipeline_fixtures
from homeowner_dagster_tests.pipeline_fixtures import CLIENTS_YAML, MONTH, Pipeline, seed_month

pipeline_sandbox = pipeline_fixtures.pipeline_sandbox
pipeline = pipeline_fixtures.pipeline

CHICAGO = ZoneInfo("America/Chicago")
CLIENT = "garden-state"
WORKSPACE = "Garden State Insurance"
CHANNEL = "#garden-state"
FIRST, SECOND = windows_of_month(MONTH)[:2]
PREVIOUS = windows_of_month(add_months(MONTH, -1))[-1]  # the campaign's title at the start


@pytest.fixture
def pulled(pipeline: Pipeline) -> Pipeline:
    seed_month(pipeline.dsn, CLIENT, MONTH)
    return pipeline


def evergreen(p: Pipeline) -> dict[str, Any]:
    found = [
        c
        for c in p.sandbox.bison.workspaces[WORKSPACE].campaigns.values()
        if "evergreen" in c["name"].lower()
    ]
    assert len(found) == 1, [c["name"] for c in found]
    return found[0]


def ledger(dsn: str, window: RenewalWindow) -> dict[str, Any] | None:
    return store.ledger_row(dsn, CLIENT, window)


def metadata(result: Any, asset: str) -> dict[str, Any]:
    for event in result.get_asset_materialization_events():
        mat = event.event_specific_data.materialization
        if mat.asset_key.path[-1] == asset:
            return {k: v.value for k, v in mat.metadata.items()}
    return {}


def failure_message(result: Any) -> str:
    return "\n".join(
        e.event_specific_data.error.message
        for e in result.all_events
        if e.event_type == DagsterEventType.STEP_FAILURE
    )


def slack_texts(p: Pipeline, prefix: str) -> list[str]:
    return [t for t in p.sandbox.slack.messages_in(CHANNEL) if t.startswith(prefix)]


def test_a_window_walks_its_states_and_shows_them_in_run_metadata(pulled: Pipeline) -> None:
    result = pulled.weekly(CLIENT, FIRST.start)
    assert metadata(result, "bison_lead_lists")["window_state"] == "list_verified"
    assert metadata(result, "bison_lead_lists")["window_state_found"] == "pending"
    assert metadata(result, "evergreen_campaign")["window_state"] == "done"
    row = ledger(pulled.dsn, FIRST)
    assert row["status"] == "done" and row["lead_count"] == 3
    campaign = evergreen(pulled)
    assert campaign["name"] == FIRST.evergreen_title
    names = pulled.sandbox.bison.list_names(WORKSPACE)
    assert names == [FIRST.list_name] and FIRST.list_name.endswith(" 2027")
    assert len(slack_texts(pulled, "✅ Refined Data Uploaded")) == 1
    assert len(slack_texts(pulled, "Evergreen uploads completed")) == 1
    # A second run finds it done: nothing uploaded, attached or posted again.
    again = pulled.weekly(CLIENT, FIRST.start)
    assert metadata(again, "evergreen_campaign")["window_state_found"] == "done"
    assert pulled.sandbox.bison.list_names(WORKSPACE) == names
    assert evergreen(pulled)["total_leads"] == 3
    assert len(slack_texts(pulled, "Evergreen uploads completed")) == 1


def test_a_month_never_pulled_uploads_nothing_and_says_which_month_to_pull(
    pipeline: Pipeline,
) -> None:
    result = pipeline.weekly(CLIENT, FIRST.start)
    assert result.success
    assert result.get_asset_materialization_events() == []  # PT4 skipped, PT5 not run
    assert pipeline.sandbox.bison.list_names(WORKSPACE) == []
    assert evergreen(pipeline)["name"] == PREVIOUS.evergreen_title
    assert ledger(pipeline.dsn, FIRST) is None
    notices = slack_texts(pipeline, "⏸️ Upload skipped")
    assert len(notices) == 1 and "Renewal month 2027-01 has not been pulled" in notices[0]
    run = pipeline.instance.get_run_by_id(result.run_id)
    assert "2027-01 not pulled" in run.tags["homeowner/skipped"]


def test_a_late_window_after_the_due_one_is_attached_and_the_title_stays(pulled: Pipeline) -> None:
    assert pulled.weekly(CLIENT, SECOND.start).success
    assert evergreen(pulled)["name"] == SECOND.evergreen_title
    assert pulled.weekly(CLIENT, FIRST.start).success  # late: its Monday passed
    campaign = evergreen(pulled)
    assert campaign["name"] == SECOND.evergreen_title  # never moved back
    attached = pulled.sandbox.bison.attached_lists(WORKSPACE, campaign["id"])
    assert sorted(attached) == sorted([FIRST.list_name, SECOND.list_name])
    row = ledger(pulled.dsn, FIRST)
    assert row["status"] == "done" and row["campaign_title_after"] == SECOND.evergreen_title


@pytest.mark.parametrize(
    ("title", "moved_on"),
    [
        ("Evergreen, Last Upload: December 22-31", "Evergreen, Last Upload: January 1-7"),
        ("evergreen, last upload: Dec 22\u201331", "Evergreen, Last Upload: Jan 1\u20137"),
        (
            "Evergreen, Last Upload: December 22nd - 31st",
            "Evergreen, Last Upload: January 1st - 7th",
        ),
        ("EVERGREEN, LAST UPLOAD: December 22nd-31st", "Evergreen, Last Upload: January 1st-7th"),
    ],
)
def test_every_title_style_is_read_and_moved_forward_in_its_own_style(
    pulled: Pipeline, title: str, moved_on: str
) -> None:
    """Abbreviated or full month, hyphen or en dash, ordinals or not: the campaign's own style."""
    evergreen(pulled)["name"] = title
    assert pulled.weekly(CLIENT, FIRST.start).success
    assert evergreen(pulled)["name"] == moved_on


def test_a_title_naming_a_later_window_in_ordinal_style_is_not_moved_back(pulled: Pipeline) -> None:
    evergreen(pulled)["name"] = "Evergreen, Last Upload: January 8th-14th"
    with freeze_time(datetime(2026, 12, 7, 9, tzinfo=CHICAGO)):  # SECOND's Monday: FIRST is late
        assert pulled.weekly(CLIENT, FIRST.start).success
    campaign = evergreen(pulled)
    assert campaign["name"] == "Evergreen, Last Upload: January 8th-14th"
    assert pulled.sandbox.bison.attached_lists(WORKSPACE, campaign["id"]) == [FIRST.list_name]


def test_an_unreadable_title_is_a_slack_alert_and_no_rename(pulled: Pipeline) -> None:
    evergreen(pulled)["name"] = "Evergreen - spring push"
    result = pulled.weekly(CLIENT, FIRST.start)
    assert result.success
    campaign = evergreen(pulled)
    assert campaign["name"] == "Evergreen - spring push"  # never a guess
    assert pulled.sandbox.bison.attached_lists(WORKSPACE, campaign["id"]) == [FIRST.list_name]
    alerts = slack_texts(pulled, "⚠️ Evergreen title not understood")
    assert len(alerts) == 1 and "Evergreen - spring push" in alerts[0]
    assert ledger(pulled.dsn, FIRST)["status"] == "attached"
    assert slack_texts(pulled, "Evergreen uploads completed") == []
    # A person fixes the title; the next run finishes the window without attaching again.
    campaign["name"] = "Evergreen, Last Upload: December 22-31"
    assert pulled.weekly(CLIENT, FIRST.start).success
    assert evergreen(pulled)["name"] == "Evergreen, Last Upload: January 1-7"  # its own style
    assert evergreen(pulled)["total_leads"] == 3
    assert ledger(pulled.dsn, FIRST)["status"] == "done"


def test_two_matching_campaigns_fail_with_their_names_and_ids(pulled: Pipeline) -> None:
    other = pulled.sandbox.bison.add_campaign(WORKSPACE, "evergreen (copy)")
    first = evergreen_id = next(
        c["id"]
        for c in pulled.sandbox.bison.workspaces[WORKSPACE].campaigns.values()
        if c["name"] == PREVIOUS.evergreen_title
    )
    result = pulled.weekly(CLIENT, FIRST.start, raise_on_error=False)
    assert not result.success
    message = failure_message(result)
    assert f"'{PREVIOUS.evergreen_title}' (id {first})" in message
    assert f"'evergreen (copy)' (id {other['id']})" in message
    assert ledger(pulled.dsn, FIRST)["status"] == "list_verified"
    assert pulled.sandbox.bison.workspaces[WORKSPACE].campaigns[evergreen_id]["lead_list_ids"] == []


def test_campaign_found_by_the_client_files_pattern_any_case_and_kept_by_id(
    pulled: Pipeline,
) -> None:
    text = CLIENTS_YAML.replace(
        'slack_channel: "#garden-state"',
        'slack_channel: "#garden-state"\n    campaign_name: HNW Evergreen',
    )
    registry.upsert_clients(parse_clients(text, "clients.yaml"), pulled.dsn)
    hnw = pulled.sandbox.bison.add_campaign(WORKSPACE, "hnw evergreen, last upload: Dec 22nd-31st")
    assert pulled.weekly(CLIENT, FIRST.start).success
    assert hnw["name"] == "hnw evergreen, last upload: Jan 1st-7th"  # its own prefix and style kept
    assert hnw["lead_list_ids"] != []
    assert store.stored_campaign(pulled.dsn, CLIENT)["campaign_id"] == str(hnw["id"])
    # Found by its stored id afterwards, even once a second campaign matches the pattern.
    pulled.sandbox.bison.add_campaign(WORKSPACE, "HNW Evergreen test")
    assert pulled.weekly(CLIENT, SECOND.start).success
    assert hnw["name"] == "hnw evergreen, last upload: Jan 8th-14th"


def test_a_list_with_the_windows_name_not_created_for_it_is_never_reused(pulled: Pipeline) -> None:
    """A person's list of the same name (or any list older than this window's upload request) is
    never taken as the window's: a new window uploads its own beside it (a lookup by name would
    cost a walk through every page of lists, B-PAGES); after a lost upload answer the stranger
    stops the run instead of being adopted."""
    bison = pulled.sandbox.bison
    ws = bison.workspaces[WORKSPACE]
    stranger = {
        "id": 9999,
        "name": FIRST.list_name,
        "created_at": "2026-01-05T10:00:00.000000Z",
        "updated_at": "2026-01-05T10:00:00.000000Z",
        "lead_emails": [],
    }
    ws.lead_lists[9999] = dict(stranger)
    assert pulled.weekly(CLIENT, FIRST.start).success
    row = ledger(pulled.dsn, FIRST)
    assert row["status"] == "done" and row["bison_list_id"] != "9999"
    assert bison.list_names(WORKSPACE).count(FIRST.list_name) == 2
    assert bison.attached_lists(WORKSPACE, evergreen(pulled)["id"]) == [FIRST.list_name]
    assert 9999 not in evergreen(pulled)["lead_list_ids"]
    # SECOND's upload was requested and its answer lost: only a list created since may be its own.
    ws.lead_lists[9998] = {**stranger, "id": 9998, "name": SECOND.list_name}
    store.ensure_window(pulled.dsn, CLIENT, SECOND)
    store.record_list_requested(pulled.dsn, CLIENT, SECOND)
    result = pulled.weekly(CLIENT, SECOND.start, raise_on_error=False)
    assert not result.success
    assert "did not create for this window" in failure_message(result)
    assert "homeowner windows force --client garden-state --window 2027-01-08" in failure_message(
        result
    )
    assert bison.list_names(WORKSPACE).count(SECOND.list_name) == 1  # nothing uploaded
    assert ledger(pulled.dsn, SECOND)["status"] == "pending"
    # Removed by the person: the next run uploads the window's own list.
    del ws.lead_lists[9998]
    assert pulled.weekly(CLIENT, SECOND.start).success
    assert ledger(pulled.dsn, SECOND)["status"] == "done"


def test_an_attach_the_campaign_does_not_show_fails_with_both_counts(pulled: Pipeline) -> None:
    pulled.sandbox.faults.on("bison", "attach_not_counted", times=1)
    result = pulled.weekly(CLIENT, FIRST.start, raise_on_error=False)
    assert not result.success
    assert "holds 0 leads (0 before) after waiting 900 s" in failure_message(result)
    assert "(3 lead(s) new to the campaign, 0 already in it)" in failure_message(result)
    assert ledger(pulled.dsn, FIRST)["status"] == "list_verified"
    assert pulled.weekly(CLIENT, FIRST.start).success  # next Monday's run attaches it
    assert evergreen(pulled)["total_leads"] == 3 and ledger(pulled.dsn, FIRST)["status"] == "done"


def test_pt5_failed_after_pt4_is_finished_by_next_mondays_request(pulled: Pipeline) -> None:
    campaign = evergreen(pulled)
    campaign["name"] = "Renewal push"  # no campaign matches: PT5 fails, PT4 done
    result = pulled.weekly(CLIENT, SECOND.start, raise_on_error=False)
    assert (
        not result.success
        and "no campaign whose title starts with 'Evergreen'" in failure_message(result)
    )
    assert ledger(pulled.dsn, SECOND)["status"] == "list_verified"
    campaign["name"] = PREVIOUS.evergreen_title
    # The next Monday's schedule tick asks for the window again; its run finishes it.
    monday = SECOND.due_monday + timedelta(days=7)
    with build_schedule_context(
        scheduled_execution_time=datetime(monday.year, monday.month, monday.day, 9),
        resources={
            "database": PostgresResource(),
            "slack": HomeownerSlackResource(token=pulled.sandbox.slack.token),
        },
    ) as context:
        requests = [
            r
            for r in weekly_upload_schedule(context)
            if str(r.partition_key) == f"{CLIENT}|{SECOND.key}"
        ]
    assert len(requests) == 1 and requests[0].tags["late"] == "true"
    job = pulled.defs.resolve_job_def("weekly_upload")
    again = job.execute_in_process(
        instance=pulled.instance,
        partition_key=requests[0].partition_key,
        tags=requests[0].tags,
        run_config=pipeline_fixtures.QUIET,
    )
    assert again.success
    assert metadata(again, "evergreen_campaign")["window_state_found"] == "list_verified"
    assert ledger(pulled.dsn, SECOND)["status"] == "done"
    assert pulled.sandbox.bison.list_names(WORKSPACE) == [SECOND.list_name]  # not uploaded twice


def test_homeowner_windows_lists_states_and_force_runs_a_missed_window(
    pulled: Pipeline,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert pulled.weekly(CLIENT, SECOND.start).success
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text((settings.project_root() / "dagster.yaml").read_text())
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.setenv(settings.DAGSTER_STORAGE_URL_ENV, db.dagster_storage_url(pulled.dsn))
    # A date before the month's windows begin, whatever the real date: from 2027-01-01 on
    # they would read `missed` (a window is missed once its first day comes undone).
    with freeze_time(datetime(2026, 12, 3, 9, tzinfo=CHICAGO)):
        assert homeowner(["windows", "--client", CLIENT]) == 0
        lines = capsys.readouterr().out.splitlines()
        states = {line.split()[0]: line.split()[1] for line in lines[1:]}
        assert states == {
            w.key: ("done" if w == SECOND else "pending") for w in windows_of_month(MONTH)
        }
        assert homeowner(["windows", "force", "--client", CLIENT, "--window", FIRST.key]) == 0
        assert "state done" in capsys.readouterr().out
        assert ledger(pulled.dsn, FIRST)["status"] == "done"
        runs = pulled.instance.get_runs()
        assert any(r.tags.get("forced") == "true" for r in runs)  # recorded where the UI reads runs
        assert homeowner(["windows", "force", "--client", CLIENT, "--window", "2027-01-02"]) == 2


def test_the_ledger_refuses_an_unknown_state(pulled: Pipeline) -> None:
    store.ensure_window(pulled.dsn, CLIENT, FIRST)
    with psycopg.connect(pulled.dsn) as conn, pytest.raises(psycopg.errors.CheckViolation):
        conn.execute(
            "update client_lead_batches set status = 'uploaded' where client_slug = %s", [CLIENT]
        )


def test_a_high_net_worth_destination_takes_its_hnw_evergreen_campaign(pulled: Pipeline) -> None:
    with psycopg.connect(pulled.dsn) as conn:
        conn.execute(
            "insert into hnw_routing_rules (name, destination_client, source_states, source_clients) "
            "values ('nj-hnw', %s, '{NJ}', '{sunshine}')",
            [CLIENT],
        )
    hnw = pulled.sandbox.bison.add_campaign(WORKSPACE, "HNW Evergreen, Last Upload: December 22-31")
    assert pulled.weekly(CLIENT, FIRST.start).success
    assert hnw["name"] == "HNW Evergreen, Last Upload: January 1-7"
    assert evergreen_titles(pulled) == sorted(
        [PREVIOUS.evergreen_title, hnw["name"]]
    )  # the other untouched


def evergreen_titles(p: Pipeline) -> list[str]:
    return sorted(
        c["name"]
        for c in p.sandbox.bison.workspaces[WORKSPACE].campaigns.values()
        if "vergreen" in c["name"]
    )


def test_an_owner_of_two_homes_in_one_window_gets_one_email_and_slack_says_why(
    pulled: Pipeline,
) -> None:
    """Cleaned 3, uploaded 2: the gap is named in Slack and in the run's metadata, not silent."""
    with psycopg.connect(pulled.dsn, autocommit=True) as conn:
        conn.execute(
            "update cleaned_leads set email = %s where client_slug = %s and email = %s",
            [
                f"{CLIENT}.{FIRST.start.isoformat()}.0@example.com",
                CLIENT,
                f"{CLIENT}.{(FIRST.start + timedelta(days=1)).isoformat()}.1@example.com",
            ],
        )
    result = pulled.weekly(CLIENT, FIRST.start)
    meta = metadata(result, "bison_lead_lists")
    assert (meta["cleaned_in_window"], meta["leads_in_bison"], meta["same_owner_other_home"]) == (
        3,
        2,
        1,
    )
    assert ledger(pulled.dsn, FIRST)["lead_count"] == 2
    [posted] = slack_texts(pulled, "✅ Refined Data Uploaded")
    assert "Not in the list: 1 cleaned lead(s) of owners with another home" in posted
