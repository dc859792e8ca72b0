"""The upload lock's session killed mid-upload: the run stops with UploadLockLost before any
further Bison call, the database error kept as its cause; the re-run uploads nothing twice."""

from __future__ import annotations

import threading
import time

import psycopg

from homeowner_dagster import store
from homeowner_dagster.leads.calendar import windows_of_month
from homeowner_dagster_tests import pipeline_fixtures
from homeowner_dagster_tests.pipeline_fixtures import MONTH, Pipeline

pipeline_sandbox = pipeline_fixtures.pipeline_sandbox
pipeline = pipeline_fixtures.pipeline

WORKSPACE = "Garden State Insurance"


def _lists_named(pipe: Pipeline, name: str) -> int:
    lists = pipe.sandbox.bison.workspaces[WORKSPACE].lead_lists.values()
    return sum(1 for item in lists if item.get("name") == name)


def _kill_lock_once_list_exists(pipe: Pipeline, name: str, seen: dict) -> None:  # type: ignore[type-arg]
    """When Bison has created the list (its answer still held back), kill the lock's session."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not _lists_named(pipe, name):
        time.sleep(0.02)
    with psycopg.connect(pipe.dsn, autocommit=True) as conn:
        killed = conn.execute(
            "select pg_terminate_backend(pid) from pg_stat_activity where application_name = %s",
            [store.LOCK_APPLICATION_NAME],
        ).fetchall()
    seen["killed"] = len(killed)
    seen["requests"] = pipe.sandbox.bison.requests


def test_a_killed_lock_session_ends_the_run_with_nothing_uploaded_twice(pipeline: Pipeline) -> None:
    pipe = pipeline
    pipe.monthly("garden-state")
    window = windows_of_month(MONTH)[0]
    pipe.sandbox.faults.on("bison", "slow_after_create", delay=2)
    seen: dict = {}
    killer = threading.Thread(
        target=_kill_lock_once_list_exists, args=(pipe, window.list_name, seen)
    )
    killer.start()
    result = pipe.weekly("garden-state", window.start, raise_on_error=False)
    killer.join()
    pipe.sandbox.faults.off()

    assert seen["killed"] == 1
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    error = failure.step_failure_data.error
    assert error.cls_name == "UploadLockLost", error.to_string()
    assert "terminat" in error.message.lower()  # the database's own words are kept
    assert error.cause is not None and "terminat" in error.cause.message.lower()
    assert pipe.sandbox.bison.requests == seen["requests"], "a Bison call after the lock was lost"
    assert _lists_named(pipe, window.list_name) == 1
    # The list's id reached the ledger (a database write, guarded against a second id); the run
    # stopped at its next Bison call, so the window waits in `list_created` for the re-run.
    stopped = store.ledger_row(pipe.dsn, "garden-state", window)
    assert stopped is not None and stopped["status"] == "list_created" and stopped["bison_list_id"]

    again = pipe.weekly("garden-state", window.start)
    assert again.success
    assert _lists_named(pipe, window.list_name) == 1  # found by the ledger's id, not uploaded again
    ledger = store.ledger_row(pipe.dsn, "garden-state", window)
    assert ledger is not None and ledger["lead_count"] > 0
