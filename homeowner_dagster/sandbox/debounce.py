"""DeBounce stand-in: single validation, the bulk list flow and the credit balance.

Wire format as the real API: every JSON value is a string (`"code": "5"`, `"success": "1"`),
the key goes in the `api` query parameter, at most 5 calls in flight per key (429 beyond).
Codes are deterministic per address (a hash), mostly 5 "Safe to Send". A sixth concurrent call
is refused with 429 and still counted in `max_in_flight_seen`, so a test sees any overrun. Bulk
jobs can end `failed` (fault `bulk_failed`) and an upload can be accepted with its answer lost
(fault `dropped_upload`); `uploads` and `single_calls` count what was paid for.
"""

from __future__ import annotations

import asyncio
import csv
import hashlib
import io
import itertools
import json
import re
import threading
from dataclasses import dataclass, field

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from homeowner_dagster.sandbox.faults import Faults, dropped_response, service_fault

# code -> (result, reason), as DeBounce documents them.
CODES: dict[int, tuple[str, str]] = {
    1: ("Invalid", "Syntax"),
    2: ("Invalid", "Spam Trap"),
    3: ("Invalid", "Disposable"),
    4: ("Risky", "Accept-All"),
    5: ("Safe to Send", "Deliverable"),
    6: ("Invalid", "Bounce"),
    7: ("Unknown", "Unknown"),
    8: ("Risky", "Role"),
}
_SYNTAX = re.compile(r"^[^@\s]+@[^@\s]+\.[A-Za-z]{2,}$")
_ROLES = {"info", "admin", "sales", "support", "office", "contact", "hello"}
MAX_CONCURRENT = 5


@dataclass
class BulkList:
    list_id: str
    emails: list[str]
    polls: int = 0
    fails: bool = False  # the `bulk_failed` fault: the job ends `failed` instead of `completed`


@dataclass
class DebounceState:
    api_key: str
    seed: int = 7
    balance: int = 1_000_000
    latency: float = 0.005  # seconds each single call takes, so concurrency is observable
    polls_until_done: int = 1  # status answers "processing" this many times first
    credits_used: int = 0
    single_calls: int = 0
    lists: dict[str, BulkList] = field(default_factory=dict)
    in_flight: int = 0
    max_in_flight_seen: int = 0  # most single calls open at once, refused ones included
    refused_for_concurrency: int = 0
    uploads: int = 0  # bulk uploads accepted (each one paid for)
    list_urls: list[str] = field(default_factory=list)  # the signed links bulk uploads named
    refunded: set[str] = field(default_factory=set)
    _ids: itertools.count = field(default_factory=lambda: itertools.count(1001))
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def code_for(self, email: str) -> int:
        """The same address always gets the same code (seeded hash)."""
        email = email.strip().lower()
        if not _SYNTAX.match(email):
            return 1
        if email.split("@", 1)[0] in _ROLES:
            return 8
        bucket = int(hashlib.sha256(f"{self.seed}:{email}".encode()).hexdigest(), 16) % 100
        for limit, code in ((76, 5), (84, 6), (89, 4), (92, 3), (96, 7), (98, 8), (99, 2)):
            if bucket < limit:
                return code
        return 1

    def charge(self, count: int) -> bool:
        with self._lock:
            if self.balance < count:
                return False
            self.balance -= count
            self.credits_used += count
            return True


def _body(status: int, message: str) -> Response:
    return JSONResponse({"debounce": {"error": message, "code": "0"}, "success": "0"}, status)


