"""One PT5 per Evergreen campaign at a time, however the runs were launched.

Two windows' weekly runs start together through two different paths: `homeowner windows force`
for the first window and a run launched like the UI launches one (partition tags only, no run
tags: dagster.yaml's tag limits do not reach it) for the second. The first is held inside Bison
while it renames the campaign to its own window. With the per-campaign lock the second waits and
then moves the title on to the later window; without it the held rename lands last and moves the
title back (the issue's "January 8-14" back to "January 1-7").
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from dagster import RunsFilter

from homeowner_dagster import db, settings, store
from homeowner_dagster.cli import main as homeowner
from homeowner_dagster.leads.calendar import add_months, windows_of_month
from homeowner_dagster.partitions import client_window_key
from homeowner_dagster_tests import pipeline_fixtures
from homeowner_dagster_tests.pipeline_fixtures import MONTH, QUIET, Pipeline, seed_month

pipeline_sandbox = pipeline_fixtures.pipeline_sandbox
pipeline = pipeline_fixtures.pipeline

CLIENT, WORKSPACE = "garden-state", "Garden State Insurance"
FIRST, SECOND = windows_of_month(MONTH)[:2]
PREVIOUS = windows_of_month(add_months(MONTH, -1))[-1]
HOLD_SECONDS = 120  # far longer than the second run needs to reach the campaign


def _campaign(p: Pipeline) -> dict[str, Any]:
    return next(
        c
        for c in p.sandbox.bison.workspaces[WORKSPACE].campaigns.values()
        if c["name"].startswith("Evergreen")
    )


def _wait(condition: Callable[[], bool], what: str, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def _waiting_for_the_campaign(p: Pipeline, window_key: str) -> bool:
    """The run of this window said in its log that it waits for the campaign lock."""
    runs = p.instance.get_runs(RunsFilter(tags={"dagster/partition": f"{CLIENT}|{window_key}"}))
    return any(
        "waiting for bison-campaign" in (entry.user_message or "")
        for run in runs
        for entry in p.instance.all_logs(run.run_id)
    )


@contextlib.contextmanager
def _no_campaign_lock(*args: Any, **kwargs: Any) -> Iterator[Any]:
    class Held:
        def ensure_held(self) -> None:
            pass

    yield Held()


def two_launches(
    p: Pipeline, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, lock: bool
) -> dict[str, Any]:
    """`windows force` for FIRST (held in Bison at its rename) and a UI-style run of SECOND."""
    if not lock:
        monkeypatch.setattr(store, "campaign_lock", _no_campaign_lock)
    seed_month(p.dsn, CLIENT, MONTH)
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text((settings.project_root() / "dagster.yaml").read_text())
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.setenv(settings.DAGSTER_STORAGE_URL_ENV, db.dagster_storage_url(p.dsn))
    p.sandbox.faults.on("bison", "slow_before_update", times=1, delay=HOLD_SECONDS)
    outcome: dict[str, Any] = {}

    def force_first() -> None:
        outcome["force"] = homeowner(
            ["windows", "force", "--client", CLIENT, "--window", FIRST.key]
        )

    def launch_second_like_the_ui() -> None:
        job = p.defs.resolve_job_def("weekly_upload")
        result = job.execute_in_process(
            instance=p.instance,
            partition_key=client_window_key(CLIENT, SECOND),
            run_config=QUIET,
            raise_on_error=False,
        )
        outcome["ui"] = result.success

    first = threading.Thread(target=force_first)
    first.start()
    _wait(lambda: p.sandbox.bison.holding == 1, "the first window's rename held inside Bison")
    second = threading.Thread(target=launch_second_like_the_ui)
    second.start()
    _wait(
        lambda: not second.is_alive() or _waiting_for_the_campaign(p, SECOND.key), "the second run"
    )
    outcome["second_waited"] = second.is_alive()
    p.sandbox.bison.release_holds()
    first.join(timeout=300)
    second.join(timeout=300)
    outcome["title"] = _campaign(p)["name"]
    outcome["states"] = [
        (store.ledger_row(p.dsn, CLIENT, w) or {}).get("status") for w in (FIRST, SECOND)
    ]
    return outcome


def test_two_windows_launched_at_once_by_two_paths_move_the_title_forward_once_each(
    pipeline: Pipeline, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    outcome = two_launches(pipeline, tmp_path, monkeypatch, lock=True)
    assert outcome["second_waited"]  # the UI-style run waited for the campaign, the force run held
    assert (outcome["force"], outcome["ui"]) == (0, True)
    assert outcome["states"] == ["done", "done"]
    assert outcome["title"] == SECOND.evergreen_title
    assert pipeline.sandbox.bison.attached_lists(WORKSPACE, _campaign(pipeline)["id"]) == [
        FIRST.list_name,
        SECOND.list_name,
    ]


def test_the_same_launches_move_the_title_back_without_the_campaign_lock(
    pipeline: Pipeline, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Shows the test above can fail: with `store.campaign_lock` a no-op the held rename of the
    first window lands after the second's, and the title goes back to January 1-7."""
    outcome = two_launches(pipeline, tmp_path, monkeypatch, lock=False)
    assert not outcome["second_waited"]
    assert outcome["states"] == ["done", "done"]
    assert outcome["title"] == FIRST.evergreen_title != SECOND.evergreen_title
