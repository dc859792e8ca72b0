"""Email verification: DeBounce (default) or Clay, with a cache table so no address is paid twice.

Only DeBounce code 5 ("Safe to Send") is safe to send. Small sets use the single endpoint with at
most 5 calls in flight (DeBounce's concurrency limit); large sets go through the bulk flow: the
list is uploaded to Supabase Storage, handed to DeBounce by a signed URL, polled, and the result
CSV read back. The API key travels in DeBounce's query string, so URLs never reach logs or errors.
"""

from __future__ import annotations

import csv
import io
import logging
import re
import time
import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx
import pandas as pd
from dagster import ConfigurableResource
from pydantic import Field

from homeowner_dagster import db
from homeowner_dagster.leads.email_codes import DEBOUNCE_RESULTS, SAFE_TO_SEND_CODE
from homeowner_dagster.resources.artifacts import ArtifactStoreResource
from homeowner_dagster.resources.bison import RetryPolicy, send_with_retries
from homeowner_dagster.resources.clay import ClayResource

VERIFICATION_COLUMNS = ["email", "code", "result", "safe_to_send", "provider", "verified_at"]
# The key and the homeowner's address both travel in DeBounce's query string.
_SECRET_QUERY_VALUES = re.compile(r"((?:api|email)=)[^&\s'\"]+", re.IGNORECASE)


def redact_query(text: str) -> str:
    """`api=` and `email=` query values replaced by `***`."""
    return _SECRET_QUERY_VALUES.sub(r"\1***", text)


def _redacted_arg(value: object) -> object:
    """Strings redacted; an object whose text holds a secret (httpx.URL) becomes redacted text;
    numbers and everything else untouched, so `%d` and friends still format."""
    if isinstance(value, str):
        return redact_query(value)
    if isinstance(value, int | float | bool) or value is None:
        return value
    text = str(value)
    cleaned = redact_query(text)
    return cleaned if cleaned != text else value


