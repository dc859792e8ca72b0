"""Cole X Dates through Playwright: one state's monthly pull, cut into exports under the cap.

A pull logs in with the state's credentials (read from the environment at call time, never
logged), counts each ZIP unless counts are known, plans exports with first-fit decreasing
(a ZIP over the cap split by purchase-day ranges), re-checks each export's count, exports,
downloads, and checks that the CSV holds the records the site showed.

Recording rule: Playwright traces record the values typed with `fill()`, so tracing starts only
after login has finished (and stops before any new login); screenshots are taken only after
password and code fields are emptied.
"""

from __future__ import annotations

import csv
import io
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TypeVar

import pyotp
from dagster import ConfigurableResource
from pydantic import Field

from homeowner_dagster import settings
from homeowner_dagster.addresses import COLE_URL, service_address
from homeowner_dagster.leads import export_chunks
from homeowner_dagster.leads.export_chunks import EXPORT_CAP, ExportChunk
from homeowner_dagster.resources.artifacts import ArtifactStoreResource
from homeowner_dagster.resources.cole.errors import (
    AuthFailed,
    ColeError,
    CountMismatch,
    SessionExpired,
)
from homeowner_dagster.resources.cole.login_lock import cole_login_lock
from homeowner_dagster.resources.cole.pages import ColePages, SearchForm

CHROMIUM_ARGS = list(settings.CHROMIUM_ARGS)
T = TypeVar("T")


@dataclass(frozen=True)
class ColeFilters:
    """Optional search filters (the client's approved filters)."""

    home_value_max: int | None = None
    purchase_year_from: int | None = None
    purchase_year_to: int | None = None


@dataclass(frozen=True)
class ColeExport:
    """One downloaded CSV and what it holds."""

    name: str
    path: Path
    zips: tuple[str, ...]
    day_range: tuple[int, int] | None
    shown_count: int
    rows: int


@dataclass
class ColePull:
    """A state's pull: the files, the per-ZIP counts, and how many exports it took."""

    state: str
    month: date
    exports: list[ColeExport]
    zip_counts: dict[str, int]
    lower_bound: int
    relogins: int = 0
    retries: int = 0

    @property
    def exports_used(self) -> int:
        return len(self.exports)

    @property
    def total_rows(self) -> int:
        return sum(e.rows for e in self.exports)


@dataclass
class _Credentials:
    username: str
    password: str
    totp_secret: str | None

    def __repr__(self) -> str:  # never show secrets in logs or tracebacks
        return f"_Credentials(username={self.username!r}, password=***, totp=***)"


def credentials_from_env(state: str) -> _Credentials:
    """COLE_<STATE>_USERNAME / _PASSWORD / optional _TOTP_SECRET, read at call time."""
    prefix = f"COLE_{state.upper()}_"
    username = os.environ.get(prefix + "USERNAME")
    password = os.environ.get(prefix + "PASSWORD")
    if not username or not password:
        raise AuthFailed(
            f"no Cole credentials for {state}: set {prefix}USERNAME and {prefix}PASSWORD, "
            "then run `homeowner check`"
        )
    return _Credentials(username, password, os.environ.get(prefix + "TOTP_SECRET") or None)


def csv_record_count(path: Path) -> int:
    """Data rows of a CSV with a header row (quoted newlines counted once)."""
    text = path.read_bytes().decode("cp1252", errors="replace")
    rows = sum(1 for _ in csv.reader(io.StringIO(text)))
    return max(rows - 1, 0)


