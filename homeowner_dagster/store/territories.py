"""Territories (`territory_changes`, `client_zipcodes`): who holds which ZIP, month by month."""

from __future__ import annotations

from datetime import date
from typing import Any

import pandas as pd

from homeowner_dagster import db
from homeowner_dagster.leads import territories
from homeowner_dagster.leads.calendar import add_months, month_key


def territory_changes(conn: Any, until: str | None = None) -> pd.DataFrame:
    """Every recorded sheet line, assignment and move (up to month `until`), oldest first."""
    frame = db.read_frame(
        conn,
        "select id, kind, month, zip, state, color, client_slug, from_client from territory_changes "
        "where %s::text is null or month <= %s order by id",
        [until, until],
    )
    return frame if not frame.empty else pd.DataFrame(columns=territories.CHANGE_COLUMNS)


def materialized_months(conn: Any, since: str) -> list[str]:
    """Months from `since` on whose territory is already written to `client_zipcodes`."""
    rows = conn.execute(
        "select distinct month from client_zipcodes where month >= %s order by month", [since]
    ).fetchall()
    return [r[0] for r in rows]


def sync_territory(conn: Any, month: str) -> territories.Territory:
    """Write month's derived territory to `client_zipcodes` (inside the caller's transaction).

    Rows that stay with their client keep their counts and pulled_at; a ZIP that changes hands
    is marked not pulled; a ZIP no longer held is removed. The caller holds the table lock.
    """
    derived = territories.derive_territory(territory_changes(conn, month), month)
    current = _written(conn, month)
    wanted = derived.zips.set_index("zip")
    gone = sorted(set(current) - set(wanted.index))
    with conn.cursor() as cur:
        if gone:
            cur.execute(
                "delete from client_zipcodes where month = %s and zip = any(%s)", [month, gone]
            )
        for z, row in wanted.iterrows():
            if current.get(z) == row["client_slug"]:
                continue
            if z in current:
                cur.execute(
                    "update client_zipcodes set client_slug = c.slug, client_name = c.name, "
                    "workspace_name = c.workspace_name, assigned_at = now(), pulled_at = null "
                    "from clients c where c.slug = %s and client_zipcodes.month = %s and client_zipcodes.zip = %s",
                    [row["client_slug"], month, z],
                )
            else:
                cur.execute(
                    "insert into client_zipcodes (client_slug, client_name, workspace_name, month, zip, state, color) "
                    "select slug, name, workspace_name, %s, %s, %s, %s from clients where slug = %s",
                    [month, z, row["state"], row["color"], row["client_slug"]],
                )
    return derived


def _written(conn: Any, month: str) -> dict[str, str]:
    return dict(
        conn.execute(
            "select zip, client_slug from client_zipcodes where month = %s", [month]
        ).fetchall()
    )


def ensure_territory(dsn: str, month: date) -> territories.Territory:
    """Bring the month's `client_zipcodes` rows up to date with the sheet and changes (all clients).

    Pulls of many clients for one month run at once: the table lock is only taken when the
    written month differs from what the sheet and changes say.
    """
    m = month_key(month)
    with db.connect(dsn) as conn:
        derived = territories.derive_territory(territory_changes(conn, m), m)
        if _written(conn, m) == dict(
            zip(derived.zips["zip"], derived.zips["client_slug"], strict=True)
        ):
            return derived
    with db.transaction(dsn) as conn:
        conn.execute("lock table client_zipcodes in share row exclusive mode")
        return sync_territory(conn, m)


def derived_territory(dsn: str, month: date) -> territories.Territory:
    """The month's territory as the sheet and changes define it (read only)."""
    with db.connect(dsn) as conn:
        return territories.derive_territory(
            territory_changes(conn, month_key(month)), month_key(month)
        )


def territory(dsn: str, client: str, month: date) -> pd.DataFrame:
    """The client's ZIPs for the month, with last month's raw count when known (for chunking).

    The month's territory is first written from the latest sheet at or before it plus the
    changes approved since, so a month needs no import of its own.
    """
    ensure_territory(dsn, month)
    with db.connect(dsn) as conn:
        return db.read_frame(
            conn,
            "select z.zip, z.state, prev.raw_count as last_count "
            "from client_zipcodes z left join client_zipcodes prev "
            "  on prev.zip = z.zip and prev.month = %s "
            "where z.client_slug = %s and z.month = %s order by z.state, z.zip",
            [month_key(add_months(month, -1)), client, month_key(month)],
        )


def month_assignments(dsn: str, month: date) -> pd.DataFrame:
    """Every client's ZIPs this month with the cleaned leads each yielded: [zip, state, client_slug, cleaned_count]."""
    with db.connect(dsn) as conn:
        return db.read_frame(
            conn,
            "select zip, state, client_slug, coalesce(cleaned_count, 0) as cleaned_count "
            "from client_zipcodes where month = %s",
            [month_key(month)],
        )


def zip_history(dsn: str, zips: list[str], before: date) -> dict[str, float]:
    """Cleaned leads each ZIP yielded in its latest earlier month (any client)."""
    with db.connect(dsn) as conn:
        rows = conn.execute(
            "select distinct on (zip) zip, cleaned_count from client_zipcodes "
            "where zip = any(%s) and month < %s and cleaned_count is not null "
            "order by zip, month desc",
            [zips, month_key(before)],
        ).fetchall()
    return {z: float(c) for z, c in rows}
