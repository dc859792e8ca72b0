"""Email Bison: one lead list per renewal window, and the weekly Evergreen campaign hand-over.

Each client has its own workspace: an instance URL and the name of the environment variable that
holds that workspace's token (read when a workspace is opened, never logged). A lead list upload
is never repeated blindly: when its answer is lost, the list created by that very upload (same
name, created since the upload began) is looked up before anything is sent again; whether a list
for a window already exists is the caller's question (the ledger, then the name).

Bison imports a CSV in the background (the upload answers with the list `Unprocessed`, counts 0):
`lead_list_count` polls the paged list of lead lists (no route reads one list: B-NO-STATUS-ROUTE),
bounded, until it is `Processed` and returns `leads_succeeded`; refused rows (`leads_failed`) end
in `BisonImportFailed` quoting Bison's `error_messages`. An attach counts in `total_leads` only
after Bison's sync (up to 5 minutes, B-SYNC): `wait_for_total_leads` waits that out. A rename sends
every setting back (Bison resets the booleans left out of an update to false), including those the
campaign GET does not return, which must be configured; the update's answer (the campaign) must
show every setting unchanged.

`send_with_retries` is the project's one retry rule for HTTP APIs (DeBounce and Clay use it too):
429 waits `Retry-After` (seconds or an HTTP date, capped; resources/retry_after.py), 5xx and
dropped connections back off exponentially with jitter, bounded.

Waits between polls go through `pause` (time.sleep): the tests and the demo, talking to the
sandbox, set it to move the sandbox's clock on instead of sleeping.
"""

from __future__ import annotations

import csv
import io
import os
import random
import re
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
import pandas as pd
from dagster import ConfigurableResource
from pydantic import Field

from homeowner_dagster.leads.bison_list import bison_frame
from homeowner_dagster.leads.columns import BISON_FIELD_MAP
from homeowner_dagster.leads.spreadsheet import neutralise_formula
from homeowner_dagster.resources.retry_after import InvalidRetryAfter, capped_wait
from homeowner_dagster.sanitiser import sanitise

# Lead fields every Bison workspace has; anything else is a custom variable.
STANDARD_FIELDS: tuple[str, ...] = ("email", "first_name", "last_name", "title", "company", "notes")
CSV_ROW_LIMIT = 50_000
# What `PATCH /api/campaigns/{id}/update` takes; booleans left out are set to false by Bison.
CAMPAIGN_SETTINGS: tuple[str, ...] = (
    "name",
    "max_emails_per_day",
    "max_new_leads_per_day",
    "plain_text",
    "open_tracking",
    "reputation_building",
    "can_unsubscribe",
    "include_auto_replies_in_stats",
    "sequence_prioritization",
    "unsubscribe_text",
)
# Booleans `PATCH .../update` sets to false when left out: four documented (vendor facts section 6)
# and `include_auto_replies_in_stats`, treated the same way because nobody says it is not.
RESET_BOOLEANS: tuple[str, ...] = (
    "plain_text",
    "open_tracking",
    "reputation_building",
    "can_unsubscribe",
    "include_auto_replies_in_stats",
)
_EMAIL_LIKE = re.compile(r"[^\s@,;:'\"<>()\[\]]+@[^\s@,;:'\"<>()\[\]]+")
# A list created by a lost upload is younger than this when it is looked for; last year's
# list of the same window name is far older (allows for a skewed clock at Bison's end).
_RECOVERY_WINDOW = timedelta(hours=1)
PAGE_SIZE = 15  # Bison's pages (vendor facts section 2): `per_page` is ignored


def pause(seconds: float) -> None:
    """Wait between two polls of Bison (a queued import, an attach's sync). The tests and the
    demo replace it so that the sandbox's clock moves on instead (they never sleep)."""
    time.sleep(seconds)


