"""Close the loop end to end on the sandbox: planted yields in, measured yields and ranking out.

The statistical tests seed the ledger and the cleaned leads directly (thousands of leads per
client without pulling them through Cole) and upload them to the sandbox Bison through the real
connector; `test_weekly_upload_then_outcomes` goes through the real monthly + weekly path.
"""

from __future__ import annotations

import math
from datetime import date, timedelta

import pandas as pd
import psycopg
from psycopg import sql

from homeowner_dagster import db, outcomes_store, store
from homeowner_dagster.leads import gap_solver
from homeowner_dagster.leads.calendar import RenewalWindow, add_months, windows_of_month
from homeowner_dagster.leads.email_codes import DEBOUNCE_RESULTS, SAFE_TO_SEND_CODE
from homeowner_dagster.leads.gap import gap_status
from homeowner_dagster.leads.outcomes import yield_book
from homeowner_dagster.partitions import client_month_key, client_window_key
from homeowner_dagster.resources.bison import BisonResource
from homeowner_dagster_tests import pipeline_fixtures
from homeowner_dagster_tests.pipeline_fixtures import MONTH, QUIET, Pipeline

pipeline_sandbox = pipeline_fixtures.pipeline_sandbox
pipeline = pipeline_fixtures.pipeline

CLIENT, WORKSPACE, TOKEN_ENV = "garden-state", "Garden State Insurance", "BISON_TOKEN_GARDEN_STATE_INSURANCE"
WINDOW = windows_of_month(MONTH)[0]
# ZIP -> (leads, planted reply rate, planted interested rate), per uploaded lead.
PLANTED = {
    "07030": (900, 0.10, 0.050),
    "07302": (800, 0.08, 0.034),
    "07001": (700, 0.06, 0.022),
    "07002": (600, 0.04, 0.010),
    "07003": (600, 0.03, 0.003),
    "07004": (60, 0.05, 0.015),
}
SAFE_BOUNCE = 0.02  # sandbox BOUNCE_BY_CODE[5]
PAGE = 15
TABLES = {
    "lead_outcomes": "client_slug, window_start, dedupe_key",
    "window_outcomes": "client_slug, window_start",
    "zip_yields": "client_slug, month, zip",
    "verification_bounce_rates": "client_slug, month, verification_result",
}


def seed_window(p: Pipeline, window: RenewalWindow, planted: dict[str, tuple[int, float, float]]) -> int:
    """Cleaned leads, their verification, a Bison list attached to the Evergreen campaign, the ledger."""
    sandbox = p.sandbox
    rows = []
    for zip_code, (count, reply, interested) in planted.items():
        sandbox.bison.outcomes.plant(zip_code, reply=reply, interested=interested)
        for i in range(count):
            rows.append(
                {
                    "client_slug": CLIENT,
                    "month": "2027-01",
                    "dedupe_key": f"k-{zip_code}-{i}",
                    "first_name": "Pat",
                    "last_name": f"Owner{i}",
                    "email": f"pat.{zip_code}.{i}@homeowner-mail.example",
                    "zip": zip_code,
                    "state": "NJ",
                    "renewal_date": window.start,
                    "renewal_window": window.start,
                }
            )
    leads = pd.DataFrame(rows)
    codes = [sandbox.debounce.code_for(e) for e in leads["email"]]
    checks = pd.DataFrame(
        {
            "email": leads["email"],
            "code": codes,
            "result": [DEBOUNCE_RESULTS[c] for c in codes],
            "safe_to_send": [c == SAFE_TO_SEND_CODE for c in codes],
            "provider": "debounce",
        }
    )
    with db.transaction(p.dsn) as conn:
        db.copy_rows(conn, "cleaned_leads", leads, list(leads.columns))
        db.copy_rows(conn, "email_verifications", checks, list(checks.columns))
    workspace = BisonResource(min_interval_seconds=0).workspace(sandbox.urls["bison"], TOKEN_ENV)
    campaign = next(c for c in sandbox.bison.workspaces[WORKSPACE].campaigns.values() if c["name"].startswith("Evergreen"))
    list_id, _ = workspace.upload_lead_list(window.list_name, leads[["email", "first_name", "last_name", "zip"]])
    assert workspace.lead_list_count(list_id) == len(leads)  # the queued import is processed
    workspace.attach_lead_list(campaign["id"], list_id)
    store.ensure_window(p.dsn, CLIENT, window)
    store.record_list_created(p.dsn, CLIENT, window, str(list_id), leads["dedupe_key"])
    store.record_list_verified(p.dsn, CLIENT, window, len(leads))
    store.record_campaign_before_attach(p.dsn, CLIENT, window, str(campaign["id"]), "t", 0)
    store.record_attached(p.dsn, CLIENT, window, len(leads))
    store.record_done(p.dsn, CLIENT, window, "t")
    return len(leads)