def build_debounce_app(state: DebounceState, faults: Faults) -> Starlette:
    def authorised(request: Request) -> bool:
        return request.query_params.get("api") == state.api_key

    async def single(request: Request) -> Response:
        if not authorised(request):
            return _body(401, "Wrong API")
        with state._lock:
            state.in_flight += 1
            state.max_in_flight_seen = max(state.max_in_flight_seen, state.in_flight)
            refused = state.in_flight > MAX_CONCURRENT
            if refused:
                state.refused_for_concurrency += 1
        try:
            if refused:
                return _body(429, "Maximum concurrent calls reached")
            fault = await service_fault(faults, "debounce", _body)
            if fault is not None:
                return fault
            await asyncio.sleep(state.latency)
            email = request.query_params.get("email", "")
            if not state.charge(1):
                return _body(402, "Credits Low")
            state.single_calls += 1
            code = state.code_for(email)
            result, reason = CODES[code]
            return JSONResponse(
                {
                    "debounce": {
                        "email": email,
                        "code": str(code),
                        "role": "true" if code == 8 else "false",
                        "free_email": "true"
                        if email.endswith(("@gmail.com", "@yahoo.com"))
                        else "false",
                        "result": result,
                        "reason": reason,
                        "send_transactional": "1" if code in (4, 5, 7, 8) else "0",
                        "did_you_mean": "",
                    },
                    "success": "1",
                    "balance": str(state.balance),
                }
            )
        finally:
            with state._lock:
                state.in_flight -= 1

    async def balance(request: Request) -> Response:
        if not authorised(request):
            return _body(401, "Wrong API")
        return JSONResponse({"balance": str(state.balance)})

    async def upload(request: Request) -> Response:
        if not authorised(request):
            return _body(401, "Wrong API")
        fault = await service_fault(faults, "debounce", _body)
        if fault is not None:
            return fault
        url = request.query_params.get("url", "")
        state.list_urls.append(url)
        try:
            async with httpx.AsyncClient(timeout=30) as client:
                fetched = await client.get(url)
            fetched.raise_for_status()
        except httpx.HTTPError:
            return _body(400, "The list URL could not be downloaded")
        rows = list(csv.reader(io.StringIO(fetched.text)))
        if rows and "@" not in ",".join(rows[0]):
            rows = rows[1:]  # a header row
        emails = [row[0].strip() for row in rows if row and row[0].strip()]
        if not emails:
            return _body(400, "The list is empty")
        if not state.charge(len(emails)):
            return _body(402, "Credits Low")
        list_id = str(next(state._ids))
        fails = faults.take("debounce", "bulk_failed") is not None
        state.lists[list_id] = BulkList(list_id, emails, fails=fails)
        state.uploads += 1
        list_name = url.rsplit("/", 1)[-1].split("?", 1)[0].removesuffix(".csv")
        body = json.dumps(
            {"debounce": {"list_id": list_id, "list_name": list_name}, "success": "1"}
        ).encode()
        if faults.take("debounce", "dropped_upload") is not None:
            return dropped_response(body, "application/json")  # accepted and paid; answer lost
        return Response(body, media_type="application/json")

    async def status(request: Request) -> Response:
        if not authorised(request):
            return _body(401, "Wrong API")
        fault = await service_fault(faults, "debounce", _body)
        if fault is not None:
            return fault
        bulk = state.lists.get(request.query_params.get("list_id", ""))
        if bulk is None:
            return JSONResponse({"debounce": {"error": "List ID is not valid."}, "success": "0"})
        bulk.polls += 1
        done = bulk.polls > state.polls_until_done
        if done and bulk.fails:
            if bulk.list_id not in state.refunded:  # guessed: a failed list is not charged
                state.refunded.add(bulk.list_id)
                state.balance += len(bulk.emails)
                state.credits_used -= len(bulk.emails)
            answer = {
                "list_id": bulk.list_id,
                "status": "failed",
                "percentage": "50",
                "download_link": "",
            }
            return JSONResponse({"success": "1", "debounce": answer})
        answer = {
            "list_id": bulk.list_id,
            "status": "completed" if done else "processing",
            "percentage": "100" if done else "50",
            "download_link": "",
        }
        if done:
            answer["download_link"] = (
                f"{request.base_url}v1/download/{bulk.list_id}/?api={state.api_key}"
            )
        return JSONResponse({"success": "1", "debounce": answer})

    async def download(request: Request) -> Response:
        if not authorised(request):
            return _body(401, "Wrong API")
        bulk = state.lists.get(request.path_params["list_id"])
        if bulk is None:
            return _body(404, "List not found")
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(["Email", "Debounce Code", "Debounce Result", "Debounce Reason"])
        for email in bulk.emails:
            code = state.code_for(email)
            writer.writerow([email, code, *CODES[code]])
        body = out.getvalue().encode()
        if faults.take("debounce", "dropped_download") is not None:
            return dropped_response(body, "text/csv")
        return Response(body, media_type="text/csv")

    return Starlette(
        routes=[
            Route("/v1/", single),
            Route("/v1/balance/", balance),
            Route("/v1/upload/", upload),
            Route("/v1/status/", status),
            Route("/v1/download/{list_id}/", download),
        ]
    )
