"""Close the loop end to end on the sandbox: planted yields in, measured yields and ranking out.

The statistical tests seed the ledger and the cleaned leads directly (thousands of leads per
client without pulling them through Cole) and upload them to the sandbox Bison through the real
connector; `test_weekly_upload_then_outcomes` goes through the real monthly + weekly path.
"""

from __future__ import annotations

from datetime import date, timedelta

import pandas as pd
import psycopg
from psycopg import sql

from homeowner_dagster import db, store
from homeowner_dagster.leads import gap_solver
from homeowner_dagster.leads.calendar import RenewalWindow, windows_of_month
from homeowner_dagster.leads.email_codes import DEBOUNCE_RESULTS, SAFE_TO_SEND_CODE
from homeowner_dagster.leads.gap import gap_status
from homeowner_dagster.leads.outcomes import yield_book
from homeowner_dagster.partitions import client_month_key
from homeowner_dagster.resources.bison import BisonResource
from homeowner_dagster.store import outcomes as outcomes_store
from homeowner_dagster_tests import pipeline_fixtures
from homeowner_dagster_tests.pipeline_fixtures import MONTH, QUIET, Pipeline

pipeline_sandbox = pipeline_fixtures.pipeline_sandbox
pipeline = pipeline_fixtures.pipeline

CLIENT, WORKSPACE, TOKEN_ENV = (
    "garden-state",
    "Garden State Insurance",
    "BISON_TOKEN_GARDEN_STATE_INSURANCE",
)
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
TABLES = {
    "lead_outcomes": "client_slug, window_start, dedupe_key",
    "zip_yields": "client_slug, month, zip",
    "verification_bounce_rates": "client_slug, month, verification_result",
}


def seed_window(
    p: Pipeline, window: RenewalWindow, planted: dict[str, tuple[int, float, float]]
) -> int:
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
    campaign = next(
        c
        for c in sandbox.bison.workspaces[WORKSPACE].campaigns.values()
        if c["name"].startswith("Evergreen")
    )
    list_id, _ = workspace.upload_lead_list(
        window.list_name, leads[["email", "first_name", "last_name", "zip"]]
    )
    assert workspace.lead_list_count(list_id) == len(leads)  # the queued import is processed
    workspace.attach_lead_list(campaign["id"], list_id)
    store.ensure_window(p.dsn, CLIENT, window)
    store.record_list_created(p.dsn, CLIENT, window, str(list_id), leads["dedupe_key"])
    store.record_list_verified(p.dsn, CLIENT, window, len(leads))
    store.record_campaign_before_attach(p.dsn, CLIENT, window, str(campaign["id"]), "t", 0)
    store.record_attached(p.dsn, CLIENT, window, len(leads))
    store.record_done(p.dsn, CLIENT, window, "t")
    return len(leads)