def measure(p: Pipeline, client: str, window: RenewalWindow) -> dict[str, object]:
    """Run campaign_outcomes then zip_yield; returns the campaign_outcomes metadata."""
    weekly = p.defs.resolve_job_def("outcomes_weekly").execute_in_process(
        instance=p.instance, partition_key=client_window_key(client, window), run_config=QUIET
    )
    p.defs.resolve_job_def("outcomes_monthly").execute_in_process(
        instance=p.instance, partition_key=client_month_key(client, window.month), run_config=QUIET
    )
    mat = weekly.get_asset_materialization_events()[0].event_specific_data.materialization
    return {k: v.value for k, v in mat.metadata.items()}


def tables(dsn: str) -> dict[str, pd.DataFrame]:
    with psycopg.connect(dsn) as conn:
        return {
            t: db.read_frame(
                conn,
                sql.SQL("select * from {} order by {}").format(
                    sql.Identifier(t), sql.SQL(", ").join(map(sql.Identifier, order.split(", ")))
                ),
            ).drop(columns=["measured_at"])
            for t, order in TABLES.items()
        }


def zip_yields(dsn: str) -> pd.DataFrame:
    with psycopg.connect(dsn) as conn:
        frame = db.read_frame(conn, "select * from zip_yields where client_slug = %s", [CLIENT])
    return frame.astype({c: float for c in ("shrunk_per_1000", "lower_per_1000", "upper_per_1000")}).set_index("zip")


