"""The weekly lifecycle against the documented Email Bison, in its second year and its dead ends.

Months are seeded with the pipeline's own store functions (the Cole pull is covered elsewhere);
the weekly job runs through Dagster against the sandbox Bison as documented by default: one lead
per email (B-UNIQUE), an attach counted 5 minutes later (B-SYNC, waited out on the sandbox
clock), no route for one lead list (B-NO-STATUS-ROUTE).
"""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
import pytest
from dagster import DagsterEventType, build_run_status_sensor_context
from dagster._core.test_utils import freeze_time

from homeowner_dagster import db, registry, settings, store
from homeowner_dagster.cli import main as homeowner
from homeowner_dagster.leads.calendar import windows_of_month
from homeowner_dagster.leads.territories import parse_clients
from homeowner_dagster.resources.database import PostgresResource
from homeowner_dagster.resources.slack import HomeownerSlackResource
from homeowner_dagster.sensors import run_failure_alert_sensor
from homeowner_dagster_tests import pipeline_fixtures
from homeowner_dagster_tests.pipeline_fixtures import CLIENTS_YAML, MONTH, Pipeline, seed_month

pipeline_sandbox = pipeline_fixtures.pipeline_sandbox
pipeline = pipeline_fixtures.pipeline

CHICAGO = ZoneInfo("America/Chicago")
CLIENT, WORKSPACE, CHANNEL = "garden-state", "Garden State Insurance", "#garden-state"
FIRST, SECOND = windows_of_month(MONTH)[:2]
NEXT_YEAR = date(2028, 1, 1)
FIRST_NEXT_YEAR = windows_of_month(NEXT_YEAR)[0]


def evergreen(p: Pipeline, workspace: str = WORKSPACE, prefix: str = "Evergreen") -> dict[str, Any]:
    p.sandbox.bison.settle(p.sandbox.bison.workspaces[workspace])
    found = [
        c
        for c in p.sandbox.bison.workspaces[workspace].campaigns.values()
        if c["name"].startswith(prefix) and c.get("status") != "archived"
    ]
    assert len(found) == 1, [c["name"] for c in found]
    return found[0]


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


def texts(p: Pipeline, prefix: str, channel: str = CHANNEL) -> list[str]:
    return [t for t in p.sandbox.slack.messages_in(channel) if t.startswith(prefix)]


def use_clients(dsn: str, yaml_text: str) -> None:
    registry.upsert_clients(parse_clients(yaml_text, "clients.yaml"), dsn)


def home_emails(day: date, i: int) -> str:
    """The same homeowners every year: an address per renewal day of the month and i."""
    return f"owner.{day.month:02d}{day.day:02d}.{i}@example.com"


def test_a_returning_homeowner_is_one_lead_and_the_window_says_how_many_came_back(
    pipeline: Pipeline,
) -> None:
    """Facts B-UNIQUE, B-SYNC: next year's renewal of the same homeowner is the same lead, already
    in the Evergreen campaign. The attach check waits for the growth of the leads new to the
    campaign only; metadata and Slack say how many homeowners came back from an earlier year.

    Fails against the old PT5: it expected `total_leads` to grow by the whole list (3), saw 1,
    and failed the window every Monday of year two."""
    p = pipeline
    seed_month(p.dsn, CLIENT, MONTH, email=home_emails)
    assert p.weekly(CLIENT, FIRST.start).success
    first_year = metadata(p.weekly(CLIENT, FIRST.start), "evergreen_campaign")
    assert first_year["returning_homeowners"] == 0
    # A year on: two of the three homeowners renew again; the third sold (a new owner, a new email).
    seed_month(
        p.dsn,
        CLIENT,
        NEXT_YEAR,
        email=lambda day, i: home_emails(day, i) if i < 2 else f"new.{i}@example.com",
    )
    with freeze_time(datetime(2027, 12, 6, 9, tzinfo=CHICAGO)):  # FIRST_NEXT_YEAR's Monday
        result = p.weekly(CLIENT, FIRST_NEXT_YEAR.start)
    assert result.success, failure_message(result)
    meta = metadata(result, "evergreen_campaign")
    assert (meta["returning_homeowners"], meta["leads_new_to_campaign"], meta["leads"]) == (2, 1, 3)
    assert (meta["campaign_leads_before"], meta["campaign_leads_after"]) == (3, 4)
    assert (
        evergreen(p)["total_leads"] == 4
        and evergreen(p)["name"] == "Evergreen, Last Upload: January 1\u20137"
    )
    row = store.ledger_row(p.dsn, CLIENT, FIRST_NEXT_YEAR)
    assert (row["status"], row["leads_returning"], row["leads_new"]) == ("done", 2, 1)
    [completed] = [
        t for t in texts(p, "Evergreen uploads completed") if "Already in the campaign" in t
    ]
    assert "Already in the campaign from an earlier year: 2 homeowner(s)" in completed
    assert "not documented" in completed
    assert len(p.sandbox.bison.workspaces[WORKSPACE].leads) == 4  # one lead per email


