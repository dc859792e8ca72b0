"""Clay stand-in: a table's webhook (ingress) and the read-only public table API.

Webhook: `POST /v3/sources/webhook/{webhook_id}` with the table's auth token in
`x-clay-webhook-auth`; a JSON object or an array of objects, each one submission; 50,000
submissions per webhook for its whole life, then refused. Read: `GET /api/v1/tables/{table_id}/rows`
with `clay-api-key`, cursor pages of at most 100 rows. Each row gets a DeBounce-like result
(`debounce_code`, `debounce_result`) that fills in `enrich_delay` seconds after it arrives,
like an enrichment column running in the table.
"""

from __future__ import annotations

import itertools
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from homeowner_dagster.leads.email_codes import DEBOUNCE_RESULTS
from homeowner_dagster.sandbox.faults import Faults, service_fault

WEBHOOK_LIMIT = 50_000
PAGE_LIMIT = 100


@dataclass
class Webhook:
    webhook_id: str
    table_id: str
    token: str
    submissions: int = 0
    refused: int = 0


@dataclass
class ClayRow:
    row_id: str
    fields: dict[str, Any]
    arrived: float


@dataclass
class ClayState:
    api_key: str
    seed: int = 7
    code_for: Callable[[str], int] = lambda email: 5
    enrich_delay: float = 0.3
    webhook_limit: int = WEBHOOK_LIMIT
    tables: dict[str, dict[str, Any]] = field(default_factory=dict)
    webhooks: dict[str, Webhook] = field(default_factory=dict)
    _ids: itertools.count = field(default_factory=lambda: itertools.count(1))
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add_table(self, name: str, token: str) -> tuple[str, str]:
        """A table with one webhook; returns (table_id, webhook_id)."""
        table_id = f"t_{uuid.uuid4().hex[:12]}"
        self.tables[table_id] = {"name": name, "rows": []}
        return table_id, self.add_webhook(table_id, token)

    def add_webhook(self, table_id: str, token: str) -> str:
        """A fresh webhook on the table (what the team does after 50,000 submissions)."""
        webhook_id = f"pull-in-data-from-a-webhook-{uuid.uuid4()}"
        self.webhooks[webhook_id] = Webhook(webhook_id, table_id, token)
        return webhook_id

    def rows(self, table_id: str) -> list[dict[str, Any]]:
        """The table as the UI shows it now (results only where enrichment has finished)."""
        return [self._view(row) for row in self.tables[table_id]["rows"]]

    def _view(self, row: ClayRow) -> dict[str, Any]:
        fields = dict(row.fields)
        email = str(fields.get("email") or "")
        if email and time.monotonic() - row.arrived >= self.enrich_delay:
            code = self.code_for(email)
            fields["debounce_code"] = str(code)
            fields["debounce_result"] = DEBOUNCE_RESULTS[code]
        else:
            fields.setdefault("debounce_code", None)
            fields.setdefault("debounce_result", None)
        return {"id": row.row_id, "fields": fields}


def _error(status: int, message: str) -> Response:
    return JSONResponse({"success": False, "message": message}, status)


def build_clay_app(state: ClayState, faults: Faults) -> Starlette:
    async def webhook(request: Request) -> Response:
        if (fault := await service_fault(faults, "clay", _error)) is not None:
            return fault
        hook = state.webhooks.get(request.path_params["webhook_id"])
        if hook is None:
            return _error(404, "Webhook not found")
        if request.headers.get("x-clay-webhook-auth") != hook.token:
            return _error(401, "Unauthorized")
        payload = await request.json()
        records = payload if isinstance(payload, list) else [payload]
        if not all(isinstance(r, dict) for r in records):
            return _error(400, "Each submission must be a JSON object")
        with state._lock:
            if hook.submissions + len(records) > state.webhook_limit:
                hook.refused += len(records)
                return _error(
                    403,
                    f"This webhook has reached its limit of {state.webhook_limit} submissions; "
                    "create a new webhook on the table",
                )
            hook.submissions += len(records)
            now = time.monotonic()
            table = state.tables[hook.table_id]["rows"]
            for record in records:
                table.append(ClayRow(f"r_{next(state._ids)}", dict(record), now))
        return JSONResponse({"success": True, "count": len(records)})

    async def read_rows(request: Request) -> Response:
        if (fault := await service_fault(faults, "clay", _error)) is not None:
            return fault
        if request.headers.get("clay-api-key") != state.api_key:
            return _error(401, "Invalid API key")
        table = state.tables.get(request.path_params["table_id"])
        if table is None:
            return _error(404, "Table not found")
        try:
            limit = min(max(int(request.query_params.get("limit", PAGE_LIMIT)), 1), PAGE_LIMIT)
            start = int(request.query_params.get("cursor") or 0)
        except ValueError:
            return _error(400, "Invalid limit or cursor")
        rows = table["rows"][start : start + limit]
        after = start + len(rows)
        return JSONResponse(
            {
                "data": [state._view(row) for row in rows],
                "next_cursor": str(after) if after < len(table["rows"]) else None,
            }
        )

    return Starlette(
        routes=[
            Route("/v3/sources/webhook/{webhook_id}", webhook, methods=["POST"]),
            Route("/api/v1/tables/{table_id}/rows", read_rows, methods=["GET"]),
        ]
    )
