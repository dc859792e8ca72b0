"""Email Bison stand-in: one instance, several workspaces, one Bearer token per workspace.

Routes (all under `/api`): custom variables, `POST /leads/bulk/csv` (multipart: `name`, `csv`,
`existing_lead_behavior`, `columnsToMap[field][]`) creating a lead list, lead lists, campaigns with
`?search=`, `GET /campaigns/{id}`, `POST /campaigns/{id}/leads/attach-lead-list`,
`PATCH /campaigns/{id}/update` (booleans left out of the body become false, as on the real one).
Lists are Laravel pages of 15 (`data`, `links`, `meta`); errors are
`{"data": {"success": false, "message": ...}}`; another workspace's token gets 403.

As the vendor documents it (shared/vendor-facts/email-bison.md; fact ids in sandbox/README.md),
always on, the harsh parts included:
- B-UNIQUE: a lead is its email within a workspace; a CSV with an existing email updates that
  lead in place (`existing_lead_behavior`), and a list only references leads;
- B-QUEUED: a bulk CSV import is queued: the 201 answer is the new lead list `Unprocessed` with
  counts 0; `import_seconds` later (on the sandbox clock) it is `Processed` with counts and
  `error_messages` (a row with an invalid email is refused and counted);
- B-SYNC: attaching a list adds to the campaign only leads not already in it, and they count in
  `total_leads` `sync_seconds` (5 minutes) later on the sandbox clock;
- B-NO-STATUS-ROUTE: there is no `GET /api/lead-lists/{id}`; an unknown route answers 404
  "The route api/... could not be found.";
- B-RATE-LIMIT: more than `rate_limit_per_second` (10) requests a second on one token answer
  429 with `Retry-After`, in seconds and as an HTTP date by turns;
- B-GET-OMITS: the campaign GET leaves out `reputation_building` and
  `include_auto_replies_in_stats`, while the update still resets them when left out.

The sandbox clock is the simulated clock of `bison_outcomes.py` (wall clock plus an offset):
`advance(seconds)` moves it, as `POST /sandbox/clock` does. Tests advance it instead of sleeping.
"""

from __future__ import annotations

import asyncio
import csv
import io
import itertools
import json
import math
import re
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.utils import formatdate
from typing import Any

from starlette.applications import Starlette
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from homeowner_dagster.sandbox.bison_outcomes import OutcomeSimulator, outcome_routes
from homeowner_dagster.sandbox.bison_pages import numbered_page
from homeowner_dagster.sandbox.faults import Faults, dropped_response, service_fault

CSV_ROW_LIMIT = 50_000
STANDARD_FIELDS = ("email", "first_name", "last_name", "title", "company", "notes")
REQUIRED_MAPPINGS = ("email", "first_name", "last_name")
# Campaign settings the update endpoint takes; booleans omitted from a PATCH become false.
CAMPAIGN_BOOLEANS = (
    "plain_text",
    "open_tracking",
    "reputation_building",
    "can_unsubscribe",
    "include_auto_replies_in_stats",
)
CAMPAIGN_VALUES = (
    "name",
    "max_emails_per_day",
    "max_new_leads_per_day",
    "sequence_prioritization",
    "unsubscribe_text",
)
_MAPPING_KEY = re.compile(r"^columnsToMap\[([^\]]+)\]\[\]$")
_VALID_EMAIL = re.compile(r"^[^@\s,;]+@[^@\s,;]+\.[^@\s,;]+$")
# Seconds (sandbox clock) from a bulk CSV POST to the list being `Processed`: small for tests,
# about 1 s in the demo (the real import takes seconds to minutes).
IMPORT_SECONDS = 0.05
DEMO_IMPORT_SECONDS = 1.0
# B-SYNC: attached leads count in `total_leads` this long after the attach (sandbox clock): the
# documented "up to 5 minutes", taken whole.
SYNC_SECONDS = 300.0
# B-RATE-LIMIT: requests a second per token (a guess: 10/s from a third party's docs).
RATE_LIMIT_PER_SECOND = 10
# Campaign keys the sandbox keeps for itself, never shown by the API.
_CAMPAIGN_INTERNAL = ("lead_list_ids", "lead_emails", "syncing")


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime())


