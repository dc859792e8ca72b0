"""The outcome rules as plain functions: reply matching, rates, shrinkage, ranking; the 90-day window."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pandas as pd
import pytest

from homeowner_dagster import db, outcomes_store, store
from homeowner_dagster.leads import gap_solver
from homeowner_dagster.leads.calendar import RenewalWindow
from homeowner_dagster.leads.gap import gap_status
from homeowner_dagster.leads.outcomes import (
    lead_outcomes,
    reply_facts,
    shrunk_rate,
    wilson,
    yield_book,
    zip_yield,
)

LEADS = pd.DataFrame(
    {
        "dedupe_key": ["a", "b", "c", "d"],
        "email": ["ann@x.com", "bob@x.com", "cy@x.com", "dee@x.com"],
        "zip": ["07030", "07030", "07302", "07302"],
        "verification_result": ["Safe to Send", "Safe to Send", None, "Risky"],
    }
)


def reply(**fields: object) -> dict[str, object]:
    base = {"id": fields.pop("id", 1), "folder": "inbox", "type": "Tracked Reply", "interested": False,
            "automated_reply": False, "date_received": "2027-01-05T10:00:00.000000Z", "subject": "Re: renewal",
            "text_body": "Thanks", "from_email_address": "ann@x.com"}
    return {**base, **fields}


def test_replies_match_leads_by_email_and_keep_no_text() -> None:
    replies = [
        reply(id=1, from_email_address="ANN@x.com", interested=True, date_received="2027-01-06T10:00:00Z"),
        reply(id=2, from_email_address="ann@x.com", date_received="2027-01-04T09:00:00Z"),
        reply(id=3, from_email_address="bob@x.com", automated_reply=True, text_body="Out of office"),
        reply(id=4, from_email_address="cy@x.com", text_body="Please remove me from this list"),
        reply(id=5, folder="bounced", from_email_address="mailer-daemon@googlemail.com",
              text_body="Delivery to the following recipient failed permanently: dee@x.com"),
        reply(id=6, folder="sent", type="Outgoing Email", from_email_address="agent@x.com"),
        reply(id=7, from_email_address="someone-else@y.com"),
        reply(id=1, from_email_address="ann@x.com", interested=True),  # the same reply twice
    ]
    facts = reply_facts(replies)
    assert len(facts) == 6 and "text_body" not in facts.columns and "subject" not in facts.columns
    outcomes, unmatched = lead_outcomes(LEADS, facts)
    by_key = outcomes.set_index("dedupe_key")
    assert unmatched == 1
    assert by_key.loc["a", "replied"] and by_key.loc["a", "interested"]
    assert by_key.loc["a", "first_reply_at"] == pd.Timestamp("2027-01-04T09:00:00Z")
    assert not by_key.loc["b", "replied"] and by_key.loc["b", "automated_reply"]
    assert by_key.loc["c", "unsubscribed"] and not by_key.loc["c", "interested"]
    assert by_key.loc["d", "bounced"] and not by_key.loc["d", "replied"]
    assert by_key.loc["c", "verification_result"] == "unknown"
    # A reply from before the window's attach answered an earlier email: it does not count.
    later, _ = lead_outcomes(LEADS, facts, since=pd.Timestamp("2027-01-05T00:00:00Z"))
    assert later.set_index("dedupe_key").loc["a", "first_reply_at"] == pd.Timestamp("2027-01-06T10:00:00Z")


def test_wilson_and_shrinkage() -> None:
    lower, upper = wilson(0, 100)
    assert lower == 0 and 0.03 < upper < 0.04
    lower, upper = wilson(20, 1000)
    assert lower < 0.02 < upper and upper - lower < 0.02
    # One lucky reply in 10 leads stays near a 1.5 % average, not 10 %.
    assert shrunk_rate(1, 10, 0.015) < 0.025
    assert shrunk_rate(500, 10_000, 0.015) == pytest.approx(0.05, abs=0.001)


def outcomes_frame(spec: dict[str, tuple[int, int]], client: str = "acme") -> pd.DataFrame:
    rows = []
    for zip_code, (leads, interested) in spec.items():
        for i in range(leads):
            rows.append({"client_slug": client, "zip": zip_code, "dedupe_key": f"{zip_code}{i}",
                         "replied": i < interested, "interested": i < interested, "bounced": False})
    return pd.DataFrame(rows)


def test_zip_yield_flags_a_zip_clearly_below_the_average_only() -> None:
    table, average = zip_yield(outcomes_frame({"07030": (1000, 40), "07302": (1000, 2), "07001": (20, 0)}))
    rows = table.set_index("zip")
    assert average == pytest.approx(42 / 2020)
    assert list(table["zip"])[0] == "07030"
    assert rows.loc["07302", "low_yield"] and not rows.loc["07001", "low_yield"]  # 20 leads prove nothing
    assert rows.loc["07001", "shrunk_per_1000"] > 10  # pulled toward the ~21/1,000 average


def test_gap_proposals_ranked_by_expected_interested_replies() -> None:
    status = gap_status(10_000, 100)
    rejected = pd.DataFrame(
        {"reason": ["home_value_above_max"] * 150 + ["not_head_of_household"] * 100,
         "zip": ["07302"] * 150 + ["07030"] * 100, "home_value": [950_000.0] * 150 + [400_000.0] * 100}
    )
    empty = pd.DataFrame(columns=["zip", "state", "client_slug", "cleaned_count"])
    totals = pd.DataFrame(columns=["client_slug", "cleaned", "target"])
    args = ("acme", status, ["NJ"], empty, totals, rejected, {}, 900_000, True)
    plain = gap_solver.suggest(*args)
    assert all(s.expected_interested is None for s in plain)
    book = yield_book("acme", outcomes_frame({"07030": (1000, 40), "07302": (1000, 2)}))
    ranked = gap_solver.suggest(*args, outcomes=book)
    kinds = [s.kind for s in ranked]
    assert kinds.index("drop_head_of_household") < kinds.index("raise_home_value_cap")
    drop = next(s for s in ranked if s.kind == "drop_low_yield_zip")
    assert drop.zips == ("07302",) and drop.expected_interested > 0
    report = gap_solver.markdown_report(status, ranked, gap_solver.outcome_note(book))
    assert "expected interested" in report and "Ranked by expected interested replies" in report
    assert "Low-yield ZIP(s) to drop or swap: 07302" in gap_solver.slack_summary(ranked)
    assert yield_book("new-client", outcomes_frame({"07030": (10, 1)})) is None


def test_only_windows_attached_in_the_last_90_days_are_measured(database_url: str) -> None:
    from homeowner_dagster_tests.pipeline_fixtures import load_clients

    load_clients(database_url)
    today = date(2027, 3, 1)
    for start, attached in ((date(2027, 1, 1), today - timedelta(days=60)), (date(2026, 11, 1), today - timedelta(days=120))):
        window = RenewalWindow.starting(start)
        store.ensure_window(database_url, "garden-state", window)
        store.record_list_created(database_url, "garden-state", window, str(start.toordinal()), [])
        store.record_list_verified(database_url, "garden-state", window, 0)
        store.record_campaign_before_attach(database_url, "garden-state", window, "5", "t", 0)
        store.record_attached(database_url, "garden-state", window, 0)
        with db.transaction(database_url) as conn:
            conn.execute("update client_lead_batches set attached_at = %s where window_start = %s",
                         [datetime.combine(attached, datetime.min.time()), start])
    unattached = RenewalWindow.starting(date(2027, 1, 8))  # list made, never attached: nothing sent
    store.ensure_window(database_url, "garden-state", unattached)
    store.record_list_created(database_url, "garden-state", unattached, "10", [])
    assert outcomes_store.windows_to_measure(database_url, today) == [("garden-state", date(2027, 1, 1))]