class BisonError(RuntimeError):
    """Email Bison refused or failed a call; carries the server's message and status."""

    transient = False  # read by run_errors.failure_for: only transient errors are retried

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class BisonFieldMissing(BisonError):
    """An answer lacks a field the project relies on (or holds something unreadable in it)."""

    def __init__(self, what: str, field_name: str, value: Any = None) -> None:
        problem = "has no" if value is None else f"holds {value!r} in"
        super().__init__(f"Email Bison: {what} {problem} field {field_name!r}")
        self.field_name = field_name


class BisonImportFailed(BisonError):
    """Bison processed the list but refused rows: `leads_failed` > 0, with its `error_messages`."""

    def __init__(
        self, list_id: int | str, succeeded: int, failed: int, messages: list[str]
    ) -> None:
        shown = "; ".join(messages[:5]) or "no error_messages given"
        more = f" (+{len(messages) - 5} more)" if len(messages) > 5 else ""
        super().__init__(
            f"Email Bison lead list {list_id}: {failed} row(s) refused, {succeeded} imported: "
            f"{shown}{more}. Fix the rows (or remove them from the window) and upload again."
        )
        self.list_id, self.succeeded, self.failed, self.messages = (
            list_id,
            succeeded,
            failed,
            messages,
        )


class BisonImportTimeout(BisonError):
    """The list was still not `Processed` when the bounded poll gave up; a later run polls again."""

    transient = True


class BisonSettingUnknown(BisonError):
    """A boolean Bison would reset is not returned by the campaign GET and not configured."""


class BisonSettingsChanged(BisonError):
    """A campaign setting read back after a rename differs from the one read before it."""


class BisonAttachNotSynced(BisonError):
    """After waiting out Bison's documented sync, `total_leads` still lacks the attached leads."""

    def __init__(self, campaign_id: int | str, expected: int, seen: int, waited: float) -> None:
        super().__init__(
            f"campaign {campaign_id} holds {seen} leads after {waited:.0f} s, at least {expected} "
            "expected (Bison documents that attached leads sync within 5 minutes)"
        )
        self.expected, self.seen, self.waited = expected, seen, waited


class BisonCustomVariableMissing(BisonError):
    """The upload named a custom variable the workspace does not have (it must exist first)."""


class RetriesExhausted(RuntimeError):
    """A call kept failing with 429/5xx or dropped connections until the retry budget ran out."""


class RedirectRefused(RuntimeError):
    """The service answered a redirect. Not followed: the request carried a key or token, which
    would go wherever the redirect points. No retry changes that."""

    transient = False


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 5
    base_seconds: float = 0.5
    max_backoff_seconds: float = 30.0

    def backoff(self, attempt: int) -> float:
        """Exponential with full jitter: a crowd of clients does not retry in lockstep."""
        return min(self.max_backoff_seconds, self.base_seconds * 2**attempt) * (
            0.5 + random.random() / 2
        )

    def retry_after(self, response: httpx.Response, attempt: int) -> float:
        """A 429's wait: its Retry-After (seconds or an HTTP date), capped; else the backoff."""
        try:
            return capped_wait(
                response.headers.get("Retry-After"), self.max_backoff_seconds, self.backoff(attempt)
            )
        except InvalidRetryAfter:
            return self.backoff(attempt)


def send_with_retries(
    client: httpx.Client, method: str, url: str, policy: RetryPolicy, **kwargs: Any
) -> httpx.Response:
    """Send; on 429 wait Retry-After, on 5xx / dropped connection back off; a redirect is
    refused (never followed: the request carries a secret); else return.

    Only for calls that are safe to repeat. Error text never includes the URL (it may carry a key).
    """
    last = "no attempt"
    for attempt in range(policy.max_attempts):
        try:
            response = client.request(method, url, **kwargs)
        except httpx.TransportError as exc:
            last = f"{type(exc).__name__}"
            time.sleep(policy.backoff(attempt))
            continue
        if response.status_code == 429:
            last = "HTTP 429"
            time.sleep(policy.retry_after(response, attempt))
            continue
        if response.status_code >= 500:
            last = f"HTTP {response.status_code}"
            time.sleep(policy.backoff(attempt))
            continue
        if response.is_redirect:
            raise RedirectRefused(_redirect_refused(method, url, response.status_code))
        return response
    raise RetriesExhausted(  # the path only, sanitised: a Clay webhook's path is its secret
        f"{method} {sanitise(httpx.URL(url).path)} failed {policy.max_attempts} times; last: {last}"
    )


