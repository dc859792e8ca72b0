"""Clay, through its official ingress only: rows pushed to a table's webhook, read back by the API.

Two limits, counted in Postgres (`clay_webhook_usage`) across runs, processes and clients:
- a Clay table holds at most 40,000 rows (the SOP's rule);
- a webhook takes 50,000 submissions in its whole life (deleting rows does not give them back).
Tables are made by a person in Clay; their webhooks come from the environment, several allowed,
used in order: `CLAY_WEBHOOK_URL` / `CLAY_WEBHOOK_TOKEN` / `CLAY_TABLE_NAME`, then the same names
with `_2`, `_3`, ... A push goes whole to the first webhook with room for it in both limits; one
that fits none fails before anything is sent, naming the table and the variables to set. Crossing
90% of either limit posts a Slack warning. Usage is reserved before sending (a push that fails
halfway is counted in full: Clay may have taken those rows, so the count errs on the safe side).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
from dagster import ConfigurableResource
from pydantic import Field

from homeowner_dagster import db
from homeowner_dagster.addresses import CLAY_API_URL, clay_webhook_variables, service_address
from homeowner_dagster.resources.bison import RetryPolicy, send_with_retries
from homeowner_dagster.resources.slack import HomeownerSlackResource

WEBHOOK_LIMIT = 50_000
TABLE_ROW_LIMIT = 40_000
WARN_SHARE = 0.9
WEBHOOK_LIMIT_REACHED = 2**31 - 1  # a webhook Clay itself refused: more than any limit


class ClayError(RuntimeError):
    """Clay refused a call."""


class ClayWebhookExhausted(ClayError):
    """The webhook would pass its 50,000 submissions: create a new webhook on the table."""


class ClayTableFull(ClayError):
    """The table would pass the SOP's 40,000 rows: a person makes the next table in Clay."""


@dataclass(frozen=True)
class ClayWebhook:
    """One configured webhook: the table it feeds (by name), its URL and its token."""

    number: int  # 1 for CLAY_WEBHOOK_URL, 2 for CLAY_WEBHOOK_URL_2, ...
    table_name: str
    url: str = field(repr=False)  # its path is the webhook's secret
    token: str | None = field(repr=False)

    @property
    def webhook_id(self) -> str:
        """The URL's last segment names the webhook (the URL itself is not stored anywhere)."""
        return self.url.rstrip("/").rsplit("/", 1)[-1]


def _suffix(number: int) -> str:
    return "" if number == 1 else f"_{number}"


def env_names(number: int) -> str:
    """`CLAY_WEBHOOK_URL_2 / CLAY_WEBHOOK_TOKEN_2 / CLAY_TABLE_NAME_2`: what to set for entry n."""
    s = _suffix(number)
    return f"CLAY_WEBHOOK_URL{s} / CLAY_WEBHOOK_TOKEN{s} / CLAY_TABLE_NAME{s}"


