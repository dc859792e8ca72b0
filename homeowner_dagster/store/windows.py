"""Reads of the window ledger (`client_lead_batches`, its leads): which windows stand where."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from typing import Any

import pandas as pd

from homeowner_dagster import db
from homeowner_dagster.leads.calendar import RenewalWindow, month_key
from homeowner_dagster.store.rows import first_row


def ledger_row(dsn: str, client: str, window: RenewalWindow) -> dict[str, Any] | None:
    with db.connect(dsn) as conn:
        frame = db.read_frame(
            conn,
            "select * from client_lead_batches where client_slug = %s and window_start = %s",
            [client, window.start],
        )
    return first_row(frame)


def keys_uploaded_elsewhere(
    dsn: str, client: str, window: RenewalWindow, keys: Iterable[str]
) -> int:
    """How many of these leads already went out this month in another window or client's list."""
    with db.connect(dsn) as conn:
        row = conn.execute(
            "select count(*) from client_lead_batch_leads where month = %s and dedupe_key = any(%s) "
            "and not (client_slug = %s and window_start = %s)",
            [month_key(window.month), list(keys), client, window.start],
        ).fetchone()
    return int(row[0])


@dataclass(frozen=True)
class CampaignHolds:
    """Of one window's leads, those the campaign got in earlier windows (B-UNIQUE: by email), and
    those of them first attached in an earlier renewal year (returning homeowners)."""

    in_campaign: int
    returning: int


def campaign_holds(dsn: str, client: str, window: RenewalWindow, campaign_id: str) -> CampaignHolds:
    """What the ledger knows the campaign already holds of this window's leads.

    Counted from every window (any client) attached to the campaign, or whose attach may have
    happened (`list_verified` with a lead count recorded before attaching: a run stopped there).
    """
    with db.connect(dsn) as conn:
        row = conn.execute(
            "with mine as (select distinct email_hash from client_lead_batch_leads "
            "  where client_slug = %(client)s and window_start = %(start)s and email_hash is not null), "
            "earlier as (select l.email_hash, min(b.window_start) as first_window "
            "  from client_lead_batch_leads l join client_lead_batches b "
            "    on b.client_slug = l.client_slug and b.window_start = l.window_start "
            "  where b.campaign_id = %(campaign)s and not (b.client_slug = %(client)s and b.window_start = %(start)s) "
            "    and (b.status in ('attached', 'done') "
            "         or (b.status = 'list_verified' and b.campaign_leads_before is not null)) "
            "  group by l.email_hash) "
            "select count(e.email_hash), count(e.email_hash) filter (where e.first_window < %(year)s) "
            "from mine m left join earlier e using (email_hash)",
            {
                "client": client,
                "start": window.start,
                "campaign": str(campaign_id),
                "year": date(window.start.year, 1, 1),
            },
        ).fetchone()
    return CampaignHolds(int(row[0]), int(row[1]))


def next_list_position(dsn: str, client: str) -> int | None:
    """Where a new list of the client should show up in Bison's listing: after its latest one."""
    with db.connect(dsn) as conn:
        row = conn.execute(
            "select list_position from client_lead_batches where client_slug = %s "
            "and list_position is not null order by list_verified_at desc nulls last, window_start desc limit 1",
            [client],
        ).fetchone()
    return None if row is None else int(row[0]) + 1


def windows_in_states(dsn: str, client: str, states: Iterable[str]) -> set[date]:
    with db.connect(dsn) as conn:
        rows = conn.execute(
            "select window_start from client_lead_batches where client_slug = %s and status = any(%s)",
            [client, list(states)],
        ).fetchall()
    return {r[0] for r in rows}


def done_windows(dsn: str, client: str, announced: bool = False) -> set[date]:
    """Windows whose list is attached and whose campaign title has moved on (state `done`).

    `announced`: only those whose 'Evergreen uploads completed' message went out too (a run that
    died between the two leaves a window the next Monday finishes by posting it).
    """
    if not announced:
        return windows_in_states(dsn, client, ["done"])
    with db.connect(dsn) as conn:
        rows = conn.execute(
            "select window_start from client_lead_batches where client_slug = %s and status = 'done' "
            "and evergreen_announced_at is not null",
            [client],
        ).fetchall()
    return {r[0] for r in rows}


def missed_reported(dsn: str, client: str) -> set[date]:
    """Windows whose miss was already posted to Slack (posted once)."""
    with db.connect(dsn) as conn:
        rows = conn.execute(
            "select window_start from client_lead_batches where client_slug = %s and missed_reported_at is not null",
            [client],
        ).fetchall()
    return {r[0] for r in rows}


def client_windows(dsn: str, client: str) -> pd.DataFrame:
    """Every ledger row of the client, oldest window first (what `homeowner windows` prints)."""
    with db.connect(dsn) as conn:
        return db.read_frame(
            conn,
            "select window_start, window_end, month, status, list_name, bison_list_id, lead_count, "
            "campaign_title_after, missed_reported_at, refused_rows, refused_accepted_at, "
            "leads_returning, updated_at from client_lead_batches "
            "where client_slug = %s order by window_start",
            [client],
        )


def campaign_titled_windows(dsn: str, campaign_id: str) -> list[date]:
    """First days of the windows this campaign's title was moved to (or left on) by a run."""
    with db.connect(dsn) as conn:
        rows = conn.execute(
            "select window_start from client_lead_batches where campaign_id = %s and status = 'done'",
            [str(campaign_id)],
        ).fetchall()
    return [r[0] for r in rows]