class ColeResource(ConfigurableResource):
    """Cole X Dates, driven by Chromium. Credentials: COLE_<STATE>_USERNAME, _PASSWORD,
    optional _TOTP_SECRET. The site's address is COLE_URL (required, no default: Cole documents
    none), Chromium's HOMEOWNER_CHROMIUM, the login locks' database HOMEOWNER_DATABASE_URL: the
    deployment's settings, never run config."""

    headless: bool = True
    timeout_ms: int = Field(default=30_000, description="per page and per download")
    max_attempts: int = Field(default=3, description="tries of one step on transient errors")
    backoff_seconds: float = Field(default=1.0, description="first wait; doubles per retry")
    max_retry_after_seconds: float = Field(
        default=120.0, description="longest wait a 429's Retry-After can impose per retry"
    )
    max_relogins: int = Field(default=3, description="logins again after an expired session")
    artifacts: ArtifactStoreResource

    def base_url(self) -> str:
        """COLE_URL, checked (https, or the sandbox's loopback server)."""
        return service_address(COLE_URL)

    def _executable(self) -> str | None:
        configured = os.environ.get(settings.CHROMIUM_ENV)
        if configured:
            return configured
        return "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None

    @contextmanager
    def _session(
        self, state: str, month: date, progress: Callable[[str], None] | None
    ) -> Iterator[_ColeSession]:
        from playwright.sync_api import sync_playwright

        base_url = self.base_url()  # refused before any credential is read or typed
        creds = credentials_from_env(state)
        # One session per login, however the run was launched: wait here for the login.
        lock_url = os.environ.get(settings.DATABASE_URL_ENV) or None
        with (
            cole_login_lock(creds.username, state.upper(), lock_url, progress),
            sync_playwright() as playwright,
        ):
            browser = playwright.chromium.launch(
                executable_path=self._executable(), headless=self.headless, args=CHROMIUM_ARGS
            )
            try:
                session = _ColeSession(
                    self, browser, base_url, state.upper(), month, creds, progress
                )
                try:
                    yield session
                except ColeError as error:
                    session.capture(error)
                    raise
                finally:
                    session.close()
            finally:
                browser.close()

    def pull(
        self,
        state: str,
        zips: list[str],
        month: date,
        filters: ColeFilters | None = None,
        known_counts: dict[str, int] | None = None,
        download_dir: Path | None = None,
        progress: Callable[[str], None] | None = None,
    ) -> ColePull:
        """Export every record of `zips` for renewal `month` in as few CSVs under the cap as
        the counts allow; resumes after an expired session without fetching a file twice."""
        filters = filters or ColeFilters()
        zips = list(dict.fromkeys(zips))
        out_dir = Path(download_dir or tempfile.mkdtemp(prefix="cole-pull-"))
        out_dir.mkdir(parents=True, exist_ok=True)
        with self._session(state, month, progress) as s:
            s.login()
            counts = {z: known_counts[z] for z in zips if known_counts and z in known_counts}
            for zip_code in zips:
                if zip_code not in counts:
                    counts[zip_code] = s.step(
                        f"count {zip_code}", lambda z=zip_code: s.count([z], filters)
                    )
                    s.say(f"count {zip_code}: {counts[zip_code]:,}")

            def count_days(zip_code: str, first: int, last: int) -> int:
                return s.step(
                    f"count {zip_code} days {first}-{last}",
                    lambda: s.count([zip_code], filters, (first, last)),
                )

            queue = export_chunks.plan_exports(counts, count_days)
            s.say(f"plan: {len(queue)} exports for {sum(counts.values()):,} records")
            exports: list[ColeExport] = []
            index = 0
            while queue:
                chunk = queue.pop(0)
                result = s.step(
                    f"export {chunk.label}",
                    lambda c=chunk, i=index: s.export_chunk(c, filters, out_dir, i + 1),
                )
                if isinstance(result, list):  # the chunk grew past the cap: re-planned
                    queue[0:0] = result
                    continue
                index += 1
                if result is not None:
                    exports.append(result)
                    s.say(f"export {index}: {result.rows:,} records ({result.name})")
            total = sum(counts.values())
            return ColePull(
                state.upper(),
                month,
                exports,
                counts,
                export_chunks.lower_bound(total),
                relogins=s.relogins,
                retries=s.retries,
            )

    def count(
        self,
        state: str,
        zips: list[str],
        month: date,
        filters: ColeFilters | None = None,
        progress: Callable[[str], None] | None = None,
    ) -> int:
        """Records the site shows for `zips` in renewal `month` (one search, no export)."""
        with self._session(state, month, progress) as s:
            s.login()
            return s.step(
                "count", lambda: s.count(list(dict.fromkeys(zips)), filters or ColeFilters())
            )

    def count_each(
        self,
        state: str,
        zips: list[str],
        month: date,
        filters: ColeFilters | None = None,
        progress: Callable[[str], None] | None = None,
    ) -> dict[str, int]:
        """Records per ZIP, one search each, in one login (gap analysis' expected yields)."""
        out: dict[str, int] = {}
        with self._session(state, month, progress) as s:
            s.login()
            for zip_code in dict.fromkeys(zips):
                out[zip_code] = s.step(
                    f"count {zip_code}", lambda z=zip_code: s.count([z], filters or ColeFilters())
                )
        return out


