"""The gap report of a partition is the same whether the demo, the schedule, a backfill or the UI
materialized it: settings that change it come from the environment, never from a run's config."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import psycopg
import pytest
from dagster import AssetKey, build_schedule_context

from homeowner_dagster import settings
from homeowner_dagster.demo import MONTHLY_RUN_CONFIG
from homeowner_dagster.partitions import client_month_key
from homeowner_dagster.schedules import monthly_pull_schedule
from homeowner_dagster_tests import pipeline_fixtures
from homeowner_dagster_tests.pipeline_fixtures import MONTH, Pipeline

pipeline_sandbox = pipeline_fixtures.pipeline_sandbox
pipeline = pipeline_fixtures.pipeline


def _gap_report(dsn: str) -> tuple:
    with psycopg.connect(dsn) as conn:
        return conn.execute(
            "select status, cleaned_count, target_count, gap, suggestions, report_markdown "
            "from gap_reports where client_slug = 'garden-state' and month = '2027-01'"
        ).fetchone()


def _materialize_gap_report(pipeline: Pipeline, run_config: dict, tags: dict[str, str]) -> tuple:
    job = pipeline.defs.resolve_job_def("monthly_pull")
    result = job.execute_in_process(
        instance=pipeline.instance,
        partition_key=client_month_key("garden-state", MONTH),
        run_config=run_config,
        tags=tags,
        asset_selection=[AssetKey("gap_report")],
    )
    assert result.success
    return _gap_report(pipeline.dsn)


@pytest.mark.slow
def test_gap_report_is_the_same_from_demo_schedule_backfill_and_ui(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in (
        settings.GAP_COLE_COUNTS_ENV,
        settings.GAP_MAX_CANDIDATES_ENV,
        settings.GAP_RADIUS_ENV,
    ):
        monkeypatch.delenv(name, raising=False)  # the deployment's defaults
    monkeypatch.setenv(settings.GAP_MAX_CANDIDATES_ENV, "4")  # fewer count queries, same rule
    dsn = pipeline.dsn
    pipeline.monthly("garden-state")
    with psycopg.connect(dsn) as conn:  # under target, so the report looks for adjacent ZIPs
        conn.execute(
            "update clients set target_override = (select cleaned_count + 500 from monthly_cleaned_leads "
            "where client_slug = 'garden-state') where slug = 'garden-state'"
        )

    # The UI and a backfill: no run config, only partition tags.
    ui = _materialize_gap_report(pipeline, {}, {})
    # The demo: its own run config (logging only).
    demo = _materialize_gap_report(pipeline, MONTHLY_RUN_CONFIG, {})
    # The schedule: its run request's config and tags, on the 15th two months before.
    tick = datetime(2026, 11, 15, 9, tzinfo=ZoneInfo("America/Chicago"))
    with build_schedule_context(
        scheduled_execution_time=tick,
        resources={"database": pipeline.defs.resources["database"]},
    ) as context:
        requests = list(monthly_pull_schedule(context))
    request = next(
        r for r in requests if r.partition_key == client_month_key("garden-state", MONTH)
    )
    scheduled = _materialize_gap_report(pipeline, request.run_config or {}, dict(request.tags))

    assert ui == demo == scheduled
    status, suggestions = ui[0], ui[4]
    assert status == "under"
    adjacent = [s for s in suggestions if s["kind"] == "adjacent_zips"]
    assert adjacent and "Cole count query" in adjacent[0]["basis"]  # what the UI used to drop

    # Turning the setting off is a deployment decision, and then it is off for every launch path.
    monkeypatch.setenv(settings.GAP_COLE_COUNTS_ENV, "0")
    off = _materialize_gap_report(pipeline, {}, {})
    assert not any(
        "Cole count query" in s.get("basis", "") for s in off[4] if s["kind"] == "adjacent_zips"
    )