@dataclass
class Workspace:
    workspace_id: int
    name: str
    token: str
    custom_variables: dict[str, int] = field(default_factory=dict)
    leads: dict[str, dict[str, Any]] = field(default_factory=dict)  # email -> lead
    lead_lists: dict[int, dict[str, Any]] = field(default_factory=dict)
    campaigns: dict[int, dict[str, Any]] = field(default_factory=dict)
    # Queued imports: list id -> (due on the sandbox clock, rows, mapping, behaviour).
    imports: dict[int, tuple[datetime, list[dict[str, str]], dict[str, str], str]] = field(
        default_factory=dict
    )


@dataclass
class BisonState:
    workspaces: dict[str, Workspace] = field(default_factory=dict)
    requests: int = 0
    holding: int = 0  # requests held at a crash point right now
    hold_generation: int = 0  # release_holds() ends every hold begun before it
    import_seconds: float = IMPORT_SECONDS
    sync_seconds: float = SYNC_SECONDS
    rate_limit_per_second: int = RATE_LIMIT_PER_SECOND
    rate_limited: int = 0  # 429s answered so far (every other one dates its Retry-After)
    # Campaign settings the GET never returns: `reputation_building` is write-only (probe);
    # `include_auto_replies_in_stats` is typed by one client only (fail safe: absent). Tests add more.
    campaign_omits: set[str] = field(
        default_factory=lambda: {"reputation_building", "include_auto_replies_in_stats"}
    )
    # Test knobs for answers the vendor might give: lead-list fields left out of every answer,
    # and booleans the update endpoint does not take (so they fall back to false).
    list_omits: set[str] = field(default_factory=set)
    update_drops: set[str] = field(default_factory=set)
    # Test knob: campaign fields renamed in every answer (old name -> new name), as a vendor
    # release might; the stored campaign keeps its own names.
    campaign_renames: dict[str, str] = field(default_factory=dict)
    outcomes: OutcomeSimulator = field(default_factory=OutcomeSimulator)  # bison_outcomes.py
    _ids: itertools.count = field(default_factory=lambda: itertools.count(1))
    _lock: threading.RLock = field(default_factory=threading.RLock)
    _recent: dict[str, deque[float]] = field(default_factory=dict)  # token -> request times

    # -- the sandbox clock ----------------------------------------------------------------------

    def now(self) -> datetime:
        """The sandbox clock (shared with the simulated sending of `bison_outcomes.py`)."""
        return self.outcomes.now()

    def advance(self, seconds: float) -> datetime:
        """Move the sandbox clock on: queued imports and attach syncs that fall due happen."""
        return self.outcomes.advance(days=seconds / 86_400)

    def settle(self, workspace: Workspace) -> None:
        """Do what is due by the sandbox clock: queued imports, then attached leads' syncs."""
        now = self.now()
        with self._lock:
            for list_id, (due, rows, mapping, behaviour) in list(workspace.imports.items()):
                if due <= now:
                    del workspace.imports[list_id]
                    _import_rows(
                        self, workspace, workspace.lead_lists[list_id], rows, mapping, behaviour
                    )
            for campaign in workspace.campaigns.values():
                syncing = campaign.get("syncing") or []
                due = [item for item in syncing if datetime.fromisoformat(item[0]) <= now]
                if due:
                    campaign["syncing"] = [item for item in syncing if item not in due]
                    campaign["total_leads"] = int(campaign.get("total_leads") or 0) + len(due)

    def reset_rate_limit(self) -> None:
        """Forget recent requests (a test starting with a clean second)."""
        with self._lock:
            self._recent.clear()

    def settle_all(self) -> None:
        for workspace in self.workspaces.values():
            self.settle(workspace)

    # -- set-up helpers for tests and the demo ------------------------------------------------

    def release_holds(self) -> None:
        """Let every request held at a crash point go on now (tests that hold a run on purpose)."""
        self.hold_generation += 1

    def add_workspace(self, name: str, token: str) -> Workspace:
        workspace = Workspace(next(self._ids), name, token)
        self.workspaces[name] = workspace
        return workspace

    def add_campaign(self, workspace: str, title: str, **settings: Any) -> dict[str, Any]:
        """A campaign with the real defaults unless `settings` says otherwise."""
        campaign_id = next(self._ids)
        campaign = {
            "id": campaign_id,
            "uuid": str(uuid.uuid4()),
            "name": title,
            "type": "outbound",
            "status": "Active",
            "completion_percentage": 0,
            "emails_sent": 0,
            "opened": 0,
            "unique_opens": 0,
            "replied": 0,
            "unique_replies": 0,
            "bounced": 0,
            "unsubscribed": 0,
            "interested": 0,
            "total_leads_contacted": 0,
            "tags": [],
            "max_emails_per_day": 1000,
            "max_new_leads_per_day": 1000,
            "plain_text": False,
            "open_tracking": True,
            "reputation_building": True,
            "can_unsubscribe": True,
            "include_auto_replies_in_stats": True,
            "sequence_prioritization": "followups",
            "unsubscribe_text": "Unsubscribe",
            "total_leads": 0,
            "created_at": _now(),
            "updated_at": _now(),
            "lead_list_ids": [],
            "lead_emails": [],  # every lead in the campaign, synced or not (B-UNIQUE, B-SYNC)
            "syncing": [],  # [due on the sandbox clock (ISO), email]: not in total_leads yet
        }
        campaign.update(settings)
        self.workspaces[workspace].campaigns[campaign_id] = campaign
        return campaign

    # -- inspection ------------------------------------------------------------------------------

    def lead_lists(self, workspace: str) -> dict[str, int]:
        """List name -> lead count (a name appears once per list, so duplicates show)."""
        self.settle(self.workspaces[workspace])
        lists = self.workspaces[workspace].lead_lists.values()
        return {f"{lst['name']}#{lst['id']}": len(lst["lead_emails"]) for lst in lists}

    def list_names(self, workspace: str) -> list[str]:
        return [lst["name"] for lst in self.workspaces[workspace].lead_lists.values()]

    def list_leads(self, workspace: str, name: str) -> list[dict[str, Any]]:
        ws = self.workspaces[workspace]
        self.settle(ws)
        for lst in ws.lead_lists.values():
            if lst["name"] == name:
                return [ws.leads[email] for email in lst["lead_emails"]]
        raise KeyError(name)

    def campaign_titles(self, workspace: str) -> list[str]:
        return [c["name"] for c in self.workspaces[workspace].campaigns.values()]

    def campaign(self, workspace: str, title: str) -> dict[str, Any]:
        self.settle(self.workspaces[workspace])
        return next(c for c in self.workspaces[workspace].campaigns.values() if c["name"] == title)

    def campaign_emails(self, workspace: str, campaign_id: int) -> list[str]:
        """Every lead (email) in the campaign, synced or not."""
        return list(self.workspaces[workspace].campaigns[campaign_id].get("lead_emails") or [])

    def attached_lists(self, workspace: str, campaign_id: int) -> list[str]:
        ws = self.workspaces[workspace]
        return [ws.lead_lists[i]["name"] for i in ws.campaigns[campaign_id]["lead_list_ids"]]


