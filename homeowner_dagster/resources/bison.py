"""Email Bison: one lead list per renewal window, and the weekly Evergreen campaign hand-over.

Each client has its own workspace: an instance URL and the name of the environment variable that
holds that workspace's token (read when a workspace is opened, never logged). Creating calls are
made idempotent by looking the object up first, not by retrying blindly: a list whose name
exists is never uploaded again, even when the previous upload's answer was lost.

`send_with_retries` is the project's one retry rule for HTTP APIs (DeBounce and Clay use it too):
429 waits `Retry-After`, 5xx and dropped connections back off exponentially with jitter, bounded.
"""

from __future__ import annotations

import csv
import io
import os
import random
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pandas as pd
from dagster import ConfigurableResource
from pydantic import Field

from homeowner_dagster.leads.columns import BISON_FIELD_MAP

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
_FORMULA_PREFIXES = ("=", "+", "-", "@")


class BisonError(RuntimeError):
    """Email Bison refused or failed a call; carries the server's message and status."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class RetriesExhausted(RuntimeError):
    """A call kept failing with 429/5xx or dropped connections until the retry budget ran out."""


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
        header = response.headers.get("Retry-After")
        try:
            return (
                min(self.max_backoff_seconds, max(float(header), 0.0))
                if header
                else self.backoff(attempt)
            )
        except ValueError:
            return self.backoff(attempt)


def send_with_retries(
    client: httpx.Client, method: str, url: str, policy: RetryPolicy, **kwargs: Any
) -> httpx.Response:
    """Send; on 429 wait Retry-After, on 5xx / dropped connection back off; else return.

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
        return response
    raise RetriesExhausted(
        f"{method} {httpx.URL(url).path} failed {policy.max_attempts} times; last: {last}"
    )


def neutralise_formula(value: Any) -> str:
    """Spreadsheet-safe text: a value starting with = + - @ gets a leading single quote."""
    if value is None or (isinstance(value, float) and value != value) or value is pd.NA:
        return ""
    text = str(value)
    return "'" + text if text.startswith(_FORMULA_PREFIXES) else text


