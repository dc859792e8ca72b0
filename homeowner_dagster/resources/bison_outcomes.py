"""Reading outcomes back from Email Bison: a campaign's new replies (cursor pages) and its stats.

Functions over an open `BisonWorkspace` (kept apart from the upload connector in bison.py). Every
call goes through the workspace's paced, retried `_call` (a 429 waits its Retry-After), so
`workspace.requests` counts them.

Incremental: the caller keeps, per campaign, the newest `date_received` it has read (the
cursor). A read walks the campaign's replies newest first and stops at the first page that
reaches back past the cursor, so a week costs the pages of that week's new replies, plus at most
one page per folder that holds older ones, plus the stats call. Replies dated exactly at the
cursor are read again; folding them into the outcomes changes nothing.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from homeowner_dagster.resources.bison import BisonError, BisonWorkspace

REPLY_PAGE_SIZE = 15  # Bison's page size; per_page is ignored on most routes
FOLDERS = ("inbox", "bounced")  # human and automated replies; bounce notices
STATS_FIELDS = (
    "emails_sent",
    "total_leads_contacted",
    "unique_replies_per_contact",
    "interested",
    "bounced",
    "unsubscribed",
)


def _received(reply: dict[str, Any]) -> datetime | None:
    try:
        moment = datetime.fromisoformat(str(reply.get("date_received")).replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def campaign_replies(
    workspace: BisonWorkspace, campaign_id: int | str, folder: str, since: datetime | None = None
) -> Iterator[dict[str, Any]]:
    """Replies of the campaign in `folder` (inbox, bounced, ...), one cursor page per request.

    The campaign-scoped route is used because `/api/replies` also returns our own outgoing emails
    with no campaign id. A cursor seen twice ends the walk (a server looping would not hang us).
    With `since`: a newest-first page whose oldest reply is older than `since` is the last one
    read; pages in any other order are all read (nothing is missed, it only costs more).
    """
    cursor: str | None = None
    seen: set[str] = set()
    while True:
        params: dict[str, Any] = {"folder": folder, "pagination_type": "cursor"}
        if cursor:
            params["cursor"] = cursor
        body = workspace._call("GET", f"/api/campaigns/{campaign_id}/replies", params=params)
        page = body.get("data") or []
        yield from page
        cursor = (body.get("meta") or {}).get("next_cursor")
        if not cursor or cursor in seen:
            return
        seen.add(cursor)
        if since is not None and page:
            dates = [_received(r) for r in page]
            newest_first = all(d is not None for d in dates) and dates == sorted(
                dates, reverse=True
            )
            if newest_first and dates[-1] < since:
                return


@dataclass
class CampaignRead:
    """What one weekly read of one campaign brought."""

    replies: list[dict[str, Any]]  # at or after the cursor (bodies: the caller drops them)
    newest: datetime | None  # the new cursor
    as_of: datetime  # Bison's clock at the read (its Date header; ours if it sent none)
    requests: int
    new_by_folder: dict[str, int] = field(default_factory=dict)  # strictly newer than the cursor
    stats: dict[str, int] = field(default_factory=dict)

    @property
    def pages_of_new_replies(self) -> int:
        """The pages this read could not have done without: ceil(new replies / 15) per folder."""
        return sum(math.ceil(n / REPLY_PAGE_SIZE) for n in self.new_by_folder.values())


def read_campaign(
    workspace: BisonWorkspace,
    campaign_id: int | str,
    cursor: datetime | None,
    stats_start: date,
) -> CampaignRead:
    """The replies since `cursor` (every one when None) and the stats since `stats_start`."""
    before = workspace.requests
    kept: list[dict[str, Any]] = []
    new: dict[str, int] = {}
    newest = cursor
    for folder in FOLDERS:
        new[folder] = 0
        for reply in campaign_replies(workspace, campaign_id, folder, cursor):
            at = _received(reply)
            if cursor is not None and at is not None and at < cursor:
                continue  # on the boundary page: read before
            kept.append(reply)
            if cursor is None or at is None or at > cursor:
                new[folder] += 1
            if at is not None and (newest is None or at > newest):
                newest = at
    as_of = workspace.server_date or datetime.now(UTC)
    if newest is not None and newest > as_of:
        newest = as_of  # a reply dated after Bison's own now (a skewed clock) must not skip others
    stats = campaign_stats(workspace, campaign_id, stats_start, as_of.date())
    return CampaignRead(kept, newest, as_of, workspace.requests - before, new, stats)


def campaign_stats(
    workspace: BisonWorkspace, campaign_id: int | str, start: date, end: date
) -> dict[str, int]:
    """The campaign's totals over [start, end]; Bison sends the numbers as strings."""
    body = workspace._call(
        "POST",
        f"/api/campaigns/{campaign_id}/stats",
        json={"start_date": start.isoformat(), "end_date": end.isoformat()},
    )
    data = body.get("data") if isinstance(body, dict) else None
    if not isinstance(data, dict) or data.get("success") is False:
        message = data.get("message") if isinstance(data, dict) else None
        raise BisonError(f"Email Bison stats for campaign {campaign_id}: {message or 'no data'}")
    out: dict[str, int] = {}
    for name in STATS_FIELDS:
        raw = data.get(name)
        try:
            out[name] = int(float(str(raw).replace(",", ""))) if raw not in (None, "") else 0
        except ValueError as exc:
            raise BisonError(f"Email Bison stats: {name} is not a number ({raw!r})") from exc
    return out
