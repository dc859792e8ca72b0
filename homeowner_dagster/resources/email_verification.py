"""Email verification: DeBounce (default) or Clay, with a cache table so no address is paid twice.

Only DeBounce code 5 ("Safe to Send") is safe to send. Small sets use the single endpoint with at
most 5 calls in flight (DeBounce's concurrency limit per key; across runs the `debounce` Dagster
pool lets one step at a time call it) and every verdict is cached as it arrives, so a rerun after
a failure pays only for what is left. Large sets go through the bulk flow: the list is uploaded to
Supabase Storage, handed to DeBounce by a signed URL, polled, and the result CSV read back. The
job is recorded in `debounce_bulk_jobs` before the upload is sent, so a rerun resumes the paid job
and an upload whose answer was lost is never repeated blind (DeBounce documents no way to look a
list up). A job that ends `failed` stops the step at once. The API key, the homeowner's address
and the signed list link travel in DeBounce's query string: URLs never reach errors, and httpx's
request log lines are sanitised (`homeowner_dagster.sanitiser`).
"""

from __future__ import annotations

import csv
import hashlib
import io
import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx
import pandas as pd
import psycopg
from dagster import ConfigurableResource
from psycopg.rows import dict_row
from pydantic import Field

from homeowner_dagster import db
from homeowner_dagster.addresses import DEBOUNCE_API_URL, DEBOUNCE_BULK_URL, service_address
from homeowner_dagster.leads.email_codes import DEBOUNCE_RESULTS, SAFE_TO_SEND_CODE
from homeowner_dagster.resources.artifacts import ArtifactStoreResource
from homeowner_dagster.resources.bison import RetryPolicy, send_with_retries
from homeowner_dagster.resources.clay import ClayResource

# The Dagster concurrency pool of every step that calls DeBounce (limit 1 in dagster.yaml).
DEBOUNCE_POOL = "debounce"
VERIFICATION_COLUMNS = ["email", "code", "result", "safe_to_send", "provider", "verified_at"]


class EmailVerificationError(RuntimeError):
    """The provider refused or never finished; the message never carries the key.

    `transient` tells the step whether Dagster's RetryPolicy may try again (run_errors.failure_for).
    """

    transient = True


class BulkJobFailed(EmailVerificationError):
    """DeBounce reports the bulk job `failed`: polling on cannot help; a new upload may."""

    transient = False


class BulkUploadUnconfirmed(EmailVerificationError):
    """A bulk upload was sent but its answer never came back: DeBounce may have taken (and
    charged) it. It is never sent again blind; a person checks the DeBounce dashboard."""

    transient = False


Verdict = dict
OnVerdict = Callable[[Verdict], None]


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


def store_verdicts(conn: psycopg.Connection, rows: Sequence[Verdict]) -> None:
    """Upsert verdicts into the cache table (autocommit connection: each call is durable)."""
    if not rows:
        return
    with conn.cursor() as cur:
        cur.executemany(
            "insert into email_verifications (email, code, result, safe_to_send, provider, verified_at) "
            "values (%s, %s, %s, %s, %s, %s) on conflict (email) do update set "
            "code = excluded.code, result = excluded.result, safe_to_send = excluded.safe_to_send, "
            "provider = excluded.provider, verified_at = excluded.verified_at",
            [
                (
                    r["email"],
                    int(r["code"]),
                    r["result"],
                    bool(r["safe_to_send"]),
                    r["provider"],
                    pd.Timestamp(r["verified_at"]).to_pydatetime(),
                )
                for r in rows
            ],
        )


def listing_key(addresses: Sequence[str]) -> str:
    """The identity of a bulk list: the same addresses (any order) give the same key."""
    return hashlib.sha256("\n".join(sorted(addresses)).encode()).hexdigest()[:32]