def measure(p: Pipeline, client: str, month: date = MONTH, **config: object) -> dict[str, object]:
    """The Monday read of the client's campaigns, then zip_yield; returns the read's metadata."""
    weekly = p.defs.resolve_job_def("outcomes_weekly").execute_in_process(
        instance=p.instance,
        partition_key=client,
        run_config={
            **QUIET,
            **({"ops": {"campaign_outcomes": {"config": config}}} if config else {}),
        },
    )
    p.defs.resolve_job_def("outcomes_monthly").execute_in_process(
        instance=p.instance, partition_key=client_month_key(client, month), run_config=QUIET
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
    return frame.astype(
        {c: float for c in ("shrunk_per_1000", "lower_per_1000", "upper_per_1000")}
    ).set_index("zip")


def test_measured_yields_recover_the_planted_ones(pipeline: Pipeline) -> None:
    pipeline.sandbox.bison.outcomes.offset = timedelta(0)
    leads = seed_window(pipeline, WINDOW, PLANTED)
    first = measure(pipeline, CLIENT)  # the Monday read right after the attach: nothing sent yet
    assert (
        first["new_replies"] == 0 and first["api_requests"] <= 3 and first["windows_written"] == 1
    )
    pipeline.sandbox.bison.outcomes.advance(weeks=6)

    read = measure(pipeline, CLIENT)
    # Requests stay in proportion to the new replies, not to the window's leads.
    assert read["api_requests"] <= read["pages_of_new_replies"] + 3 == read["api_request_bound"]
    assert (
        read["unmatched_replies"] == 0
        and read["matched_by_address"] > 0
        and read["second_replies"] > 0
    )
    print(
        f"outcomes: {leads} leads, {read['new_replies']} new replies and bounces, "
        f"{read['api_requests']} requests ({read['pages_of_new_replies']} pages of new replies)"
    )
    now = pipeline.sandbox.bison.outcomes.now()
    fates = [f for f in pipeline.sandbox.bison.outcomes.fates(WORKSPACE) if f.sent_at <= now]
    arrived = [
        f for f in fates if f.reply and f.reply_at <= now
    ]  # long-tail replies still to come are not
    with psycopg.connect(pipeline.dsn) as conn:
        stored = db.read_frame(conn, "select * from lead_outcomes")
        safe = db.read_frame(
            conn,
            "select * from verification_bounce_rates where verification_result = 'Safe to Send'",
        ).iloc[0]
        columns = {
            r[0]
            for r in conn.execute(
                "select column_name from information_schema.columns where table_name = 'lead_outcomes'"
            ).fetchall()
        }
    # One outcome per lead; every homeowner who wrote (twice or once) is one replied lead.
    assert len(stored) == leads
    assert int(stored["replied"].sum()) == sum(
        f.reply in ("interested", "human", "unsubscribe") for f in arrived
    )
    assert int(stored["interested"].sum()) == sum(f.reply == "interested" for f in arrived)
    # Every reply quotes a footer saying "unsubscribe": only those who asked in their own words count.
    assert int(stored["unsubscribed"].sum()) == sum(f.reply == "unsubscribe" for f in arrived)
    assert int(stored["bounced"].sum()) == sum(f.bounced for f in fates)
    assert not columns & {
        "email",
        "text_body",
        "subject",
        "first_name",
        "last_name",
    }  # no personal text

    measured = zip_yields(pipeline.dsn)
    assert list(measured.sort_values("shrunk_per_1000", ascending=False).index[:1]) == ["07030"]
    covered = [
        z
        for z, (count, _, interested) in PLANTED.items()
        if count >= 500
        and measured.loc[z, "lower_per_1000"]
        <= interested * 1000
        <= measured.loc[z, "upper_per_1000"]
    ]
    assert len(covered) >= 4, covered  # 90 % intervals: one of five may miss
    assert bool(measured.loc["07003", "low_yield"]) and not bool(measured.loc["07030", "low_yield"])
    assert float(safe["lower"]) <= SAFE_BOUNCE <= float(safe["upper"])

    # The next Monday with no new reply: the read costs at most 3 requests and changes nothing.
    before = tables(pipeline.dsn)
    again = measure(pipeline, CLIENT)
    assert (
        again["new_replies"] == 0 and again["api_requests"] <= 3 and again["windows_written"] == 0
    )
    after = tables(pipeline.dsn)
    for name in TABLES:
        pd.testing.assert_frame_equal(before[name], after[name], check_like=True)
    # Read from scratch (cursor forgotten): the same outcomes.
    scratch = measure(pipeline, CLIENT, from_scratch=True)
    assert scratch["new_replies"] == read["new_replies"]
    pd.testing.assert_frame_equal(
        before["lead_outcomes"], tables(pipeline.dsn)["lead_outcomes"], check_like=True
    )


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
    monday = datetime.combine(
        date.today() + timedelta(days=7 - date.today().weekday()), datetime.min.time()
    )
    with build_schedule_context(
        scheduled_execution_time=monday.replace(hour=11, tzinfo=ZoneInfo("America/Chicago")),
        resources={"database": PostgresResource()},
    ) as context:
        requests = list(weekly_outcomes_schedule(context))
    assert [r.partition_key for r in requests] == [CLIENT]  # one read per client, not per window
    measure(pipeline, CLIENT)  # that Monday's read, two hours after the attach

    sandbox.bison.outcomes.advance(weeks=5)
    meta = measure(pipeline, CLIENT)
    assert meta["api_requests"] <= meta["pages_of_new_replies"] + 3
    with psycopg.connect(pipeline.dsn) as conn:
        window_row = db.read_frame(conn, "select * from window_outcomes").iloc[0]
        read = db.read_frame(conn, "select * from campaign_reads order by read_at desc").iloc[0]
        replied = conn.execute("select count(*) from lead_outcomes where replied").fetchone()[0]
    assert int(window_row["leads"]) == int(ledger["lead_count"])
    # The campaign holds only this window's leads here, so Bison's own totals match ours.
    assert int(read["emails_sent"]) == int(ledger["lead_count"])
    assert int(window_row["bounced"]) == int(read["stats_bounced"])
    assert int(read["unmatched"]) == 0 and replied == int(window_row["replied"]) == int(
        read["stats_replied"]
    )

    # The monthly message: totals and best/worst ZIPs, a chart link, no homeowner data.
    with build_schedule_context(
        scheduled_execution_time=datetime(2027, 3, 2, 12, tzinfo=ZoneInfo("America/Chicago")),
        resources={"database": PostgresResource()},
    ) as tick:
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
    assert (
        "Best ZIPs:" in texts[0]
        and "Chart: file://" in texts[0]
        and texts[0].rstrip().endswith(".svg")
    )
    with psycopg.connect(pipeline.dsn) as conn:
        emails = [r[0] for r in conn.execute("select email from cleaned_leads").fetchall()]
    assert emails and not any(e in texts[0] for e in emails)
    assert "@" not in texts[0]
