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
from pathlib import Path
from typing import Any

import psycopg
import pytest

from homeowner_dagster.leads.calendar import RenewalWindow, add_months, windows_of_month
from homeowner_dagster.sandbox import Sandbox
from homeowner_dagster_tests import pipeline_fixtures
from homeowner_dagster_tests.pipeline_fixtures import MONTH, Pipeline, seed_month

pipeline_sandbox = pipeline_fixtures.pipeline_sandbox
pipeline = pipeline_fixtures.pipeline

CLIENT = "garden-state"
WORKSPACE = "Garden State Insurance"
WINDOW = windows_of_month(MONTH)[0]
PREVIOUS_TITLE = windows_of_month(add_months(MONTH, -1))[-1].evergreen_title
ROOT = str(Path(__file__).parents[1])  # the child imports homeowner_dagster_tests too
HOLD_SECONDS = 90  # far longer than the test needs to see the work done and kill the run

# The child: one run of a job for one partition, against the instance in the test's database.
CHILD = r"""
import os, sys
from datetime import date
from dagster import instance_for_test
from homeowner_dagster import db
from homeowner_dagster.definitions import build_definitions
from homeowner_dagster.partitions import client_window_key

from homeowner_dagster_tests.pipeline_fixtures import wait_on_the_sandbox_clock

wait_on_the_sandbox_clock(os.environ["BISON_INSTANCE_URL"])
job_name, client, start = sys.argv[1:4]
if "nolock" in sys.argv[4:]:  # the lock switched off, to show the concurrency test catches it
    import contextlib
    from homeowner_dagster import store
    class NoLock:
        def ensure_held(self) -> None:
            pass
    store.upload_lock = lambda *args, **kwargs: contextlib.nullcontext(NoLock())
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


def start_weekly(
    window: RenewalWindow = WINDOW, client: str = CLIENT, lock: bool = True
) -> subprocess.Popen:
    return subprocess.Popen(
        [
            sys.executable,
            "-c",
            CHILD,
            "weekly_upload",
            client,
            window.start.isoformat(),
            *([] if lock else ["nolock"]),
        ],
        env={
            **os.environ,
            "PYTHONPATH": os.pathsep.join(filter(None, [ROOT, os.environ.get("PYTHONPATH")])),
        },
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for(
    condition: Callable[[], bool], child: subprocess.Popen, what: str, timeout: float = 180
) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if child.poll() is not None:
            out, err = child.communicate()
            raise AssertionError(f"the run ended before {what}: {out}\n{err[-3000:]}")
        if time.monotonic() > deadline:
            child.kill()
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def kill(child: subprocess.Popen, sandbox: Sandbox | None = None) -> None:
    """SIGKILL the run; the request it left held in Bison is abandoned, never landing later."""
    os.kill(child.pid, signal.SIGKILL)
    assert child.wait(timeout=30) == -signal.SIGKILL
    if sandbox is not None:
        deadline = time.monotonic() + 30
        while sandbox.bison.holding:
            assert time.monotonic() < deadline, "a held Bison request outlived the killed run"
            time.sleep(0.05)


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
    found = [
        c
        for c in sandbox.bison.workspaces[WORKSPACE].campaigns.values()
        if c["name"].startswith("Evergreen")
    ]
    assert len(found) == 1, [c["name"] for c in found]
    return found[0]


def settings_of(campaign: dict[str, Any]) -> dict[str, Any]:
    internal = ("name", "updated_at", "lead_list_ids", "total_leads", "lead_emails", "syncing")
    return {k: v for k, v in campaign.items() if k not in internal}


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
    assert (row["status"], row["attached"]) == ("done", True)
    assert (row["campaign_title_before"], row["campaign_title_after"]) == (
        PREVIOUS_TITLE,
        WINDOW.evergreen_title,
    )


@pytest.fixture
def month_pulled(pipeline: Pipeline) -> Pipeline:
    seed_month(pipeline.dsn, CLIENT, MONTH, per_window=5)
    assert evergreen(pipeline.sandbox)["name"] == PREVIOUS_TITLE
    return pipeline


def test_killed_after_the_list_was_created_the_next_run_uploads_nothing_twice(
    month_pulled: Pipeline,
) -> None:
    sandbox, dsn = month_pulled.sandbox, month_pulled.dsn
    settings_before = settings_of(evergreen(sandbox))
    sandbox.faults.on("bison", "slow_after_create", times=1, delay=HOLD_SECONDS)

    child = start_weekly()
    wait_for(
        lambda: WINDOW.list_name in sandbox.bison.list_names(WORKSPACE),
        child,
        "the list exists in Bison",
    )
    # The run is waiting for Bison's answer: the ledger knows a list was asked for, not its id.
    assert (ledger(dsn)["status"], ledger(dsn)["bison_list_id"]) == ("pending", None)
    kill(child, sandbox)
    assert (ledger(dsn)["status"], ledger(dsn)["bison_list_id"]) == ("pending", None)
    assert sandbox.bison.list_names(WORKSPACE).count(WINDOW.list_name) == 1
    leads_in_list = len(sandbox.bison.list_leads(WORKSPACE, WINDOW.list_name))
    leads_in_workspace = len(sandbox.bison.workspaces[WORKSPACE].leads)

    result = month_pulled.weekly(CLIENT, WINDOW.start)
    assert result.success
    assert_window_done_once(sandbox, dsn, settings_before)
    assert len(sandbox.bison.list_leads(WORKSPACE, WINDOW.list_name)) == leads_in_list
    assert (
        len(sandbox.bison.workspaces[WORKSPACE].leads) == leads_in_workspace
    )  # no lead sent again
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
        (
            "slow_after_attach",
            lambda s, cid: bool(s.bison.workspaces[WORKSPACE].campaigns[cid]["lead_list_ids"]),
        ),
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
    kill(child, sandbox)
    row = ledger(dsn)
    assert row is not None and row["lead_count"] > 0  # PT4 finished before the crash
    assert evergreen(sandbox)["name"] == PREVIOUS_TITLE  # not renamed yet
    assert row["attached"] == (crash_point == "slow_before_update")

    assert month_pulled.weekly(CLIENT, WINDOW.start).success
    assert_window_done_once(sandbox, dsn, settings_before)
    assert sandbox.bison.campaign_titles(WORKSPACE).count(WINDOW.evergreen_title) == 1


def test_killed_after_the_rename_was_applied_the_next_run_repairs_the_ledger_and_posts_once(
    month_pulled: Pipeline,
) -> None:
    """Issue 14: the PATCH landed in Bison, the run died before recording it or posting Slack."""
    sandbox, dsn = month_pulled.sandbox, month_pulled.dsn
    settings_before = settings_of(evergreen(sandbox))
    sandbox.faults.on("bison", "slow_after_update", times=1, delay=HOLD_SECONDS)

    child = start_weekly()
    wait_for(
        lambda: evergreen(sandbox)["name"] == WINDOW.evergreen_title,
        child,
        "the rename applied in Bison",
    )
    kill(child, sandbox)
    assert ledger(dsn)["status"] == "attached"  # stale: Bison already shows the new title
    completed = [
        t
        for t in sandbox.slack.messages_in("#garden-state")
        if t.startswith("Evergreen uploads completed")
    ]
    assert completed == []

    result = month_pulled.weekly(CLIENT, WINDOW.start)
    assert result.success
    assert_window_done_once(sandbox, dsn, settings_before)
    completed = [
        t
        for t in sandbox.slack.messages_in("#garden-state")
        if t.startswith("Evergreen uploads completed")
    ]
    assert len(completed) == 1 and WINDOW.evergreen_title in completed[0]
    assert month_pulled.weekly(CLIENT, WINDOW.start).success  # and never again
    assert (
        len(
            [
                t
                for t in sandbox.slack.messages_in("#garden-state")
                if t.startswith("Evergreen uploads completed")
            ]
        )
        == 1
    )
    assert sandbox.bison.holding == 0 and evergreen(sandbox)["name"] == WINDOW.evergreen_title


def advisory_lock_waiters(dsn: str) -> int:
    """Sessions of this database waiting for an advisory lock (a run blocked on the upload lock)."""
    with psycopg.connect(dsn) as conn:
        return conn.execute(
            "select count(*) from pg_locks l join pg_database d on d.oid = l.database "
            "where l.locktype = 'advisory' and not l.granted and d.datname = current_database()"
        ).fetchone()[0]


def overlapping_runs(p: Pipeline, lock: bool) -> tuple[list[tuple[str, str, int]], bool]:
    """Two runs of one window, the first held in Bison while the second starts.

    Run A's upload is held twice: before Bison creates the list (B starts and reaches its lookup
    meanwhile) and between the list's creation and A's ledger write. Returns both runs' outcomes
    and whether B was seen blocked on the upload lock while A was held.
    """
    sandbox = p.sandbox
    sandbox.faults.on("bison", "slow_before_create", times=1, delay=HOLD_SECONDS)
    sandbox.faults.on("bison", "slow_after_create", times=1, delay=HOLD_SECONDS)
    first = start_weekly(lock=lock)
    wait_for(lambda: sandbox.bison.holding == 1, first, "run A held before its list is created")
    second = start_weekly(lock=lock)
    if lock:
        wait_for(
            lambda: advisory_lock_waiters(p.dsn) >= 1, second, "run B waiting for the upload lock"
        )
        blocked = sandbox.bison.holding == 1 and advisory_lock_waiters(p.dsn) >= 1
        sandbox.bison.release_holds()  # A creates its list, then is held again before the ledger
        wait_for(
            lambda: (
                WINDOW.list_name in sandbox.bison.list_names(WORKSPACE)
                and sandbox.bison.holding == 1
            ),
            first,
            "run A held between list creation and ledger write",
        )
        blocked = blocked and advisory_lock_waiters(p.dsn) >= 1 and sandbox.bison.holding == 1
    else:
        blocked = False
        wait_for(
            lambda: WINDOW.list_name in sandbox.bison.list_names(WORKSPACE),
            second,
            "run B uploads meanwhile",
        )
    sandbox.faults.off("bison")
    sandbox.bison.release_holds()
    outcomes = [child.communicate(timeout=300) + (child.returncode,) for child in (first, second)]
    return outcomes, blocked


def concurrency_problems(p: Pipeline, outcomes: list[tuple[str, str, int]]) -> list[str]:
    """What the two runs got wrong: empty when both succeeded (or one skipped cleanly) and the
    window ended done exactly once."""
    sandbox, problems = p.sandbox, []
    for out, err, code in outcomes:
        if code != 0 or "RUN " not in out:
            problems.append(f"a run failed (exit {code}): {(out + err)[-400:]}")
    names = sandbox.bison.list_names(WORKSPACE)
    if names.count(WINDOW.list_name) != 1:
        problems.append(f"{names.count(WINDOW.list_name)} lists named {WINDOW.list_name}")
    row = ledger(p.dsn)
    campaign = evergreen(sandbox)
    if row is None or row["status"] != "done":
        problems.append(f"window state {row and row['status']}")
    elif campaign["lead_list_ids"] != [int(row["bison_list_id"])]:
        problems.append(
            f"campaign holds lists {campaign['lead_list_ids']}, ledger says {row['bison_list_id']}"
        )
    if campaign["name"] != WINDOW.evergreen_title:
        problems.append(f"campaign title {campaign['name']!r}")
    texts = sandbox.slack.messages_in("#garden-state")
    for message in ("✅ Refined Data Uploaded", "Evergreen uploads completed"):
        if len([t for t in texts if t.startswith(message)]) != 1:
            problems.append(
                f"{len([t for t in texts if t.startswith(message)])} {message!r} messages"
            )
    return problems


def test_two_runs_that_provably_overlap_upload_one_list(month_pulled: Pipeline) -> None:
    """Issue 14: B starts while A is held in Bison; the upload lock makes B wait, then B finds the
    window done and ends cleanly."""
    outcomes, blocked = overlapping_runs(month_pulled, lock=True)
    assert blocked  # B was waiting on the lock while A was held between creation and ledger
    assert concurrency_problems(month_pulled, outcomes) == []
    assert month_pulled.sandbox.bison.holding == 0
    with psycopg.connect(month_pulled.dsn) as conn:
        dupes = conn.execute(
            "select count(*) - count(distinct (month, dedupe_key)) from client_lead_batch_leads"
        ).fetchone()[0]
    assert dupes == 0


def test_the_overlap_test_fails_when_the_upload_lock_is_switched_off(
    month_pulled: Pipeline,
) -> None:
    """The same two runs with `store.upload_lock` replaced by a no-op in both: the checks above
    find the damage (a second list of the window, a failed run), so they can fail."""
    outcomes, blocked = overlapping_runs(month_pulled, lock=False)
    assert not blocked
    problems = concurrency_problems(month_pulled, outcomes)
    assert any("2 lists named" in problem for problem in problems), problems