def _error(status: int, message: str) -> Response:
    return JSONResponse({"data": {"success": False, "message": message}}, status)


LIST_FIELDS = (
    "id",
    "name",
    "status",
    "leads_processed",
    "leads_succeeded",
    "leads_failed",
    "error_messages",
    "created_at",
    "updated_at",
)


def _list_view(lead_list: dict[str, Any], omits: set[str] = frozenset()) -> dict[str, Any]:
    """What `GET /api/lead-lists` shows of a list (no `leads_count`: the real one has none).

    A list stored without import fields (a demo snapshot from before, a test's own) shows as done.
    """
    done = len(lead_list.get("lead_emails", ()))
    defaults = {
        "status": "Processed",
        "leads_processed": done,
        "leads_succeeded": done,
        "leads_failed": 0,
        "error_messages": [],
    }
    return {key: lead_list.get(key, defaults.get(key)) for key in LIST_FIELDS if key not in omits}


def _campaign_view(
    campaign: dict[str, Any], omits: set[str] = frozenset(), renames: dict[str, str] | None = None
) -> dict[str, Any]:
    renames = renames or {}
    return {
        renames.get(k, k): v
        for k, v in campaign.items()
        if k not in _CAMPAIGN_INTERNAL and k not in omits
    }


def _import_rows(
    state: BisonState,
    workspace: Workspace,
    lead_list: dict[str, Any],
    rows: list[dict[str, str]],
    mapping: dict[str, str],
    behaviour: str,
) -> None:
    """The queued import: each row becomes a lead (B-UNIQUE: an existing email is that lead,
    updated in place), or is refused and described."""
    emails: list[str] = []
    errors: list[str] = []
    for number, row in enumerate(rows, start=2):  # row 1 is the header
        email = (row.get(mapping["email"]) or "").strip().lower()
        if not _VALID_EMAIL.match(email):
            errors.append(f"Row {number}: The email field must be a valid email address.")
            continue
        values = {target: row.get(header, "") for target, header in mapping.items()}
        standard = {k: v for k, v in values.items() if k in STANDARD_FIELDS}
        custom = {k: v for k, v in values.items() if k not in STANDARD_FIELDS}
        lead = workspace.leads.get(email)
        if lead is None:
            lead = {"id": next(state._ids), "email": email, "custom_variables": {}}
            workspace.leads[email] = lead
            lead.update(standard)
            lead["custom_variables"].update(custom)
        elif behaviour == "put":
            lead.update(standard)
            lead["custom_variables"] = custom
        elif behaviour == "patch":
            lead.update({k: v for k, v in standard.items() if v})
            lead["custom_variables"].update({k: v for k, v in custom.items() if v})
        lead["email"] = email
        if email not in emails:
            emails.append(email)
    lead_list.update(
        status="Processed",
        leads_processed=len(rows),
        leads_succeeded=len(rows) - len(errors),
        leads_failed=len(errors),
        error_messages=errors,
        lead_emails=emails,
        updated_at=_now(),
    )


