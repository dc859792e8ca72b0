"""PT1-PT5 end to end on the sandbox: real Chromium, real HTTP, real PostgreSQL, real Dagster runs."""

from __future__ import annotations

import hashlib
import re

import psycopg
import pytest
from dagster import DagsterEventType, build_run_status_sensor_context

from homeowner_dagster.leads.calendar import windows_of_month
from homeowner_dagster.sandbox import Sandbox
from homeowner_dagster_tests import pipeline_fixtures
from homeowner_dagster_tests.pipeline_fixtures import MONTH, TERRITORY, Pipeline

pipeline_sandbox = pipeline_fixtures.pipeline_sandbox
pipeline = pipeline_fixtures.pipeline

WORKSPACES = {"garden-state": "Garden State Insurance", "sunshine": "Sunshine Coverage"}
TABLES = [
    "raw_leads",
    "cleaned_leads",
    "rejected_leads",
    "monthly_cleaned_leads",
    "gap_reports",
    "client_lead_batches",
    "client_lead_batch_leads",
    "client_zipcodes",
]
# Columns that legitimately change on every write (timestamps), left out of the fingerprint.
VOLATILE = {
    "pulled_at",
    "loaded_at",
    "updated_at",
    "created_at",
    "uploaded_at",
    "attached_at",
    "assigned_at",
    "verified_at",
}


def fingerprint(dsn: str) -> dict[str, tuple[int, str]]:
    """Row count and a hash of every non-timestamp value, per table."""
    out = {}
    with psycopg.connect(dsn) as conn:
        for table in TABLES:
            cols = [
                r[0]
                for r in conn.execute(
                    "select column_name from information_schema.columns where table_name = %s "
                    "order by ordinal_position",
                    [table],
                ).fetchall()
                if r[0] not in VOLATILE
            ]
            rows = conn.execute(
                psycopg.sql.SQL("select {} from {}").format(
                    psycopg.sql.SQL(", ").join(map(psycopg.sql.Identifier, cols)),
                    psycopg.sql.Identifier(table),
                )
            ).fetchall()
            digest = hashlib.sha256("\n".join(sorted(map(repr, rows))).encode()).hexdigest()
            out[table] = (len(rows), digest)
    return out


def bison_view(sandbox: Sandbox) -> dict[str, object]:
    return {
        ws: (
            sorted(sandbox.bison.lead_lists(ws).items()),
            sorted(sandbox.bison.campaign_titles(ws)),
        )
        for ws in WORKSPACES.values()
    }


def scalar(dsn: str, query: str, *params: object) -> object:
    with psycopg.connect(dsn) as conn:
        return conn.execute(query, params).fetchone()[0]


@pytest.mark.slow
def test_monthly_then_weekly_for_two_clients_and_rerunning_changes_nothing(
    pipeline: Pipeline,
) -> None:
    sandbox, dsn = pipeline.sandbox, pipeline.dsn
    pipeline.whole_month(list(TERRITORY))

    for client, workspace in WORKSPACES.items():
        raw = scalar(dsn, "select count(*) from raw_leads where client_slug = %s", client)
        cleaned = scalar(dsn, "select count(*) from cleaned_leads where client_slug = %s", client)
        rejected = scalar(dsn, "select count(*) from rejected_leads where client_slug = %s", client)
        assert raw > 1000 and cleaned > 100
        assert raw == cleaned + rejected  # nothing lost (no HNW routing for these clients)
        zips = scalar(
            dsn,
            "select count(*) from client_zipcodes where client_slug = %s and pulled_at is not null",
            client,
        )
        assert zips == len(TERRITORY[client])
        totals = scalar(
            dsn, "select cleaned_count from monthly_cleaned_leads where client_slug = %s", client
        )
        assert totals == cleaned
        # Below the minimum to proceed, and still uploaded below: the default is upload and flag.
        assert (
            scalar(dsn, "select status from gap_reports where client_slug = %s", client)
            == "below_minimum"
        )

        # Bison: one list per window, named the SOP's way, holding what the ledger says.
        lists = sandbox.bison.lead_lists(workspace)
        names = sorted(name.split("#")[0] for name in lists)
        assert names == sorted(w.list_name for w in windows_of_month(MONTH))
        in_bison = sum(lists.values())
        ledger = scalar(
            dsn, "select sum(lead_count) from client_lead_batches where client_slug = %s", client
        )
        keys = scalar(
            dsn, "select count(*) from client_lead_batch_leads where client_slug = %s", client
        )
        assert in_bison == ledger == keys
        # Evergreen moved to the last window, with all four lists attached, settings kept.
        campaign = sandbox.bison.campaign(workspace, "Evergreen, Last Upload: January 22\u201331")
        assert sorted(sandbox.bison.attached_lists(workspace, campaign["id"])) == names
        assert campaign["max_emails_per_day"] == 333
        assert "Spring newsletter" in sandbox.bison.campaign_titles(workspace)

        # Slack: the team's messages, with counts and no homeowner's email.
        channel = "#" + client
        texts = sandbox.slack.messages_in(channel)
        for start in (
            "✅ Raw Pull Complete",
            "✅ Data Refinement Complete",
            "📊 Gap Analysis",
            "✅ Refined Data Uploaded",
            "Evergreen uploads completed",
        ):
            assert any(t.startswith(start) for t in texts), (start, texts)
        assert not any("@" in t for t in texts)

    # Every lead uploaded once: no dedupe key in two lists.
    assert (
        scalar(
            dsn,
            "select count(*) - count(distinct (month, dedupe_key)) from client_lead_batch_leads",
        )
        == 0
    )

    before_db, before_bison = fingerprint(dsn), bison_view(sandbox)
    pipeline.monthly("garden-state")
    pipeline.weekly("sunshine", MONTH.replace(day=8))
    pipeline.weekly("garden-state", MONTH.replace(day=22))
    assert fingerprint(dsn) == before_db
    assert bison_view(sandbox) == before_bison


