"""Laravel pages of 15, as every list route of the sandbox Email Bison answers them.

Shared by the stand-in's own routes (`bison.py`) and the replies routes of its simulated sending
(`bison_outcomes.py`), so neither imports the other for them.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

PAGE_SIZE = 15


def numbered_page(request: Request, items: list[dict[str, Any]]) -> Response:
    """Laravel's length-aware paginator: `data`, `links`, `meta` with `?page=` (from 1)."""
    try:
        page = max(int(request.query_params.get("page", 1)), 1)
    except ValueError:
        page = 1
    last_page = max((len(items) + PAGE_SIZE - 1) // PAGE_SIZE, 1)
    chunk = items[(page - 1) * PAGE_SIZE : page * PAGE_SIZE]
    path = str(request.url.replace(query=""))

    def link(number: int) -> str:
        return f"{path}?page={number}"

    return JSONResponse(
        {
            "data": chunk,
            "links": {
                "first": link(1),
                "last": link(last_page),
                "prev": link(page - 1) if page > 1 else None,
                "next": link(page + 1) if page < last_page else None,
            },
            "meta": {
                "current_page": page,
                "from": (page - 1) * PAGE_SIZE + 1 if chunk else None,
                "last_page": last_page,
                "path": path,
                "per_page": PAGE_SIZE,
                "to": (page - 1) * PAGE_SIZE + len(chunk) if chunk else None,
                "total": len(items),
            },
        }
    )


def cursor_page(request: Request, items: list[dict[str, Any]]) -> Response:
    """Laravel's cursor paginator: `data`, `links`, `meta.next_cursor` (opaque)."""
    raw = request.query_params.get("cursor")
    try:
        offset = int(json.loads(base64.urlsafe_b64decode(raw.encode()))["offset"]) if raw else 0
    except (ValueError, KeyError, TypeError):
        return JSONResponse({"data": {"success": False, "message": "The cursor is invalid."}}, 422)
    chunk = items[offset : offset + PAGE_SIZE]

    def encode(value: int) -> str:
        return base64.urlsafe_b64encode(json.dumps({"offset": value}).encode()).decode()

    next_cursor = encode(offset + PAGE_SIZE) if offset + PAGE_SIZE < len(items) else None
    prev_cursor = encode(max(offset - PAGE_SIZE, 0)) if offset > 0 else None
    path = str(request.url.replace(query=""))
    return JSONResponse(
        {
            "data": chunk,
            "links": {
                "first": None,
                "last": None,
                "prev": f"{path}?cursor={prev_cursor}" if prev_cursor else None,
                "next": f"{path}?cursor={next_cursor}" if next_cursor else None,
            },
            "meta": {
                "path": path,
                "per_page": PAGE_SIZE,
                "next_cursor": next_cursor,
                "prev_cursor": prev_cursor,
            },
        }
    )