class ClayResource(ConfigurableResource):
    """Clay tables: their webhooks (push) and the public API (read). Secrets from EnvVar.

    The webhooks (CLAY_WEBHOOK_URL / _TOKEN, then _2, _3, ...) and the API address (CLAY_API_URL)
    are read from the deployment's environment when used, each checked (https, a Clay host): run
    config cannot name another address, and the webhook's path (its secret) is never logged.
    """

    table_name: str | None = Field(
        default=None, description="the first table's name in Clay (CLAY_TABLE_NAME)"
    )
    api_key: str | None = Field(default=None, description="Clay API key for reading, from EnvVar")
    table_id: str | None = None
    chunk_size: int = 100
    webhook_limit: int = WEBHOOK_LIMIT
    table_row_limit: int = TABLE_ROW_LIMIT
    warn_share: float = WARN_SHARE
    slack: HomeownerSlackResource | None = None
    slack_channel: str | None = Field(
        default=None, description="warnings go here; default HOMEOWNER_SLACK_CHANNEL"
    )
    max_attempts: int = 5
    retry_base_seconds: float = 0.5
    timeout_seconds: float = 60.0

    def _policy(self) -> RetryPolicy:
        return RetryPolicy(self.max_attempts, self.retry_base_seconds)

    def webhooks(self) -> list[ClayWebhook]:
        """The configured webhooks, in the order they are used; each address checked now."""
        found = []
        for number, variable in enumerate(clay_webhook_variables(), start=1):
            s = _suffix(number)
            name = os.environ.get(f"CLAY_TABLE_NAME{s}") or (
                (self.table_name or self.table_id) if number == 1 else None
            )
            found.append(
                ClayWebhook(
                    number,
                    name or f"Clay table {number}",
                    service_address(variable),
                    os.environ.get(f"CLAY_WEBHOOK_TOKEN{s}") or None,
                )
            )
        return found

    def usage(self) -> tuple[dict[str, int], dict[str, int]]:
        """(submissions per webhook id, rows per table name) as counted in the database."""
        with db.connect() as conn:
            return _usage(conn)

    def push_rows(self, rows: Sequence[dict[str, Any]], submitted_before: int | None = None) -> int:
        """POST `rows` to the first webhook with room for all of them; returns submissions made.

        Counted in the database unless `submitted_before` is given (what the webhook already
        took, for a caller keeping its own count): a push that would pass a limit raises before
        sending anything.
        """
        if not rows:
            return 0
        if submitted_before is not None:
            hook = self.webhooks()[0]
            if submitted_before + len(rows) > self.webhook_limit:
                raise ClayWebhookExhausted(self._webhook_full(hook, submitted_before, len(rows)))
            return self._send(hook, rows, submitted_before)
        hook, warnings = self._reserve(len(rows))
        for text in warnings:
            self._warn(text)
        return self._send(hook, rows, None)

    def _reserve(self, n: int) -> tuple[ClayWebhook, list[str]]:
        """Pick the webhook and count the push against it and its table, in one transaction
        serialized across processes (two runs cannot both take the last rows)."""
        hooks = self.webhooks()
        with db.transaction() as conn:
            conn.execute("select pg_advisory_xact_lock(hashtextextended('clay-usage', 0))")
            by_hook, by_table = _usage(conn)
            chosen = next(
                (
                    h
                    for h in hooks
                    if by_hook.get(h.webhook_id, 0) + n <= self.webhook_limit
                    and by_table.get(h.table_name, 0) + n <= self.table_row_limit
                ),
                None,
            )
            if chosen is None:
                last = hooks[-1]
                if by_table.get(last.table_name, 0) + n > self.table_row_limit:
                    raise ClayTableFull(
                        self._table_full(last, by_table.get(last.table_name, 0), n, len(hooks))
                    )
                raise ClayWebhookExhausted(
                    self._webhook_full(last, by_hook.get(last.webhook_id, 0), n, len(hooks))
                )
            conn.execute(
                "insert into clay_webhook_usage (webhook_id, table_name, submissions) values (%s, %s, %s) "
                "on conflict (webhook_id) do update set submissions = clay_webhook_usage.submissions + "
                "excluded.submissions, table_name = excluded.table_name, updated_at = now()",
                [chosen.webhook_id, chosen.table_name, n],
            )
        warnings = []
        hook_before = by_hook.get(chosen.webhook_id, 0)
        table_before = by_table.get(chosen.table_name, 0)
        if _crosses(table_before, n, self.table_row_limit, self.warn_share):
            warnings.append(
                f"⚠️ Clay table nearly full: {chosen.table_name!r} holds {table_before + n:,} of "
                f"{self.table_row_limit:,} rows. Make the next table in Clay, add a webhook to it and "
                f"set {env_names(len(hooks) + 1)}."
            )
        if _crosses(hook_before, n, self.webhook_limit, self.warn_share):
            warnings.append(
                f"⚠️ Clay webhook nearly used up: webhook {chosen.number} of table {chosen.table_name!r} "
                f"has taken {hook_before + n:,} of {self.webhook_limit:,} submissions. Add a new webhook "
                f"on the table and set {env_names(len(hooks) + 1)}."
            )
        return chosen, warnings

    def _table_full(self, hook: ClayWebhook, held: int, n: int, count: int = 1) -> str:
        return (
            f"Clay table {hook.table_name!r} holds {held:,} of {self.table_row_limit:,} rows and "
            f"{n:,} more would pass the limit; nothing was sent. Make the next table in Clay, add a "
            f"webhook to it and set {env_names(count + 1)}"
        )

    def _webhook_full(self, hook: ClayWebhook, taken: int, n: int, count: int = 1) -> str:
        state = (
            "was refused by Clay for its limit"
            if taken >= WEBHOOK_LIMIT_REACHED
            else f"has taken {taken:,} of {self.webhook_limit:,} submissions and {n:,} more would pass the limit"
        )
        return (
            f"Clay webhook {hook.number} of table {hook.table_name!r} {state}; nothing was "
            f"sent. Create a new webhook on the table (or a new table) and set "
            f"{env_names(count + 1)}"
        )

    def _warn(self, text: str) -> None:
        if self.slack is None:
            return
        from homeowner_dagster.registry import ops_channel

        channel = self.slack_channel or ops_channel()
        self.slack.post(channel, text)

    def _send(self, hook: ClayWebhook, rows: Sequence[dict[str, Any]], before: int | None) -> int:
        headers = {"x-clay-webhook-auth": hook.token} if hook.token else {}
        sent = 0
        with httpx.Client(timeout=self.timeout_seconds, follow_redirects=False) as client:
            for start in range(0, len(rows), self.chunk_size):
                chunk = list(rows[start : start + self.chunk_size])
                response = send_with_retries(
                    client, "POST", hook.url, self._policy(), json=chunk, headers=headers
                )
                if response.status_code == 403 and "limit" in response.text.lower():
                    if before is None:  # Clay knows better than our count: mark the webhook used up
                        self._mark_used_up(hook)
                    raise ClayWebhookExhausted(
                        f"Clay refused webhook {hook.number} of table {hook.table_name!r} after "
                        f"{sent:,} of {len(rows):,} rows (its limit is reached); create a new webhook "
                        f"on the table and set {env_names(len(self.webhooks()) + 1)}"
                    )
                if response.status_code >= 400:
                    raise ClayError(f"Clay webhook refused rows: HTTP {response.status_code}")
                sent += len(chunk)
        return sent

    def _mark_used_up(self, hook: ClayWebhook) -> None:
        with db.transaction() as conn:
            conn.execute(
                "update clay_webhook_usage set used_up = true, updated_at = now() where webhook_id = %s",
                [hook.webhook_id],
            )

    def iter_rows(self, page_size: int = 100) -> Iterator[dict[str, Any]]:
        """Every row of the table (`{"id":..., "fields": {...}}`), cursor page by page."""
        if not self.api_key or not self.table_id:
            raise ClayError("reading a Clay table needs api_key and table_id")
        url = f"{service_address(CLAY_API_URL).rstrip('/')}/api/v1/tables/{self.table_id}/rows"
        cursor: str | None = None
        with httpx.Client(
            timeout=self.timeout_seconds,
            headers={"clay-api-key": self.api_key},
            follow_redirects=False,
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


def _usage(conn: Any) -> tuple[dict[str, int], dict[str, int]]:
    by_hook: dict[str, int] = {}
    by_table: dict[str, int] = {}
    for webhook_id, table, submissions, used_up in conn.execute(
        "select webhook_id, table_name, submissions, used_up from clay_webhook_usage"
    ).fetchall():
        by_hook[webhook_id] = WEBHOOK_LIMIT_REACHED if used_up else int(submissions)
        by_table[table] = by_table.get(table, 0) + int(submissions)
    return by_hook, by_table


def _crosses(before: int, n: int, limit: int, share: float) -> bool:
    """This push takes the count from under `share` of the limit to at or above it."""
    mark = share * limit
    return before < mark <= before + n
