"""Totals and gap reports (`monthly_cleaned_leads`, `gap_reports`): a client's month in figures."""

from __future__ import annotations

from datetime import date
from typing import Any

import pandas as pd
import psycopg

from homeowner_dagster import db
from homeowner_dagster.leads.calendar import month_key
from homeowner_dagster.store.rows import now


def month_counts(dsn: str, client: str, month: date) -> dict[str, int]:
    m = month_key(month)
    with db.connect(dsn) as conn:
        raw = conn.execute(
            "select count(*) from raw_leads where client_slug = %s and month = %s", [client, m]
        ).fetchone()[0]
        cleaned = conn.execute(
            "select count(*) filter (where routed_from is null), count(*) filter (where routed_from is not null) "
            "from cleaned_leads where client_slug = %s and month = %s",
            [client, m],
        ).fetchone()
        rejected = conn.execute(
            "select count(*) from rejected_leads where client_slug = %s and month = %s", [client, m]
        ).fetchone()[0]
        routed_out = conn.execute(
            "select count(*) from cleaned_leads where routed_from = %s and month = %s", [client, m]
        ).fetchone()[0]
        held = conn.execute(
            "select count(*) from rejected_leads where client_slug = %s and month = %s "
            "and reason = 'held_by_other_client'",
            [client, m],
        ).fetchone()[0]
    return {
        "raw": int(raw),
        "cleaned": int(cleaned[0]) + int(cleaned[1]),
        "own_cleaned": int(cleaned[0]),
        "routed_in": int(cleaned[1]),
        "rejected": int(rejected),
        "routed_out": int(routed_out),
        "held_by_other_client": int(held),
    }


def refresh_routed_totals(
    dsn: str, totals: dict[str, Any], status: str, meets_minimum: bool
) -> bool:
    """Bring a destination's totals and gap report rows up to date after a source routed leads
    to it, so they agree with its cleaned leads whichever of the two months ran first.

    False (nothing written) when the destination's month has not been totalled yet: its own run
    will count the routed leads.
    """
    key = {"client_slug": totals["client_slug"], "month": totals["month"]}
    with db.transaction(dsn) as conn:
        exists = conn.execute(
            "select 1 from monthly_cleaned_leads where client_slug = %s and month = %s for update",
            [key["client_slug"], key["month"]],
        ).fetchone()
        if not exists:
            return False
        _replace_totals(conn, totals)
        conn.execute(
            "update gap_reports set cleaned_count = %s, routed_in_count = %s, gap = %s, status = %s, "
            "meets_minimum = %s where client_slug = %s and month = %s",
            [
                totals["cleaned_count"],
                totals["routed_in_count"],
                totals["gap"],
                status,
                meets_minimum,
                key["client_slug"],
                key["month"],
            ],
        )
    return True


def write_monthly_totals(dsn: str, row: dict[str, Any]) -> None:
    with db.transaction(dsn) as conn:
        _replace_totals(conn, row)


def _replace_totals(conn: psycopg.Connection, row: dict[str, Any]) -> None:
    db.replace_partition(
        conn,
        "monthly_cleaned_leads",
        {"client_slug": row["client_slug"], "month": row["month"]},
        pd.DataFrame([row]).drop(columns=["client_slug", "month"]).assign(updated_at=now()),
    )


def write_gap_report(dsn: str, row: dict[str, Any]) -> None:
    with db.transaction(dsn) as conn:
        db.replace_partition(
            conn,
            "gap_reports",
            {"client_slug": row["client_slug"], "month": row["month"]},
            pd.DataFrame([row]).drop(columns=["client_slug", "month"]).assign(created_at=now()),
        )


def month_totals(dsn: str, month: date) -> pd.DataFrame:
    """Each client's cleaned total and target this month: [client_slug, cleaned, target]."""
    with db.connect(dsn) as conn:
        return db.read_frame(
            conn,
            "select client_slug, cleaned_count as cleaned, target_count as target "
            "from monthly_cleaned_leads where month = %s",
            [month_key(month)],
        )


def months_with_cleaned_leads(dsn: str, client: str) -> set[str]:
    with db.connect(dsn) as conn:
        rows = conn.execute(
            "select month from monthly_cleaned_leads where client_slug = %s", [client]
        ).fetchall()
    return {r[0] for r in rows}
