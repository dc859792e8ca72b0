"""Slack Web API stand-in: `auth.test`, `chat.postMessage`, `conversations.list`,
`conversations.info` and `conversations.history`, recording every message.

As the real API: methods under `/api/{method}`, token in `Authorization: Bearer`, JSON or form
bodies, HTTP 200 with `{"ok": false, "error": ...}` for API errors, HTTP 429 with `Retry-After`
and `{"ok": false, "error": "ratelimited"}` when rate limited. A bot posting to a channel it is
not in gets `not_in_channel`; a private channel it is not in is invisible to it
(`channel_not_found`, left out of `conversations.list`). A channel name the sandbox has not
seen is created on the first post with the bot in it (guessed leniency, see README);
`add_channel(name, member=False)` makes one the bot has not joined.
"""

from __future__ import annotations

import base64
import itertools
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from homeowner_dagster.sandbox.faults import Faults, service_fault


@dataclass
class SlackChannel:
    id: str
    name: str
    is_member: bool = True
    is_private: bool = False
    is_archived: bool = False

    def view(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "is_channel": True,
            "is_private": self.is_private,
            "is_archived": self.is_archived,
            "is_member": self.is_member,
        }


@dataclass
class SlackState:
    token: str
    messages: list[dict[str, Any]] = field(default_factory=list)
    known_channels: dict[str, SlackChannel] = field(default_factory=dict)  # by name, no "#"
    _seq: itertools.count = field(default_factory=lambda: itertools.count(1))
    _ids: itertools.count = field(default_factory=lambda: itertools.count(1))
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add_channel(
        self, name: str, member: bool = True, private: bool = False, archived: bool = False
    ) -> SlackChannel:
        """A channel in the workspace (replacing one of the same name); the bot in it if `member`."""
        name = name.lstrip("#")
        with self._lock:
            old = self.known_channels.get(name)
            channel_id = old.id if old else f"C{next(self._ids):08d}"
            channel = SlackChannel(channel_id, name, member, private, archived)
            self.known_channels[name] = channel
        return channel

    def channel(self, ref: str) -> SlackChannel | None:
        """A channel by `#name`, `name` or id."""
        by_name = self.known_channels.get(ref.lstrip("#"))
        return by_name or next((c for c in self.known_channels.values() if c.id == ref), None)

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
        known = state.channel(channel)
        if known is None and _looks_like_id(channel):
            return JSONResponse({"ok": False, "error": "channel_not_found"})
        if known is None:
            known = state.add_channel(channel)  # the guessed leniency: see the module docstring
        if known.is_archived:
            return JSONResponse({"ok": False, "error": "is_archived"})
        if not known.is_member:
            error = "channel_not_found" if known.is_private else "not_in_channel"
            return JSONResponse({"ok": False, "error": error})
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

    def visible(channel: SlackChannel) -> bool:
        return channel.is_member or not channel.is_private

    async def read_call(request: Request) -> tuple[dict[str, Any], Response | None]:
        """A read method's arguments (query and body), or the answer that ends the call: a
        switched-on fault or a wrong token."""
        if (fault := await service_fault(faults, "slack", _error)) is not None:
            return {}, fault
        args = {**dict(request.query_params), **await arguments(request)}
        if token_of(request, args) != state.token:
            return args, JSONResponse({"ok": False, "error": "invalid_auth"})
        return args, None

    def channel_by_id(args: dict[str, Any]) -> SlackChannel | None:
        """The conversation `channel` names by its id, if the bot can see it (names are refused)."""
        ref = str(args.get("channel") or "")
        channel = state.channel(ref)
        return channel if channel is not None and visible(channel) and _looks_like_id(ref) else None

    async def conversations_list(request: Request) -> Response:
        args, refused = await read_call(request)
        if refused is not None:
            return refused
        types = set(str(args.get("types") or "public_channel").split(","))
        exclude_archived = str(args.get("exclude_archived", "false")).lower() in ("true", "1")
        try:
            limit = min(max(int(args.get("limit") or 100), 1), 1000)
            start = int(base64.b64decode(str(args["cursor"])).decode()) if args.get("cursor") else 0
        except ValueError:
            return JSONResponse({"ok": False, "error": "invalid_cursor"})
        found = [
            c.view()
            for c in state.known_channels.values()
            if visible(c)
            and ("private_channel" if c.is_private else "public_channel") in types
            and not (exclude_archived and c.is_archived)
        ]
        page = found[start : start + limit]
        after = start + len(page)
        next_cursor = base64.b64encode(str(after).encode()).decode() if after < len(found) else ""
        return JSONResponse(
            {"ok": True, "channels": page, "response_metadata": {"next_cursor": next_cursor}}
        )

    async def conversations_info(request: Request) -> Response:
        args, refused = await read_call(request)
        if refused is not None:
            return refused
        if (channel := channel_by_id(args)) is None:
            return JSONResponse({"ok": False, "error": "channel_not_found"})
        return JSONResponse({"ok": True, "channel": channel.view()})

    async def conversations_history(request: Request) -> Response:
        """A channel's messages by its id, newest first (one page: the sandbox keeps few)."""
        args, refused = await read_call(request)
        if refused is not None:
            return refused
        if (channel := channel_by_id(args)) is None:
            return JSONResponse({"ok": False, "error": "channel_not_found"})
        if not channel.is_member:
            return JSONResponse({"ok": False, "error": "not_in_channel"})
        try:
            limit = min(max(int(args.get("limit") or 100), 1), 999)
        except ValueError:
            return JSONResponse({"ok": False, "error": "invalid_arguments"})
        with state._lock:
            posted = [
                {"type": "message", "text": m["text"], "ts": m["ts"], "bot_id": "B0SANDBOX"}
                for m in state.messages
                if state.channel(m["channel"]) is channel
            ]
        newest_first = posted[::-1]
        return JSONResponse(
            {
                "ok": True,
                "messages": newest_first[:limit],
                "has_more": len(newest_first) > limit,
                "response_metadata": {"next_cursor": ""},
            }
        )

    return Starlette(
        routes=[
            Route("/api/auth.test", auth_test, methods=["GET", "POST"]),
            Route("/api/chat.postMessage", post_message, methods=["POST"]),
            Route("/api/conversations.list", conversations_list, methods=["GET", "POST"]),
            Route("/api/conversations.info", conversations_info, methods=["GET", "POST"]),
            Route("/api/conversations.history", conversations_history, methods=["GET", "POST"]),
        ]
    )


def _looks_like_id(ref: str) -> bool:
    """Slack conversation ids: C (public), G (private), D (direct) and upper-case alphanumerics."""
    return len(ref) >= 9 and ref[0] in "CGD" and ref.isalnum() and ref.isupper()