def build_bison_app(state: BisonState, faults: Faults) -> Starlette:
    def workspace_of(request: Request) -> Workspace | None:
        token = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
        return next((w for w in state.workspaces.values() if w.token == token), None)

    def rate_limited(workspace: Workspace) -> Response | None:
        """B-RATE-LIMIT: the request over the limit gets 429 and Retry-After (both forms in turn)."""
        moment = time.monotonic()
        with state._lock:
            recent = state._recent.setdefault(workspace.token, deque())
            while recent and recent[0] <= moment - 1.0:
                recent.popleft()
            if len(recent) < state.rate_limit_per_second:
                recent.append(moment)
                return None
            state.rate_limited += 1
            wait = max(recent[0] + 1.0 - moment, 0.001)
            dated = state.rate_limited % 2 == 0
        response = _error(429, "Too Many Attempts.")
        response.headers["Retry-After"] = (
            formatdate(time.time() + wait, usegmt=True) if dated else str(math.ceil(wait))
        )
        return response

    async def guard(request: Request) -> Workspace | Response:
        state.requests += 1
        if (fault := await service_fault(faults, "bison", _error)) is not None:
            return fault
        workspace = workspace_of(request)
        if workspace is None:
            return JSONResponse({"message": "Unauthenticated."}, 401)
        if (limited := rate_limited(workspace)) is not None:
            return limited
        state.settle(workspace)
        return workspace

    def owned(workspace: Workspace, kind: str, object_id: Any) -> dict[str, Any] | Response:
        try:
            key = int(object_id)
        except (TypeError, ValueError):
            return _error(422, f"The {kind} id is invalid.")
        mine = workspace.campaigns if kind == "campaign" else workspace.lead_lists
        if key in mine:
            return mine[key]
        for other in state.workspaces.values():
            if key in (other.campaigns if kind == "campaign" else other.lead_lists):
                return _error(403, "api key does not match the workspace")
        return _error(404, f"The {kind} was not found.")

    async def hold(name: str, request: Request | None = None) -> bool:
        """Crash point `name` (see HOLD_FAULTS): wait `delay` seconds before going on.

        Returns False when the caller went away while held (killed): the request is then
        abandoned, so nothing it would still do lands after the test that killed it.
        """
        params = faults.take("bison", name)
        if params is None:
            return True
        state.holding += 1
        generation = state.hold_generation
        try:
            deadline = time.monotonic() + float(params.get("delay", 30))
            while time.monotonic() < deadline and state.hold_generation == generation:
                if request is not None and await request.is_disconnected():
                    return False
                await asyncio.sleep(0.05)
            return True
        finally:
            state.holding -= 1

    def maybe_drop(payload: dict[str, Any], status: int = 200) -> Response:
        """The answer, or (fault `dropped_connection`) half of it and a closed connection."""
        if faults.take("bison", "dropped_connection") is not None:
            return dropped_response(json.dumps(payload).encode(), "application/json")
        return JSONResponse(payload, status)

    async def users(request: Request) -> Response:
        """The token's user and the workspace it is for (shape guessed, see README)."""
        workspace = await guard(request)
        if isinstance(workspace, Response):
            return workspace
        return JSONResponse(
            {
                "data": {
                    "id": 1,
                    "name": "API user",
                    "role": "api-user",
                    "team": {"id": workspace.workspace_id, "name": workspace.name},
                }
            }
        )

    async def custom_variables(request: Request) -> Response:
        workspace = await guard(request)
        if isinstance(workspace, Response):
            return workspace
        if request.method == "GET":
            items = [{"id": i, "name": n} for n, i in workspace.custom_variables.items()]
            return JSONResponse({"data": items})
        body = await request.json()
        name = str(body.get("name") or "").strip()
        if not name:
            return _error(422, "The name field is required.")
        if name in workspace.custom_variables:
            return _error(422, "The name has already been taken.")
        workspace.custom_variables[name] = next(state._ids)
        return maybe_drop({"data": {"id": workspace.custom_variables[name], "name": name}})

    async def bulk_csv(request: Request) -> Response:
        workspace = await guard(request)
        if isinstance(workspace, Response):
            return workspace
        form = await request.form()
        name = str(form.get("name") or "").strip()
        upload = form.get("csv")
        if not name:
            return _error(422, "The name field is required.")
        if not isinstance(upload, UploadFile):
            return _error(422, "The csv field is required.")
        mapping: dict[str, str] = {}
        for key, value in form.multi_items():
            match = _MAPPING_KEY.match(key)
            if match:
                mapping[match.group(1)] = str(value)
        for required in REQUIRED_MAPPINGS:
            if required not in mapping:
                return _error(422, f"The columnsToMap.{required} field is required.")
        for target in mapping:
            if target not in STANDARD_FIELDS and target not in workspace.custom_variables:
                return _error(
                    422, f"The custom variable '{target}' does not exist in this workspace."
                )
        behaviour = str(form.get("existing_lead_behavior") or "put")
        if behaviour not in ("put", "patch", "skip"):
            return _error(422, "The selected existing lead behavior is invalid.")
        text = (await upload.read()).decode("utf-8-sig")
        if not await hold("slow_before_create", request):
            return _error(499, "Client closed the request.")
        rows = list(csv.DictReader(io.StringIO(text)))
        if len(rows) > CSV_ROW_LIMIT:
            return _error(422, f"A CSV may hold at most {CSV_ROW_LIMIT} leads.")
        missing = [header for header in mapping.values() if rows and header not in rows[0]]
        if missing:
            return _error(422, f"The CSV has no column named {missing[0]}.")
        with state._lock:
            list_id = next(state._ids)
            lead_list = {
                "id": list_id,
                "name": name,
                "status": "Unprocessed",
                "leads_processed": 0,
                "leads_succeeded": 0,
                "leads_failed": 0,
                "error_messages": [],
                "created_at": _now(),
                "updated_at": _now(),
                "lead_emails": [],
            }
            workspace.lead_lists[list_id] = lead_list
            # Queued, as on the real one: the leads land `import_seconds` later (sandbox clock).
            due = state.now() + timedelta(seconds=state.import_seconds)
            workspace.imports[list_id] = (due, rows, mapping, behaviour)
        await hold("slow_after_create", request)
        return maybe_drop({"data": _list_view(lead_list, state.list_omits)}, status=201)

    async def lead_lists(request: Request) -> Response:
        workspace = await guard(request)
        if isinstance(workspace, Response):
            return workspace
        return numbered_page(
            request, [_list_view(lst, state.list_omits) for lst in workspace.lead_lists.values()]
        )

    async def campaigns(request: Request) -> Response:
        workspace = await guard(request)
        if isinstance(workspace, Response):
            return workspace
        search = request.query_params.get("search", "").lower()
        found = [
            _campaign_view(c, state.campaign_omits, state.campaign_renames)
            for c in workspace.campaigns.values()
            if search in c["name"].lower()
        ]
        return numbered_page(request, found)

    async def campaign(request: Request) -> Response:
        workspace = await guard(request)
        if isinstance(workspace, Response):
            return workspace
        found = owned(workspace, "campaign", request.path_params["campaign_id"])
        if isinstance(found, Response):
            return found
        return JSONResponse(
            {"data": _campaign_view(found, state.campaign_omits, state.campaign_renames)}
        )

    async def attach_lead_list(request: Request) -> Response:
        workspace = await guard(request)
        if isinstance(workspace, Response):
            return workspace
        found = owned(workspace, "campaign", request.path_params["campaign_id"])
        if isinstance(found, Response):
            return found
        body = await request.json()
        lead_list = owned(workspace, "lead list", body.get("lead_list_id"))
        if isinstance(lead_list, Response):
            return lead_list
        if lead_list.get("status") != "Processed":  # a guess: refused as a 200 with success false
            return JSONResponse(
                {"data": {"success": False, "message": "The lead list has not been processed yet."}}
            )
        if faults.take("bison", "attach_not_counted") is not None:
            pass  # accepted, and its leads never get into the campaign (a list that did not land)
        else:
            with state._lock:
                if lead_list["id"] not in found["lead_list_ids"]:
                    found["lead_list_ids"].append(lead_list["id"])
                members = found.setdefault("lead_emails", [])
                known = set(members)
                new = [e for e in lead_list["lead_emails"] if e not in known]  # B-UNIQUE
                due = (state.now() + timedelta(seconds=state.sync_seconds)).isoformat()
                members.extend(new)
                found.setdefault("syncing", []).extend([due, e] for e in new)  # B-SYNC
            state.outcomes.on_attach(  # the campaign starts sending (simulated clock)
                workspace.name, found["id"], [workspace.leads[e] for e in new]
            )
        await hold("slow_after_attach", request)
        return maybe_drop(
            {
                "data": {
                    "success": True,
                    "message": "Leads are being attached to the campaign. This may take a few minutes.",
                }
            }
        )

    async def update(request: Request) -> Response:
        workspace = await guard(request)
        if isinstance(workspace, Response):
            return workspace
        found = owned(workspace, "campaign", request.path_params["campaign_id"])
        if isinstance(found, Response):
            return found
        body = await request.json()
        if not await hold("slow_before_update", request):
            return _error(499, "Client closed the request.")
        for key in CAMPAIGN_VALUES:
            if key in body and body[key] is not None:
                found[key] = body[key]
        for key in CAMPAIGN_BOOLEANS:
            taken = key in body and key not in state.update_drops
            found[key] = bool(body[key]) if taken else False  # left out: false, as documented
        found["updated_at"] = _now()
        await hold("slow_after_update", request)
        return JSONResponse(
            {"data": _campaign_view(found, state.campaign_omits, state.campaign_renames)}
        )

    async def unknown_route(request: Request) -> Response:
        path = request.url.path.lstrip("/")
        return _error(404, f"The route {path} could not be found.")

    return Starlette(
        routes=outcome_routes(state, guard, owned)
        + [
            Route("/api/users", users, methods=["GET"]),
            Route("/api/custom-variables", custom_variables, methods=["GET", "POST"]),
            Route("/api/leads/bulk/csv", bulk_csv, methods=["POST"]),
            Route("/api/lead-lists", lead_lists, methods=["GET"]),
            Route("/api/campaigns", campaigns, methods=["GET"]),
            Route("/api/campaigns/{campaign_id}", campaign, methods=["GET"]),
            Route(
                "/api/campaigns/{campaign_id}/leads/attach-lead-list",
                attach_lead_list,
                methods=["POST"],
            ),
            Route("/api/campaigns/{campaign_id}/update", update, methods=["PATCH"]),
            Route(
                "/{path:path}",
                unknown_route,
                methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
            ),
        ]
    )
