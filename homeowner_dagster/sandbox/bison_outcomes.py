"""Sandbox Email Bison: the campaign sends its emails on a simulated clock and homeowners answer.

Nothing here is visible to the pipeline except through the Bison API (replies, stats). What each
lead does is decided once, when its list is attached to a campaign, from a seeded hash of
(seed, campaign, email), so a re-run, a restart or a restored demo state sees the same outcomes:

- each ZIP has a planted reply rate and interest rate per uploaded lead (`plant`, or seeded
  defaults from `planted_zip_rates`: about 2-8 interested per 1,000, the ZIPs differing);
- a lead that does not reply bounces with the probability of its DeBounce code
  (`BOUNCE_BY_CODE`; "Safe to Send" = code 5 bounces 2 %), so the marginal bounce rate of a code
  is exactly that probability;
- some leads that neither reply nor bounce send an automated (out-of-office) reply; a share of
  non-interested human replies are unsubscribe requests ("please remove me");
- the email goes out 0-2 days after the attach; a human reply comes a long-tailed time after
  the send (median 2 days, 2 % after 30 days), an automated one within a day; 15 % of human
  replies are followed by a second reply 1-10 days later; every reply quotes our email, whose
  footer says "unsubscribe".

The clock is the wall clock plus an offset moved by `advance` (Python) or
`POST /sandbox/clock {"days": N}`; an event exists once the simulated clock has passed it. Every
answer of the sandbox Bison carries that clock in its `Date` header (`with_simulated_date`).
"""

from __future__ import annotations

import hashlib
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from email.utils import formatdate
from typing import Any

import numpy as np
from scipy import special
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from homeowner_dagster.sandbox.bison_pages import cursor_page, numbered_page

# Probability that an email to a lead with this DeBounce code bounces (not a vendor fact: planted).
BOUNCE_BY_CODE: dict[int, float] = {
    5: 0.02,
    4: 0.10,
    7: 0.20,
    3: 0.30,
    8: 0.15,
    6: 0.60,
    2: 0.60,
    1: 0.90,
}
AUTOMATED_SHARE = 0.05  # of leads that neither reply nor bounce
UNSUBSCRIBE_SHARE = 0.20  # of non-interested human replies
SENDER = "agent@evergreen-mail.example"
BOUNCE_AFTER = timedelta(minutes=3)  # the mail system's notice comes minutes after the send

# Planted homeowner behaviour (guesses, not vendor facts; sandbox/README.md). Per ZIP: a human
# reply rate, log-normal around 1.8 % (sigma 0.5), and the share of those replies that are
# interested, logit-normal around 20 % (sigma 0.3): about 2-8 interested per 1,000 leads, the
# ZIPs differing mostly in how many answer. A first reply comes a log-normal time after the send
# (median 2 days, sigma 1.3: 2 % after 30 days); the send is 0-2 days after the attach.
REPLY_MEDIAN, REPLY_SIGMA = 0.018, 0.5
SHARE_MEDIAN, SHARE_SIGMA = 0.20, 0.3
DELAY_MEDIAN_DAYS, DELAY_SIGMA = 2.0, 1.3
SEND_LAG_DAYS = 2.0
SECOND_REPLY_SHARE = 0.15  # of human replies: the homeowner writes again 1-10 days later


def planted_zip_rates(u_reply: float | np.ndarray, u_share: float | np.ndarray) -> tuple[Any, Any]:
    """(reply rate, interested rate) per lead from two uniforms in (0, 1)."""
    reply = REPLY_MEDIAN * np.exp(REPLY_SIGMA * special.ndtri(np.clip(u_reply, 1e-9, 1 - 1e-9)))
    logit = special.logit(SHARE_MEDIAN) + SHARE_SIGMA * special.ndtri(
        np.clip(u_share, 1e-9, 1 - 1e-9)
    )
    reply = np.minimum(reply, 0.5)
    return reply, reply * special.expit(logit)


