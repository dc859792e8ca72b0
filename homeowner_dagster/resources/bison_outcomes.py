"""Reading outcomes back from Email Bison: a campaign's replies (cursor pages) and its stats.

Functions over an open `BisonWorkspace` (kept apart from the upload connector in bison.py). Every
call goes through the workspace's paced, retried `_call`, so `workspace.requests` counts them.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime
from typing import Any

from homeowner_dagster.resources.bison import BisonError, BisonWorkspace

REPLY_PAGE_SIZE = 15  # Bison's page size; per_page is ignored on most routes
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
        return datetime.fromisoformat(str(reply.get("date_received")).replace("Z", "+00:00"))
    except ValueError:
        return None


def campaign_replies(
    workspace: BisonWorkspace, campaign_id: int | str, folder: str, since: datetime | None = None
) -> Iterator[dict[str, Any]]:
    """Every reply of the campaign in `folder` (inbox, bounced, ...), one cursor page per request.

    The campaign-scoped route is used because `/api/replies` also returns our own outgoing emails
    with no campaign id. A cursor seen twice ends the walk (a server looping would not hang us).
    With `since`: a page that is newest-first and ends before `since` is the last one read (older
    replies cannot be about leads attached at `since`); pages in any other order are all read.
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
            newest_first = all(d is not None for d in dates) and dates == sorted(dates, reverse=True)
            if newest_first and dates[-1] < since:
                return


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