class EmailVerificationResource(ConfigurableResource):
    """Verifies addresses with DeBounce or through a Clay table; `api_key` from EnvVar.

    DeBounce's addresses are the deployment's (DEBOUNCE_API_URL / DEBOUNCE_BULK_URL, checked,
    default DeBounce's own), never run config: the key goes to no other host.
    """

    backend: str = Field(default="debounce", description="`debounce` or `clay`")
    api_key: str | None = Field(default=None, description="DeBounce API key, from EnvVar")
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

    def verify(
        self,
        emails: Sequence[str],
        on_verdict: OnVerdict | None = None,
        conn_url: str | None = None,
    ) -> pd.DataFrame:
        """One row per distinct address: email, code, result, safe_to_send, provider, verified_at.

        `on_verdict` sees each single-mode verdict as it arrives (the cache writes it at once);
        `conn_url` lets the bulk flow record its job in `debounce_bulk_jobs`.
        """
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
            return _frame(self._verify_bulk(addresses, conn_url))
        return _frame(self._verify_single(addresses, on_verdict))

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
        with db.connect(conn_url, autocommit=True) as cache:
            lock = threading.Lock()
            stored: set[str] = set()

            def remember(row: Verdict) -> None:  # from the worker threads, as each verdict arrives
                with lock:
                    store_verdicts(cache, [row])
                    stored.add(row["email"])

            fresh = self.verify(missing, remember, conn_url) if missing else _frame([])
            rest = [r for r in fresh.to_dict("records") if r["email"] not in stored]
            store_verdicts(cache, rest)  # bulk and Clay verdicts arrive all at once
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

    def _verify_single(
        self, addresses: list[str], on_verdict: OnVerdict | None = None
    ) -> list[dict]:
        policy = self._policy()
        url = f"{service_address(DEBOUNCE_API_URL).rstrip('/')}/v1/"
        limits = httpx.Limits(max_connections=self.max_in_flight)
        with httpx.Client(timeout=60, limits=limits, follow_redirects=False) as client:

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
                row = _row(
                    email, int(answer["code"]), answer.get("result"), "debounce", datetime.now(UTC)
                )
                if on_verdict is not None:
                    on_verdict(row)  # paid for: kept even if a later address fails
                return row

            with ThreadPoolExecutor(max_workers=self.max_in_flight) as pool:
                futures = [pool.submit(one, email) for email in addresses]
                wait(futures, return_when=FIRST_EXCEPTION)
                for future in futures:
                    future.cancel()  # after a failure, pay for nothing more
                failed = next(
                    (f for f in futures if f.done() and not f.cancelled() and f.exception()), None
                )
                if failed is not None:
                    pool.shutdown(wait=True, cancel_futures=True)
                    raise failed.exception()  # type: ignore[misc]
                return [f.result() for f in futures]

    # -- DeBounce bulk ---------------------------------------------------------------------------

    def _verify_bulk(self, addresses: list[str], conn_url: str | None = None) -> list[dict]:
        if self.artifacts is None or self.artifacts.backend != "supabase":
            raise EmailVerificationError(
                "bulk verification hands DeBounce a signed URL: configure `artifacts` with the supabase backend"
            )
        key = listing_key(addresses)
        jobs = BulkJobs(conn_url)
        job = jobs.get(key)
        base = f"{service_address(DEBOUNCE_BULK_URL).rstrip('/')}/v1"
        policy = self._policy()
        listing_path = f"debounce/{key}.csv"  # DeBounce names the list after this file
        try:
            with httpx.Client(timeout=120, follow_redirects=False) as client:

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
                    return _debounce_answer(response, f"bulk {path}")

                if job is not None and job["status"] == "uploading":
                    raise BulkUploadUnconfirmed(_unconfirmed_message(key, job))
                if _resumable(job):
                    list_id = str(job["list_id"])  # the paid job of an earlier attempt: resume it
                else:
                    listing = "email\n" + "\n".join(addresses) + "\n"
                    signed_url = self.artifacts.put_bytes(
                        listing.encode(), listing_path, "text/csv"
                    )
                    jobs.begin(key, len(addresses), listing_path)
                    list_id = self._upload(client, f"{base}/upload/", signed_url, policy, jobs, key)
                    jobs.update(key, "processing", list_id)
                deadline = time.monotonic() + self.timeout_seconds
                while True:
                    try:
                        status = call("status", list_id=list_id)
                    except EmailVerificationError as exc:
                        if "not valid" not in str(exc):
                            raise
                        raise BulkUploadUnconfirmed(
                            f"DeBounce no longer knows bulk list {list_id} ({exc}); run "
                            f"`homeowner debounce-job {key} --forget`, then the partition again"
                        ) from None
                    state = str(status.get("status", "")).lower()
                    if state == "failed":
                        jobs.update(key, "failed", list_id)
                        raise BulkJobFailed(
                            f"DeBounce bulk list {list_id} ended `failed` ({len(addresses)} addresses); "
                            "run the partition again to upload the list anew"
                        )
                    if state == "completed" and status.get("download_link"):
                        break
                    if time.monotonic() > deadline:
                        raise EmailVerificationError(
                            f"DeBounce bulk list {list_id} not finished before the timeout; "
                            "a rerun resumes the same list"
                        )
                    time.sleep(self.poll_seconds)
                text = self._download(client, status["download_link"], policy)
        finally:
            # Homeowners' addresses: gone from storage once DeBounce's answer is in, or failed.
            self._delete_listing(listing_path)
        rows = _result_rows(text, addresses)
        jobs.update(key, "completed", list_id)
        return rows

    def _delete_listing(self, path: str) -> None:
        """Delete the bulk address list; a failed delete is logged, never hides the outcome."""
        try:
            self.artifacts.delete(path)
        except Exception as exc:  # noqa: BLE001 - never hide the verification's own outcome
            logging.getLogger(__name__).warning(
                f"bulk address list {path} not deleted from storage ({type(exc).__name__}); delete it by hand"
            )

    def _upload(
        self,
        client: httpx.Client,
        url: str,
        list_url: str,
        policy: RetryPolicy,
        jobs: BulkJobs,
        key: str,
    ) -> str:
        """Hand DeBounce the list once. Only a clear refusal (429, or an error answer) is safe to
        repeat or forget; a lost answer or a 5xx may hide a paid job, so it is never re-sent."""
        for attempt in range(policy.max_attempts):
            try:
                response = client.get(url, params={"url": list_url, "api": self.api_key})
            except httpx.TransportError:
                raise BulkUploadUnconfirmed(_unconfirmed_message(key, jobs.get(key))) from None
            if response.status_code == 429:
                time.sleep(policy.retry_after(response, attempt))
                continue
            if response.status_code >= 500:
                raise BulkUploadUnconfirmed(_unconfirmed_message(key, jobs.get(key)))
            try:
                answer = _debounce_answer(response, "bulk upload")
            except EmailVerificationError:
                jobs.forget(key)  # refused outright: nothing was created
                raise
            return str(answer["list_id"])
        jobs.forget(key)
        raise EmailVerificationError(
            f"DeBounce bulk upload refused {policy.max_attempts} times (HTTP 429)"
        )

    @staticmethod
    def _download(client: httpx.Client, url: str, policy: RetryPolicy) -> str:
        """The result CSV; a connection dropped halfway is retried like a 5xx."""
        for attempt in range(policy.max_attempts):
            try:
                response = client.get(url)
                if response.status_code < 500 and response.status_code != 429:
                    if response.status_code >= 300:  # a redirect too: never followed
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


