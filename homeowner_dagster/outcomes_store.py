"""Reads and writes of the outcome tables (lead_outcomes, window_outcomes, zip_yields, ...).

Kept beside store.py: every partition write is delete + COPY in one transaction, so
re-materializing replaces the partition and a crash leaves the previous rows.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

import pandas as pd

from homeowner_dagster import db
from homeowner_dagster.leads.calendar import RenewalWindow, add_months, month_key


def uploaded_leads(dsn: str, client: str, window: RenewalWindow) -> pd.DataFrame:
    """The window's uploaded leads (ledger) with email, ZIP and verification result."""
    with db.connect(dsn) as conn:
        return db.read_frame(
            conn,
            "select b.dedupe_key, lower(c.email) as email, c.zip, "
            "coalesce(v.result, 'unknown') as verification_result "
            "from client_lead_batch_leads b "
            "join cleaned_leads c on c.client_slug = b.client_slug and c.month = b.month "
            "  and c.dedupe_key = b.dedupe_key "
            "left join email_verifications v on v.email = lower(c.email) "
            "where b.client_slug = %s and b.window_start = %s order by b.dedupe_key",
            [client, window.start],
        )


def write_window_outcomes(
    dsn: str, client: str, window: RenewalWindow, outcomes: pd.DataFrame, summary: dict[str, Any]
) -> None:
    """Replace the window's per-lead outcomes and its summary row, in one transaction."""
    m = month_key(window.month)
    now = datetime.now().astimezone()
    with db.transaction(dsn) as conn:
        db.replace_partition(
            conn,
            "lead_outcomes",
            {"client_slug": client, "window_start": window.start, "month": m},
            outcomes.assign(measured_at=now),
        )
        db.replace_partition(
            conn,
            "window_outcomes",
            {"client_slug": client, "window_start": window.start},
            pd.DataFrame([{**summary, "month": m, "measured_at": now}]),
        )


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
    """Every client's measured lead outcomes of the renewal months up to `month` (the gap report's input).

    In production a month's own outcomes do not exist yet when its gap report is first made; a
    later re-run (or the demo's) uses them.
    """
    with db.connect(dsn) as conn:
        return db.read_frame(
            conn,
            "select client_slug, zip, dedupe_key, replied, interested, bounced from lead_outcomes "
            "where month <= %s and month >= %s",
            [month_key(month), month_key(add_months(month, -months_back))],
        )


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


def window_totals(dsn: str, client: str, month: date) -> pd.DataFrame:
    with db.connect(dsn) as conn:
        return db.read_frame(
            conn,
            "select * from window_outcomes where client_slug = %s and month = %s order by window_start",
            [client, month_key(month)],
        )