@dataclass
class _ColeSession:
    """One browser context: login, steps with retries, artifacts on failure."""

    resource: ColeResource
    browser: object
    base_url: str
    state: str
    month: date
    creds: _Credentials
    progress: Callable[[str], None] | None
    relogins: int = 0
    retries: int = 0
    tracing: bool = False
    logged_in: bool = False
    _downloaded: set[tuple[tuple[str, ...], tuple[int, int] | None]] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.context = self.browser.new_context(accept_downloads=True)  # type: ignore[attr-defined]
        self.pages = ColePages(self.context.new_page(), self.base_url, self.resource.timeout_ms)

    def say(self, message: str) -> None:
        if self.progress:
            self.progress(message)

    # --- login and recording ---------------------------------------------------------------

    def _start_trace(self) -> None:
        if not self.tracing:
            self.pages.leave_login()
            self.context.tracing.start(screenshots=False, snapshots=True)
            self.tracing = True

    def _stop_trace(self, path: Path | None = None) -> None:
        if self.tracing:
            self.context.tracing.stop(path=path)
            self.tracing = False

    def login(self) -> None:
        """Log in (retrying transient errors) with nothing recorded, then start the trace."""
        self._stop_trace()  # never record a login
        self.logged_in = False
        creds = self.creds

        def attempt() -> None:
            needs_code = self.pages.login(self.state, creds.username, creds.password)
            if needs_code:
                code = pyotp.TOTP(creds.totp_secret).now() if creds.totp_secret else None
                self.pages.submit_totp(self.state, code)

        self.step("log in", attempt, relogin=False)
        self.logged_in = True
        self.say(f"logged in to Cole for {self.state}")
        self._start_trace()

    def step(self, what: str, action: Callable[[], T], relogin: bool = True) -> T:
        """Run one idempotent step; retry transient errors with backoff, log in again on an
        expired session (the step restarts from a fresh search page)."""
        attempt = 0
        while True:
            try:
                return action()
            except SessionExpired as error:
                if relogin:
                    if self.relogins >= self.resource.max_relogins:
                        raise
                    self.relogins += 1
                    self.say(f"{what}: session expired, logging in again")
                    self.login()
                    continue
                # Expired during the login itself: try the login again like any transient error.
                attempt += 1
                if attempt >= self.resource.max_attempts:
                    raise
                self.retries += 1
                self.say(f"{what}: {type(error).__name__}, retry {attempt}")
                time.sleep(self.resource.backoff_seconds)
                self.pages.reset()
            except ColeError as error:
                attempt += 1
                if not error.transient or attempt >= self.resource.max_attempts:
                    raise
                self.retries += 1
                wait = error.retry_after
                if wait is None:
                    wait = self.resource.backoff_seconds * 2 ** (attempt - 1)
                wait = min(wait, self.resource.max_retry_after_seconds)
                self.say(f"{what}: {type(error).__name__}, retry {attempt} in {wait:.1f}s")
                time.sleep(wait)
                self.pages.reset()

    def capture(self, error: ColeError) -> None:
        """Screenshot and trace of the failure into the artifact store; links on the error."""
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
        # A changed page names the selector key to correct in selectors.toml.
        selector = getattr(error, "selector_key", None)
        what = f"{type(error).__name__}-{selector}" if selector else type(error).__name__
        key = f"cole/{self.state}/{self.month:%Y-%m}/{stamp}-{what}"
        store = self.resource.artifacts
        try:
            self.pages.blank_secrets()
            if not self.tracing:  # failed during login: record only the page it ended on
                self.context.tracing.start(screenshots=False, snapshots=True)
                self.tracing = True
            shot = self.pages.page.screenshot(full_page=True)
            error.screenshot_url = store.put_bytes(shot, f"{key}-screenshot.png", "image/png")
            with tempfile.TemporaryDirectory() as tmp:
                trace = Path(tmp) / "trace.zip"
                self._stop_trace(trace)
                error.trace_url = store.put(trace, f"{key}-trace.zip", "application/zip")
        except Exception as exc:  # noqa: BLE001 - never hide the real failure
            self.say(f"could not store failure artifacts: {exc}")

    def close(self) -> None:
        try:
            self._stop_trace()
            if self.logged_in:
                self.pages.logout()  # free the login at the site too, not only our lock
        finally:
            self.context.close()

    # --- the work --------------------------------------------------------------------------

    def _form(
        self, zips: list[str] | tuple[str, ...], filters: ColeFilters, days: tuple[int, int] | None
    ) -> SearchForm:
        return SearchForm(
            self.state,
            tuple(zips),
            self.month,
            filters.home_value_max,
            filters.purchase_year_from,
            filters.purchase_year_to,
            days,
        )

    def count(
        self, zips: list[str], filters: ColeFilters, days: tuple[int, int] | None = None
    ) -> int:
        return self.pages.search(self._form(zips, filters, days))

    def export_chunk(
        self, chunk: ExportChunk, filters: ColeFilters, out_dir: Path, number: int
    ) -> ColeExport | list[ExportChunk] | None:
        """Search, re-check the count, export and download one chunk.

        Returns a re-plan (smaller chunks) when the count grew past the cap since planning,
        None for a chunk that is empty now.
        """
        key = (chunk.zips, chunk.day_range)
        if key in self._downloaded:
            raise RuntimeError(f"chunk {chunk.label} was already downloaded")  # a bug, not the site
        shown = self.pages.search(self._form(chunk.zips, filters, chunk.day_range))
        if shown > EXPORT_CAP:
            return self._replan(chunk, filters)
        if shown == 0:
            return None
        self.pages.export()  # a refusal here (count under the cap) is the site's word: raise
        days = f"-days{chunk.day_range[0]:02d}-{chunk.day_range[1]:02d}" if chunk.day_range else ""
        name = f"cole-{self.state}-{self.month:%Y-%m}-{number:02d}{days}.csv"
        path = self.pages.download(out_dir / name)
        rows = csv_record_count(path)
        if rows != shown:
            raise CountMismatch(
                f"{name}: the site showed {shown:,} records, the CSV holds {rows:,}"
            )
        self._downloaded.add(key)
        return ColeExport(name, path, chunk.zips, chunk.day_range, shown, rows)

    def _replan(self, chunk: ExportChunk, filters: ColeFilters) -> list[ExportChunk]:
        self.say(f"{chunk.label}: grew past the cap since planning, re-planning")
        if len(chunk.zips) == 1:
            first, last = chunk.day_range or (1, 31)
            zip_code = chunk.zips[0]
            return export_chunks.split_zip(
                zip_code,
                lambda z, a, b: self.count([z], filters, (a, b)),
                first_day=first,
                last_day=last,
            )
        counts = {z: self.count([z], filters, chunk.day_range) for z in chunk.zips}
        return export_chunks.plan_exports(counts, lambda z, a, b: self.count([z], filters, (a, b)))