def test_a_cole_failure_alerts_slack_with_links_and_keeps_the_old_partition(
    pipeline: Pipeline,
) -> None:
    sandbox, dsn = pipeline.sandbox, pipeline.dsn
    sandbox.faults.on("cole", "captcha")
    result = pipeline.monthly("garden-state", raise_on_error=False)
    assert not result.success
    assert scalar(dsn, "select count(*) from raw_leads") == 0

    failure = next(e for e in result.all_events if e.event_type == DagsterEventType.RUN_FAILURE)
    from homeowner_dagster.sensors import run_failure_alert_sensor

    with build_run_status_sensor_context(
        sensor_name=run_failure_alert_sensor.name,
        dagster_instance=pipeline.instance,
        dagster_run=result.dagster_run,
        dagster_event=failure,
        resources={
            "database": pipeline.defs.resources["database"],
            "slack": pipeline.defs.resources["slack"],
        },
    ).for_run_failure() as context:
        run_failure_alert_sensor(context)

    alert = sandbox.slack.messages_in("#homeowner-ops")[-1]
    assert "CaptchaBlocked" in alert and result.dagster_run.run_id in alert
    links = re.findall(r"file://\S+?(?:\.png|\.zip)", alert)
    assert any(link.endswith(".png") for link in links) and any(
        link.endswith(".zip") for link in links
    )
    with psycopg.connect(dsn) as conn:
        error = conn.execute(
            "select error_type, screenshot_url, trace_url from agent_errors"
        ).fetchone()
        run = conn.execute("select status, job_name from agent_runs").fetchone()
    assert error[0] == "CaptchaBlocked" and error[1].endswith(".png") and error[2].endswith(".zip")
    assert run == ("failure", "monthly_pull")

    sandbox.faults.off()
    assert pipeline.monthly("garden-state").success
    assert scalar(dsn, "select count(*) from raw_leads") > 0


def test_a_late_window_is_flagged_in_slack(pipeline: Pipeline) -> None:
    """A run the weekly schedule tags late (its Monday passed) says so before uploading."""
    pipeline.monthly("sunshine")
    job = pipeline.defs.resolve_job_def("weekly_upload")
    from homeowner_dagster.partitions import client_window_key

    result = job.execute_in_process(
        instance=pipeline.instance,
        partition_key=client_window_key("sunshine", MONTH.replace(day=8)),
        run_config=pipeline_fixtures.QUIET,
        tags={"late": "true"},
    )
    assert result.success
    texts = pipeline.sandbox.slack.messages_in("#sunshine")
    late = [t for t in texts if t.startswith("⚠️ Late upload")]
    assert late == [
        "⚠️ Late upload: Sunshine Coverage\nWindow: (January 8th - 14th renewals) 2027 was due on Monday 2026-12-07; uploading it now"
    ]
