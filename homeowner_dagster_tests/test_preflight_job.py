"""The weekly preflight in Dagster: the job and its schedule are in the Definitions (the UI shows
them), the schedule fires on Thursdays and the 13th and only requests a run, and runs against a
broken sandbox post one Slack message for a new failure, none for the same failure again, and
one when it recovers; the assets' checks follow.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from dagster import AssetKey, DagsterInstance, build_schedule_context, instance_for_test
from dagster._utils.schedules import schedule_execution_time_iterator

from homeowner_dagster import db, registry
from homeowner_dagster.leads.calendar import month_key
from homeowner_dagster.leads.territories import parse_clients, parse_zip_sheet
from homeowner_dagster.partitions import TIMEZONE
from homeowner_dagster.preflight.bison import CUSTOM_VARIABLES
from homeowner_dagster.preflight.cole import next_pull_month
from homeowner_dagster.preflight.job import CHECK, asset_key, preflight_schedule
from homeowner_dagster.preflight.runner import today_in_chicago
from homeowner_dagster.sandbox import Sandbox
from homeowner_dagster_tests.pipeline_fixtures import CLIENTS_YAML, QUIET, use_sandbox

CHICAGO = ZoneInfo(TIMEZONE)
pytestmark = pytest.mark.slow(seconds=60)  # three job runs, each with its own Chromium
OPS = "#homeowner-ops"


@pytest.fixture(scope="module")
def world() -> Iterator[Sandbox]:
    sandbox = Sandbox(seed=17)
    workspace = sandbox.bison.add_workspace("Garden State Insurance", "token-garden-state")
    sandbox.bison.add_campaign("Garden State Insurance", "Evergreen, Last Upload: January 1st-7th")
    for number, name in enumerate(CUSTOM_VARIABLES, start=1):
        workspace.custom_variables[name] = 100 + number
    with sandbox:
        yield sandbox


@pytest.fixture
def instance(
    world: Sandbox, database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[DagsterInstance]:
    use_sandbox(world, monkeypatch, tmp_path / "artifacts", database_url)
    clients = parse_clients(CLIENTS_YAML, "clients.yaml")
    registry.upsert_clients(clients[clients["slug"] == "garden-state"], database_url)  # NJ only
    sheet = parse_zip_sheet("Zipcode,Territory,Color\n07030,garden-state,\n")
    registry.import_zips(sheet, month_key(next_pull_month(today_in_chicago())), database_url)
    storage = {"storage": {"postgres": {"postgres_url": db.dagster_storage_url(database_url)}}}
    with instance_for_test(overrides=storage) as dagster_instance:
        yield dagster_instance


def test_the_job_and_its_schedule_are_in_the_definitions() -> None:
    from homeowner_dagster.definitions import defs

    job = defs.resolve_job_def("preflight")
    assert defs.resolve_schedule_def("preflight_schedule").job_name == "preflight"
    keys = {key.to_user_string() for key in defs.resolve_asset_graph().get_all_asset_keys()}
    for service in ("settings", "database", "cole", "bison", "debounce", "clay", "slack"):
        assert f"preflight_{service}" in keys
    assert (
        asset_key("cole") in job.asset_layer.asset_graph.get_all_asset_keys()
    )  # runs show on the assets


def test_the_schedule_fires_on_thursdays_and_the_13th_and_only_requests_a_run(instance) -> None:  # noqa: ANN001
    ticks = schedule_execution_time_iterator(
        datetime(2027, 1, 1, tzinfo=CHICAGO).timestamp(), preflight_schedule.cron_schedule, TIMEZONE
    )
    first = [next(ticks) for _ in range(6)]
    assert [(t.month, t.day, t.hour) for t in first] == [
        (1, 7, 8), (1, 13, 8), (1, 14, 8), (1, 21, 8), (1, 28, 8), (2, 4, 8),
    ]  # fmt: skip
    at = datetime(
        2027, 1, 13, 8, 0, tzinfo=CHICAGO
    )  # a Wednesday: the 13th, before the 15th's pull
    context = build_schedule_context(instance=instance, scheduled_execution_time=at)
    request = preflight_schedule.evaluate_tick(context).run_requests[0]
    assert request.run_key == "preflight-2027-01-13"
    assert instance.get_runs() == []  # evaluating a tick runs nothing, posts nothing


def test_a_failure_is_posted_once_and_its_recovery_once(world: Sandbox, instance) -> None:  # noqa: ANN001
    from dagster import AssetCheckKey
    from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus

    from homeowner_dagster.definitions import build_definitions

    job = build_definitions().resolve_job_def("preflight")
    ops_before = len(world.slack.messages_in(OPS))
    balance, world.debounce.balance = world.debounce.balance, 100  # below next month's need

    def run() -> list[str]:
        seen = len(world.slack.messages_in(OPS))
        assert job.execute_in_process(instance=instance, run_config=QUIET).success
        return world.slack.messages_in(OPS)[seen:]

    def check_passed(service: str) -> bool:
        key = AssetCheckKey(asset_key(service), CHECK)
        execution = instance.event_log_storage.get_latest_asset_check_execution_by_key([key])[key]
        return execution.status == AssetCheckExecutionRecordStatus.SUCCEEDED

    try:
        first = run()
        assert len(first) == 1, first
        assert first[0].startswith("🚨 Preflight: 1 check(s) failing")
        assert "debounce credits for next month: buy at least" in first[0]
        assert not check_passed("debounce") and check_passed("bison") and check_passed("cole")
        assert run() == []  # the same failure again: nothing new to say
    finally:
        world.debounce.balance = balance
    recovered = run()
    assert len(recovered) == 1 and recovered[0].startswith("✅ Preflight: 1 check(s) recovered")
    assert "debounce credits for next month" in recovered[0]
    assert check_passed("debounce")
    assert len(world.slack.messages_in(OPS)) == ops_before + 2
    assert (
        world.slack.messages_in("#garden-state") == []
    )  # the client's channel: checked, not posted to
    assert instance.get_latest_materialization_event(AssetKey("preflight_cole")) is not None