def test_measured_yields_recover_the_planted_ones(pipeline: Pipeline) -> None:
    pipeline.sandbox.bison.outcomes.offset = timedelta(0)
    leads = seed_window(pipeline, WINDOW, PLANTED)
    pipeline.sandbox.bison.outcomes.advance(weeks=6)

    first = measure(pipeline, CLIENT, WINDOW)
    # Requests stay in proportion to replies, not to the window's leads.
    assert first["api_requests"] <= 3 + math.ceil(first["replies_fetched"] / PAGE)
    assert first["api_requests"] <= first["api_request_bound"]
    assert first["leads"] == leads and first["interested"] > 0 and first["bounced"] > 0
    print(
        f"outcomes: {leads} leads, {first['replies_fetched']} replies fetched, "
        f"{first['api_requests']} requests (bound {first['api_request_bound']})"
    )

    measured = zip_yields(pipeline.dsn)
    planted_top = sorted(PLANTED, key=lambda z: -PLANTED[z][2])[:3]
    measured_top = list(measured.sort_values("shrunk_per_1000", ascending=False).index[:3])
    assert measured_top == planted_top
    for zip_code, (count, _, interested) in PLANTED.items():
        if count >= 500:
            row = measured.loc[zip_code]
            assert row["lower_per_1000"] <= interested * 1000 <= row["upper_per_1000"], zip_code
    # The small ZIP is pulled toward the client's average: its estimate lies between its raw rate and the average.
    small = measured.loc["07004"]
    average = measured["interested"].sum() / measured["leads"].sum() * 1000
    raw = float(small["interested_per_1000"])
    assert min(raw, average) - 1e-6 <= small["shrunk_per_1000"] <= max(raw, average) + 1e-6
    assert bool(measured.loc["07003", "low_yield"]) and not bool(measured.loc["07030", "low_yield"])

    with psycopg.connect(pipeline.dsn) as conn:
        safe = db.read_frame(
            conn, "select * from verification_bounce_rates where verification_result = 'Safe to Send'"
        ).iloc[0]
        stored = conn.execute("select count(*), count(first_reply_at) from lead_outcomes").fetchone()
        columns = {r[0] for r in conn.execute(
            "select column_name from information_schema.columns where table_name = 'lead_outcomes'"
        ).fetchall()}
    assert float(safe["lower"]) <= SAFE_BOUNCE <= float(safe["upper"])
    assert abs(float(safe["bounce_rate"]) - SAFE_BOUNCE) < 0.01
    assert stored[0] == leads and stored[1] > 0
    assert not columns & {"email", "text_body", "subject", "first_name", "last_name"}  # no personal text

    # Re-materializing gives the same tables.
    before = tables(pipeline.dsn)
    again = measure(pipeline, CLIENT, WINDOW)
    assert again["api_requests"] <= 3 + math.ceil(again["replies_fetched"] / PAGE)
    after = tables(pipeline.dsn)
    for name in TABLES:
        pd.testing.assert_frame_equal(before[name], after[name], check_like=True)

    # Changing the planted rates changes the gap report's ranking as expected: two relaxation
    # proposals, one in 07030 and one in 07003; the one in the better ZIP comes first.
    next_month = add_months(MONTH, 1)
    status = gap_status(10_000, 100)
    rejected = pd.DataFrame(
        {
            "reason": ["home_value_above_max"] * 150 + ["not_head_of_household"] * 100,
            "zip": ["07003"] * 150 + ["07030"] * 100,
            "home_value": [950_000.0] * 150 + [400_000.0] * 100,
        }
    )

    def ranking() -> list[str]:
        book = yield_book(CLIENT, outcomes_store.outcomes_until(pipeline.dsn, next_month))
        assert book is not None
        out = gap_solver.suggest(
            CLIENT, status, ["NJ"], pd.DataFrame(columns=["zip", "state", "client_slug", "cleaned_count"]),
            pd.DataFrame(columns=["client_slug", "cleaned", "target"]), rejected, {}, 900_000, True,
            outcomes=book,
        )
        kinds = [s.kind for s in out]
        assert [s.expected_interested for s in out] == sorted((s.expected_interested for s in out), reverse=True)
        return kinds

    by_leads = gap_solver.suggest(
        CLIENT, status, ["NJ"], pd.DataFrame(columns=["zip", "state", "client_slug", "cleaned_count"]),
        pd.DataFrame(columns=["client_slug", "cleaned", "target"]), rejected, {}, 900_000, True,
    )
    assert [s.kind for s in by_leads][:2] == ["raise_home_value_cap", "drop_head_of_household"]
    relaxations = ["raise_home_value_cap", "drop_head_of_household"]
    ranked = ranking()
    assert [k for k in ranked if k in relaxations] == relaxations[::-1]  # 100 rows in 07030 beat 150 in 07003
    assert "drop_low_yield_zip" in ranked

    flipped = {**PLANTED, "07030": (900, 0.03, 0.003), "07003": (600, 0.10, 0.050)}
    for zip_code, (_, reply, interested) in flipped.items():
        pipeline.sandbox.bison.outcomes.plant(zip_code, reply=reply, interested=interested)
    measure(pipeline, CLIENT, WINDOW)
    assert [k for k in ranking() if k in relaxations] == relaxations
    measured = zip_yields(pipeline.dsn)
    assert list(measured.sort_values("shrunk_per_1000", ascending=False).index[:1]) == ["07003"]