def lead_list_csv(frame: pd.DataFrame) -> tuple[bytes, dict[str, str]]:
    """The CSV Bison gets (our column names as headers) and its columnsToMap (Bison field -> header)."""
    columns = [c for c in BISON_FIELD_MAP if c in frame.columns]
    if "email" not in columns:
        raise BisonError("a lead list needs an email column")
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(columns)
    for row in frame[columns].itertuples(index=False, name=None):
        writer.writerow([neutralise_formula(v) for v in row])
    return out.getvalue().encode("utf-8"), {BISON_FIELD_MAP[c]: c for c in columns}


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
    ) -> None:
        self._client = httpx.Client(
            base_url=instance_url.rstrip("/"),
            headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
            timeout=timeout_seconds,
        )
        self._policy = policy
        self._min_interval = min_interval_seconds
        self._last_request = 0.0
        self._pace_lock = threading.Lock()
        self._existing_lead_behavior = existing_lead_behavior
        self.requests = 0

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
        return self._json(response)

    @staticmethod
    def _json(response: httpx.Response) -> Any:
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.status_code >= 400:
            message = None
            if isinstance(body, dict):
                data = body.get("data")
                message = (data.get("message") if isinstance(data, dict) else None) or body.get(
                    "message"
                )
            raise BisonError(
                f"Email Bison: {message or response.reason_phrase} (HTTP {response.status_code})",
                response.status_code,
            )
        return body

    def _pages(self, path: str, params: dict[str, Any] | None = None) -> Iterator[dict[str, Any]]:
        """Every item of a Laravel-paginated list, page by page (15 per page)."""
        page = 1
        while True:
            body = self._call("GET", path, params={**(params or {}), "page": page})
            yield from body.get("data") or []
            meta = body.get("meta") or {}
            if page >= int(meta.get("last_page") or 1):
                return
            page += 1

    # -- custom variables --------------------------------------------------------------------

    def custom_variables(self) -> set[str]:
        body = self._call("GET", "/api/custom-variables")
        return {item["name"] for item in body.get("data") or []}

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
        return created

    # -- lead lists ----------------------------------------------------------------------------

    def find_lead_list(self, name: str) -> dict[str, Any] | None:
        """The lead list with exactly this name, looking through every page."""
        for item in self._pages("/api/lead-lists"):
            if item.get("name") == name:
                return item
        return None

    def lead_list_count(self, list_id: int | str) -> int:
        body = self._call("GET", f"/api/lead-lists/{list_id}")
        return int((body.get("data") or {}).get("leads_count") or 0)

    def upload_lead_list(self, name: str, frame: pd.DataFrame) -> tuple[int, bool]:
        """Upload `frame` as the lead list `name`; (list id, created). An existing list is reused."""
        found = self.find_lead_list(name)
        if found is not None:
            return int(found["id"]), False
        if len(frame) > CSV_ROW_LIMIT:
            raise BisonError(
                f"lead list {name!r} has {len(frame)} leads; Bison takes at most {CSV_ROW_LIMIT} per CSV"
            )
        data, mapping = lead_list_csv(frame)
        self.ensure_custom_variables(mapping)
        form = {
            "name": name,
            "existing_lead_behavior": self._existing_lead_behavior,
            **{f"columnsToMap[{field}][]": header for field, header in mapping.items()},
        }
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
                if response.status_code < 500:
                    body = self._json(response)
                    return int(body["data"]["id"]), True
                last = BisonError(f"Email Bison: HTTP {response.status_code}", response.status_code)
            # A 5xx or a lost answer may still have created the list: look before sending again.
            time.sleep(self._policy.backoff(attempt))
            found = self.find_lead_list(name)
            if found is not None:
                return int(found["id"]), True
        raise RetriesExhausted(
            f"uploading lead list {name!r} failed {self._policy.max_attempts} times: {type(last).__name__}"
        )

    # -- campaigns -----------------------------------------------------------------------------

    def find_evergreen_campaign(self, prefix: str = "Evergreen") -> dict[str, Any]:
        """The one campaign whose title starts with `prefix`; an error if none or several."""
        found = [
            c
            for c in self._pages("/api/campaigns", {"search": prefix})
            if str(c.get("name", "")).startswith(prefix)
        ]
        if not found:
            raise BisonError(f"no campaign titled {prefix!r}... in this workspace")
        if len(found) > 1:
            titles = ", ".join(repr(c["name"]) for c in found)
            raise BisonError(f"several campaigns start with {prefix!r}: {titles}; keep one")
        return found[0]

    def campaign(self, campaign_id: int | str) -> dict[str, Any]:
        return self._call("GET", f"/api/campaigns/{campaign_id}")["data"]

    def attach_lead_list(self, campaign_id: int | str, list_id: int | str) -> None:
        """Attach a lead list (attaching the same list twice adds no lead twice)."""
        self._call(
            "POST",
            f"/api/campaigns/{campaign_id}/leads/attach-lead-list",
            json={"lead_list_id": int(list_id)},
        )

    def rename_campaign(self, campaign_id: int | str, new_name: str) -> dict[str, Any]:
        """Rename, sending the campaign's current settings back so none is switched off."""
        current = self.campaign(campaign_id)
        body = {
            key: current[key]
            for key in CAMPAIGN_SETTINGS
            if key in current and current[key] is not None
        }
        body["name"] = new_name
        updated = self._call("PATCH", f"/api/campaigns/{campaign_id}/update", json=body)["data"]
        if updated.get("name") != new_name:
            raise BisonError(f"campaign {campaign_id} kept the title {updated.get('name')!r}")
        return updated

    # -- window identity and campaign checks (weekly lifecycle) ---------------------------------

    def lead_list(self, list_id: int | str) -> dict[str, Any] | None:
        """The lead list with this id, or None when the workspace has no such list (404)."""
        try:
            body = self._call("GET", f"/api/lead-lists/{list_id}")
        except BisonError as exc:
            if exc.status == 404:
                return None
            raise
        return body.get("data") or None

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
        data = self.campaign(campaign_id)
        if data.get("total_leads") is None:
            raise BisonError(f"campaign {campaign_id}: Email Bison sent no total_leads")
        return int(data["total_leads"])


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
        )
