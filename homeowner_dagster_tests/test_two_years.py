"""One client through two full renewal years (2027 and 2028), driven by the schedules themselves.

Every 15th from 2026-11-15 to 2028-10-15 and every Monday from 2026-11-30 to 2028-11-20 the
project's own schedule functions are evaluated at that date (`build_schedule_context`, Dagster's
clock set there); each run they request is executed through Dagster (monthly pulls on the
sandbox's Cole site with Chromium, weekly uploads and missed-window notices on its Email Bison
and Slack). The sandbox is the documented Bison by default: one lead per email (B-UNIQUE), an
attach counted 5 minutes later (B-SYNC, waited out on the sandbox clock), no route for one lead
list (B-NO-STATUS-ROUTE); its Cole keeps its homeowners from year to year (C-HOMEOWNERS). Some
windows crash once at a state transition (the run stops right there, as a killed run would).

At the end every window is `done` exactly once per year with the title moved on its Monday (a
crashed one the Monday after), no run failed in a week without a crash (no failure alert), each
list holds exactly its window's leads, no lead is in two lists of a month, 2028's lists are new
lists, homeowners came back in 2028 and each 2028 window's returning count equals what the
sandbox's Cole planted, and the campaign title never moved backwards.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any
from unittest.mock import patch
from zoneinfo import ZoneInfo

import psycopg
import pytest
from dagster import (
    DagsterInstance,
    Definitions,
    Failure,
    RunRequest,
    SkipReason,
    build_schedule_context,
    instance_for_test,
    load_assets_from_modules,
)

from homeowner_dagster import db, registry, store
from homeowner_dagster.assets import monthly_pull, weekly_upload
from homeowner_dagster.assets.overdue import missed_windows_notice, missed_windows_schedule
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
from homeowner_dagster.sandbox import generator
from homeowner_dagster.schedules import monthly_pull_schedule, weekly_upload_schedule
from homeowner_dagster_tests import pipeline_fixtures
from homeowner_dagster_tests.pipeline_fixtures import QUIET, Pipeline

pipeline_sandbox = pipeline_fixtures.pipeline_sandbox
pipeline = pipeline_fixtures.pipeline

CHICAGO = ZoneInfo("America/Chicago")
CLIENT, WORKSPACE = "garden-state", "Garden State Insurance"
ZIP = "07831"  # one small NJ ZIP: a few hundred homeowners a month
FIRST_DAY, LAST_DAY = date(2026, 11, 15), date(2028, 11, 20)  # 2028-11-20: 2028-12-22's Monday
# Windows whose run stops once at a state transition: right before (or after) the named ledger
# write, with the Bison side of that step already done, as a killed run would leave them.
CRASHES = {
    (date(2027, 3, 1), "record_list_created", "before"),  # list in Bison, ledger pending
    (date(2027, 5, 8), "record_list_verified", "before"),  # ledger list_created
    (date(2027, 8, 15), "record_attached", "before"),  # attached in Bison, ledger list_verified
    (date(2027, 11, 22), "record_done", "before"),  # renamed in Bison, ledger attached
    (date(2028, 1, 1), "record_done", "after"),  # done, Slack message not posted
    (date(2028, 2, 8), "record_list_created", "before"),
    (
        date(2028, 6, 15),
        "record_attached",
        "before",
    ),  # attached in Bison, synced, ledger list_verified
}


def install_crashes(monkeypatch: pytest.MonkeyPatch) -> set[tuple[date, str, str]]:
    """Wrap the ledger writes: a window in CRASHES stops once at that write."""
    pending = set(CRASHES)
    for name in {n for _, n, _ in CRASHES}:
        real: Callable[..., Any] = getattr(store, name)

        def crashing(
            *args: Any, _real: Callable[..., Any] = real, _name: str = name, **kwargs: Any
        ) -> Any:
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


def tick(schedule: Any, day: date) -> list[RunRequest]:
    when = datetime(day.year, day.month, day.day, 9, tzinfo=CHICAGO)
    with build_schedule_context(
        scheduled_execution_time=when, resources={"database": PostgresResource()}
    ) as context:
        result = schedule(context)
        return [] if isinstance(result, SkipReason) else list(result)


def campaign_title(p: Pipeline) -> str:
    found = [
        c
        for c in p.sandbox.bison.workspaces[WORKSPACE].campaigns.values()
        if c["name"].startswith("Evergreen")
    ]
    assert len(found) == 1
    return found[0]["name"]


@dataclass
class Walk:
    """The walk's state: Dagster's clock (the walk's day), and what the Mondays left behind.

    Runs go one after the other: Dagster configures Python logging when a run starts, which
    deadlocks with another run logging in the same process at that moment (seen on 1.13.27)."""

    p: Pipeline
    instance: DagsterInstance
    slack: HomeownerSlackResource
    monthly_job: Any
    weekly_job: Any
    now: datetime = datetime(2026, 11, 15, 9, tzinfo=CHICAGO)
    run_keys: set[str] = field(default_factory=set)
    titles: list[tuple[date, str]] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=lambda: {"monthly": 0.0, "weekly": 0.0})

    @contextmanager
    def dagster_clock(self) -> Iterator[None]:
        """Dagster's clock is the walk's day at 09:00 Chicago (partitions exist up to M+2 of it)."""
        with (
            patch("dagster._time._mockable_get_current_datetime", side_effect=lambda: self.now),
            patch(
                "dagster._time._mockable_get_current_timestamp",
                side_effect=lambda: self.now.timestamp(),
            ),
        ):
            yield

    def day(self, day: date) -> None:
        """Evaluate the schedules due on `day` and execute every run they request."""
        self.now = datetime(day.year, day.month, day.day, 9, tzinfo=CHICAGO)
        if day.day == 15:
            for request in tick(monthly_pull_schedule, day):
                assert request.run_key not in self.run_keys
                self.run_keys.add(request.run_key)
                began = time.perf_counter()
                result = self.monthly_job.execute_in_process(
                    instance=self.instance,
                    partition_key=request.partition_key,
                    tags=request.tags,
                    run_config=QUIET,
                )
                assert result.success
                self.seconds["monthly"] += time.perf_counter() - began
        if day.weekday() != 0:
            return
        for request in tick(missed_windows_schedule, day):  # none in this walk: checked at the end
            missed_windows_notice.execute_in_process(
                run_config=request.run_config,
                resources={"database": PostgresResource(), "slack": self.slack},
            )
        for request in tick(weekly_upload_schedule, day):
            assert request.run_key not in self.run_keys  # the daemon would drop a repeated key
            self.run_keys.add(request.run_key)
            began = time.perf_counter()
            result = self.weekly_job.execute_in_process(
                instance=self.instance,
                partition_key=request.partition_key,
                tags=request.tags,
                run_config=QUIET,
                raise_on_error=False,
            )
            self.seconds["weekly"] += time.perf_counter() - began
            if not result.success:
                self.failed.append(str(request.partition_key))
        self.titles.append((day, campaign_title(self.p)))


def planted_returning(window: RenewalWindow) -> set[str]:
    """Addresses of the owners the sandbox's Cole kept in their homes from a year before, among
    the ZIP's homeowners of the window's month (C-HOMEOWNERS)."""
    rows = generator.rows_for(ZIP, window.month)
    same = generator.same_owner_as_a_year_before(ZIP, window.month)
    return {e.strip().lower() for e in rows.loc[same, "Email_Address"] if e.strip()}


@pytest.mark.slow(seconds=260)
def test_two_renewal_years_of_mondays_and_15ths_each_window_done_once_a_year(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    p, dsn, sandbox = pipeline, pipeline.dsn, pipeline.sandbox
    months = [add_months(date(2027, 1, 1), i) for i in range(24)]  # 2027-01 .. 2028-12
    for month in months:
        registry.import_zips(
            parse_zip_sheet(f"Zipcode,Territory,Color\n{ZIP},{CLIENT},\n"), month_key(month), dsn
        )
    with psycopg.connect(dsn) as conn:  # the other demo client stays out of this walk
        conn.execute("update clients set active = false where slug <> %s", [CLIENT])
    # The gap report's look-around (a Cole count query per nearby ZIP, every month) is not what
    # this walk is about: a deployment setting turns it off.
    monkeypatch.setenv("HOMEOWNER_GAP_COLE_COUNT_QUERIES", "0")
    pending_crashes = install_crashes(monkeypatch)
    slack = HomeownerSlackResource(token=sandbox.slack.token)
    # Unpaced Bison calls: a weekly run makes 6, seconds apart from the next run's, so the
    # sandbox's 10-a-second limit is rarely met (and then waited out, B-RATE-LIMIT).
    defs = Definitions(
        assets=load_assets_from_modules([monthly_pull, weekly_upload]),
        jobs=[monthly_pull_job, weekly_upload_job],
        resources={**build_resources(), "bison": BisonResource(min_interval_seconds=0.0)},
    )
    monthly_job, weekly_job = (
        defs.resolve_job_def("monthly_pull"),
        defs.resolve_job_def("weekly_upload"),
    )

    # The runs' Dagster instance: Postgres storage, as the fixture's, without capturing each
    # step's output to files (two processes per step), its connections kept open as the
    # webserver keeps them (by default it connects anew for every event).
    overrides = {
        "storage": {"postgres": {"postgres_url": db.dagster_storage_url(dsn)}},
        "compute_logs": {
            "module": "dagster._core.storage.noop_compute_log_manager",
            "class": "NoOpComputeLogManager",
        },
    }
    began = time.perf_counter()
    with instance_for_test(overrides=overrides) as instance:
        instance.optimize_for_webserver(
            statement_timeout=60_000, pool_recycle=3600, max_overflow=10
        )
        walk = Walk(p, instance, slack, monthly_job, weekly_job)
        with walk.dagster_clock():
            day = FIRST_DAY
            while day <= LAST_DAY:
                walk.day(day)
                day += timedelta(days=1)
    titles, failed = walk.titles, walk.failed
    print(
        f"two-year walk: {time.perf_counter() - began:.0f} s; monthly runs {walk.seconds['monthly']:.0f} s, "
        f"weekly runs {walk.seconds['weekly']:.0f} s"
    )

    # No run failed in a week without a crash: the failure alert never fired for a healthy week.
    assert pending_crashes == set()
    assert sorted(failed) == sorted(f"{CLIENT}|{start.isoformat()}" for start, _, _ in CRASHES)
    windows = [w for m in months for w in windows_of_month(m)]
    assert windows[0].start == date(2027, 1, 1) and windows[-1].start == date(2028, 12, 22)
    rows = {r["window_start"]: r for r in store.client_windows(dsn, CLIENT).to_dict("records")}
    assert {w.start for w in windows} == set(rows)
    assert {rows[w.start]["status"] for w in windows} == {"done"}

    ws = sandbox.bison.workspaces[WORKSPACE]
    campaign = next(c for c in ws.campaigns.values() if c["name"].startswith("Evergreen"))
    names = [lst["name"] for lst in ws.lead_lists.values()]
    emails_by_year: dict[int, set[str]] = {2027: set(), 2028: set()}
    with psycopg.connect(dsn) as conn:
        for w in windows:
            assert names.count(w.list_name) == 1, w.list_name  # one list per window and year
            list_id = int(rows[w.start]["bison_list_id"])
            lst = ws.lead_lists[list_id]
            assert lst["name"] == w.list_name
            expected = {
                e.lower()
                for (e,) in conn.execute(
                    "select distinct email from cleaned_leads where client_slug = %s and renewal_window = %s "
                    "and not surplus",
                    [CLIENT, w.start],
                ).fetchall()
            }
            assert set(lst["lead_emails"]) == expected, w.list_name  # exactly the window's leads
            assert campaign["lead_list_ids"].count(list_id) == 1  # attached once
            if w.start.year == 2028:  # returning homeowners: what the sandbox planted
                planted = len(set(lst["lead_emails"]) & planted_returning(w))
                assert rows[w.start]["leads_returning"] == planted, w.list_name
            emails_by_year[w.start.year] |= set(lst["lead_emails"])
        keys = conn.execute(
            "select count(*) - count(distinct (month, dedupe_key)) from client_lead_batch_leads"
        ).fetchone()[0]
        sent = conn.execute(
            "select count(*) from client_lead_batch_leads where client_slug = %s", [CLIENT]
        ).fetchone()[0]
        cleaned = conn.execute(
            "select count(*) from (select distinct renewal_window, email from cleaned_leads "
            "where client_slug = %s and renewal_window = any(%s) and not surplus) one_per_address",
            [CLIENT, [w.start for w in windows]],
        ).fetchone()[0]
    # No lead in two lists of a month: each lead (one home's renewal) went out in exactly one
    # list, one per address and window.
    assert keys == 0 and sent == cleaned
    # Homeowners came back: most of 2028's addresses were 2027's (one lead each in Bison, B-UNIQUE).
    returning = emails_by_year[2027] & emails_by_year[2028]
    print(
        f"two-year walk: {len(emails_by_year[2027])} addresses in 2027's lists, {len(emails_by_year[2028])} in "
        f"2028's, {len(returning)} of them returning (one lead each in Bison)"
    )
    assert len(returning) > len(emails_by_year[2028]) / 2
    assert sum(
        int(rows[w.start]["leads_returning"]) for w in windows if w.start.year == 2028
    ) >= len(returning)
    assert (
        len(set(campaign["lead_emails"]))
        == len(emails_by_year[2027] | emails_by_year[2028])
        == campaign["total_leads"]
    )

    # 2028's lists are new lists, not 2027's found again by name.
    ids_2027 = {rows[w.start]["bison_list_id"] for w in windows if w.start.year == 2027}
    ids_2028 = {rows[w.start]["bison_list_id"] for w in windows if w.start.year == 2028}
    assert ids_2027.isdisjoint(ids_2028) and len(ids_2028) == 48

    # The title moved on each window's Monday (a crashed window's the Monday after) and never back.
    title_on = dict(titles)
    crashed = {start for start, _, _ in CRASHES}
    for w in windows:
        monday = w.due_monday + timedelta(days=7 if w.start in crashed else 0)
        assert parse_evergreen_title(title_on[monday]).window(monday) >= w, (w, title_on[monday])
        assert (
            parse_evergreen_title(title_on[w.due_monday - timedelta(days=7)]).window(w.due_monday)
            < w
        )
    read = [parse_evergreen_title(t).window(d) for d, t in titles]
    assert all(a <= b for a, b in zip(read, read[1:], strict=False)), titles
    assert read[-1] == windows[-1]

    # Slack: each window announced once, none missed or held.
    texts = sandbox.slack.messages_in("#garden-state")
    completed = [t for t in texts if t.startswith("Evergreen uploads completed")]
    assert len(completed) == len(windows)
    assert sum("Already in the campaign from an earlier year" in t for t in completed) == sum(
        1 for w in windows if w.start.year == 2028 and rows[w.start]["leads_returning"]
    )
    assert not any(
        t.startswith(("\u26d4 Missed window", "\u23f8\ufe0f Upload held")) for t in texts
    )