def test_new_client_gap_report_is_as_before_and_says_why(pipeline: Pipeline) -> None:
    assert yield_book(CLIENT, outcomes_store.outcomes_until(pipeline.dsn, date(2027, 2, 1))) is None
    note = gap_solver.outcome_note(None)
    report = gap_solver.markdown_report(gap_status(15_000, 100), [], note)
    assert "No outcome data for this client yet" in report and "ranked by leads" in report


def test_weekly_upload_then_outcomes_schedule_and_monthly_message(pipeline: Pipeline) -> None:
    """The real path: Cole pull, cleaning, weekly upload and Evergreen attach; then simulated weeks."""
    from datetime import datetime
    from zoneinfo import ZoneInfo

    from dagster import build_schedule_context

    from homeowner_dagster.resources.database import PostgresResource
    from homeowner_dagster.schedules import monthly_outcomes_schedule, weekly_outcomes_schedule

    sandbox = pipeline.sandbox
    sandbox.bison.outcomes.offset = timedelta(0)
    pipeline.monthly(CLIENT)
    pipeline.weekly(CLIENT, WINDOW.start)
    ledger = store.ledger_row(pipeline.dsn, CLIENT, WINDOW)
    assert ledger is not None and ledger["campaign_id"]

    # Monday after the upload: the weekly outcomes schedule asks for this window (inside 90 days).
    monday = datetime.combine(date.today() + timedelta(days=7 - date.today().weekday()), datetime.min.time())
    context = build_schedule_context(
        scheduled_execution_time=monday.replace(hour=11, tzinfo=ZoneInfo("America/Chicago")),
        resources={"database": PostgresResource()},
    )
    requests = list(weekly_outcomes_schedule(context))
    assert [r.partition_key for r in requests] == [client_window_key(CLIENT, WINDOW)]

    sandbox.bison.outcomes.advance(weeks=5)
    meta = measure(pipeline, CLIENT, WINDOW)
    assert meta["leads"] == int(ledger["lead_count"])
    assert meta["api_requests"] <= 3 + math.ceil(meta["replies_fetched"] / PAGE)
    with psycopg.connect(pipeline.dsn) as conn:
        window_row = db.read_frame(conn, "select * from window_outcomes").iloc[0]
        replied = conn.execute("select count(*) from lead_outcomes where replied").fetchone()[0]
    # The campaign holds only this window's leads here, so Bison's own totals match ours.
    assert int(window_row["emails_sent"]) == int(ledger["lead_count"])
    assert int(window_row["bounced"]) == int(window_row["stats_bounced"])
    assert int(window_row["unmatched_replies"]) == 0 and replied == int(window_row["replied"])

    # The monthly message: totals and best/worst ZIPs, a chart link, no homeowner data.
    tick = build_schedule_context(
        scheduled_execution_time=datetime(2027, 3, 2, 12, tzinfo=ZoneInfo("America/Chicago")),
        resources={"database": PostgresResource()},
    )
    monthly = list(monthly_outcomes_schedule(tick))
    assert client_month_key(CLIENT, MONTH) in [r.partition_key for r in monthly]
    request = next(r for r in monthly if r.partition_key == client_month_key(CLIENT, MONTH))
    sandbox.slack.messages.clear()
    pipeline.defs.resolve_job_def("outcomes_monthly").execute_in_process(
        instance=pipeline.instance,
        partition_key=request.partition_key,
        run_config={**QUIET, **request.run_config},
    )
    texts = sandbox.slack.messages_in("garden-state")
    assert len(texts) == 1 and texts[0].startswith("📬 Outcomes: Garden State Insurance, 2027-01")
    assert "Best ZIPs:" in texts[0] and "Chart: file://" in texts[0] and texts[0].rstrip().endswith(".svg")
    with psycopg.connect(pipeline.dsn) as conn:
        emails = [r[0] for r in conn.execute("select email from cleaned_leads").fetchall()]
    assert emails and not any(e in texts[0] for e in emails)
    assert "@" not in texts[0]