class _RedactApiKey(logging.Filter):
    """httpx logs every request URL at INFO; DeBounce's key and the address are in the URL."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(_redacted_arg(a) for a in record.args)
        elif isinstance(record.args, dict):
            record.args = {k: _redacted_arg(v) for k, v in record.args.items()}
        if isinstance(record.msg, str):
            record.msg = redact_query(record.msg)
        return True


logging.getLogger("httpx").addFilter(_RedactApiKey())


class EmailVerificationError(RuntimeError):
    """The provider refused or never finished; the message never carries the key."""


@dataclass(frozen=True)
class VerificationStats:
    cached: int
    verified: int
    credits_used: int


def normalise(emails: Sequence[str]) -> list[str]:
    """Trimmed, lower-case, distinct, in first-seen order; blanks dropped."""
    return list(
        dict.fromkeys(e.strip().lower() for e in emails if isinstance(e, str) and e.strip())
    )


def _frame(rows: list[dict]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=VERIFICATION_COLUMNS)
    frame["code"] = frame["code"].astype("int64")
    frame["safe_to_send"] = frame["safe_to_send"].astype(bool)
    frame["verified_at"] = pd.to_datetime(frame["verified_at"], utc=True)
    return frame


def _row(email: str, code: int, result: str | None, provider: str, at: datetime) -> dict:
    return {
        "email": email,
        "code": code,
        "result": result or DEBOUNCE_RESULTS.get(code, "Unknown"),
        "safe_to_send": code == SAFE_TO_SEND_CODE,
        "provider": provider,
        "verified_at": at,
    }


class EmailVerificationResource(ConfigurableResource):
    """Verifies addresses with DeBounce or through a Clay table; `api_key` from EnvVar."""

    backend: str = Field(default="debounce", description="`debounce` or `clay`")
    api_key: str | None = Field(default=None, description="DeBounce API key, from EnvVar")
    api_url: str = "https://api.debounce.io"
    bulk_url: str = "https://bulk.debounce.io"
    max_in_flight: int = Field(default=5, description="DeBounce allows 5 concurrent calls per key")
    bulk_threshold: int = Field(
        default=1000, description="more addresses than this use the bulk flow"
    )
    poll_seconds: float = 5.0
    timeout_seconds: float = 3600.0
    max_attempts: int = 6
    retry_base_seconds: float = 0.5
    artifacts: ArtifactStoreResource | None = Field(
        default=None, description="Supabase backend, for bulk"
    )
    clay: ClayResource | None = None
    clay_code_column: str = "debounce_code"
    clay_result_column: str = "debounce_result"

    def _policy(self) -> RetryPolicy:
        return RetryPolicy(self.max_attempts, self.retry_base_seconds)

    # -- public ----------------------------------------------------------------------------------

    def verify(self, emails: Sequence[str]) -> pd.DataFrame:
        """One row per distinct address: email, code, result, safe_to_send, provider, verified_at."""
        addresses = normalise(emails)
        if not addresses:
            return _frame([])
        if self.backend == "clay":
            return _frame(self._verify_clay(addresses))
        if self.backend != "debounce":
            raise ValueError(f"unknown verification backend {self.backend!r}")
        if not self.api_key:
            raise EmailVerificationError("DeBounce needs an API key (DEBOUNCE_API_KEY)")
        if len(addresses) > self.bulk_threshold:
            return _frame(self._verify_bulk(addresses))
        return _frame(self._verify_single(addresses))

    def verify_cached(
        self, conn_url: str, emails: Sequence[str], freshness_days: int = 90
    ) -> tuple[pd.DataFrame, VerificationStats]:
        """Like `verify`, but addresses verified within `freshness_days` come from the table."""
        addresses = normalise(emails)
        with db.connect(conn_url) as conn:
            cached = db.read_frame(
                conn,
                "select email, code, result, safe_to_send, provider, verified_at "
                "from email_verifications where email = any(%s) "
                "and verified_at >= now() - make_interval(days => %s)",
                (addresses, freshness_days),
            )
        missing = [e for e in addresses if e not in set(cached["email"])]
        fresh = self.verify(missing) if missing else _frame([])
        if not fresh.empty:
            with db.transaction(conn_url) as conn:
                with conn.cursor() as cur:
                    cur.executemany(
                        "insert into email_verifications (email, code, result, safe_to_send, provider, verified_at) "
                        "values (%s, %s, %s, %s, %s, %s) on conflict (email) do update set "
                        "code = excluded.code, result = excluded.result, safe_to_send = excluded.safe_to_send, "
                        "provider = excluded.provider, verified_at = excluded.verified_at",
                        [
                            (
                                r.email,
                                int(r.code),
                                r.result,
                                bool(r.safe_to_send),
                                r.provider,
                                r.verified_at.to_pydatetime(),
                            )
                            for r in fresh.itertuples(index=False)
                        ],
                    )
        combined = (
            pd.concat([_frame(cached.to_dict("records")), fresh], ignore_index=True)
            if not cached.empty
            else fresh
        )
        order = {e: i for i, e in enumerate(addresses)}
        combined = combined.sort_values("email", key=lambda s: s.map(order)).reset_index(drop=True)
        stats = VerificationStats(cached=len(cached), verified=len(fresh), credits_used=len(fresh))
        return combined, stats

    # -- DeBounce single -------------------------------------------------------------------------

    def _verify_single(self, addresses: list[str]) -> list[dict]:
        policy = self._policy()
        url = f"{self.api_url.rstrip('/')}/v1/"
        limits = httpx.Limits(max_connections=self.max_in_flight)
        with httpx.Client(timeout=60, limits=limits) as client:

            def one(email: str) -> dict:
                try:
                    response = send_with_retries(
                        client, "GET", url, policy, params={"api": self.api_key, "email": email}
                    )
                except Exception as exc:  # noqa: BLE001 - re-raised without the URL (it holds the key)
                    raise EmailVerificationError(
                        f"DeBounce single validation failed: {type(exc).__name__}"
                    ) from None
                body = response.json() if response.content else {}
                if response.status_code >= 400 or str(body.get("success")) != "1":
                    message = (body.get("debounce") or {}).get(
                        "error"
                    ) or f"HTTP {response.status_code}"
                    raise EmailVerificationError(f"DeBounce refused a validation: {message}")
                answer = body["debounce"]
                return _row(
                    email, int(answer["code"]), answer.get("result"), "debounce", datetime.now(UTC)
                )

            with ThreadPoolExecutor(max_workers=self.max_in_flight) as pool:
                return list(pool.map(one, addresses))

    # -- DeBounce bulk ---------------------------------------------------------------------------

    def _verify_bulk(self, addresses: list[str]) -> list[dict]:
        if self.artifacts is None or self.artifacts.backend != "supabase":
            raise EmailVerificationError(
                "bulk verification hands DeBounce a signed URL: configure `artifacts` with the supabase backend"
            )
        listing = "email\n" + "\n".join(addresses) + "\n"
        key = f"debounce/{datetime.now(UTC):%Y%m%d}/{uuid.uuid4().hex}.csv"
        signed_url = self.artifacts.put_bytes(listing.encode(), key, "text/csv")
        try:
            text = self._bulk_results(signed_url)
        finally:
            # Homeowners' addresses: gone from storage once DeBounce's answer is in, or failed.
            try:
                self.artifacts.delete(key)
            except Exception as exc:  # noqa: BLE001 - never hide the verification's own outcome
                logging.getLogger(__name__).warning(
                    f"bulk address list {key} not deleted from storage ({type(exc).__name__}); delete it by hand"
                )
        return self._bulk_rows(text, addresses)

    def _bulk_results(self, signed_url: str) -> str:
        """Hand DeBounce the list's link, poll until done, download the result CSV."""
        base = f"{self.bulk_url.rstrip('/')}/v1"
        policy = self._policy()
        with httpx.Client(timeout=120) as client:

            def call(path: str, **params: str) -> dict:
                try:
                    response = send_with_retries(
                        client,
                        "GET",
                        f"{base}/{path}/",
                        policy,
                        params={**params, "api": self.api_key},
                    )
                except Exception as exc:  # noqa: BLE001 - re-raised without the URL
                    raise EmailVerificationError(
                        f"DeBounce bulk {path} failed: {type(exc).__name__}"
                    ) from None
                body = response.json() if response.content else {}
                if response.status_code >= 400 or str(body.get("success")) != "1":
                    message = (body.get("debounce") or {}).get(
                        "error"
                    ) or f"HTTP {response.status_code}"
                    raise EmailVerificationError(f"DeBounce bulk {path} refused: {message}")
                return body["debounce"]

            list_id = call("upload", url=signed_url)["list_id"]
            deadline = time.monotonic() + self.timeout_seconds
            while True:
                status = call("status", list_id=str(list_id))
                if status.get("status") == "completed" and status.get("download_link"):
                    break
                if time.monotonic() > deadline:
                    raise EmailVerificationError(
                        f"DeBounce bulk list {list_id} not finished before the timeout"
                    )
                time.sleep(self.poll_seconds)
            return self._download(client, status["download_link"], policy)

    @staticmethod
    def _bulk_rows(text: str, addresses: list[str]) -> list[dict]:
        at = datetime.now(UTC)
        reader = csv.DictReader(io.StringIO(text))
        columns = {name.lower().replace("_", " ").strip(): name for name in reader.fieldnames or []}
        email_col = columns.get("email") or (reader.fieldnames or [""])[0]
        code_col = columns.get("debounce code") or columns.get("code")
        result_col = columns.get("debounce result") or columns.get("result")
        if code_col is None:
            raise EmailVerificationError("DeBounce result file has no code column")
        rows = {}
        for line in reader:
            email = (line.get(email_col) or "").strip().lower()
            if email:
                rows[email] = _row(
                    email,
                    int(line[code_col]),
                    line.get(result_col) if result_col else None,
                    "debounce",
                    at,
                )
        missing = [e for e in addresses if e not in rows]
        if missing:
            raise EmailVerificationError(
                f"DeBounce result file lacks {len(missing)} of {len(addresses)} addresses"
            )
        return [rows[e] for e in addresses]

    @staticmethod
    def _download(client: httpx.Client, url: str, policy: RetryPolicy) -> str:
        """The result CSV; a connection dropped halfway is retried like a 5xx."""
        for attempt in range(policy.max_attempts):
            try:
                response = client.get(url)
                if response.status_code < 500 and response.status_code != 429:
                    if response.status_code >= 400:
                        raise EmailVerificationError(
                            f"DeBounce result download refused: HTTP {response.status_code}"
                        )
                    return response.text
            except httpx.TransportError:
                pass
            time.sleep(policy.backoff(attempt))
        raise EmailVerificationError("DeBounce result download kept failing")

    # -- Clay ------------------------------------------------------------------------------------

    def _verify_clay(self, addresses: list[str]) -> list[dict]:
        if self.clay is None:
            raise EmailVerificationError("backend `clay` needs the `clay` resource configured")
        self.clay.push_rows([{"email": e} for e in addresses])
        rows = self.clay.wait_for_column(
            "email", addresses, self.clay_code_column, self.timeout_seconds, self.poll_seconds
        )
        at = datetime.now(UTC)
        return [
            _row(
                e,
                int(rows[e][self.clay_code_column]),
                rows[e].get(self.clay_result_column),
                "clay",
                at,
            )
            for e in addresses
        ]
