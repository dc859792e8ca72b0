"""Slack Web API stand-in: `auth.test` and `chat.postMessage`, recording every message.

As the real API: methods under `/api/{method}`, token in `Authorization: Bearer`, JSON or form
bodies, HTTP 200 with `{"ok": false, "error": ...}` for API errors, HTTP 429 with `Retry-After`
and `{"ok": false, "error": "ratelimited"}` when rate limited.
"""

from __future__ import annotations

import itertools
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from homeowner_dagster.sandbox import service_fault
from homeowner_dagster.sandbox.faults import Faults


@dataclass
class SlackState:
    token: str
    messages: list[dict[str, Any]] = field(default_factory=list)
    _seq: itertools.count = field(default_factory=lambda: itertools.count(1))
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def messages_in(self, channel: str) -> list[str]:
        """Texts posted to `channel` (name with or without '#'), oldest first."""
        name = channel.lstrip("#")
        return [m["text"] for m in self.messages if m["channel"].lstrip("#") == name]

    def channels(self) -> list[str]:
        return sorted({m["channel"].lstrip("#") for m in self.messages})


def _error(status: int, message: str) -> Response:
    return JSONResponse(
        {"ok": False, "error": "ratelimited" if status == 429 else "internal_error"}, status
    )


def build_slack_app(state: SlackState, faults: Faults) -> Starlette:
    async def arguments(request: Request) -> dict[str, Any]:
        if request.headers.get("content-type", "").startswith("application/json"):
            body = await request.body()
            return (await request.json()) if body else {}
        form = await request.form()
        return dict(form)

    def token_of(request: Request, args: dict[str, Any]) -> str:
        header = request.headers.get("authorization", "")
        return header.removeprefix("Bearer ").strip() or str(args.get("token", ""))

    async def auth_test(request: Request) -> Response:
        if (fault := await service_fault(faults, "slack", _error)) is not None:
            return fault
        args = await arguments(request)
        if token_of(request, args) != state.token:
            return JSONResponse({"ok": False, "error": "invalid_auth"})
        return JSONResponse(
            {
                "ok": True,
                "url": "https://homeowner-sandbox.slack.com/",
                "team": "Homeowner Sandbox",
                "user": "homeowner-bot",
                "team_id": "T0SANDBOX",
                "user_id": "U0SANDBOX",
                "bot_id": "B0SANDBOX",
                "is_enterprise_install": False,
            }
        )

    async def post_message(request: Request) -> Response:
        if (fault := await service_fault(faults, "slack", _error)) is not None:
            return fault
        args = await arguments(request)
        if token_of(request, args) != state.token:
            return JSONResponse({"ok": False, "error": "invalid_auth"})
        channel = str(args.get("channel") or "")
        if not channel:
            return JSONResponse({"ok": False, "error": "channel_not_found"})
        text = str(args.get("text") or "")
        if not text and not args.get("blocks") and not args.get("attachments"):
            return JSONResponse({"ok": False, "error": "no_text"})
        with state._lock:
            ts = f"{int(time.time())}.{next(state._seq):06d}"
            message = {"channel": channel, "text": text, "ts": ts, "blocks": args.get("blocks")}
            state.messages.append(message)
        return JSONResponse(
            {
                "ok": True,
                "channel": channel,
                "ts": ts,
                "message": {"type": "message", "text": text, "ts": ts, "bot_id": "B0SANDBOX"},
            }
        )

    return Starlette(
        routes=[
            Route("/api/auth.test", auth_test, methods=["GET", "POST"]),
            Route("/api/chat.postMessage", post_message, methods=["POST"]),
        ]
    )
