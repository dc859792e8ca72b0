"""The outcome rules as plain functions: reply matching, one outcome per lead, the estimate and
what the gap report does with it; which clients the Monday read covers."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pandas as pd
import pytest

from homeowner_dagster import db, store
from homeowner_dagster.leads import gap_solver
from homeowner_dagster.leads.calendar import RenewalWindow
from homeowner_dagster.leads.gap import gap_status
from homeowner_dagster.leads.outcomes import (
    apply_replies,
    new_outcome_rows,
    own_text,
    reply_facts,
    yield_book,
)
from homeowner_dagster.store import outcomes as outcomes_store

JAN = pd.Timestamp("2027-01-04T15:00:00Z")
NEXT_JAN = pd.Timestamp("2028-01-03T15:00:00Z")
# Ann renews every January: the same lead in two windows a year apart.
LEADS = new_outcome_rows(
    pd.DataFrame(
        {
            "window_start": [
                date(2027, 1, 1),
                date(2027, 1, 1),
                date(2027, 1, 1),
                date(2028, 1, 1),
            ],
            "month": ["2027-01", "2027-01", "2027-01", "2028-01"],
            "dedupe_key": ["a", "b", "c", "a"],
            "email": ["ann@x.com", "bob@x.com", "cy@x.com", "ann@x.com"],
            "zip": ["07030", "07030", "07302", "07030"],
            "verification_result": ["Safe to Send"] * 4,
            "attached_at": [JAN, JAN, JAN, NEXT_JAN],
        }
    )
)
FOOTER = (
    "\n\nOn 2027-01-04, Agent <agent@evergreen-mail.example> wrote:\n> Hi, your renewal is soon.\n"
    "> If you no longer wish to hear from us, unsubscribe here."
)


def reply(**fields: object) -> dict[str, object]:
    base = {
        "id": fields.pop("id", 1),
        "folder": "inbox",
        "type": "Tracked Reply",
        "interested": False,
        "automated_reply": False,
        "date_received": "2027-01-05T10:00:00.000000Z",
        "subject": "Re: renewal",
        "text_body": "Thanks" + FOOTER,
        "from_email_address": "ann@x.com",
        "lead_id": 501,
    }
    return {**base, **fields}


def test_quoted_footer_is_not_an_unsubscribe_request() -> None:
    assert own_text("No thanks" + FOOTER) == "No thanks"
    facts = reply_facts(
        [
            reply(id=1, text_body="Thanks, not now." + FOOTER),
            reply(id=2, text_body="Please remove me from your list." + FOOTER),
            reply(id=3, subject="Unsubscribe", text_body=""),
            reply(
                id=4,
                text_body="Sure, call me.\n-----Original Message-----\nFrom: Agent\nUnsubscribe",
            ),
        ]
    )
    assert list(facts["unsubscribe"]) == [False, True, True, False]


def test_replies_find_their_lead_and_window_and_count_once() -> None:
    replies = [
        reply(id=1, date_received="2027-01-06T10:00:00Z", interested=True),  # Ann: first by address
        reply(
            id=2, date_received="2027-01-09T10:00:00Z", from_email_address="ann.work@y.com"
        ),  # 2nd, other address
        reply(
            id=3,
            lead_id=502,
            from_email_address="bob@x.com",
            automated_reply=True,
            text_body="Out of office",
        ),
        reply(
            id=4, lead_id=503, from_email_address="cy@x.com", text_body="Please remove me." + FOOTER
        ),
        reply(
            id=5,
            folder="bounced",
            lead_id=None,
            from_email_address="mailer-daemon@googlemail.com",
            text_body="Delivery to the following recipient failed permanently: bob@x.com",
        ),
        reply(id=6, folder="sent", type="Outgoing Email", from_email_address="agent@x.com"),
        reply(id=7, lead_id=999, from_email_address="someone-else@y.com"),
        reply(
            id=8, lead_id=503, from_email_address="cy@x.com", date_received="2026-12-01T10:00:00Z"
        ),
        reply(
            id=9, date_received="2028-01-10T10:00:00Z"
        ),  # Ann again, a year on: next year's window
        reply(id=1, interested=True, date_received="2027-01-06T10:00:00Z"),  # the same reply twice
    ]
    facts = reply_facts(replies)
    assert len(facts) == 8 and not {"text_body", "subject"} & set(facts.columns)
    outcomes, counts = apply_replies(LEADS, facts)
    assert counts.as_dict() == {
        "by_lead_id": 2,
        "by_address": 4,
        "unmatched": 1,
        "before_attach": 1,
        "second_replies": 1,
    }
    rows = outcomes.set_index(["dedupe_key", outcomes["window_start"].astype(str)])
    ann = rows.loc[("a", "2027-01-01")]
    assert ann["replied"] and ann["interested"] and ann["bison_lead_id"] == 501
    assert (
        ann["first_reply_at"] == pd.Timestamp("2027-01-06T10:00:00Z")
        and ann["matched_by"] == "address"
    )
    assert (
        rows.loc[("a", "2028-01-01"), "replied"] and not rows.loc[("a", "2028-01-01"), "interested"]
    )
    bob = rows.loc[("b", "2027-01-01")]
    assert bob["automated_reply"] and not bob["replied"] and bob["bounced"]
    cy = rows.loc[("c", "2027-01-01")]
    assert cy["unsubscribed"] and cy["replied"] and not cy["interested"]
    assert len(outcomes) == len(LEADS)  # one outcome per lead and window
    # Reading the same replies again (a boundary page) changes nothing.
    again, _ = apply_replies(outcomes, facts)
    pd.testing.assert_frame_equal(again, outcomes)


def outcomes_frame(
    spec: dict[str, tuple[int, int, int]], client: str = "acme", days_old: int = 60
) -> pd.DataFrame:
    """Stored outcomes: per ZIP (leads, human replies, interested), windows `days_old` days old."""
    as_of = pd.Timestamp("2027-03-01T17:00:00Z")
    attached = as_of - pd.Timedelta(days=days_old)
    rows = []
    for zip_code, (leads, replies, interested) in spec.items():
        for i in range(leads):
            rows.append(
                {
                    "client_slug": client,
                    "zip": zip_code,
                    "dedupe_key": f"{client}{zip_code}{i}",
                    "replied": i < replies,
                    "interested": i < interested,
                    "bounced": False,
                    "first_reply_at": attached + pd.Timedelta(days=1 + i % 9)
                    if i < replies
                    else pd.NaT,
                    "attached_at": attached,
                    "as_of": as_of,
                }
            )
    return pd.DataFrame(rows)


SPEC = {f"07{i:03d}": (900, 18, 4) for i in range(20)} | {
    "07300": (1500, 90, 30),
    "07301": (1500, 4, 0),
}


def test_gap_report_ranks_with_intervals_flags_only_clear_low_yield_and_ends_with_the_next_step() -> (
    None
):
    book = yield_book("acme", outcomes_frame(SPEC))
    assert book is not None and book.mature_leads == book.leads_measured == 21_000
    table = book.client_zips.set_index("zip")
    assert table.index[0] == "07300"  # clearly best first
    assert list(table.index[table["low_yield"]]) == ["07301"]  # the only one clearly below
    assert table.loc["07301", "p_below_average"] >= 0.95
    status = gap_status(10_000, 100)
    rejected = pd.DataFrame(
        {
            "reason": ["home_value_above_max"] * 150 + ["not_head_of_household"] * 100,
            "zip": ["07301"] * 150 + ["07300"] * 100,
            "home_value": [950_000.0] * 150 + [400_000.0] * 100,
        }
    )
    empty = pd.DataFrame(columns=["zip", "state", "client_slug", "cleaned_count"])
    totals = pd.DataFrame(columns=["client_slug", "cleaned", "target"])
    args = ("acme", status, ["NJ"], empty, totals, rejected, {}, 900_000, True)
    plain = gap_solver.suggest(*args)
    assert all(s.expected_interested is None for s in plain)
    ranked = gap_solver.suggest(*args, outcomes=book)
    kinds = [s.kind for s in ranked]
    assert kinds[:2] == [
        "drop_head_of_household",
        "raise_home_value_cap",
    ]  # 100 rows in 07300 beat 150 in 07301
    for s in ranked[:2]:
        low, high = s.expected_interval
        assert low < s.expected_interested < high
    drop = ranked[-1]
    assert (
        drop.kind == "drop_low_yield_zip"
        and drop.zips == ("07301",)
        and drop.expected_interested > 0
    )
    reasons = gap_solver.missing_reasons("acme", status, ["NJ"], empty, totals, rejected, ranked)
    report = gap_solver.markdown_report(
        status, ranked, gap_solver.outcome_note(book), book=book, reasons=reasons
    )
    assert (
        "expected interested (90%)" in report and "Ranked by expected interested replies" in report
    )
    assert "**Drop or swap low-yield ZIPs**" in report and "- 07301:" in report
    assert "**Gap left after all proposals: 4,750**" in report
    assert report.splitlines()[-1].startswith(
        "**Next step:** Still 4,750 short after all of these: talk to the client"
    )
    assert "Low-yield ZIP(s) to drop or swap: 07301" in gap_solver.slack_summary(ranked)
    assert yield_book("new-client", outcomes_frame({"07030": (10, 1, 1)})) is None


def test_a_report_without_proposals_says_why() -> None:
    """Like the high-net-worth client: routed leads only, no ZIPs, nobody over target."""
    status = gap_status(142, 100)
    empty = pd.DataFrame(columns=["zip", "state", "client_slug", "cleaned_count"])
    totals = pd.DataFrame(
        {"client_slug": ["hnw", "lone-star"], "cleaned": [142, 20_000], "target": [15_000, 30_000]}
    )
    rejected = pd.DataFrame(columns=["reason", "zip", "home_value"])
    out = gap_solver.suggest("hnw", status, ["TX"], empty, totals, rejected, {}, 10_000_000, False)
    reasons = gap_solver.missing_reasons("hnw", status, ["TX"], empty, totals, rejected, out)
    report = gap_solver.markdown_report(status, out, reasons=reasons)
    assert (
        "No suggestions: no other client in TX is over its target; it holds no ZIPs of its own"
        in report
    )
    assert "**Gap left after all proposals: 14,858**" in report
    assert "below the minimum to proceed" in report.splitlines()[-1]


def test_unmeasured_zips_get_the_spread_of_all_zips() -> None:
    book = yield_book("acme", outcomes_frame(SPEC))
    measured = book.expected({"07000": 1000})
    unmeasured = book.expected({"99999": 1000})
    assert unmeasured[2] - unmeasured[1] > measured[2] - measured[1]  # wider: nothing known of it


def test_young_windows_count_only_once_mature() -> None:
    young = outcomes_frame({"07030": (500, 0, 0)}, days_old=0)
    old = outcomes_frame(SPEC)
    book = yield_book("acme", pd.concat([old, young.assign(dedupe_key=young["dedupe_key"] + "y")]))
    assert book.leads_measured == 21_500 and book.mature_leads == 21_000
    assert "rates from 21,000 of the client's 21,500 measured leads" in gap_solver.outcome_note(
        book
    )


def test_only_clients_with_a_window_attached_lately_are_read(database_url: str) -> None:
    from homeowner_dagster_tests.pipeline_fixtures import load_clients

    load_clients(database_url)
    today = date(2027, 3, 1)
    for slug, start, attached in (
        ("garden-state", date(2027, 1, 1), today - timedelta(days=60)),
        ("sunshine", date(2026, 9, 1), today - timedelta(days=150)),
    ):
        window = RenewalWindow.starting(start)
        store.ensure_window(database_url, slug, window)
        store.record_list_created(database_url, slug, window, str(start.toordinal()), [])
        store.record_list_verified(database_url, slug, window, 0)
        store.record_campaign_before_attach(database_url, slug, window, "5", "t", 0)
        store.record_attached(database_url, slug, window, 0)
        with db.transaction(database_url) as conn:
            conn.execute(
                "update client_lead_batches set attached_at = %s where client_slug = %s and window_start = %s",
                [datetime.combine(attached, datetime.min.time()), slug, start],
            )
    unattached = RenewalWindow.starting(date(2027, 1, 8))  # list made, never attached: nothing sent
    store.ensure_window(database_url, "sunshine", unattached)
    store.record_list_created(database_url, "sunshine", unattached, "10", [])
    assert outcomes_store.clients_to_measure(database_url, today) == ["garden-state"]
    assert outcomes_store.attached_campaigns(database_url, "garden-state") == ["5"]


@pytest.mark.parametrize("age", [0.1, 3.0])
def test_the_delay_curve_reads_right_truncated_replies(age: float) -> None:
    from homeowner_dagster.leads.yield_model import delay_curve

    # 200 replies at day 1 and 200 at day 10 in windows 30 days old; the young window saw only day 1's.
    delays = [1.5] * 200 + [10.5] * 200 + [1.5] * 50
    ages = [30.0] * 400 + [age + 2.0] * 50
    curve = delay_curve(delays, ages)
    assert curve.measured and curve.at(2.0) == pytest.approx(0.5, abs=0.01)
    assert curve.at(30.0) == pytest.approx(1.0)