def _redirect_refused(method: str, url: str, status: int) -> str:
    return (
        f"{method} {sanitise(httpx.URL(url).path)} answered HTTP {status} (a redirect): not followed, "
        "the request carries a key or token; check the service's address (`homeowner check`)"
    )


def _without_addresses(text: str) -> str:
    """Bison's error text without e-mail addresses (homeowners' data stays out of logs)."""
    return _EMAIL_LIKE.sub("<email>", text)


def _messages(value: Any) -> list[str]:
    """`error_messages` as a flat list of strings, whatever shape Bison gives it."""
    if value is None or value == "":
        return []
    if isinstance(value, str):
        return [_without_addresses(value)]
    if isinstance(value, dict):
        return [_without_addresses(f"{k}: {v}") for k, v in value.items()]
    if isinstance(value, list):
        return [m for item in value for m in _messages(item)]
    return [_without_addresses(str(value))]


def _server_date(response: httpx.Response) -> datetime | None:
    """The answer's `Date` header (RFC 9110: the server's clock when it answered), if readable."""
    values = response.headers.get_list("date")
    try:
        return parsedate_to_datetime(values[-1]) if values else None
    except (TypeError, ValueError, IndexError):
        return None


def _count(item: dict[str, Any], field_name: str, what: str) -> int:
    """A count field of a Bison answer; missing or unreadable is an error naming the field."""
    value = item.get(field_name)
    if value is None:
        raise BisonFieldMissing(what, field_name)
    try:
        return int(value)
    except (TypeError, ValueError):
        raise BisonFieldMissing(what, field_name, value) from None


def _timestamp(item: dict[str, Any], what: str) -> datetime:
    value = item.get("created_at")
    if not value:
        raise BisonFieldMissing(what, "created_at")
    try:
        stamp = datetime.fromisoformat(str(value).replace(" ", "T"))
    except ValueError:
        raise BisonFieldMissing(what, "created_at", value) from None
    return stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)


def lead_list_csv(frame: pd.DataFrame) -> tuple[bytes, dict[str, str]]:
    """The CSV Bison gets (our column names as headers) and its columnsToMap (Bison field -> header)."""
    frame = bison_frame(frame)  # every date as YYYY-MM-DD, whichever path built the frame
    columns = [c for c in BISON_FIELD_MAP if c in frame.columns]
    if "email" not in columns:
        raise BisonError("a lead list needs an email column")
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow([neutralise_formula(c) for c in columns])  # header cells too (issue 13)
    for row in frame[columns].itertuples(index=False, name=None):
        writer.writerow([neutralise_formula(v) for v in row])
    return out.getvalue().encode("utf-8"), {BISON_FIELD_MAP[c]: c for c in columns}


@dataclass(frozen=True)
class SyncPoll:
    """How `wait_for_total_leads` waits for an attach to sync (B-SYNC: "up to 5 minutes"): the
    first read once the documented time has passed, then every `every_seconds`, bounded."""

    first_seconds: float = 300.0
    every_seconds: float = 60.0
    timeout_seconds: float = 900.0

    def pauses(self) -> Iterator[float]:
        waited, pause_seconds = 0.0, min(self.first_seconds, self.timeout_seconds)
        while True:
            yield pause_seconds
            waited += pause_seconds
            if waited >= self.timeout_seconds:
                return
            pause_seconds = min(self.every_seconds, self.timeout_seconds - waited)


