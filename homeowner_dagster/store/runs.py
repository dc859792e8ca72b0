"""Runs and errors (`agent_runs`, `agent_errors`): the dashboard's mirror of Dagster runs."""

from __future__ import annotations

from typing import Any

from psycopg import sql

from homeowner_dagster import db
from homeowner_dagster.store.rows import now


def record_run(dsn: str, row: dict[str, Any]) -> None:
    """Upsert one run into `agent_runs` (what the predecessor dashboard shows)."""
    with db.transaction(dsn) as conn:
        db.upsert(conn, "agent_runs", {**row, "updated_at": now()}, key="run_id")


def record_error(dsn: str, row: dict[str, Any]) -> None:
    """Append one error to `agent_errors`."""
    cols = list(row)
    stmt = sql.SQL("insert into agent_errors ({cols}) values ({vals})").format(
        cols=sql.SQL(", ").join(map(sql.Identifier, cols)),
        vals=sql.SQL(", ").join(sql.Placeholder() * len(cols)),
    )
    with db.transaction(dsn) as conn:
        conn.execute(stmt, [row[c] for c in cols])
