"""Clay, through its official ingress only: rows pushed to a table's webhook, read back by the API.

A webhook takes 50,000 submissions in its whole life (deleting rows does not give them back), so
a push that would cross the limit stops before sending and asks for a new webhook URL.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from typing import Any

import httpx
from dagster import ConfigurableResource
from pydantic import Field

from homeowner_dagster.resources.bison import RetryPolicy, send_with_retries

WEBHOOK_LIMIT = 50_000


class ClayError(RuntimeError):
    """Clay refused a call."""


class ClayWebhookExhausted(ClayError):
    """The webhook would pass its 50,000 submissions: create a new webhook on the table."""


class ClayResource(ConfigurableResource):
    """A Clay table: its webhook (push) and the public API (read). Secrets from EnvVar."""

    webhook_url: str = Field(
        description="the table's webhook URL, from EnvVar (it names the table)"
    )
    webhook_token: str | None = Field(
        default=None, description="the webhook's auth token, from EnvVar"
    )
    api_key: str | None = Field(default=None, description="Clay API key for reading, from EnvVar")
    api_url: str = "https://api.clay.com"
    table_id: str | None = None
    chunk_size: int = 100
    webhook_limit: int = WEBHOOK_LIMIT
    max_attempts: int = 5
    retry_base_seconds: float = 0.5
    timeout_seconds: float = 60.0

    def _policy(self) -> RetryPolicy:
        return RetryPolicy(self.max_attempts, self.retry_base_seconds)

    def push_rows(self, rows: Sequence[dict[str, Any]], submitted_before: int = 0) -> int:
        """POST `rows` to the webhook in chunks; returns submissions made.

        `submitted_before` is what this webhook already took (the caller's ledger): a push that
        would cross the limit raises before sending anything.
        """
        if submitted_before + len(rows) > self.webhook_limit:
            raise ClayWebhookExhausted(
                f"this webhook has taken {submitted_before} of {self.webhook_limit} submissions and "
                f"{len(rows)} more would pass the limit; create a new webhook on the table and "
                "set its URL and token"
            )
        headers = {"x-clay-webhook-auth": self.webhook_token} if self.webhook_token else {}
        sent = 0
        with httpx.Client(timeout=self.timeout_seconds) as client:
            for start in range(0, len(rows), self.chunk_size):
                chunk = list(rows[start : start + self.chunk_size])
                response = send_with_retries(
                    client, "POST", self.webhook_url, self._policy(), json=chunk, headers=headers
                )
                if response.status_code == 403 and "limit" in response.text.lower():
                    raise ClayWebhookExhausted(
                        f"Clay refused the webhook after {submitted_before + sent} submissions "
                        "(its limit is reached); create a new webhook on the table"
                    )
                if response.status_code >= 400:
                    raise ClayError(f"Clay webhook refused rows: HTTP {response.status_code}")
                sent += len(chunk)
        return sent

    def iter_rows(self, page_size: int = 100) -> Iterator[dict[str, Any]]:
        """Every row of the table (`{"id":..., "fields": {...}}`), cursor page by page."""
        if not self.api_key or not self.table_id:
            raise ClayError("reading a Clay table needs api_key and table_id")
        url = f"{self.api_url.rstrip('/')}/api/v1/tables/{self.table_id}/rows"
        cursor: str | None = None
        with httpx.Client(
            timeout=self.timeout_seconds, headers={"clay-api-key": self.api_key}
        ) as client:
            while True:
                params = {"limit": min(page_size, 100), **({"cursor": cursor} if cursor else {})}
                response = send_with_retries(client, "GET", url, self._policy(), params=params)
                if response.status_code >= 400:
                    raise ClayError(f"Clay table read failed: HTTP {response.status_code}")
                body = response.json()
                yield from body.get("data") or []
                cursor = body.get("next_cursor")
                if not cursor:
                    return

    def read_rows(self) -> list[dict[str, Any]]:
        return list(self.iter_rows())

    def wait_for_column(
        self,
        key_column: str,
        keys: Sequence[str],
        column: str,
        timeout_seconds: float,
        poll_seconds: float = 1.0,
    ) -> dict[str, dict[str, Any]]:
        """Rows by `key_column` once every key has a value in `column` (enrichment finished)."""
        wanted = set(keys)
        deadline = time.monotonic() + timeout_seconds
        while True:
            done: dict[str, dict[str, Any]] = {}
            for row in self.iter_rows():
                fields = row.get("fields") or {}
                key = str(fields.get(key_column) or "").strip().lower()
                if key in wanted and fields.get(column) not in (None, ""):
                    done[key] = fields
            if wanted <= done.keys():
                return done
            if time.monotonic() > deadline:
                raise ClayError(
                    f"Clay filled {column!r} for {len(done)} of {len(wanted)} rows before the timeout"
                )
            time.sleep(poll_seconds)
