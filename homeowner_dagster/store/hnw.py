"""High-net-worth routing (`hnw_routing_rules`): who routes leads to whom, and where they went."""

from __future__ import annotations

from datetime import date
from typing import Any

from homeowner_dagster import db
from homeowner_dagster.leads.calendar import month_key


def hnw_rules_for(dsn: str, client: str) -> list[dict[str, Any]]:
    """High-net-worth routing rules that apply to this source client, in the client file's order."""
    with db.connect(dsn) as conn:
        frame = db.read_frame(
            conn,
            "select name, destination_client, source_states, threshold from hnw_routing_rules "
            "where %s = any(source_clients) and destination_client <> %s order by position, name",
            [client, client],
        )
    return frame.to_dict("records")


def is_hnw_destination(dsn: str, client: str) -> bool:
    """A high-net-worth client may hold no ZIPs: its leads come from routing."""
    with db.connect(dsn) as conn:
        return conn.execute(
            "select exists(select 1 from hnw_routing_rules where destination_client = %s)", [client]
        ).fetchone()[0]


def routed_destinations(dsn: str, source: str, month: date) -> set[str]:
    """The clients holding leads routed from `source` this month (before a re-run replaces them)."""
    with db.connect(dsn) as conn:
        rows = conn.execute(
            "select distinct client_slug from cleaned_leads where routed_from = %s and month = %s",
            [source, month_key(month)],
        ).fetchall()
    return {r[0] for r in rows}
