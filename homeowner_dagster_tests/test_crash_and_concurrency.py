"""Exactly once under crashes and races: real processes, real SIGKILL, real Postgres locks.

The weekly job runs in a child process (`python -c`, the job executed in process against the
same Postgres-backed Dagster instance and database as the test). The sandbox Bison holds its
answer at a chosen point (crash points in `sandbox.faults.HOLD_FAULTS`) and the test kills the
child with SIGKILL while it waits: the work is done in Bison, the run never learns it. The next
run must find what was done and finish without doing it twice.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import psycopg
import pytest

from homeowner_dagster.leads.calendar import RenewalWindow, add_months, windows_of_month
from homeowner_dagster.sandbox import Sandbox
from homeowner_dagster_tests import pipeline_fixtures
from homeowner_dagster_tests.pipeline_fixtures import MONTH, Pipeline

pipeline_sandbox = pipeline_fixtures.pipeline_sandbox
pipeline = pipeline_fixtures.pipeline

CLIENT = "garden-state"
WORKSPACE = "Garden State Insurance"
WINDOW = windows_of_month(MONTH)[0]
PREVIOUS_TITLE = windows_of_month(add_months(MONTH, -1))[-1].evergreen_title
HOLD_SECONDS = 90  # far longer than the test needs to see the work done and kill the run

# The child: one run of a job for one partition, against the instance in the test's database.
CHILD = r"""
import os, sys
from datetime import date
from dagster import instance_for_test
from homeowner_dagster import db
from homeowner_dagster.definitions import build_definitions
from homeowner_dagster.partitions import client_window_key

job_name, client, start = sys.argv[1:4]
dsn = os.environ["HOMEOWNER_DATABASE_URL"]
overrides = {
    "storage": {"postgres": {"postgres_url": db.dagster_storage_url(dsn)}},
    "compute_logs": {
        "module": "dagster._core.storage.noop_compute_log_manager",
        "class": "NoOpComputeLogManager",
    },
}
with instance_for_test(overrides=overrides) as instance:
    result = build_definitions().resolve_job_def(job_name).execute_in_process(
        instance=instance,
        partition_key=client_window_key(client, date.fromisoformat(start)),
        run_config={"loggers": {"console": {"config": {"log_level": "ERROR"}}}},
        raise_on_error=False,
    )
    print("RUN", result.run_id, "success" if result.success else "failure", flush=True)
    sys.exit(0 if result.success else 1)
"""


def start_weekly(window: RenewalWindow = WINDOW, client: str = CLIENT) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, "weekly_upload", client, window.start.isoformat()],
        env=dict(os.environ),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for(condition: Callable[[], bool], child: subprocess.Popen, what: str, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if child.poll() is not None:
            out, err = child.communicate()
            raise AssertionError(f"the run ended before {what}: {out}\n{err[-3000:]}")
        if time.monotonic() > deadline:
            child.kill()
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def kill(child: subprocess.Popen) -> None:
    os.kill(child.pid, signal.SIGKILL)
    assert child.wait(timeout=30) == -signal.SIGKILL


def ledger(dsn: str, window: RenewalWindow = WINDOW) -> dict[str, Any] | None:
    with psycopg.connect(dsn) as conn:
        cur = conn.execute(
            "select bison_list_id, lead_count, status, campaign_title_before, campaign_title_after, "
            "attached_at is not null as attached from client_lead_batches "
            "where client_slug = %s and window_start = %s",
            [CLIENT, window.start],
        )
        row = cur.fetchone()
        if row is None:
            return None
        out = dict(zip([c.name for c in cur.description], row, strict=True))
        out["keys"] = conn.execute(
            "select count(*) from client_lead_batch_leads where client_slug = %s and window_start = %s",
            [CLIENT, window.start],
        ).fetchone()[0]
    return out


def evergreen(sandbox: Sandbox) -> dict[str, Any]:
    found = [c for c in sandbox.bison.workspaces[WORKSPACE].campaigns.values() if c["name"].startswith("Evergreen")]
    assert len(found) == 1, [c["name"] for c in found]
    return found[0]


def settings_of(campaign: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in campaign.items() if k not in ("name", "updated_at", "lead_list_ids", "total_leads")}


def assert_window_done_once(
    sandbox: Sandbox, dsn: str, settings_before: dict[str, Any], campaign_record: bool = True
) -> None:
    """One list by the window's name, the ledger agreeing, the campaign moved on once."""
    names = sandbox.bison.list_names(WORKSPACE)
    assert names.count(WINDOW.list_name) == 1, names
    in_bison = len(sandbox.bison.list_leads(WORKSPACE, WINDOW.list_name))
    row = ledger(dsn)
    assert row is not None and in_bison > 0
    assert row["lead_count"] == row["keys"] == in_bison
    list_id = int(row["bison_list_id"])
    assert sandbox.bison.workspaces[WORKSPACE].lead_lists[list_id]["name"] == WINDOW.list_name
    campaign = evergreen(sandbox)
    assert campaign["name"] == WINDOW.evergreen_title
    assert campaign["lead_list_ids"].count(list_id) == 1
    assert campaign["total_leads"] == in_bison  # the leads were attached once
    assert settings_of(campaign) == settings_before  # the rename kept every setting
    if campaign_record:
        assert_campaign_recorded(row)


def assert_campaign_recorded(row: dict[str, Any]) -> None:
    """The ledger says this window's list was attached and the title moved from the old one."""
    assert (row["status"], row["attached"]) == ("attached", True)
    assert (row["campaign_title_before"], row["campaign_title_after"]) == (PREVIOUS_TITLE, WINDOW.evergreen_title)