def reply_delay_days(u: float | np.ndarray) -> Any:
    """Days from the send to the first reply, from a uniform in (0, 1)."""
    return DELAY_MEDIAN_DAYS * np.exp(DELAY_SIGMA * special.ndtri(np.clip(u, 1e-9, 1 - 1e-9)))


@dataclass(frozen=True)
class ZipRates:
    """Planted behaviour of one ZIP's homeowners, per uploaded lead."""

    reply: float
    interested: float


def _unit(*parts: object) -> float:
    """A seeded uniform number in [0, 1) from the parts."""
    digest = hashlib.sha256("|".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000000Z")


@dataclass
class Fate:
    """What happens to one lead of one campaign, and when."""

    email: str
    lead_id: int
    zip: str
    campaign_id: int
    workspace: str
    sent_at: datetime
    bounced: bool
    reply: str | None  # interested | human | unsubscribe | automated | None
    reply_at: datetime | None
    second_at: datetime | None = None  # a second human reply in the same thread


@dataclass
class OutcomeSimulator:
    """Simulated sending for every campaign of the sandbox Bison (see the module docstring)."""

    seed: int = 7
    verification_code: Callable[[str], int] = field(default=lambda email: 5)
    offset: timedelta = field(default_factory=timedelta)
    planted: dict[str, ZipRates] = field(default_factory=dict)
    # (workspace, campaign id, email) -> [lead id, zip, attached at ISO]
    attached: dict[tuple[str, int, str], list[Any]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _fates: dict[tuple[str, int, str], Fate] = field(default_factory=dict)  # fates are pure: cached

    # -- the clock ---------------------------------------------------------------------------

    def now(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def advance(self, days: float = 0, weeks: float = 0) -> datetime:
        """Move the simulated clock forward; returns the new simulated now."""
        with self._lock:
            self.offset += timedelta(days=days, weeks=weeks)
        return self.now()

    # -- planted rates -----------------------------------------------------------------------

    def plant(self, zip_code: str, reply: float, interested: float) -> None:
        if not 0 <= interested <= reply <= 1:
            raise ValueError("need 0 <= interested <= reply <= 1")
        with self._lock:
            self.planted[zip_code] = ZipRates(reply, interested)
            self._fates.clear()

    def rates_for(self, zip_code: str) -> ZipRates:
        if zip_code in self.planted:
            return self.planted[zip_code]
        reply, interested = planted_zip_rates(
            _unit(self.seed, "reply", zip_code), _unit(self.seed, "interest", zip_code)
        )
        return ZipRates(float(reply), float(interested))

    # -- hooks from the Bison app ------------------------------------------------------------

    def on_attach(self, workspace: str, campaign_id: int, leads: list[dict[str, Any]]) -> None:
        """Leads of a list attached to a campaign start their sequence now (simulated)."""
        at = _iso(self.now())
        with self._lock:
            for lead in leads:
                key = (workspace, int(campaign_id), str(lead["email"]))
                if key not in self.attached:
                    zip_code = str((lead.get("custom_variables") or {}).get("zip") or "")
                    self.attached[key] = [int(lead["id"]), zip_code, at]

    # -- what happened -----------------------------------------------------------------------

    def fate(self, workspace: str, campaign_id: int, email: str) -> Fate:
        key = (workspace, campaign_id, email)
        cached = self._fates.get(key)
        if cached is not None:
            return cached
        lead_id, zip_code, at = self.attached[key]
        attached_at = datetime.fromisoformat(at.replace("Z", "+00:00"))
        sent_at = attached_at + timedelta(
            days=SEND_LAG_DAYS * _unit(self.seed, "send", campaign_id, email)
        )
        rates = self.rates_for(zip_code)
        u = _unit(self.seed, "outcome", campaign_id, email)
        bounced, reply = False, None
        if u < rates.interested:
            reply = "interested"
        elif u < rates.reply:
            unsub = _unit(self.seed, "unsub", campaign_id, email) < UNSUBSCRIBE_SHARE
            reply = "unsubscribe" if unsub else "human"
        else:
            bounce_p = BOUNCE_BY_CODE.get(self.verification_code(email), 0.5)
            v = _unit(self.seed, "bounce", campaign_id, email)
            if v < min(1.0, bounce_p / (1 - rates.reply)):
                bounced = True
            elif _unit(self.seed, "auto", campaign_id, email) < AUTOMATED_SHARE:
                reply = "automated"
        reply_at = second_at = None
        if reply == "automated":
            reply_at = sent_at + timedelta(hours=24 * _unit(self.seed, "delay", campaign_id, email))
        elif reply:
            delay = float(reply_delay_days(_unit(self.seed, "delay", campaign_id, email)))
            reply_at = sent_at + timedelta(days=delay)
            if _unit(self.seed, "second", campaign_id, email) < SECOND_REPLY_SHARE:
                later = 1 + 9 * _unit(self.seed, "second-delay", campaign_id, email)
                second_at = reply_at + timedelta(days=later)
        fate = Fate(
            email,
            lead_id,
            zip_code,
            campaign_id,
            workspace,
            sent_at,
            bounced,
            reply,
            reply_at,
            second_at,
        )
        self._fates[key] = fate
        return fate

    def fates(self, workspace: str, campaign_id: int | None = None) -> list[Fate]:
        with self._lock:
            keys = [k for k in self.attached if k[0] == workspace and campaign_id in (None, k[1])]
        return [self.fate(*k) for k in keys]

    def replies(
        self, workspace: str, campaign_id: int | None, with_outgoing: bool
    ) -> list[dict[str, Any]]:
        """Every reply (and bounce notice, and with `with_outgoing` every sent email) so far, newest first."""
        now = self.now()
        out: list[dict[str, Any]] = []
        for f in self.fates(workspace, campaign_id):
            if f.sent_at > now:
                continue
            if with_outgoing:
                out.append(self._outgoing(f))
            if f.bounced:
                if f.sent_at + BOUNCE_AFTER <= now:
                    out.append(self._bounce(f))
            elif f.reply and f.reply_at and f.reply_at <= now:
                out.append(self._reply(f))
                if f.second_at and f.second_at <= now:
                    out.append(self._reply(f, second=True))
        out.sort(key=lambda r: (r["date_received"], r["id"]), reverse=True)
        return out

    def _base(self, f: Fate, kind: str, at: datetime) -> dict[str, Any]:
        number = int(_unit(self.seed, kind, f.campaign_id, f.email) * 10**12)
        return {
            "id": number,
            "uuid": str(uuid.UUID(int=number)),
            "read": False,
            "interested": False,
            "automated_reply": False,
            "date_received": _iso(at),
            "type": "Tracked Reply",
            "tracked_reply": True,
            "scheduled_email_id": number + 1,
            "campaign_id": f.campaign_id,
            "lead_id": f.lead_id,
            "sender_email_id": 1,
            "cc": None,
            "bcc": None,
            "parent_id": None,
            "attachments": [],
        }

    def _reply(self, f: Fate, second: bool = False) -> dict[str, Any]:
        assert f.reply_at is not None
        texts = {
            "interested": "Yes, my renewal is coming up. Please send me a quote.",
            "human": "Thanks, but I am happy with my current agent.",
            "unsubscribe": "Please remove me from your list.",
            "automated": "I am out of the office and will reply when I return.",
        }
        own = "Just checking you got my last email." if second else texts[str(f.reply)]
        at = f.second_at if second and f.second_at else f.reply_at
        # Every reply quotes our email, whose footer offers to unsubscribe (CAN-SPAM).
        quoted = (
            f"\n\nOn {_iso(f.sent_at)[:10]}, Agent <{SENDER}> wrote:\n"
            "> Hi, your home insurance renews soon. Reply for a free quote.\n"
            "> If you no longer wish to hear from us, unsubscribe here."
        )
        reply = self._base(f, "second" if second else "reply", at)
        reply.update(
            folder="inbox",
            subject="Re: Your home insurance renewal",
            interested=f.reply == "interested",
            automated_reply=f.reply == "automated",
            text_body=own + ("" if f.reply == "automated" else quoted),
            html_body=f"<p>{own}</p>",
            from_name="Homeowner",
            from_email_address=f.email,
            primary_to_email_address=SENDER,
            to=[{"name": None, "address": SENDER}],
        )
        return reply

    def _bounce(self, f: Fate) -> dict[str, Any]:
        text = (
            f"Delivery to the following recipient failed permanently:\n\n     {f.email}\n\n"
            "The email account that you tried to reach does not exist."
        )
        notice = self._base(f, "bounce", f.sent_at + BOUNCE_AFTER)
        notice.update(
            folder="bounced",
            subject="Delivery Status Notification (Failure)",
            text_body=text,
            html_body=f"<pre>{text}</pre>",
            from_name="Mail Delivery Subsystem",
            from_email_address="mailer-daemon@googlemail.com",
            primary_to_email_address=SENDER,
            to=[{"name": None, "address": SENDER}],
        )
        return notice

    def _outgoing(self, f: Fate) -> dict[str, Any]:
        sent = self._base(f, "sent", f.sent_at)
        sent.update(
            folder="sent",
            type="Outgoing Email",
            tracked_reply=False,
            campaign_id=None,  # as probed on the real /api/replies
            subject="Your home insurance renewal",
            text_body="Hi, your home insurance renews soon...",
            html_body="<p>Hi, your home insurance renews soon...</p>",
            from_name="Agent",
            from_email_address=SENDER,
            primary_to_email_address=f.email,
            to=[{"name": None, "address": f.email}],
        )
        return sent

    def stats(self, workspace: str, campaign_id: int, start: date, end: date) -> dict[str, Any]:
        """`POST /campaigns/{id}/stats`: events dated within [start, end], numbers as strings."""
        now = self.now()

        def within(moment: datetime | None) -> bool:
            return moment is not None and moment <= now and start <= moment.date() <= end

        sent = bounced = replied = interested = unsubscribed = opened = 0
        for f in self.fates(workspace, campaign_id):
            if not within(f.sent_at):
                continue
            sent += 1
            bounced += f.bounced
            opened += (not f.bounced) and _unit(self.seed, "open", campaign_id, f.email) < 0.4
            if f.reply and f.reply != "automated" and within(f.reply_at):
                replied += 1
                interested += f.reply == "interested"
                unsubscribed += f.reply == "unsubscribe"

        def pct(n: int) -> str:
            return f"{100 * n / sent:.2f}" if sent else "0"

        return {
            "emails_sent": str(sent),
            "total_leads_contacted": str(sent),
            "opened": str(opened),
            "opened_percentage": pct(opened),
            "unique_opens_per_contact": str(opened),
            "unique_opens_per_contact_percentage": pct(opened),
            "unique_replies_per_contact": str(replied),
            "unique_replies_per_contact_percentage": pct(replied),
            "bounced": str(bounced),
            "bounced_percentage": pct(bounced),
            "unsubscribed": str(unsubscribed),
            "unsubscribed_percentage": pct(unsubscribed),
            "interested": str(interested),
            "interested_percentage": pct(interested),
            "sequence_step_stats": [
                {
                    "sequence_step_id": 1,
                    "email_subject": "Your home insurance renewal",
                    "sent": sent,
                    "leads_contacted": sent,
                    "unique_opens": opened,
                    "unique_replies": replied,
                    "unsubscribed": unsubscribed,
                    "bounced": bounced,
                    "interested": interested,
                }
            ],
        }

    # -- kept between demo runs --------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        return {
            "offset_seconds": self.offset.total_seconds(),
            "attached": [[*k, *v] for k, v in self.attached.items()],
        }

    def restore(self, data: dict[str, Any]) -> None:
        self._fates.clear()
        self.offset = timedelta(seconds=float(data.get("offset_seconds", 0)))
        self.attached = {
            (str(w), int(c), str(e)): [int(i), str(z), str(a)]
            for w, c, e, i, z, a in data.get("attached", [])
        }


# -- routes ------------------------------------------------------------------------------------


def with_simulated_date(app: Any, simulator: OutcomeSimulator) -> Any:
    """The app with every answer's `Date` header on the simulated clock (served without uvicorn's)."""

    async def wrapped(scope: dict, receive: Callable, send: Callable) -> None:
        if scope.get("type") != "http":
            await app(scope, receive, send)
            return

        async def send_dated(message: dict) -> None:
            if message.get("type") == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"date"]
                stamp = formatdate(simulator.now().timestamp(), usegmt=True).encode()
                message = {**message, "headers": [*headers, (b"date", stamp)]}
            await send(message)

        await app(scope, receive, send_dated)

    return wrapped


def _filtered(request: Request, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    folder = request.query_params.get("folder", "all")
    status = request.query_params.get("status")
    lead_id = request.query_params.get("lead_id")
    if folder != "all":
        items = [r for r in items if r["folder"] == folder]
    if status == "interested":
        items = [r for r in items if r["interested"]]
    elif status == "automated_reply":
        items = [r for r in items if r["automated_reply"]]
    elif status == "not_automated_reply":
        items = [r for r in items if not r["automated_reply"]]
    if lead_id:
        items = [r for r in items if str(r["lead_id"]) == lead_id]
    return items


def outcome_routes(state: Any, guard: Callable, owned: Callable) -> list[Route]:
    """Replies, stats and the clock, added to the sandbox Bison app (`guard`/`owned` are its own)."""
    simulator: OutcomeSimulator = state.outcomes

    def paged(request: Request, items: list[dict[str, Any]]) -> Response:
        items = _filtered(request, items)
        if request.query_params.get("pagination_type") == "cursor":
            return cursor_page(request, items)
        return numbered_page(request, items)

    async def campaign_replies(request: Request) -> Response:
        workspace = await guard(request)
        if isinstance(workspace, Response):
            return workspace
        found = owned(workspace, "campaign", request.path_params["campaign_id"])
        if isinstance(found, Response):
            return found
        return paged(
            request, simulator.replies(workspace.name, int(found["id"]), with_outgoing=False)
        )

    async def all_replies(request: Request) -> Response:
        workspace = await guard(request)
        if isinstance(workspace, Response):
            return workspace
        items = simulator.replies(workspace.name, None, with_outgoing=True)
        campaign_id = request.query_params.get("campaign_id")
        if campaign_id:
            items = [r for r in items if str(r["campaign_id"]) == campaign_id]
        return paged(request, items)

    async def campaign_stats(request: Request) -> Response:
        workspace = await guard(request)
        if isinstance(workspace, Response):
            return workspace
        found = owned(workspace, "campaign", request.path_params["campaign_id"])
        if isinstance(found, Response):
            return found
        try:
            body = await request.json()
            start = date.fromisoformat(str(body["start_date"]))
            end = date.fromisoformat(str(body["end_date"]))
        except (ValueError, KeyError, TypeError):
            return JSONResponse(
                {
                    "message": "The start date field is required.",
                    "errors": {"start_date": ["required"]},
                },
                422,
            )
        return JSONResponse({"data": simulator.stats(workspace.name, int(found["id"]), start, end)})

    async def clock(request: Request) -> Response:
        if request.method == "POST":
            body = await request.json()
            simulator.advance(days=float(body.get("days", 0)), weeks=float(body.get("weeks", 0)))
        return JSONResponse(
            {"now": _iso(simulator.now()), "offset_days": simulator.offset.total_seconds() / 86400}
        )

    return [
        Route("/api/campaigns/{campaign_id}/replies", campaign_replies, methods=["GET"]),
        Route("/api/replies", all_replies, methods=["GET"]),
        Route("/api/campaigns/{campaign_id}/stats", campaign_stats, methods=["POST"]),
        Route("/sandbox/clock", clock, methods=["GET", "POST"]),
    ]
