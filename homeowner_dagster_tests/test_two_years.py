"""One client through two years of Mondays and 15ths, driven by the schedules themselves.

Every 15th from 2026-11 to 2028-01 and every Monday from 2026-11-30 to 2028-02-28 the project's own
schedule functions are evaluated at that date (`build_schedule_context`); each run they request
is executed through Dagster (monthly pulls on the sandbox's Cole site with Chromium, weekly
uploads on its Email Bison). Some windows crash once at a state transition (the run stops right
there, as a killed run would). At the end every window is `done` exactly once per year, each list
holds exactly its window's leads, no lead is in two lists, the campaign title never moved
backwards, and 2028's lists are new lists.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
import pytest
from dagster import (
    Definitions,
    Failure,
    RunRequest,
    SkipReason,
    build_schedule_context,
    load_assets_from_modules,
)
from dagster._core.test_utils import freeze_time

from homeowner_dagster import registry, store
from homeowner_dagster.assets import monthly_pull, weekly_upload
from homeowner_dagster.definitions import build_resources
from homeowner_dagster.jobs import monthly_pull_job, weekly_upload_job
from homeowner_dagster.leads.calendar import (
    RenewalWindow,
    add_months,
    month_key,
    parse_evergreen_title,
    windows_of_month,
)
from homeowner_dagster.leads.territories import parse_zip_sheet
from homeowner_dagster.resources.bison import BisonResource
from homeowner_dagster.resources.database import PostgresResource
from homeowner_dagster.resources.slack import HomeownerSlackResource
from homeowner_dagster.schedules import monthly_pull_schedule, weekly_upload_schedule
from homeowner_dagster_tests import pipeline_fixtures
from homeowner_dagster_tests.pipeline_fixtures import QUIET, Pipeline

pipeline_sandbox = pipeline_fixtures.pipeline_sandbox
pipeline = pipeline_fixtures.pipeline

CHICAGO = ZoneInfo("America/Chicago")
CLIENT, WORKSPACE = "garden-state", "Garden State Insurance"
ZIP = "07831"  # one small NJ ZIP: a few hundred homeowners a month
FIRST_DAY, LAST_DAY = date(2026, 11, 15), date(2028, 2, 28)
# Windows whose run stops once at a state transition: right before (or after) the named ledger
# write, with the Bison side of that step already done, as a killed run would leave them.
CRASHES = {
    (date(2027, 3, 1), "record_list_created", "before"),  # list in Bison, ledger pending
    (date(2027, 5, 8), "record_list_verified", "before"),  # ledger list_created
    (date(2027, 8, 15), "record_attached", "before"),  # attached in Bison, ledger list_verified
    (date(2027, 11, 22), "record_done", "before"),  # renamed in Bison, ledger attached
    (date(2028, 1, 1), "record_done", "after"),  # done, Slack message not posted
    (date(2028, 2, 8), "record_list_created", "before"),
}


def install_crashes(monkeypatch: pytest.MonkeyPatch) -> set[tuple[date, str, str]]:
    """Wrap the ledger writes: a window in CRASHES stops once at that write."""
    pending = set(CRASHES)
    for name in {n for _, n, _ in CRASHES}:
        real: Callable[..., Any] = getattr(store, name)

        def crashing(*args: Any, _real: Callable[..., Any] = real, _name: str = name, **kwargs: Any) -> Any:
            window = next(a for a in args if isinstance(a, RenewalWindow))
            if (window.start, _name, "before") in pending:
                pending.discard((window.start, _name, "before"))
                raise Failure(f"simulated crash before {_name}", allow_retries=False)
            out = _real(*args, **kwargs)
            if (window.start, _name, "after") in pending:
                pending.discard((window.start, _name, "after"))
                raise Failure(f"simulated crash after {_name}", allow_retries=False)
            return out

        monkeypatch.setattr(store, name, crashing)
    return pending


def tick(schedule: Any, day: date, slack: HomeownerSlackResource) -> list[RunRequest]:
    when = datetime(day.year, day.month, day.day, 9, tzinfo=CHICAGO)
    context = build_schedule_context(
        scheduled_execution_time=when, resources={"database": PostgresResource(), "slack": slack}
    )
    result = schedule(context)
    return [] if isinstance(result, SkipReason) else list(result)


def campaign_title(p: Pipeline) -> str:
    found = [c for c in p.sandbox.bison.workspaces[WORKSPACE].campaigns.values() if c["name"].startswith("Evergreen")]
    assert len(found) == 1
    return found[0]["name"]


def walk_one_day(
    p: Pipeline, day: date, slack: HomeownerSlackResource, monthly_job: Any, weekly_job: Any,
    run_keys: set[str], titles: list[tuple[date, str]], seconds: dict[str, float],
) -> int:
    """Evaluate the schedules due on `day` and execute every run they request; failed runs."""
    failed = 0
    if day.day == 15:
        for request in tick(monthly_pull_schedule, day, slack):
            assert request.run_key not in run_keys
            run_keys.add(request.run_key)
            began = time.perf_counter()
            monthly_job.execute_in_process(
                instance=p.instance, partition_key=request.partition_key, tags=request.tags, run_config=QUIET
            )
            seconds["monthly"] += time.perf_counter() - began
    if day.weekday() == 0:
        for request in tick(weekly_upload_schedule, day, slack):
            assert request.run_key not in run_keys  # the daemon would drop a repeated key
            run_keys.add(request.run_key)
            began = time.perf_counter()
            result = weekly_job.execute_in_process(
                instance=p.instance, partition_key=request.partition_key, tags=request.tags,
                run_config=QUIET, raise_on_error=False,
            )
            seconds["weekly"] += time.perf_counter() - began
            failed += not result.success
        titles.append((day, campaign_title(p)))
    return failed


@pytest.mark.slow(seconds=370)
def test_two_years_of_mondays_and_15ths_each_window_done_once_a_year(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    p, dsn, sandbox = pipeline, pipeline.dsn, pipeline.sandbox
    months = [add_months(date(2027, 1, 1), i) for i in range(16)]  # 2027-01 .. 2028-04
    for month in months:
        registry.import_zips(parse_zip_sheet(f"Zipcode,Territory,Color\n{ZIP},{CLIENT},\n"), month_key(month), dsn)
    with psycopg.connect(dsn) as conn:  # the other demo client stays out of this walk
        conn.execute("update clients set active = false where slug <> %s", [CLIENT])
    pending_crashes = install_crashes(monkeypatch)
    slack = HomeownerSlackResource(token=sandbox.slack.token)
    # The sandbox needs no pacing between Bison calls (0.1 s each against the real API).
    defs = Definitions(
        assets=load_assets_from_modules([monthly_pull, weekly_upload]),
        jobs=[monthly_pull_job, weekly_upload_job],
        resources={**build_resources(), "bison": BisonResource(min_interval_seconds=0.0)},
    )
    monthly_job, weekly_job = defs.resolve_job_def("monthly_pull"), defs.resolve_job_def("weekly_upload")

    titles: list[tuple[date, str]] = []
    run_keys: set[str] = set()
    failed_runs = 0
    seconds = {"monthly": 0.0, "weekly": 0.0}
    day = FIRST_DAY
    while day <= LAST_DAY:
        # Dagster's clock at the tick (partitions exist up to M+2 of "now"); the data stay real.
        with freeze_time(datetime(day.year, day.month, day.day, 9, tzinfo=CHICAGO)):
            failed_runs += walk_one_day(p, day, slack, monthly_job, weekly_job, run_keys, titles, seconds)
        day += timedelta(days=1)
    print(f"two-year walk: monthly runs {seconds['monthly']:.0f} s, weekly runs {seconds['weekly']:.0f} s")

    assert pending_crashes == set() and failed_runs == len(CRASHES)
    windows = [w for m in months for w in windows_of_month(m) if w.due_monday <= LAST_DAY]
    assert windows[0].start == date(2027, 1, 1) and windows[-1].start == date(2028, 4, 1)
    rows = {r["window_start"]: r for r in store.client_windows(dsn, CLIENT).to_dict("records")}
    assert {w.start for w in windows} <= set(rows)
    assert {rows[w.start]["status"] for w in windows} == {"done"}

    ws = sandbox.bison.workspaces[WORKSPACE]
    campaign = next(c for c in ws.campaigns.values() if c["name"].startswith("Evergreen"))
    names = [lst["name"] for lst in ws.lead_lists.values()]
    emails_by_year: dict[int, list[str]] = {}
    with psycopg.connect(dsn) as conn:
        for w in windows:
            assert names.count(w.list_name) == 1, w.list_name  # one list per window and year
            list_id = int(rows[w.start]["bison_list_id"])
            lst = ws.lead_lists[list_id]
            assert lst["name"] == w.list_name
            expected = {
                e.lower() for (e,) in conn.execute(
                    "select distinct email from cleaned_leads where client_slug = %s and renewal_window = %s "
                    "and not surplus", [CLIENT, w.start],
                ).fetchall()
            }
            assert set(lst["lead_emails"]) == expected, w.list_name  # exactly the window's leads
            assert campaign["lead_list_ids"].count(list_id) == 1  # attached once
            emails_by_year.setdefault(w.start.year, []).extend(lst["lead_emails"])
        keys = conn.execute(
            "select count(*) - count(distinct (month, dedupe_key)) from client_lead_batch_leads"
        ).fetchone()[0]
        sent = conn.execute("select count(*) from client_lead_batch_leads where client_slug = %s", [CLIENT]).fetchone()[0]
        cleaned = conn.execute(
            "select count(*) from (select distinct renewal_window, email from cleaned_leads "
            "where client_slug = %s and renewal_window = any(%s) and not surplus) one_per_address",
            [CLIENT, [w.start for w in windows]],
        ).fetchone()[0]
    # No lead in two lists: each lead (one home's renewal) went out in exactly one list, one per
    # address and window. (One person owning homes that renew in different months is two leads.)
    assert keys == 0 and sent == cleaned
    assert sum(len(e) for e in emails_by_year.values()) > 200

    # 2028's lists are new lists, not 2027's found again by name.
    ids_2027 = {rows[w.start]["bison_list_id"] for w in windows if w.start.year == 2027}
    ids_2028 = {rows[w.start]["bison_list_id"] for w in windows if w.start.year == 2028}
    assert ids_2027.isdisjoint(ids_2028) and len(ids_2028) == 13
    assert all(ws.lead_lists[int(i)]["name"].endswith(" 2028") for i in ids_2028)

    # The title never moved backwards, Monday after Monday, and ends on the last window.
    read = [parse_evergreen_title(t).window(d + timedelta(days=30)) for d, t in titles]
    assert all(a <= b for a, b in zip(read, read[1:], strict=False)), titles
    assert read[-1] == windows[-1]

    # Slack: each window announced once, none missed.
    texts = sandbox.slack.messages_in("#garden-state")
    completed = [t for t in texts if t.startswith("Evergreen uploads completed")]
    assert len(completed) == len(windows)
    assert not any(t.startswith("\u26d4 Missed window") for t in texts)