@dataclass(frozen=True)
class ImportPoll:
    """How `lead_list_count` waits for a queued import: doubling pauses, bounded in total."""

    first_seconds: float = 0.1
    max_seconds: float = 15.0
    timeout_seconds: float = 900.0

    def pauses(self) -> Iterator[float]:
        """The pause before each poll; ends when the next one would pass the time limit."""
        waited, pause = 0.0, self.first_seconds
        while waited + pause <= self.timeout_seconds:
            yield pause
            waited += pause
            pause = min(pause * 2, self.max_seconds)
        if waited < self.timeout_seconds:
            yield self.timeout_seconds - waited


class BisonWorkspace:
    """One client's Bison workspace. Paces requests and retries per the resource's settings."""

    def __init__(
        self,
        instance_url: str,
        token: str,
        policy: RetryPolicy,
        min_interval_seconds: float,
        timeout_seconds: float,
        existing_lead_behavior: str,
        import_poll: ImportPoll | None = None,
        settings_not_returned: dict[str, bool] | None = None,
        sync_poll: SyncPoll | None = None,
    ) -> None:
        self._client = httpx.Client(
            base_url=instance_url.rstrip("/"),
            headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
            timeout=timeout_seconds,
            follow_redirects=False,  # the token goes to this instance only
        )
        self._policy = policy
        self._min_interval = min_interval_seconds
        self._last_request = 0.0
        self._pace_lock = threading.Lock()
        self._existing_lead_behavior = existing_lead_behavior
        self._import_poll = import_poll or ImportPoll()
        self._sync_poll = sync_poll or SyncPoll()
        # What to send for a boolean Bison resets but the campaign GET does not return.
        self._settings_not_returned = dict(settings_not_returned or {})
        self.requests = 0
        self.server_date: datetime | None = None  # Bison's clock: the last answer's Date header
        # Where each list was last seen in the paged list of lead lists (0 = first item): the
        # next list is looked for from there (the listing's order is not documented).
        self.list_positions: dict[str, int] = {}
        # Custom variables seen to exist (by a look-up or by creating them) through this object.
        self.variables_confirmed: set[str] = set()

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> BisonWorkspace:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- plumbing ----------------------------------------------------------------------------

    def _pace(self) -> None:
        with self._pace_lock:
            wait = self._last_request + self._min_interval - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            self._last_request = time.monotonic()
            self.requests += 1

    def _call(self, method: str, path: str, *, retry: bool = True, **kwargs: Any) -> Any:
        policy = self._policy if retry else RetryPolicy(max_attempts=1)
        self._pace()
        response = send_with_retries(self._client, method, path, policy, **kwargs)
        self.server_date = _server_date(response) or self.server_date
        return self._json(response)

    @staticmethod
    def _json(response: httpx.Response) -> Any:
        if response.is_redirect:
            raise RedirectRefused(
                _redirect_refused(
                    response.request.method, str(response.request.url), response.status_code
                )
            )
        try:
            body = response.json()
        except ValueError:
            body = None
        data = body.get("data") if isinstance(body, dict) else None
        refused = isinstance(data, dict) and data.get("success") is False  # B-ERRORS: a 200 too
        if response.status_code >= 400 or refused:
            message = None
            if isinstance(body, dict):
                message = (data.get("message") if isinstance(data, dict) else None) or body.get(
                    "message"
                )
            raise BisonError(
                f"Email Bison: {message or response.reason_phrase} (HTTP {response.status_code})",
                response.status_code,
            )
        return body

    def read(self, path: str, params: dict[str, Any] | None = None) -> Any:
        """One GET, paced and retried like every call (429 honours Retry-After): for read-only
        probes (`homeowner preflight`) of answers the connector has no method for."""
        return self._call("GET", path, params=params)

    def _pages(self, path: str, params: dict[str, Any] | None = None) -> Iterator[dict[str, Any]]:
        """Every item of a Laravel-paginated list, page by page (15 per page)."""
        page = 1
        while True:
            items, last_page = self._page(path, page, params)
            yield from items
            if page >= last_page:
                return
            page += 1

    def _page(
        self, path: str, page: int, params: dict[str, Any] | None = None
    ) -> tuple[list[dict[str, Any]], int]:
        """One page's items and the listing's last page number."""
        body = self._call("GET", path, params={**(params or {}), "page": page})
        meta = body.get("meta") or {}
        return list(body.get("data") or []), max(int(meta.get("last_page") or 1), 1)

    # -- custom variables --------------------------------------------------------------------

    def custom_variables(self) -> set[str]:
        body = self._call("GET", "/api/custom-variables")
        found = {item["name"] for item in body.get("data") or []}
        self.variables_confirmed |= found
        return found

    def ensure_custom_variables(self, names: Iterable[str]) -> list[str]:
        """Create the custom variables that do not exist yet; returns the ones created."""
        wanted = [n for n in dict.fromkeys(names) if n not in STANDARD_FIELDS]
        existing = self.custom_variables()
        created = []
        for name in wanted:
            if name in existing:
                continue
            try:
                self._call("POST", "/api/custom-variables", retry=False, json={"name": name})
            except (BisonError, RetriesExhausted, httpx.TransportError):
                if name not in self.custom_variables():  # the answer was lost, not the variable
                    self._call("POST", "/api/custom-variables", retry=False, json={"name": name})
            created.append(name)
            self.variables_confirmed.add(name)
        return created

    # -- lead lists ----------------------------------------------------------------------------

    def find_lead_list(self, name: str) -> dict[str, Any] | None:
        """The lead list with exactly this name, looking through every page."""
        for item in self._pages("/api/lead-lists"):
            if item.get("name") == name:
                return item
        return None

    def _find_list(self, list_id: int | str, near: int | None = None) -> dict[str, Any] | None:
        """The lead list with this id, from the paged list of lead lists (B-NO-STATUS-ROUTE).

        The listing's order is not documented: the page holding position `near` (where a list
        was seen before, or where the next new one should be) is read first, then the last page
        and the others backwards, so a new list costs one request whichever way Bison sorts.
        """
        first = 1 if near is None else max(near, 0) // PAGE_SIZE + 1
        seen: set[int] = set()
        pages = [first]
        while pages:
            page = pages.pop(0)
            items, last_page = self._page("/api/lead-lists", page)
            seen.add(page)
            for index, item in enumerate(items):
                if str(item.get("id")) == str(list_id):
                    self.list_positions[str(list_id)] = (page - 1) * PAGE_SIZE + index
                    return item
            if not pages:
                pages = [p for p in range(last_page, 0, -1) if p not in seen]
        return None

    def lead_list_count(self, list_id: int | str, near: int | None = None) -> int:
        """`leads_succeeded` once Bison has processed the list's import (polled, bounded).

        `near`: where in the listing to look first (see `_find_list`). Refused rows raise
        `BisonImportFailed` (Bison's `error_messages` quoted, addresses removed); a list still
        not `Processed` at the time limit raises `BisonImportTimeout`; a list the listing does
        not hold is an error (404).
        """
        what = f"lead list {list_id}"
        status = None
        for seconds in self._import_poll.pauses():
            pause(seconds)
            item = self._find_list(list_id, self.list_positions.get(str(list_id), near))
            if item is None:
                raise BisonError(f"Email Bison: lead list {list_id} was not found", 404)
            status = item.get("status")
            if status is None:
                raise BisonFieldMissing(what, "status")
            if str(status).lower() == "processed":
                succeeded = _count(item, "leads_succeeded", what)
                failed = _count(item, "leads_failed", what)
                if failed > 0:
                    if "error_messages" not in item:
                        raise BisonFieldMissing(what, "error_messages")
                    raise BisonImportFailed(
                        list_id, succeeded, failed, _messages(item["error_messages"])
                    )
                return succeeded
            if str(status).lower() in ("failed", "error"):  # not seen documented; fail at once
                raise BisonImportFailed(list_id, 0, 0, _messages(item.get("error_messages")))
        raise BisonImportTimeout(
            f"Email Bison lead list {list_id} still {status!r} after "
            f"{self._import_poll.timeout_seconds:.0f} s; the next run looks again"
        )

    def _list_created_since(self, name: str, since: datetime) -> dict[str, Any] | None:
        """The newest list named `name` created after `since` (less a margin), if any.

        Only for an upload whose answer was lost: last year's list of the same name is older.
        """
        found = [
            item
            for item in self._pages("/api/lead-lists")
            if item.get("name") == name
            and _timestamp(item, f"lead list {item.get('id')}") >= since - _RECOVERY_WINDOW
        ]
        return max(found, key=lambda item: int(item["id"]), default=None)

    def upload_lead_list(
        self, name: str, frame: pd.DataFrame, variables_known: Iterable[str] = ()
    ) -> tuple[int, bool]:
        """Upload `frame` as a new lead list `name`; (list id, True). Bison imports it later.

        Costs one POST, plus one custom-variable look-up unless every custom variable the list
        uses is in `variables_known` (seen to exist before); more only to create missing
        variables or to recover a lost answer. A refusal naming a missing custom variable makes
        it look them up, create what is missing and send once more. Whether the window already
        has a list is the caller's question: this always creates one.
        """
        if len(frame) > CSV_ROW_LIMIT:
            raise BisonError(
                f"lead list {name!r} has {len(frame)} leads; Bison takes at most {CSV_ROW_LIMIT} per CSV"
            )
        data, mapping = lead_list_csv(frame)
        custom = {field for field in mapping if field not in STANDARD_FIELDS}
        if not custom <= set(variables_known):
            self.ensure_custom_variables(mapping)
        try:
            return self._post_lead_list(name, data, mapping)
        except BisonCustomVariableMissing:
            self.ensure_custom_variables(mapping)  # deleted in Bison since we last looked
            return self._post_lead_list(name, data, mapping)

    def _post_lead_list(self, name: str, data: bytes, mapping: dict[str, str]) -> tuple[int, bool]:
        """The CSV POST, repeated only where nothing can have been created (429), and a lost
        answer looked for by name before sending again."""
        form = {
            "name": name,
            "existing_lead_behavior": self._existing_lead_behavior,
            **{f"columnsToMap[{field}][]": header for field, header in mapping.items()},
        }
        began = datetime.now(UTC)
        last: Exception | None = None
        for attempt in range(self._policy.max_attempts):
            self._pace()
            try:
                response = self._client.post(
                    "/api/leads/bulk/csv",
                    data=form,
                    files={"csv": (f"{name}.csv", data, "text/csv")},
                )
            except httpx.TransportError as exc:
                last = exc
            else:
                if response.status_code == 429:  # refused before any work: safe to send again
                    time.sleep(self._policy.retry_after(response, attempt))
                    continue
                if response.status_code == 422 and "custom variable" in response.text.lower():
                    raise BisonCustomVariableMissing(
                        f"Email Bison refused {name!r}: a custom variable is missing", 422
                    )
                if response.status_code < 500:
                    body = self._json(response)
                    created = body.get("data") if isinstance(body, dict) else None
                    if not isinstance(created, dict) or created.get("id") is None:
                        raise BisonFieldMissing(f"the answer to uploading {name!r}", "data.id")
                    return int(created["id"]), True
                last = BisonError(f"Email Bison: HTTP {response.status_code}", response.status_code)
            # A 5xx or a lost answer may still have created the list: look before sending again.
            time.sleep(self._policy.backoff(attempt))
            found = self._list_created_since(name, began)
            if found is not None:
                return int(found["id"]), True
        raise RetriesExhausted(
            f"uploading lead list {name!r} failed {self._policy.max_attempts} times: {type(last).__name__}"
        )

    # -- campaigns -----------------------------------------------------------------------------

    def campaign(self, campaign_id: int | str) -> dict[str, Any]:
        return self._call("GET", f"/api/campaigns/{campaign_id}")["data"]

    def attach_lead_list(self, campaign_id: int | str, list_id: int | str) -> None:
        """Attach a lead list (attaching the same list twice adds no lead twice)."""
        self._call(
            "POST",
            f"/api/campaigns/{campaign_id}/leads/attach-lead-list",
            json={"lead_list_id": int(list_id)},
        )

    def rename_campaign(
        self, campaign_id: int | str, new_name: str, before: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """Rename, sending every setting back; the update's answer (the campaign, as documented)
        must show nothing else changed.

        `before`: the campaign as just read (else it is read now). Bison sets a boolean left out
        of the update to false, and its campaign GET does not return every boolean
        (`reputation_building` is write-only): such a boolean is sent with its configured value,
        and without one the rename is refused before anything is sent.
        """
        before = before if before is not None else self.campaign(campaign_id)
        body = {
            key: before[key]
            for key in CAMPAIGN_SETTINGS
            if key in before and before[key] is not None
        }
        for key in RESET_BOOLEANS:
            if key in body:
                continue
            if key not in self._settings_not_returned:
                variable = f"BISON_{key.upper()}"
                raise BisonSettingUnknown(
                    f"campaign {campaign_id}: Email Bison does not return {key!r} and switches "
                    f"it off when a rename leaves it out; export {variable}=true or false (what "
                    "the Evergreen campaign should keep) and run the step again"
                )
            body[key] = self._settings_not_returned[key]
        body["name"] = new_name
        answer = self._call("PATCH", f"/api/campaigns/{campaign_id}/update", json=body)
        after = answer.get("data") if isinstance(answer, dict) else None
        if not isinstance(after, dict) or "name" not in after:
            after = self.campaign(campaign_id)  # an answer without the campaign: read it back
        changed = [
            f"{key}: {before[key]!r} -> {after.get(key)!r}"
            for key in CAMPAIGN_SETTINGS
            if key != "name" and before.get(key) is not None and after.get(key) != before[key]
        ]
        if after.get("name") != new_name:
            changed.insert(0, f"name: {after.get('name')!r} (wanted {new_name!r})")
        if changed:
            raise BisonSettingsChanged(
                f"campaign {campaign_id} changed by the rename: {'; '.join(changed)}; "
                "put the settings back in Bison by hand"
            )
        return after

    # -- window identity and campaign checks (weekly lifecycle) ---------------------------------

    def lead_list(self, list_id: int | str, near: int | None = None) -> dict[str, Any] | None:
        """The lead list with this id, or None when the paged list of lead lists lacks it."""
        return self._find_list(list_id, self.list_positions.get(str(list_id), near))

    def find_lead_lists(self, name: str) -> list[dict[str, Any]]:
        """Every lead list with exactly this name (Bison does not keep names unique)."""
        return [item for item in self._pages("/api/lead-lists") if item.get("name") == name]

    def find_campaigns(self, pattern: str) -> list[dict[str, Any]]:
        """Campaigns whose title starts with `pattern`, any case (`Evergreen`, `HNW Evergreen`)."""
        wanted = pattern.strip().casefold()
        return [
            c
            for c in self._pages("/api/campaigns", {"search": pattern.strip()})
            if str(c.get("name", "")).strip().casefold().startswith(wanted)
        ]

    def campaign_or_none(self, campaign_id: int | str) -> dict[str, Any] | None:
        """The campaign with this id, or None when it is gone (404)."""
        try:
            return self.campaign(campaign_id)
        except BisonError as exc:
            if exc.status == 404:
                return None
            raise

    def campaign_lead_count(self, campaign_id: int | str) -> int:
        """How many leads the campaign holds: `total_leads` (vendor facts, section 6)."""
        return total_leads(self.campaign(campaign_id))

    def wait_for_total_leads(self, campaign_id: int | str, at_least: int) -> dict[str, Any]:
        """The campaign once its `total_leads` reaches `at_least`, read after Bison's documented
        sync time (B-SYNC) and then now and then, bounded; `BisonAttachNotSynced` otherwise."""
        waited, seen = 0.0, None
        for seconds in self._sync_poll.pauses():
            pause(seconds)
            waited += seconds
            campaign = self.campaign(campaign_id)
            seen = total_leads(campaign)
            if seen >= at_least:
                return campaign
        raise BisonAttachNotSynced(campaign_id, at_least, seen or 0, waited)


def total_leads(campaign: dict[str, Any]) -> int:
    """A campaign's lead count: `total_leads` (vendor facts, section 6); absent is an error."""
    if campaign.get("total_leads") is None:
        raise BisonFieldMissing(f"campaign {campaign.get('id')}", "total_leads")
    try:
        return int(campaign["total_leads"])
    except (TypeError, ValueError):
        raise BisonFieldMissing(
            f"campaign {campaign.get('id')}", "total_leads", campaign["total_leads"]
        ) from None


class BisonResource(ConfigurableResource):
    """Email Bison API client settings shared by every client's workspace."""

    min_interval_seconds: float = Field(
        default=0.1, description="pause between calls to one workspace"
    )
    max_attempts: int = 5
    retry_base_seconds: float = 0.5
    max_backoff_seconds: float = 30.0
    timeout_seconds: float = 120.0
    existing_lead_behavior: str = Field(default="put", description="put, patch or skip")
    import_first_poll_seconds: float = Field(
        default=0.1, description="first pause before asking whether an import is processed"
    )
    import_max_poll_seconds: float = Field(default=15.0, description="longest pause between polls")
    import_timeout_seconds: float = Field(
        default=900.0, description="give up waiting for an import after this long (typed error)"
    )
    sync_first_poll_seconds: float = Field(
        default=300.0,
        description="first read of total_leads after an attach (Bison: synced within 5 minutes)",
    )
    sync_poll_seconds: float = Field(default=60.0, description="then read it this often")
    sync_timeout_seconds: float = Field(
        default=900.0, description="an attach not counted after this long fails the step"
    )
    campaign_settings_not_returned: dict[str, bool] = Field(
        default_factory=dict,
        description="values to send for campaign booleans the GET does not return (else "
        "BISON_<NAME> from the environment, e.g. BISON_REPUTATION_BUILDING=true)",
    )

    def settings_not_returned(self) -> dict[str, bool]:
        """The configured value of each resettable boolean: this resource's, else BISON_<NAME>."""
        values: dict[str, bool] = {}
        for key in RESET_BOOLEANS:
            if key in self.campaign_settings_not_returned:
                values[key] = bool(self.campaign_settings_not_returned[key])
                continue
            raw = os.environ.get(f"BISON_{key.upper()}")
            if raw is None or not raw.strip():
                continue
            if raw.strip().lower() not in ("true", "false", "1", "0", "yes", "no"):
                raise BisonError(f"BISON_{key.upper()} must be true or false, not {raw!r}")
            values[key] = raw.strip().lower() in ("true", "1", "yes")
        return values

    def workspace(self, instance_url: str, token_env: str) -> BisonWorkspace:
        """Open a client's workspace; the token is read from `token_env` now, never stored in config."""
        token = os.environ.get(token_env)
        if not token:
            raise BisonError(
                f"environment variable {token_env} is not set (the workspace's API token)"
            )
        return BisonWorkspace(
            instance_url,
            token,
            RetryPolicy(self.max_attempts, self.retry_base_seconds, self.max_backoff_seconds),
            self.min_interval_seconds,
            self.timeout_seconds,
            self.existing_lead_behavior,
            ImportPoll(
                self.import_first_poll_seconds,
                self.import_max_poll_seconds,
                self.import_timeout_seconds,
            ),
            self.settings_not_returned(),
            SyncPoll(
                self.sync_first_poll_seconds, self.sync_poll_seconds, self.sync_timeout_seconds
            ),
        )
