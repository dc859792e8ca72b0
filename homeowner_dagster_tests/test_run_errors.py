"""Errors no retry can fix fail at once, with one line naming the fix, in Dagster and in Slack;
the client of an alert comes from the partition key (UI runs and backfills carry no tag)."""

from __future__ import annotations

import time
from datetime import date

import psycopg
from dagster import AssetKey, DagsterEventType, build_run_status_sensor_context

from homeowner_dagster.partitions import client_month_key, client_partitions
from homeowner_dagster_tests import pipeline_fixtures
from homeowner_dagster_tests.pipeline_fixtures import Pipeline

pipeline_sandbox = pipeline_fixtures.pipeline_sandbox
pipeline = pipeline_fixtures.pipeline

NO_ZIPS_MONTH = date(2026, 12, 1)  # the fixture's sheet is for 2027-01: nothing before it


def _alert(pipeline: Pipeline, result) -> str:  # noqa: ANN001
    """The run-failure sensor evaluated on the run, as the daemon would; its Slack message."""
    from homeowner_dagster.sensors import run_failure_alert_sensor

    failure = next(e for e in result.all_events if e.event_type == DagsterEventType.RUN_FAILURE)
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
    return pipeline.sandbox.slack.messages_in("#homeowner-ops")[-1]


def _step_failure(result) -> tuple[str, int]:  # noqa: ANN001
    """The failed step's message, and how many retries it was given; the first line the run page
    shows for the failure (the error's first line) is that message, named by its type only."""
    events = result.all_events
    failure = next(e for e in events if e.event_type == DagsterEventType.STEP_FAILURE)
    retries = sum(1 for e in events if e.event_type == DagsterEventType.STEP_UP_FOR_RETRY)
    data = failure.step_failure_data
    error_type = data.user_failure_data.metadata["error_type"].value
    assert (
        data.error.message.splitlines()[0] == f"{error_type}: {data.user_failure_data.description}"
    )
    assert data.error.stack  # Dagster's stack trace stays, below the line
    return data.user_failure_data.description, retries


def test_a_month_without_zips_fails_at_once_naming_the_import_command(pipeline: Pipeline) -> None:
    began = time.monotonic()
    result = pipeline.monthly("garden-state", NO_ZIPS_MONTH, raise_on_error=False)
    took = time.monotonic() - began
    assert not result.success
    message, retries = _step_failure(result)
    assert retries == 0  # a configuration error is not retried (RetryPolicy would wait 30 s+)
    assert message == (
        "garden-state has no ZIPs assigned for 2026-12. Fix: `homeowner zips import FILE --month 2026-12` "
        "(FILE: the team's Zipcode,Territory sheet), then re-run this partition"
    )
    assert "client" not in result.dagster_run.tags  # launched like the UI does: partition only

    alert = _alert(pipeline, result)
    assert alert.startswith(
        f"🚨 monthly_pull failed: garden-state\n{message}\nError: NoZipsForMonth\n"
    )
    assert "homeowner zips import FILE --month 2026-12" in alert
    with psycopg.connect(pipeline.dsn) as conn:
        row = conn.execute("select client_slug, error_type, message from agent_errors").fetchone()
    assert row[:2] == ("garden-state", "NoZipsForMonth") and "homeowner zips import" in row[2]
    print(f"no-ZIPs run failed {took:.1f} s after launch (in process)")


def test_a_partition_added_by_hand_fails_as_unknown_client(pipeline: Pipeline) -> None:
    pipeline.instance.add_dynamic_partitions(client_partitions.name, ["garden-sate"])  # a typo
    result = pipeline.monthly("garden-sate", raise_on_error=False)
    assert not result.success
    message, retries = _step_failure(result)
    assert retries == 0
    assert message.startswith("unknown client 'garden-sate': not in the client registry")
    assert "homeowner clients import FILE" in message
    alert = _alert(pipeline, result)
    assert "failed: garden-sate" in alert and "Error: UnknownClient" in alert


def test_a_run_launched_from_an_asset_page_is_named_for_its_assets(pipeline: Pipeline) -> None:
    """The UI launches asset runs as Dagster's `__ASSET_JOB`: the alert and agent_runs name the
    assets instead (a scheduled run keeps its job's name, as above)."""
    job = pipeline.defs.resolve_implicit_global_asset_job_def()
    result = job.execute_in_process(
        instance=pipeline.instance,
        partition_key=client_month_key("garden-state", NO_ZIPS_MONTH),
        asset_selection=[AssetKey("raw_leads")],
        run_config=pipeline_fixtures.QUIET,
        raise_on_error=False,
    )
    assert result.dagster_run.job_name.startswith("__ASSET_JOB") and not result.success
    alert = _alert(pipeline, result)
    assert alert.startswith("🚨 raw_leads failed: garden-state\n"), alert
    with psycopg.connect(pipeline.dsn) as conn:
        names = conn.execute(
            "select job_name from agent_runs where run_id = %s", [result.run_id]
        ).fetchall()
    assert names == [("raw_leads",)]