@pytest.fixture
def month_pulled(pipeline: Pipeline) -> Pipeline:
    assert pipeline.monthly(CLIENT).success
    assert evergreen(pipeline.sandbox)["name"] == PREVIOUS_TITLE
    return pipeline


def test_killed_after_the_list_was_created_the_next_run_uploads_nothing_twice(month_pulled: Pipeline) -> None:
    sandbox, dsn = month_pulled.sandbox, month_pulled.dsn
    settings_before = settings_of(evergreen(sandbox))
    sandbox.faults.on("bison", "slow_after_create", times=1, delay=HOLD_SECONDS)

    child = start_weekly()
    wait_for(lambda: WINDOW.list_name in sandbox.bison.list_names(WORKSPACE), child, "the list exists in Bison")
    assert ledger(dsn) is None  # the run is waiting for Bison's answer: nothing recorded yet
    kill(child)
    assert ledger(dsn) is None
    assert sandbox.bison.list_names(WORKSPACE).count(WINDOW.list_name) == 1
    leads_in_list = len(sandbox.bison.list_leads(WORKSPACE, WINDOW.list_name))
    leads_in_workspace = len(sandbox.bison.workspaces[WORKSPACE].leads)

    result = month_pulled.weekly(CLIENT, WINDOW.start)
    assert result.success
    assert_window_done_once(sandbox, dsn, settings_before)
    assert len(sandbox.bison.list_leads(WORKSPACE, WINDOW.list_name)) == leads_in_list
    assert len(sandbox.bison.workspaces[WORKSPACE].leads) == leads_in_workspace  # no lead sent again
    new_upload = [
        e.event_specific_data.materialization.metadata["new_upload"].value
        for e in result.get_asset_materialization_events()
        if "new_upload" in e.event_specific_data.materialization.metadata
    ]
    assert new_upload == [False]


@pytest.mark.parametrize(
    ("crash_point", "done"),
    [
        # Attached in Bison, the answer never came back: the ledger does not know.
        ("slow_after_attach", lambda s, cid: bool(s.bison.workspaces[WORKSPACE].campaigns[cid]["lead_list_ids"])),
        # Attached and recorded; the rename's PATCH is on its way.
        ("slow_before_update", lambda s, cid: ("bison", "slow_before_update") in s.faults.fired),
    ],
    ids=["after-attach", "during-rename"],
)
def test_killed_between_attach_and_rename_the_next_run_renames_once(
    month_pulled: Pipeline, crash_point: str, done: Callable[[Sandbox, int], bool]
) -> None:
    sandbox, dsn = month_pulled.sandbox, month_pulled.dsn
    campaign_id = evergreen(sandbox)["id"]
    settings_before = settings_of(evergreen(sandbox))
    sandbox.faults.fired.clear()
    sandbox.faults.on("bison", crash_point, times=1, delay=HOLD_SECONDS)

    child = start_weekly()
    wait_for(lambda: done(sandbox, campaign_id), child, crash_point)
    kill(child)
    row = ledger(dsn)
    assert row is not None and row["lead_count"] > 0  # PT4 finished before the crash
    assert evergreen(sandbox)["name"] == PREVIOUS_TITLE  # not renamed yet
    assert row["attached"] == (crash_point == "slow_before_update")

    assert month_pulled.weekly(CLIENT, WINDOW.start).success
    assert_window_done_once(sandbox, dsn, settings_before)
    assert sandbox.bison.campaign_titles(WORKSPACE).count(WINDOW.evergreen_title) == 1


@pytest.mark.parametrize(
    "slow_attach",
    [0, 5],
    ids=["as-fast-as-they-go", "bison-slow-to-attach"],  # the second: the race held open
)
def test_two_runs_of_the_same_window_at_once_upload_one_list(month_pulled: Pipeline, slow_attach: int) -> None:
    sandbox, dsn = month_pulled.sandbox, month_pulled.dsn
    if slow_attach:
        sandbox.faults.on("bison", "slow_after_attach", times=1, delay=slow_attach)
    settings_before = settings_of(evergreen(sandbox))
    leads_before = len(sandbox.bison.workspaces[WORKSPACE].leads)

    children = [start_weekly(), start_weekly()]
    outcomes = [child.communicate(timeout=300) + (child.returncode,) for child in children]
    codes = [code for _, _, code in outcomes]
    assert 0 in codes, outcomes  # at least one run succeeds ...
    for out, err, code in outcomes:  # ... and a run that fails says so as a failed run
        assert code in (0, 1) and "RUN " in out, err[-3000:]

    assert_window_done_once(sandbox, dsn, settings_before, campaign_record=False)
    in_bison = len(sandbox.bison.list_leads(WORKSPACE, WINDOW.list_name))
    assert len(sandbox.bison.workspaces[WORKSPACE].leads) == leads_before + in_bison
    # Each lead went out in one list only.
    with psycopg.connect(dsn) as conn:
        dupes = conn.execute(
            "select count(*) - count(distinct (month, dedupe_key)) from client_lead_batch_leads"
        ).fetchone()[0]
    assert dupes == 0
    # A third run afterwards uploads and attaches nothing.
    def outcome() -> tuple[object, ...]:
        row = ledger(dsn)
        return (row["bison_list_id"], row["lead_count"], row["keys"], row["attached"],
                sandbox.bison.lead_lists(WORKSPACE), evergreen(sandbox)["lead_list_ids"], evergreen(sandbox)["name"])

    before = outcome()
    assert month_pulled.weekly(CLIENT, WINDOW.start).success
    assert outcome() == before
    # The run that waited for the lock reads the first run's record: it stays 'attached'.
    assert_campaign_recorded(ledger(dsn))
