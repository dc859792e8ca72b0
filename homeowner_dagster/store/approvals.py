"""Approvals (`upload_approvals`): a person's go-ahead to upload a month below its minimum."""

from __future__ import annotations

from datetime import date
from typing import Any

from homeowner_dagster import db
from homeowner_dagster.leads.calendar import month_key


def upload_held(dsn: str, client: str, month: date) -> str | None:
    """Why the weekly upload of this renewal month waits for a person, or None to go ahead.

    Only a client with `hold_below_minimum: true` is held, only for a month whose gap report is
    `below_minimum` or missing (fail closed: without the report nobody knows), and only until
    someone runs `homeowner approve` for it (the default is to upload and flag).
    """
    m = month_key(month)
    with db.connect(dsn) as conn:
        row = conn.execute(
            "select g.status, g.cleaned_count, g.minimum_to_proceed from clients c "
            "left join gap_reports g on g.client_slug = c.slug and g.month = %s "
            "left join upload_approvals a on a.client_slug = c.slug and a.month = %s "
            "where c.slug = %s and c.hold_below_minimum and a.client_slug is null",
            [m, m, client],
        ).fetchone()
    approve = f"`homeowner approve --client {client} --month {m}`"
    if row is None or (row[0] is not None and row[0] != "below_minimum"):
        return None
    if row[0] is None:
        return (
            f"{client} {m} has no gap report and the client is set to hold_below_minimum: nobody knows "
            f"whether it meets its minimum. Materialize the month's gap_report (job monthly_pull), or "
            f"run {approve} to upload it anyway"
        )
    return (
        f"{client} {m} is below its minimum to proceed ({row[1]:,} of {row[2]:,} cleaned leads) and "
        f"the client is set to hold_below_minimum: run {approve} to upload it"
    )


def approve_upload(dsn: str, client: str, month: date, approved_by: str) -> dict[str, Any]:
    """Record a person's go-ahead for a below-minimum month (who, when, and the counts then)."""
    m = month_key(month)
    with db.transaction(dsn) as conn:
        report = conn.execute(
            "select status, cleaned_count, minimum_to_proceed from gap_reports "
            "where client_slug = %s and month = %s",
            [client, m],
        ).fetchone()
        row = conn.execute(
            "insert into upload_approvals (client_slug, month, approved_by, cleaned_count, minimum_to_proceed) "
            "values (%s, %s, %s, %s, %s) on conflict (client_slug, month) do update set "
            "approved_by = excluded.approved_by, approved_at = now(), cleaned_count = excluded.cleaned_count, "
            "minimum_to_proceed = excluded.minimum_to_proceed returning approved_at",
            [client, m, approved_by, report[1] if report else None, report[2] if report else None],
        ).fetchone()
    return {
        "status": report[0] if report else None,
        "cleaned": report[1] if report else None,
        "minimum": report[2] if report else None,
        "approved_at": row[0],
    }