def test_a_list_that_did_not_land_is_alerted_at_once_and_the_window_can_be_run_again(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fact B-SYNC: the step waits out the documented sync; a list still not counted after that
    fails the step (the run-failure alert posts it the same minute) and stays `list_verified`."""
    p = pipeline
    seed_month(p.dsn, CLIENT, MONTH)
    p.sandbox.faults.on("bison", "attach_not_counted", times=1)
    result = p.weekly(CLIENT, FIRST.start, raise_on_error=False)
    assert not result.success
    assert "the list is not in it" in failure_message(result)
    assert store.ledger_row(p.dsn, CLIENT, FIRST)["status"] == "list_verified"
    failure = next(e for e in result.all_events if e.event_type == DagsterEventType.RUN_FAILURE)
    slack = HomeownerSlackResource(
        token=p.sandbox.slack.token, base_url=f"{p.sandbox.urls['slack']}/api/"
    )
    with build_run_status_sensor_context(
        sensor_name=run_failure_alert_sensor.name,
        dagster_instance=p.instance,
        dagster_run=result.dagster_run,
        dagster_event=failure,
        resources={"database": PostgresResource(), "slack": slack},
    ).for_run_failure() as context:
        run_failure_alert_sensor(context)
    [alert] = texts(p, "\U0001f6a8 weekly_upload failed", "#homeowner-ops")
    assert "the list is not in it" in alert and "homeowner windows force" in alert
    assert p.weekly(CLIENT, FIRST.start).success
    assert (
        store.ledger_row(p.dsn, CLIENT, FIRST)["status"] == "done"
        and evergreen(p)["total_leads"] == 3
    )


def _windows_command(p: Pipeline, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "dagster_home"
    home.mkdir(exist_ok=True)
    (home / "dagster.yaml").write_text((settings.project_root() / "dagster.yaml").read_text())
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.setenv(settings.DAGSTER_STORAGE_URL_ENV, db.dagster_storage_url(p.dsn))


def test_rows_bison_refused_have_a_way_forward_that_homeowner_windows_shows(
    pipeline: Pipeline,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Fact B-REFUSED-ROWS: a row Bison refuses stops the window in `list_created`; `homeowner
    windows` names the way on (`accept`, or fix and `forget-list`); after `accept` the next run
    verifies the list as it is and finishes the window.

    Fails against the old PT4: the error said "upload again" and every run re-verified the same
    list and failed again."""
    p = pipeline
    seed_month(p.dsn, CLIENT, MONTH)
    with psycopg.connect(p.dsn, autocommit=True) as conn:
        conn.execute(
            "update cleaned_leads set email = 'not an address' where client_slug = %s "
            "and renewal_window = %s and email like %s",
            [CLIENT, FIRST.start, "%.1@example.com"],
        )
    result = p.weekly(CLIENT, FIRST.start, raise_on_error=False)
    assert (
        not result.success
        and "homeowner windows accept --client garden-state --window 2027-01-01"
        in failure_message(result)
    )
    _windows_command(p, tmp_path, monkeypatch)
    capsys.readouterr()
    assert homeowner(["windows", "--client", CLIENT]) == 0
    listing = capsys.readouterr().out
    assert (
        "Bison refused 1 row(s): `homeowner windows accept --client garden-state --window 2027-01-01`"
        in listing
    )
    assert "homeowner windows forget-list" in listing
    assert p.weekly(CLIENT, FIRST.start, raise_on_error=False).success is False  # still refused
    assert (
        homeowner(["windows", "accept", "--client", CLIENT, "--window", FIRST.key, "--by", "dana"])
        == 0
    )
    assert p.weekly(CLIENT, FIRST.start).success
    row = store.ledger_row(p.dsn, CLIENT, FIRST)
    assert (row["status"], row["lead_count"], row["refused_accepted_by"]) == ("done", 2, "dana")
    assert evergreen(p)["total_leads"] == 2
    assert p.weekly(CLIENT, FIRST.start).success  # a re-run: nothing to do, the count check holds
    assert (
        homeowner(["windows", "accept", "--client", CLIENT, "--window", SECOND.key]) == 2
    )  # nothing refused


def test_a_recorded_list_bison_no_longer_lists_can_be_forgotten_and_uploaded_anew(
    pipeline: Pipeline, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fact B-NO-STATUS-ROUTE: the list is looked for in the documented paged list; one that is not
    there (deleted by hand) stops the run with `homeowner windows forget-list`, after which the
    next run uploads the window anew."""
    p = pipeline
    seed_month(p.dsn, CLIENT, MONTH)
    leads = store.window_leads(p.dsn, CLIENT, FIRST)
    store.ensure_window(p.dsn, CLIENT, FIRST)
    store.record_list_created(p.dsn, CLIENT, FIRST, "424242", leads["dedupe_key"])  # not in Bison
    result = p.weekly(CLIENT, FIRST.start, raise_on_error=False)
    assert not result.success
    assert (
        "homeowner windows forget-list --client garden-state --window 2027-01-01"
        in failure_message(result)
    )
    _windows_command(p, tmp_path, monkeypatch)
    assert homeowner(["windows", "forget-list", "--client", CLIENT, "--window", FIRST.key]) == 0
    assert p.weekly(CLIENT, FIRST.start).success
    row = store.ledger_row(p.dsn, CLIENT, FIRST)
    assert row["status"] == "done" and row["bison_list_id"] != "424242"
    assert (
        homeowner(["windows", "forget-list", "--client", CLIENT, "--window", FIRST.key]) == 2
    )  # done: no


def test_the_below_minimum_hold_fails_closed_when_the_gap_report_is_missing(
    pipeline: Pipeline,
) -> None:
    """A client set to hold_below_minimum with no gap report for the month: nobody knows whether it
    meets its minimum, so nothing is uploaded until the report exists or someone approves.

    Fails against the old hold: it let the upload through when the report was missing."""
    p = pipeline
    use_clients(
        p.dsn,
        CLIENTS_YAML.replace(
            '    slack_channel: "#garden-state"\n',
            '    slack_channel: "#garden-state"\n    hold_below_minimum: true\n',
        ),
    )
    seed_month(p.dsn, CLIENT, MONTH)
    assert p.weekly(CLIENT, FIRST.start).success
    assert p.sandbox.bison.list_names(WORKSPACE) == []
    [notice] = texts(p, "\u23f8\ufe0f Upload held")
    assert (
        "has no gap report" in notice
        and "homeowner approve --client garden-state --month 2027-01" in notice
    )
    assert homeowner(["approve", "--client", CLIENT, "--month", "2027-01", "--by", "dana"]) == 0
    assert p.weekly(CLIENT, FIRST.start).success
    assert p.sandbox.bison.list_names(WORKSPACE) == [FIRST.list_name]


@pytest.mark.parametrize("how", ["archived", "renamed away"])
def test_a_stored_campaign_that_no_longer_qualifies_is_let_go_with_a_slack_notice(
    pipeline: Pipeline, how: str
) -> None:
    """Fact B-CAMPAIGN-FIELDS: the campaign found by its title is kept by id, and checked again each
    time: archived (its status) or renamed away from the pattern, it is let go, Slack says so,
    and the Evergreen campaign is looked for by title again.

    Fails against the old PT5: it kept attaching to the stored id whatever became of it."""
    p = pipeline
    seed_month(p.dsn, CLIENT, MONTH)
    assert p.weekly(CLIENT, FIRST.start).success
    old = evergreen(p)
    if how == "archived":
        old["status"] = "archived"
    else:
        old["name"] = "Spring push (was Evergreen)"
    new = p.sandbox.bison.add_campaign(WORKSPACE, "Evergreen, Last Upload: January 1-7")
    assert p.weekly(CLIENT, SECOND.start).success
    assert new["name"] == "Evergreen, Last Upload: January 8-14" and new["lead_list_ids"] != []
    assert len(old["lead_list_ids"]) == 1
    assert store.stored_campaign(p.dsn, CLIENT)["campaign_id"] == str(new["id"])
    [notice] = texts(p, "\u26a0\ufe0f Evergreen campaign changed")
    assert f"(id {old['id']})" in notice and (
        "archived" in notice if how == "archived" else "now titled" in notice
    )


SHARED = CLIENTS_YAML.replace(
    "    workspace: Sunshine Coverage\n    bison_token_env: BISON_TOKEN_SUNSHINE_COVERAGE\n",
    "    workspace: Garden State Insurance\n    bison_token_env: BISON_TOKEN_GARDEN_STATE_INSURANCE\n"
    "    campaign_name: Sunshine Evergreen\n",
)


def test_two_clients_in_one_workspace_keep_their_lists_and_campaigns_apart(
    pipeline: Pipeline,
) -> None:
    """Two clients upload to one Bison workspace (the high-net-worth case): each list carries its
    client's name, each client keeps its own campaign, and a campaign another client already
    uses is refused.

    Fails against the old PT4: both clients' lists were named "(January 1st - 7th renewals) 2027",
    so a run resuming by name could take the other client's list."""
    p = pipeline
    use_clients(p.dsn, SHARED)
    sunshine = p.sandbox.bison.add_campaign(
        WORKSPACE, "Sunshine Evergreen, Last Upload: December 22-31"
    )
    seed_month(p.dsn, CLIENT, MONTH)
    seed_month(p.dsn, "sunshine", MONTH)
    assert p.weekly(CLIENT, FIRST.start).success and p.weekly("sunshine", FIRST.start).success
    names = sorted(p.sandbox.bison.list_names(WORKSPACE))
    assert names == [
        f"{FIRST.list_name} Garden State Insurance",
        f"{FIRST.list_name} Sunshine Coverage",
    ]
    assert p.sandbox.bison.attached_lists(WORKSPACE, evergreen(p)["id"]) == [
        f"{FIRST.list_name} Garden State Insurance"
    ]
    assert p.sandbox.bison.attached_lists(WORKSPACE, sunshine["id"]) == [
        f"{FIRST.list_name} Sunshine Coverage"
    ]
    assert sunshine["name"] == "Sunshine Evergreen, Last Upload: January 1-7"
    # Both set to the same title pattern: the second client is refused the first one's campaign.
    use_clients(p.dsn, SHARED.replace("    campaign_name: Sunshine Evergreen\n", ""))
    result = p.weekly("sunshine", SECOND.start, raise_on_error=False)
    assert (
        not result.success
        and "already the Evergreen campaign of garden-state" in failure_message(result)
    )


def test_the_demo_runs_on_dagsters_clock_at_its_today() -> None:
    """`homeowner demo --today D`: Dagster's clock is D for the demo's runs, so the renewal months
    and windows reach M+2 of D (a second demo a year after the first uploads next year's month
    instead of failing with an unknown partition) and PT5 reads titles from D."""
    from homeowner_dagster.demo import demo_clock
    from homeowner_dagster.partitions import month_partitions, today, window_partitions

    with demo_clock(date(2030, 6, 15)):
        assert today() == date(2030, 6, 15)
        assert "2030-08" in month_partitions.get_partition_keys()
        assert "2030-08-22" in window_partitions.get_partition_keys()
    assert "2030-08" not in month_partitions.get_partition_keys()  # the real clock again