def _debounce_answer(response: httpx.Response, what: str) -> dict:
    """The `debounce` object of a success answer; DeBounce's error (never the URL) otherwise."""
    try:
        body = response.json() if response.content else {}
    except ValueError:
        body = {}
    if response.status_code >= 400 or str(body.get("success")) != "1":
        message = (body.get("debounce") or {}).get("error") or f"HTTP {response.status_code}"
        raise EmailVerificationError(f"DeBounce {what} refused: {message}")
    return body["debounce"]


def _resumable(job: dict | None) -> bool:
    """A recorded job worth polling instead of uploading: still processing, or completed within
    a day (its result file is still there; an older list is verified afresh when asked again)."""
    if job is None or not job["list_id"]:
        return False
    if job["status"] == "processing":
        return True
    age = datetime.now(UTC) - job["updated_at"]
    return job["status"] == "completed" and age.total_seconds() < 86_400


def _unconfirmed_message(key: str, job: dict | None) -> str:
    sent = f" at {job['updated_at']:%Y-%m-%d %H:%M %Z}" if job and job.get("updated_at") else ""
    count = f"{job['address_count']} addresses" if job else "the list"
    return (
        f"a DeBounce bulk upload of {count} (file debounce/{key}.csv) was sent{sent} but its "
        "answer was lost, and DeBounce has no API to look lists up, so it is not sent again: "
        f"check the DeBounce dashboard, then run `homeowner debounce-job {key} --list-id ID` "
        f"if the list is there, or `homeowner debounce-job {key} --forget` if it is not"
    )


def _result_rows(text: str, addresses: list[str]) -> list[dict]:
    """The result CSV as verdict rows, in `addresses` order; columns matched by name."""
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


class BulkJobs:
    """`debounce_bulk_jobs`: the bulk lists handed to DeBounce. Without a database (a plain
    `verify`), nothing is remembered and each call uploads once."""

    def __init__(self, conn_url: str | None) -> None:
        self.conn_url = conn_url

    def get(self, key: str) -> dict | None:
        if self.conn_url is None:
            return None
        with db.connect(self.conn_url) as conn, conn.cursor(row_factory=dict_row) as cur:
            return cur.execute(
                "select listing_key, address_count, storage_path, list_id, status, updated_at "
                "from debounce_bulk_jobs where listing_key = %s",
                [key],
            ).fetchone()

    def begin(self, key: str, count: int, path: str) -> None:
        """Written (and committed) before the upload is sent."""
        self._run(
            "insert into debounce_bulk_jobs (listing_key, address_count, storage_path, status) "
            "values (%s, %s, %s, 'uploading') on conflict (listing_key) do update set "
            "address_count = excluded.address_count, storage_path = excluded.storage_path, "
            "list_id = null, status = 'uploading', updated_at = now()",
            [key, count, path],
        )

    def update(self, key: str, status: str, list_id: str) -> None:
        self._run(
            "update debounce_bulk_jobs set status = %s, list_id = %s, updated_at = now() "
            "where listing_key = %s",
            [status, list_id, key],
        )

    def record(self, key: str, list_id: str) -> bool:
        """A person found the list on the dashboard: the next run polls it (no new upload)."""
        return self._run(
            "update debounce_bulk_jobs set status = 'processing', list_id = %s, updated_at = now() "
            "where listing_key = %s",
            [list_id, key],
        )

    def forget(self, key: str) -> bool:
        return self._run("delete from debounce_bulk_jobs where listing_key = %s", [key])

    def _run(self, sql: str, params: list) -> bool:
        if self.conn_url is None:
            return False
        with db.transaction(self.conn_url) as conn:
            return conn.execute(sql, params).rowcount > 0
