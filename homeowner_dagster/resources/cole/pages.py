"""The page steps of the Cole X Dates site; the selectors they use are in `selectors.toml`.

When the live site's markup changes, edit `selectors.toml` (each element has ordered
fallbacks); this module changes only when the flow does (a new page, a new step). The markup is
a guess (no public description exists, see sandbox/README.md); the sandbox site renders it.

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
from homeowner_dagster.resources.cole.selectors import SelectorBook, book
from homeowner_dagster.resources.retry_after import InvalidRetryAfter, retry_after_seconds

# The 13 fields the SOP ticks, by the site's field keys.
SOP_FIELDS: tuple[str, ...] = COLE_SOP_FIELDS
LIST_TYPE = "Emailing"


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
    """The page object: one Playwright page on the Cole site.

    Elements are named by key (selectors.toml); `matched` records, per key, the selector that
    found it, so preflight can report which fallback the live site needed.
    """

    def __init__(
        self, page: Page, base_url: str, timeout_ms: int, selectors: SelectorBook | None = None
    ) -> None:
        self.page = page
        self.base_url = base_url.rstrip("/")
        self.timeout_ms = timeout_ms
        self.book = selectors or book()
        self.matched: dict[str, str] = {}
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

    def _submit(self, what: str, key: str) -> None:
        """Click the submit control `key` and wait for the page it leads to."""
        selector = self._need(key, what)

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

    def locate(self, key: str) -> str | None:
        """The first of `key`'s selectors present on the page now (remembered), or None."""
        for selector in self.book.candidates(key):
            if self.page.locator(selector).count() > 0:
                self.matched[key] = selector
                return selector
        return None

    def _present(self, key: str) -> bool:
        return self.locate(key) is not None

    def _text(self, key: str) -> str:
        selector = self.locate(key)
        return self.page.locator(selector).first.inner_text() if selector else ""

    def survey(self, page_name: str) -> dict[str, str | None]:
        """Every key the page `page_name` must hold -> the selector that found it (None: missing).

        One script for the whole page (the selectors are plain CSS), not a round trip per selector.
        """
        keys = self.book.keys(page_name)
        found = self._guard(
            f"survey the {page_name} page",
            lambda: self.page.evaluate(
                "lists => lists.map(l => l.findIndex(s => document.querySelector(s) !== null))",
                [list(self.book.candidates(k)) for k in keys],
            ),
        )
        out: dict[str, str | None] = {}
        for key, index in zip(keys, found, strict=True):
            out[key] = self.book.candidates(key)[index] if index >= 0 else None
            if out[key]:
                self.matched[key] = out[key]  # type: ignore[assignment]
        return out

    def _need(self, key: str, what: str) -> str:
        """The selector of `key` on this page; else say which page the site showed instead."""
        found = self.locate(key)
        if found:
            return found
        if self._present("captcha"):
            raise CaptchaBlocked(f"{what}: the site shows a captcha page")
        if key != "login_form" and self._present("login_form"):
            raise SessionExpired(f"{what}: the site sent us back to the login page")
        candidates = self.book.candidates(key)
        try:
            # Pages are server-rendered: once loaded, a missing element will not come.
            wait_ms = min(self.timeout_ms, 3_000)
            self.page.locator(", ".join(candidates)).first.wait_for(
                state="attached", timeout=wait_ms
            )
        except PlaywrightTimeout as exc:
            raise SelectorMissing(
                f"{what}: no element for selector key {key!r} on {self.page.url} (tried "
                f"{len(candidates)}: {', '.join(candidates)}); add the page's selector first in "
                "resources/cole/selectors.toml",
                selector_key=key,
            ) from exc
        return self.locate(key) or candidates[0]

    # --- login (never traced) ---------------------------------------------------------------

    def _on_site(self, what: str) -> None:
        """Credentials are typed only on COLE_URL's own origin: a redirect elsewhere stops here."""
        here, home = urlsplit(self.page.url), urlsplit(self.base_url)
        if (here.scheme, here.netloc) != (home.scheme, home.netloc):
            raise LoginOffSite(
                f"{what} is at {here.scheme}://{here.hostname}, not COLE_URL's {home.scheme}://"
                f"{home.hostname}: nothing was typed there; check COLE_URL (`homeowner check`)"
            )

    def open_login(self, state: str) -> None:
        """The state's login page, with its form."""
        self._goto(self.book.paths["login"].format(state=state))
        self._need("login_form", "login page")

    def submit_login(self, state: str, username: str, password: str) -> bool:
        """Fill and send the open login form; True when the site then asks for a TOTP code.

        A user-agreement box (the sister product's form) is ticked when the page has one.
        """
        self._on_site("the login page")
        self._guard(
            "fill login", lambda: self.page.fill(self._need("username", "login form"), username)
        )
        self._guard(
            "fill login", lambda: self.page.fill(self._need("password", "login form"), password)
        )
        agreement = self.locate("user_agreement")
        if agreement:
            self._guard("tick the user agreement", lambda: self.page.check(agreement))
        self._submit("log in", "login_button")
        if self._present("login_error") or self._present("login_form"):
            message = self._text("login_error") or "still on the login page"
            if "session has expired" in message.lower():
                # Sent back to the login page by an expiry right after logging in: not a bad
                # password, so it must not stop the run as one.
                raise SessionExpired(f"Cole's {state} session expired while logging in")
            raise AuthFailed(f"Cole refused the {state} login: {message}")
        return self._present("mfa_form")

    def login(self, state: str, username: str, password: str) -> bool:
        """Log in; True when the site then asks for a TOTP code."""
        self.open_login(state)
        return self.submit_login(state, username, password)

    def submit_totp(self, state: str, code: str | None) -> None:
        if code is None:
            raise MfaRequired(
                f"Cole asks for a TOTP code for {state}; set COLE_{state}_TOTP_SECRET"
            )
        self._on_site("the code page")
        self._guard("fill code", lambda: self.page.fill(self._need("mfa_code", "code form"), code))
        self._submit("verify code", "mfa_button")
        if self._present("mfa_error") or self._present("mfa_form"):
            raise AuthFailed(f"Cole refused the TOTP code for {state}")

    def logout(self) -> None:
        """Log out at the end of a session (best effort: the site also ends idle sessions)."""
        try:
            self.page.goto(
                self.base_url + self.book.paths["logout"], timeout=min(self.timeout_ms, 5_000)
            )
        except PlaywrightError:
            pass

    def blank_secrets(self) -> None:
        """Empty password and code fields, so a screenshot or trace snapshot cannot show them."""
        try:
            self.page.eval_on_selector_all(
                self.book.any_of("password", "mfa_code"), "els => els.forEach(e => e.value = '')"
            )
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

    def open_search(self) -> None:
        """A fresh search page, with its form."""
        self._goto(self.book.paths["search"])
        self._need("search_form", "search page")

    def submit_search(self, form: SearchForm) -> int:
        """Fill the open search form and return the record count the site shows."""
        page = self.page
        zip_field = self._need("zip_codes", "search form")

        def fill() -> None:
            page.select_option(self._need("licensed_state", "search form"), form.state)
            page.select_option(self._need("list_type", "search form"), LIST_TYPE)
            page.fill(zip_field, ",".join(form.zips))  # no spaces: the site refuses them
            page.select_option(self._need("renewal_month", "search form"), f"{form.month:%Y-%m}")
            # One script for the 13 boxes: 13 separate clicks cost a second per search.
            page.eval_on_selector_all(
                self._need("field_boxes", "search form"),
                "(els, keep) => els.forEach(e => { e.checked = keep.includes(e.value); })",
                list(SOP_FIELDS),
            )
            values = {
                "home_value_max": form.home_value_max,
                "purchase_year_from": form.purchase_year_from,
                "purchase_year_to": form.purchase_year_to,
                "purchase_day_from": form.day_range[0] if form.day_range else None,
                "purchase_day_to": form.day_range[1] if form.day_range else None,
            }
            for key, value in values.items():
                if value is not None:  # a fresh form is empty: skip the round trips
                    page.fill(self._need(key, "search form"), str(value))

        self._guard("fill search form", fill)
        self._submit("search", "search_button")
        if self._present("search_error"):
            raise SearchRefused(f"the search form was refused: {self._text('search_error')}")
        counter = page.locator(self._need("record_count", "results page")).first
        count = counter.get_attribute("data-count")
        if count is None:
            count = counter.inner_text()
        return int(count.replace(",", "").strip())

    def search(self, form: SearchForm) -> int:
        """Fill the search form from a fresh page and return the record count the site shows."""
        self.open_search()
        return self.submit_search(form)

    def export(self) -> None:
        """Press Export on the results page; the site refuses 10,000 or more records."""
        self._submit("export", "export_button")
        if self._present("export_error"):
            raise ExportCapExceeded(f"Cole refused the export: {self._text('export_error')}")
        self._need("download_link", "export page")

    def download(self, target: Path) -> Path:
        """Click the download link and save the CSV to `target`."""
        link = self._need("download_link", "export page")

        def fetch():  # noqa: ANN202 - playwright Download
            with self.page.expect_download(timeout=self.timeout_ms) as info:
                self.page.click(link)
            return info.value

        download = self._guard("download", fetch)
        failure = self._guard("download", download.failure)
        if failure:
            raise DownloadFailed(f"the CSV download broke off ({failure})")
        target.parent.mkdir(parents=True, exist_ok=True)
        self._guard("save download", lambda: download.save_as(target))
        return target
