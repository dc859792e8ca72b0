"""Every selector and page step of the Cole X Dates site, in one place.

When the live site changes, this is the one module to edit. The markup is a guess (no public
description exists, see sandbox/README.md); the sandbox site renders the same ids.

Each step ends by classifying the page it landed on: 429 / 5xx, the login page (session
expired), the captcha interstitial, or the page it expected; an expected element that is not
there on a page that did load is `SelectorMissing`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit

from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import Page, Response
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from homeowner_dagster.leads.columns import COLE_SOP_FIELDS
from homeowner_dagster.resources.cole.errors import (
    AuthFailed,
    BadRetryAfter,
    CaptchaBlocked,
    ColeError,
    DownloadFailed,
    ExportCapExceeded,
    LoginOffSite,
    MfaRequired,
    RateLimited,
    SearchRefused,
    SelectorMissing,
    SessionExpired,
    SiteTimeout,
    SiteUnavailable,
)
from homeowner_dagster.resources.retry_after import InvalidRetryAfter, retry_after_seconds

# The 13 fields the SOP ticks, by the site's field keys.
SOP_FIELDS: tuple[str, ...] = COLE_SOP_FIELDS
LIST_TYPE = "Emailing"


class Sel:
    """CSS selectors (guesses, see module docstring)."""

    login_form = "#login-form"
    username = "#username"
    password = "#password"
    login_button = "#login-button"
    login_error = "#login-error"
    mfa_form = "#mfa-form"
    mfa_code = "#otp"
    mfa_button = "#verify-button"
    mfa_error = "#mfa-error"
    captcha = "#captcha-form, .g-recaptcha, iframe[src*='recaptcha']"
    search_form = "#search-form"
    licensed_state = "#licensed-state"
    list_type = "#list-type"
    zip_codes = "#zip-codes"
    renewal_month = "#renewal-month"
    field_boxes = "#search-form input[type=checkbox][name=fields]"
    home_value_max = "#home-value-max"
    purchase_year_from = "#purchase-year-from"
    purchase_year_to = "#purchase-year-to"
    purchase_day_from = "#purchase-day-from"
    purchase_day_to = "#purchase-day-to"
    search_button = "#search-button"
    search_error = "#search-error"
    record_count = "#record-count"
    export_button = "#export-button"
    export_error = "#export-error"
    download_link = "#download-link"
    secrets = "input[type=password], #otp, input[autocomplete=one-time-code]"


class Urls:
    """URL paths (guesses)."""

    login = "/login?state={state}"
    search = "/search"
    logout = "/logout"


@dataclass(frozen=True)
class SearchForm:
    """What one search asks for."""

    state: str
    zips: Sequence[str]
    month: date
    home_value_max: int | None = None
    purchase_year_from: int | None = None
    purchase_year_to: int | None = None
    day_range: tuple[int, int] | None = None


T = TypeVar("T")


class ColePages:
    """The page object: one Playwright page on the Cole site."""

    def __init__(self, page: Page, base_url: str, timeout_ms: int) -> None:
        self.page = page
        self.base_url = base_url.rstrip("/")
        self.timeout_ms = timeout_ms
        page.set_default_timeout(timeout_ms)
        page.set_default_navigation_timeout(timeout_ms)

    # --- plumbing -------------------------------------------------------------------------

    def _guard(self, what: str, action: Callable[[], T]) -> T:
        """Run a Playwright action; turn its timeouts and network errors into ColeErrors."""
        try:
            return action()
        except ColeError:
            raise
        except PlaywrightTimeout as exc:
            raise SiteTimeout(f"{what}: no answer within {self.timeout_ms} ms") from exc
        except PlaywrightError as exc:
            raise SiteUnavailable(f"{what}: {exc.message.splitlines()[0]}") from exc

    def _goto(self, path: str) -> None:
        response = self._guard(f"open {path}", lambda: self.page.goto(self.base_url + path))
        self._check_response(response)

    def _submit(self, what: str, selector: str) -> None:
        """Click a submit control and wait for the page it leads to."""

        def go() -> Response | None:
            with self.page.expect_navigation(wait_until="load") as nav:
                self.page.click(selector)
            return nav.value

        self._check_response(self._guard(what, go))

    def _check_response(self, response: Response | None) -> None:
        if response is None:
            return
        if response.status == 429:
            header = response.headers.get("retry-after")
            try:
                retry_after = retry_after_seconds(header)
            except InvalidRetryAfter as exc:
                raise BadRetryAfter(f"Cole answered 429 with an unreadable {exc}") from None
            raise RateLimited("Cole answered 429 Too Many Requests", retry_after=retry_after)
        if response.status >= 500:
            raise SiteUnavailable(f"Cole answered HTTP {response.status}")

    def _present(self, selector: str) -> bool:
        return self.page.locator(selector).count() > 0

    def _expect(self, selector: str, what: str) -> None:
        """The page must be the one holding `selector`; else say which page it is instead."""
        if self._present(selector):
            return
        if self._present(Sel.captcha):
            raise CaptchaBlocked(f"{what}: the site shows a captcha page")
        if selector != Sel.login_form and self._present(Sel.login_form):
            raise SessionExpired(f"{what}: the site sent us back to the login page")
        try:
            # Pages are server-rendered: once loaded, a missing element will not come.
            wait_ms = min(self.timeout_ms, 3_000)
            self.page.locator(selector).first.wait_for(state="attached", timeout=wait_ms)
        except PlaywrightTimeout as exc:
            raise SelectorMissing(
                f"{what}: element {selector!r} not found on {self.page.url}"
            ) from exc

    # --- login (never traced) ---------------------------------------------------------------

    def _on_site(self, what: str) -> None:
        """Credentials are typed only on COLE_URL's own origin: a redirect elsewhere stops here."""
        here, home = urlsplit(self.page.url), urlsplit(self.base_url)
        if (here.scheme, here.netloc) != (home.scheme, home.netloc):
            raise LoginOffSite(
                f"{what} is at {here.scheme}://{here.hostname}, not COLE_URL's {home.scheme}://"
                f"{home.hostname}: nothing was typed there; check COLE_URL (`homeowner check`)"
            )

    def login(self, state: str, username: str, password: str) -> bool:
        """Log in; True when the site then asks for a TOTP code."""
        self._goto(Urls.login.format(state=state))
        self._expect(Sel.login_form, "login page")
        self._on_site("the login page")
        self._guard("fill login", lambda: self.page.fill(Sel.username, username))
        self._guard("fill login", lambda: self.page.fill(Sel.password, password))
        self._submit("log in", Sel.login_button)
        if self._present(Sel.login_error) or self._present(Sel.login_form):
            message = (
                self.page.locator(Sel.login_error).first.inner_text()
                if self._present(Sel.login_error)
                else "still on the login page"
            )
            if "session has expired" in message.lower():
                # Sent back to the login page by an expiry right after logging in: not a bad
                # password, so it must not stop the run as one.
                raise SessionExpired(f"Cole's {state} session expired while logging in")
            raise AuthFailed(f"Cole refused the {state} login: {message}")
        return self._present(Sel.mfa_form)

    def submit_totp(self, state: str, code: str | None) -> None:
        if code is None:
            raise MfaRequired(
                f"Cole asks for a TOTP code for {state}; set COLE_{state}_TOTP_SECRET"
            )
        self._on_site("the code page")
        self._guard("fill code", lambda: self.page.fill(Sel.mfa_code, code))
        self._submit("verify code", Sel.mfa_button)
        if self._present(Sel.mfa_error) or self._present(Sel.mfa_form):
            raise AuthFailed(f"Cole refused the TOTP code for {state}")

    def logout(self) -> None:
        """Log out at the end of a session (best effort: the site also ends idle sessions)."""
        try:
            self.page.goto(self.base_url + Urls.logout, timeout=min(self.timeout_ms, 5_000))
        except PlaywrightError:
            pass

    def blank_secrets(self) -> None:
        """Empty password and code fields, so a screenshot or trace snapshot cannot show them."""
        try:
            self.page.eval_on_selector_all(Sel.secrets, "els => els.forEach(e => e.value = '')")
        except PlaywrightError:
            pass

    def reset(self) -> None:
        """Stop whatever the page is still loading (after a timeout) before trying again."""
        try:
            self.page.goto("about:blank", timeout=self.timeout_ms)
        except PlaywrightError:
            pass

    def leave_login(self) -> None:
        """Navigate off a login or MFA page before anything is recorded."""
        url = self.page.url
        if "/login" in url or "/mfa" in url:
            self.blank_secrets()
            try:
                self.page.goto("about:blank")
            except PlaywrightError:
                pass

    # --- search, count, export, download ---------------------------------------------------

    def search(self, form: SearchForm) -> int:
        """Fill the search form from a fresh page and return the record count the site shows."""
        self._goto(Urls.search)
        self._expect(Sel.search_form, "search page")
        self._expect(Sel.zip_codes, "search form")
        page = self.page

        def fill() -> None:
            page.select_option(Sel.licensed_state, form.state)
            page.select_option(Sel.list_type, LIST_TYPE)
            page.fill(Sel.zip_codes, ",".join(form.zips))  # no spaces: the site refuses them
            page.select_option(Sel.renewal_month, f"{form.month:%Y-%m}")
            # One script for the 13 boxes: 13 separate clicks cost a second per search.
            page.eval_on_selector_all(
                Sel.field_boxes,
                "(els, keep) => els.forEach(e => { e.checked = keep.includes(e.value); })",
                list(SOP_FIELDS),
            )
            values = {
                Sel.home_value_max: form.home_value_max,
                Sel.purchase_year_from: form.purchase_year_from,
                Sel.purchase_year_to: form.purchase_year_to,
                Sel.purchase_day_from: form.day_range[0] if form.day_range else None,
                Sel.purchase_day_to: form.day_range[1] if form.day_range else None,
            }
            for selector, value in values.items():
                if value is not None:  # a fresh form is empty: skip the round trips
                    page.fill(selector, str(value))

        self._guard("fill search form", fill)
        self._submit("search", Sel.search_button)
        if self._present(Sel.search_error):
            message = page.locator(Sel.search_error).first.inner_text()
            raise SearchRefused(f"the search form was refused: {message}")
        self._expect(Sel.record_count, "results page")
        count = page.locator(Sel.record_count).first.get_attribute("data-count")
        if count is None:
            count = page.locator(Sel.record_count).first.inner_text()
        return int(count.replace(",", "").strip())

    def export(self) -> None:
        """Press Export on the results page; the site refuses 10,000 or more records."""
        self._expect(Sel.export_button, "results page")
        self._submit("export", Sel.export_button)
        if self._present(Sel.export_error):
            message = self.page.locator(Sel.export_error).first.inner_text()
            raise ExportCapExceeded(f"Cole refused the export: {message}")
        self._expect(Sel.download_link, "export page")

    def download(self, target: Path) -> Path:
        """Click the download link and save the CSV to `target`."""

        def fetch():  # noqa: ANN202 - playwright Download
            with self.page.expect_download(timeout=self.timeout_ms) as info:
                self.page.click(Sel.download_link)
            return info.value

        download = self._guard("download", fetch)
        failure = self._guard("download", download.failure)
        if failure:
            raise DownloadFailed(f"the CSV download broke off ({failure})")
        target.parent.mkdir(parents=True, exist_ok=True)
        self._guard("save download", lambda: download.save_as(target))
        return target
