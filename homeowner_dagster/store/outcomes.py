"""Outcomes (`lead_outcomes`, `window_outcomes`, `campaign_reads`, `zip_yields`): what leads did.

Every write is delete + COPY (or insert) in one transaction, so a crash leaves the previous rows
and the previous cursor together.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

import pandas as pd

from homeowner_dagster import db
from homeowner_dagster.leads.calendar import add_months, month_key
from homeowner_dagster.store.rows import first_row

# lead_outcomes columns written per lead (besides client_slug, window_start, month).
STORED_OUTCOME = [
    "dedupe_key",
    "zip",
    "verification_result",
    "replied",
    "interested",
    "bounced",
    "unsubscribed",
    "automated_reply",
    "first_reply_at",
    "campaign_id",
    "bison_lead_id",
    "matched_by",
    "attached_at",
]


def attached_campaigns(dsn: str, client: str) -> list[str]:
    """Campaigns the client's windows were attached to by us (the ledger), oldest first."""
    with db.connect(dsn) as conn:
        rows = conn.execute(
            "select campaign_id from client_lead_batches where client_slug = %s "
            "and campaign_id is not null and attached_at is not null "
            "group by campaign_id order by min(attached_at)",
            [client],
        ).fetchall()
    return [str(r[0]) for r in rows]


def campaign_leads(dsn: str, client: str, campaign_id: str) -> pd.DataFrame:
    """Every lead of the campaign's attached windows (ledger) with its outcome so far.

    `attached_at` is the window's attach on Bison's clock once a read has fixed it, else null;
    `ledger_attached_at` is ours.
    """
    with db.connect(dsn) as conn:
        return db.read_frame(
            conn,
            "select b.window_start, b.month, l.dedupe_key, lower(c.email) as email, c.zip, "
            "coalesce(v.result, 'unknown') as verification_result, b.attached_at as ledger_attached_at, "
            "coalesce(o.replied, false) as replied, coalesce(o.interested, false) as interested, "
            "coalesce(o.bounced, false) as bounced, coalesce(o.unsubscribed, false) as unsubscribed, "
            "coalesce(o.automated_reply, false) as automated_reply, o.first_reply_at, "
            "o.bison_lead_id, o.matched_by, o.attached_at "
            "from client_lead_batches b "
            "join client_lead_batch_leads l on l.client_slug = b.client_slug and l.window_start = b.window_start "
            "join cleaned_leads c on c.client_slug = l.client_slug and c.month = l.month "
            "  and c.dedupe_key = l.dedupe_key "
            "left join email_verifications v on v.email = lower(c.email) "
            "left join lead_outcomes o on o.client_slug = b.client_slug "
            "  and o.window_start = b.window_start and o.dedupe_key = l.dedupe_key "
            "where b.client_slug = %s and b.campaign_id = %s and b.attached_at is not null "
            "order by b.window_start, l.dedupe_key",
            [client, campaign_id],
        )


def last_read(dsn: str, client: str, campaign_id: str) -> dict[str, Any] | None:
    with db.connect(dsn) as conn:
        frame = db.read_frame(
            conn,
            "select * from campaign_reads where client_slug = %s and campaign_id = %s "
            "order by read_at desc limit 1",
            [client, campaign_id],
        )
    return first_row(frame)


def write_campaign_read(
    dsn: str,
    client: str,
    campaign_id: str,
    outcomes: pd.DataFrame,
    windows: list[date],
    read: dict[str, Any],
    summaries: pd.DataFrame,
) -> None:
    """The read's outcomes of `windows` (replacing theirs), its summary rows and the new cursor,
    in one transaction: a crash keeps the old outcomes with the old cursor."""
    with db.transaction(dsn) as conn:
        for start in windows:
            rows = outcomes[outcomes["window_start"] == start]
            db.replace_partition(
                conn,
                "lead_outcomes",
                {"client_slug": client, "window_start": start},
                rows.assign(campaign_id=campaign_id)[["month", *STORED_OUTCOME]],
            )
            db.replace_partition(
                conn,
                "window_outcomes",
                {"client_slug": client, "window_start": start},
                summaries[summaries["window_start"] == start].drop(columns=["window_start"]),
            )
        frame = pd.DataFrame([{**read, "client_slug": client, "campaign_id": campaign_id}])
        db.copy_rows(conn, "campaign_reads", frame, list(frame.columns))


def month_outcomes(dsn: str, client: str, month: date) -> pd.DataFrame:
    with db.connect(dsn) as conn:
        return db.read_frame(
            conn,
            "select * from lead_outcomes where client_slug = %s and month = %s "
            "order by window_start, dedupe_key",
            [client, month_key(month)],
        )


def write_zip_yield(
    dsn: str, client: str, month: date, table: pd.DataFrame, bounces: pd.DataFrame
) -> None:
    m = month_key(month)
    now = datetime.now().astimezone()
    with db.transaction(dsn) as conn:
        db.replace_partition(
            conn, "zip_yields", {"client_slug": client, "month": m}, table.assign(measured_at=now)
        )
        db.replace_partition(
            conn,
            "verification_bounce_rates",
            {"client_slug": client, "month": m},
            bounces.assign(measured_at=now),
        )


OUTCOME_MONTHS_BACK = 6  # the gap report reads the outcomes of its month and the six before


def outcomes_until(dsn: str, month: date, months_back: int = OUTCOME_MONTHS_BACK) -> pd.DataFrame:
    """Every client's measured lead outcomes of the renewal months up to `month`, with what the
    estimator needs: the window's attach and the campaign's latest read, both on Bison's clock.

    In production a month's own outcomes do not exist yet when its gap report is first made; a
    later re-run (or the demo's) uses them.
    """
    with db.connect(dsn) as conn:
        return db.read_frame(
            conn,
            "select o.client_slug, o.window_start, o.zip, o.dedupe_key, o.replied, o.interested, "
            "o.bounced, o.first_reply_at, coalesce(o.attached_at, b.attached_at) as attached_at, "
            "coalesce(r.as_of, o.measured_at) as as_of "
            "from lead_outcomes o "
            "left join client_lead_batches b on b.client_slug = o.client_slug and b.window_start = o.window_start "
            "left join lateral (select max(as_of) as as_of from campaign_reads r "
            "  where r.client_slug = o.client_slug and r.campaign_id = o.campaign_id) r on true "
            "where o.month <= %s and o.month >= %s",
            [month_key(month), month_key(add_months(month, -months_back))],
        )


def clients_to_measure(dsn: str, today: date, days: int = 120) -> list[str]:
    """Active clients with a window attached to a campaign within the last `days` days."""
    since = today - timedelta(days=days)
    with db.connect(dsn) as conn:
        rows = conn.execute(
            "select distinct b.client_slug from client_lead_batches b "
            "join clients c on c.slug = b.client_slug and c.active "
            "where b.campaign_id is not null and b.attached_at is not null "
            "and b.attached_at::date between %s and %s order by 1",
            [since, today],
        ).fetchall()
    return [r[0] for r in rows]


def windows_to_measure(dsn: str, today: date, days: int = 90) -> list[tuple[str, date]]:
    """(client, window start) of every window attached to a campaign within the last `days` days."""
    since = today - timedelta(days=days)
    with db.connect(dsn) as conn:
        rows = conn.execute(
            "select b.client_slug, b.window_start from client_lead_batches b "
            "join clients c on c.slug = b.client_slug and c.active "
            "where b.campaign_id is not null and b.attached_at is not null "
            "and b.attached_at::date between %s and %s "
            "order by b.client_slug, b.window_start",
            [since, today],
        ).fetchall()
    return [(r[0], r[1]) for r in rows]
