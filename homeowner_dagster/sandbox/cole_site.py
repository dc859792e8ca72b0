"""A stand-in for the Cole X Dates web site: server-rendered HTML forms, driven by a browser.

There is no public description of Cole's markup, so paths, element ids and messages here are
guesses (listed in sandbox/README.md); the connector keeps every selector in one page-object
module (`resources/cole/pages.py`) so that matching the live site is one edit there.

Flow: /login?state=NJ -> (optional /mfa) -> /search -> POST /search (result count) ->
POST /searches/{id}/export (refused at 10,000+) -> /exports/{id}.csv (the CSV, with headers).
"""

from __future__ import annotations

import asyncio
import html
import re
import secrets
import threading
import time
import types
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import pyotp
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import (
    HTMLResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from homeowner_dagster.sandbox import generator as default_generator
from homeowner_dagster.sandbox.faults import Faults, retry_after_header

SESSION_COOKIE = "cole_session"
EXPORT_LIMIT = 9_999
EXPORT_LIMIT_MESSAGE = (
    "Export limited to 9,999 records. Your search returned {count:,} records; "
    "please narrow your search (fewer ZIP codes) and try again."
)
ZIP_SPACES_MESSAGE = "ZIP codes must be separated by commas with no spaces."
SESSION_EXPIRED_MESSAGE = "Your session has expired. Please log in again."
WRONG_PASSWORD_MESSAGE = "Invalid username or password."
LIST_TYPES = ("Mailing", "Emailing", "Telemarketing")
# Extra fields the site offers that the SOP does not tick.
EXTRA_FIELDS = ("Mortgage_Amount", "Lender_Name", "Year_Built")
# A fixed TOTP secret for the `mfa` fault on accounts that have none (printed by the sandbox).
FAULT_TOTP_SECRET = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
DEMO_CREDENTIALS: dict[str, tuple[str, str, str | None]] = {
    "NJ": ("demo-nj", "nj-Passw0rd!", None),
    "TX": ("demo-tx", "tx-Passw0rd!", "KRSXG5CTMVRXEZLUKRSXG5CTMVRXEZLU"),
    "FL": ("demo-fl", "fl-Passw0rd!", None),
}


@dataclass
class ColeSession:
    state: str
    username: str
    mfa_pending: bool
    last_seen: float


@dataclass
class ColeSearch:
    state: str
    zips: tuple[str, ...]
    month: date
    list_type: str
    fields: tuple[str, ...]
    home_value_max: int | None
    purchase_years: tuple[int, int] | None
    day_range: tuple[int, int] | None
    count: int


@dataclass
class ColeExportRecord:
    """One export the site prepared; `completed` once a download finished in full."""

    export_id: str
    search: ColeSearch
    rows: int
    started: int = 0
    completed: int = 0


@dataclass
class ColeSiteState:
    """Accounts, sessions and what happened, for tests to inspect outcomes.

    `credentials` maps a licensed state to (username, password, TOTP secret or None).
    """

    credentials: dict[str, tuple[str, str, str | None]] = field(
        default_factory=lambda: dict(DEMO_CREDENTIALS)
    )
    shape: str = "sop"
    # `xdates` (the guessed X-Dates form) or `sister`: the sister product's ASP.NET-style single
    # form with a user-agreement box that must be ticked (vendor facts, cole-x-dates.md §5).
    login_style: str = "xdates"
    encoding: str = "cp1252"
    session_ttl_seconds: float = 30 * 60
    generator: types.ModuleType = default_generator
    sessions: dict[str, ColeSession] = field(default_factory=dict)
    searches: dict[str, ColeSearch] = field(default_factory=dict)
    exports: dict[str, ColeExportRecord] = field(default_factory=dict)
    logins: int = 0
    failed_logins: int = 0
    # Most sessions seen open at once per login (username): the real site logs out a second one.
    max_sessions_per_login: dict[str, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def open_sessions(self, username: str) -> int:
        """Sessions of `username` not logged out, expired or idle past the TTL (hold `lock`)."""
        now = time.monotonic()
        return sum(
            1
            for s in self.sessions.values()
            if s.username == username and now - s.last_seen <= self.session_ttl_seconds
        )

    # Inspection -------------------------------------------------------------------------
    @property
    def searches_run(self) -> int:
        return len(self.searches)

    @property
    def downloads_started(self) -> int:
        return sum(e.started for e in self.exports.values())

    @property
    def downloads_completed(self) -> int:
        return sum(e.completed for e in self.exports.values())

    def exports_served(self) -> list[dict[str, Any]]:
        """Every export downloaded in full: ZIPs, day range, rows, and how often."""
        return [
            {
                "export_id": e.export_id,
                "zips": e.search.zips,
                "day_range": e.search.day_range,
                "rows": e.rows,
                "downloads": e.completed,
            }
            for e in self.exports.values()
            if e.completed
        ]


# --- HTML --------------------------------------------------------------------------------

_STYLE = """
body{font-family:Arial,Helvetica,sans-serif;margin:0;background:#f4f6f8;color:#222}
header{background:#1f3a5f;color:#fff;padding:12px 24px;font-size:20px}
main{max-width:880px;margin:24px auto;background:#fff;padding:24px;border-radius:6px}
label{display:block;margin-top:10px;font-weight:bold}
.alert{padding:10px;margin:10px 0;border-radius:4px;background:#fde2e2;color:#8a1f11}
.ok{background:#e2f5e6;color:#1d5e2c}
.fields label{display:inline-block;width:32%;font-weight:normal}
"""


def _page(title: str, body: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)} | "
        f"Cole X Dates</title><style>{_STYLE}</style></head><body><header>Cole X Dates</header>"
        f"<main>{body}</main></body></html>",
        status_code=status,
    )


def _alert(message: str | None, element_id: str) -> str:
    return f"<div class='alert' id='{element_id}'>{html.escape(message)}</div>" if message else ""


def _login_page(state: str, message: str | None = None, status: int = 200) -> HTMLResponse:
    return _page(
        "Log in",
        f"<h1>Log in: {html.escape(state)}</h1>{_alert(message, 'login-error')}"
        "<form id='login-form' method='post' action='/login'>"
        f"<input type='hidden' name='state' value='{html.escape(state)}'>"
        "<label for='username'>Username</label><input id='username' name='username'>"
        "<label for='password'>Password</label>"
        "<input id='password' name='password' type='password' autocomplete='off'>"
        "<p><button id='login-button' type='submit'>Log In</button></p></form>",
        status,
    )


SISTER_FIELDS = {
    "username": "ctl00$MainContent$txtUserName",
    "password": "ctl00$MainContent$txtPassword",
    "agreement": "ctl00$MainContent$chkAgree",
    "button": "ctl00$MainContent$btnLogin",
}
AGREEMENT_MESSAGE = "You must accept the User Agreement to log in."


def _sister_login_page(state: str, message: str | None = None, status: int = 200) -> HTMLResponse:
    """The sister product's login: one ASP.NET-style form, ids and names of its control tree."""
    error = (
        f"<span id='MainContent_lblError' class='alert'>{html.escape(message)}</span>"
        if message
        else ""
    )
    f = SISTER_FIELDS
    return _page(
        "Log in",
        f"<form id='aspnetForm' method='post' action='/login?state={html.escape(state)}'>"
        "<input type='hidden' name='__VIEWSTATE' value='dDwtMTA4MzE0MjEwNTs7Pg=='>"
        f"<input type='hidden' name='state' value='{html.escape(state)}'>"
        f"<h1>Member Login: {html.escape(state)}</h1>{error}"
        f"<label for='MainContent_txtUserName'>User Name</label>"
        f"<input id='MainContent_txtUserName' name='{f['username']}' type='text'>"
        f"<label for='MainContent_txtPassword'>Password</label>"
        f"<input id='MainContent_txtPassword' name='{f['password']}' type='password'>"
        f"<p><label><input id='MainContent_chkAgree' name='{f['agreement']}' type='checkbox'> "
        "I have read and accept the User Agreement</label></p>"
        f"<p><input id='MainContent_btnLogin' name='{f['button']}' type='submit' value='Log In'></p>"
        "</form>",
        status,
    )


def _mfa_page(message: str | None = None) -> HTMLResponse:
    return _page(
        "Verify",
        "<h1>Two-step verification</h1>"
        "<p>Enter the 6-digit code from your authenticator app.</p>"
        f"{_alert(message, 'mfa-error')}"
        "<form id='mfa-form' method='post' action='/mfa'>"
        "<label for='otp'>Code</label>"
        "<input id='otp' name='otp' inputmode='numeric' autocomplete='one-time-code'>"
        "<p><button id='verify-button' type='submit'>Verify</button></p></form>",
    )


def _captcha_page() -> HTMLResponse:
    return _page(
        "Security check",
        "<h1 id='captcha-title'>Security check</h1><p>Please verify you are human.</p>"
        "<form id='captcha-form' method='post' action='/captcha'>"
        "<div class='g-recaptcha' id='captcha'>"
        "<label><input type='checkbox' name='not_a_robot'> I'm not a robot</label></div>"
        "<button type='submit'>Continue</button></form>",
    )


def _month_options(selected: str | None) -> str:
    options = []
    for year in range(2020, 2036):
        for month in range(1, 13):
            value = f"{year:04d}-{month:02d}"
            label = f"{date(year, month, 1):%B %Y}"
            sel = " selected" if value == selected else ""
            options.append(f"<option value='{value}'{sel}>{label}</option>")
    return "".join(options)


def _search_page(
    site: ColeSiteState,
    session: ColeSession,
    message: str | None = None,
    changed_layout: bool = False,
    keep_name: bool = False,
    values: dict[str, str] | None = None,
) -> HTMLResponse:
    values = values or {}
    headers = site.generator.HEADER_SHAPES[site.shape]
    boxes = "".join(
        f"<label><input type='checkbox' name='fields' value='{key}' id='field-{key}'> "
        f"{html.escape(label)}</label>"
        for key, label in [*zip(site.generator.SOP_COLUMNS, headers, strict=True)]
        + [(x, x.replace("_", " ")) for x in EXTRA_FIELDS]
    )
    # The `missing_selector` fault: a redesign renamed the ZIP field (its id; with `keep_name`
    # the form field keeps its name, so the selectors' fallback by name still finds it).
    zip_id = "zipcode-list" if changed_layout else "zip-codes"
    zip_name = "zipcode_list" if changed_layout and not keep_name else "zip_codes"
    list_options = "".join(
        f"<option{' selected' if t == values.get('list_type', 'Mailing') else ''}>{t}</option>"
        for t in LIST_TYPES
    )

    def text(name: str, label: str) -> str:
        element_id = name.replace("_", "-")
        value = html.escape(values.get(name, ""))
        return (
            f"<label for='{element_id}'>{label}</label>"
            f"<input id='{element_id}' name='{name}' value='{value}'>"
        )

    body = (
        "<h1>X-Date Search</h1>"
        f"{_alert(message, 'search-error')}"
        "<form id='search-form' method='post' action='/search'>"
        "<label for='licensed-state'>Licensed state</label>"
        f"<select id='licensed-state' name='licensed_state'><option>{session.state}</option>"
        "</select>"
        f"<label for='list-type'>List type</label><select id='list-type' name='list_type'>"
        f"{list_options}</select>"
        f"<label for='{zip_id}'>ZIP codes (comma separated, no spaces)</label>"
        f"<input id='{zip_id}' name='{zip_name}' size='80' "
        f"value='{html.escape(values.get('zip_codes', ''))}'>"
        "<label for='renewal-month'>X-Date (renewal) month</label>"
        f"<select id='renewal-month' name='renewal_month'>"
        f"{_month_options(values.get('renewal_month'))}</select>"
        f"<fieldset class='fields' id='fields'><legend>Fields</legend>{boxes}</fieldset>"
        f"{text('home_value_max', 'Home value at most ($)')}"
        f"{text('purchase_year_from', 'Purchase year from')}"
        f"{text('purchase_year_to', 'Purchase year to')}"
        f"{text('purchase_day_from', 'Purchase day of month from')}"
        f"{text('purchase_day_to', 'Purchase day of month to')}"
        "<p><button id='search-button' type='submit'>Search</button></p></form>"
        "<p><a id='logout' href='/logout'>Log out</a></p>"
    )
    return _page("Search", body)


def _results_page(search_id: str, search: ColeSearch, message: str | None = None) -> HTMLResponse:
    days = (
        f", purchase days {search.day_range[0]}-{search.day_range[1]}" if search.day_range else ""
    )
    return _page(
        "Results",
        "<h1>Search Results</h1>"
        f"<p id='result-summary'>{len(search.zips)} ZIP codes, {search.month:%B %Y}, "
        f"{html.escape(search.list_type)}{days}</p>"
        f"<p><span id='record-count' data-count='{search.count}'>{search.count:,}</span> "
        "records match your search.</p>"
        f"{_alert(message, 'export-error')}"
        f"<form id='export-form' method='post' action='/searches/{search_id}/export'>"
        "<button id='export-button' type='submit'>Export CSV</button></form>"
        "<p><a id='new-search' href='/search'>New search</a></p>",
    )


def _export_page(export: ColeExportRecord) -> HTMLResponse:
    return _page(
        "Export ready",
        "<h1>Your export is ready</h1>"
        f"<div class='alert ok' id='export-ready'>{export.rows:,} records</div>"
        f"<p><a id='download-link' href='/exports/{export.export_id}.csv'>Download CSV</a></p>"
        "<p><a id='new-search' href='/search'>New search</a></p>",
    )


# --- Parsing -----------------------------------------------------------------------------

_ZIP_RE = re.compile(r"\d{5}")


def _int_or_none(text: str | None) -> int | None:
    text = (text or "").strip().replace(",", "").replace("$", "")
    return int(text) if text else None


def _parse_search(
    site: ColeSiteState, session: ColeSession, form: dict[str, str], fields: list[str]
) -> ColeSearch | str:
    """A ColeSearch, or the message the site shows for a bad form."""
    raw_zips = form.get("zip_codes", "")
    if raw_zips.strip() == "":
        return "Enter at least one ZIP code."
    if re.search(r"\s", raw_zips):
        return ZIP_SPACES_MESSAGE
    zips = [z for z in raw_zips.split(",") if z != ""]
    bad = [z for z in zips if not _ZIP_RE.fullmatch(z)]
    if bad:
        return f"Invalid ZIP code: {bad[0]}"
    if form.get("licensed_state") != session.state:
        return "You are not licensed for that state."
    if form.get("list_type") not in LIST_TYPES:
        return "Choose a list type."
    if not fields:
        return "Select at least one field."
    try:
        month_text = form.get("renewal_month", "")
        month = date(int(month_text[:4]), int(month_text[5:7]), 1)
        value_max = _int_or_none(form.get("home_value_max"))
        year_from = _int_or_none(form.get("purchase_year_from"))
        year_to = _int_or_none(form.get("purchase_year_to"))
        day_from = _int_or_none(form.get("purchase_day_from"))
        day_to = _int_or_none(form.get("purchase_day_to"))
    except ValueError:
        return "Filters must be whole numbers."
    years = None
    if year_from is not None or year_to is not None:
        years = (year_from or 1900, year_to or 2100)
    days = None
    if day_from is not None or day_to is not None:
        days = (day_from or 1, day_to or 31)
        if not 1 <= days[0] <= days[1] <= 31:
            return "Purchase days must be between 1 and 31, from <= to."
    gen = site.generator
    count = sum(
        gen.count_for(z, month, days, home_value_max=value_max, purchase_years=years)
        for z in dict.fromkeys(zips)
    )
    return ColeSearch(
        session.state,
        tuple(dict.fromkeys(zips)),
        month,
        form["list_type"],
        tuple(fields),
        value_max,
        years,
        days,
        count,
    )


# --- App ---------------------------------------------------------------------------------


def build_cole_app(state: ColeSiteState, faults: Faults) -> Starlette:
    """The Cole X Dates site over `state`, misbehaving as `faults` says."""

    def current_session(request: Request) -> ColeSession | None:
        token = request.cookies.get(SESSION_COOKIE, "")
        with state.lock:
            session = state.sessions.get(token)
            if session is None:
                return None
            if time.monotonic() - session.last_seen > state.session_ttl_seconds:
                del state.sessions[token]
                return None
            session.last_seen = time.monotonic()
            return session

    def to_login(request: Request, expired: bool) -> Response:
        login_state = request.query_params.get("state") or request.cookies.get("cole_state", "")
        url = f"/login?state={login_state}" + ("&expired=1" if expired else "")
        return RedirectResponse(url, status_code=303)

    def session_or_redirect(request: Request) -> ColeSession | Response:
        """The signed-in session, or the redirect to the login page (expired)."""
        params = faults.peek("cole", "session_expired")
        if params is not None:
            after = int(params.get("after_downloads", 0))
            due = state.downloads_completed >= after  # `after_downloads`: expire mid-pull
            if due and faults.take("cole", "session_expired") is not None:
                token = request.cookies.get(SESSION_COOKIE, "")
                with state.lock:
                    state.sessions.pop(token, None)
        session = current_session(request)
        if session is None or session.mfa_pending:
            return to_login(request, expired=True)
        return session

    async def login_get(request: Request) -> Response:
        login_state = request.query_params.get("state", "").upper()
        if login_state not in state.credentials:
            return _page(
                "Log in",
                "<h1>Choose your state</h1><ul>"
                + "".join(
                    f"<li><a href='/login?state={s}'>{s}</a></li>"
                    for s in sorted(state.credentials)
                )
                + "</ul>",
            )
        message = SESSION_EXPIRED_MESSAGE if request.query_params.get("expired") else None
        response = login_page(login_state, message)
        response.set_cookie("cole_state", login_state)
        return response

    def login_page(login_state: str, message: str | None = None, status: int = 200) -> HTMLResponse:
        builder = _sister_login_page if state.login_style == "sister" else _login_page
        return builder(login_state, message, status)

    async def login_post(request: Request) -> Response:
        form = await request.form()
        login_state = str(form.get("state", "")).upper()
        account = state.credentials.get(login_state)
        if state.login_style == "sister":
            username = str(form.get(SISTER_FIELDS["username"], ""))
            password = str(form.get(SISTER_FIELDS["password"], ""))
            if not form.get(SISTER_FIELDS["agreement"]):
                return login_page(login_state, AGREEMENT_MESSAGE)
        else:
            username, password = str(form.get("username", "")), str(form.get("password", ""))
        refused = faults.take("cole", "wrong_password") is not None
        if refused or account is None or (username, password) != account[:2]:
            with state.lock:
                state.failed_logins += 1
            return login_page(login_state, WRONG_PASSWORD_MESSAGE, status=401)
        needs_mfa = account[2] is not None or faults.peek("cole", "mfa") is not None
        token = secrets.token_urlsafe(24)
        with state.lock:
            state.sessions[token] = ColeSession(login_state, username, needs_mfa, time.monotonic())
            state.max_sessions_per_login[username] = max(
                state.max_sessions_per_login.get(username, 0), state.open_sessions(username)
            )
            if not needs_mfa:
                state.logins += 1
        response = RedirectResponse("/mfa" if needs_mfa else "/search", status_code=303)
        response.set_cookie(SESSION_COOKIE, token, httponly=True)
        response.set_cookie("cole_state", login_state)
        return response

    def totp_secret(session: ColeSession) -> str:
        account_secret = state.credentials[session.state][2]
        fault = faults.peek("cole", "mfa") or {}
        return account_secret or fault.get("secret", FAULT_TOTP_SECRET)

    async def mfa_get(request: Request) -> Response:
        if current_session(request) is None:
            return to_login(request, expired=True)
        return _mfa_page()

    async def mfa_post(request: Request) -> Response:
        session = current_session(request)
        if session is None:
            return to_login(request, expired=True)
        form = await request.form()
        code = str(form.get("otp", "")).strip()
        if not pyotp.TOTP(totp_secret(session)).verify(code, valid_window=1):
            return _mfa_page("That code is not valid. Try again.")
        with state.lock:
            session.mfa_pending = False
            state.logins += 1
        faults.take("cole", "mfa")
        return RedirectResponse("/search", status_code=303)

    async def search_get(request: Request) -> Response:
        session = session_or_redirect(request)
        if isinstance(session, Response):
            return session
        if faults.take("cole", "captcha") is not None:
            return _captcha_page()
        changed = faults.peek("cole", "missing_selector")
        keep_name = bool((changed or {}).get("keep_name"))
        return _search_page(state, session, changed_layout=changed is not None, keep_name=keep_name)

    async def search_post(request: Request) -> Response:
        session = session_or_redirect(request)
        if isinstance(session, Response):
            return session
        form = await request.form()
        values = {k: str(v) for k, v in form.items() if k != "fields"}
        fields = [str(f) for f in form.getlist("fields")]
        parsed = _parse_search(state, session, values, fields)
        if isinstance(parsed, str):
            return _search_page(state, session, parsed, values=values)
        search_id = secrets.token_hex(8)
        with state.lock:
            state.searches[search_id] = parsed
        return _results_page(search_id, parsed)

    async def export_post(request: Request) -> Response:
        session = session_or_redirect(request)
        if isinstance(session, Response):
            return session
        search_id = request.path_params["search_id"]
        search = state.searches.get(search_id)
        if search is None or search.state != session.state:
            return _page("Not found", "<h1>Search not found</h1>", 404)
        if search.count > EXPORT_LIMIT:
            return _results_page(search_id, search, EXPORT_LIMIT_MESSAGE.format(count=search.count))
        export = ColeExportRecord(secrets.token_hex(8), search, search.count)
        with state.lock:
            state.exports[export.export_id] = export
        return _export_page(export)

    async def download(request: Request) -> Response:
        session = current_session(request)
        if session is None or session.mfa_pending:
            return to_login(request, expired=True)
        export = state.exports.get(request.path_params["export_id"])
        if export is None:
            return PlainTextResponse("Export not found", status_code=404)
        s = export.search
        gen = state.generator
        frames = [
            gen.rows_for(z, s.month, s.day_range, state.shape, s.home_value_max, s.purchase_years)
            for z in s.zips
        ]
        headers_for = dict(zip(gen.SOP_COLUMNS, gen.HEADER_SHAPES[state.shape], strict=True))
        columns = [headers_for[f] for f in s.fields if f in headers_for]
        body = gen.csv_bytes(frames, state.shape, state.encoding, columns)
        headers = {
            "Content-Disposition": f'attachment; filename="cole_export_{export.export_id}.csv"',
            "Content-Length": str(len(body)),
        }
        media = f"text/csv; charset={'windows-1252' if state.encoding == 'cp1252' else 'utf-8'}"
        with state.lock:
            export.started += 1
        if faults.take("cole", "dropped_download") is not None:

            async def halfway() -> AsyncIterator[bytes]:  # the connection drops mid-body
                yield body[: len(body) // 2]
                await asyncio.sleep(0.05)
                raise ConnectionResetError("sandbox: download dropped halfway")

            return StreamingResponse(halfway(), media_type=media, headers=headers)

        async def whole() -> AsyncIterator[bytes]:
            # Counted before the last byte goes out, so a client holding the whole file
            # always sees it counted (a background task after the response raced with it).
            yield body[:-1]
            with state.lock:
                export.completed += 1
            yield body[-1:]

        return StreamingResponse(whole(), media_type=media, headers=headers)

    async def logout(request: Request) -> Response:
        with state.lock:
            state.sessions.pop(request.cookies.get(SESSION_COOKIE, ""), None)
        return to_login(request, expired=False)

    async def root(request: Request) -> Response:
        return RedirectResponse("/login", status_code=303)

    async def captcha_post(request: Request) -> Response:
        return _captcha_page()  # a robot cannot pass it

    return Starlette(
        middleware=[Middleware(_FaultLayer, faults=faults)],
        routes=[
            Route("/", root),
            Route("/login", login_get, methods=["GET"]),
            Route("/login", login_post, methods=["POST"]),
            Route("/mfa", mfa_get, methods=["GET"]),
            Route("/mfa", mfa_post, methods=["POST"]),
            Route("/search", search_get, methods=["GET"]),
            Route("/search", search_post, methods=["POST"]),
            Route("/searches/{search_id}/export", export_post, methods=["POST"]),
            Route("/exports/{export_id}.csv", download, methods=["GET"]),
            Route("/captcha", captcha_post, methods=["POST"]),
            Route("/logout", logout),
        ],
    )


class _FaultLayer:
    """Faults that hit whatever request comes next: slowness, 429 with Retry-After, 500."""

    def __init__(self, app: ASGIApp, faults: Faults) -> None:
        self.app = app
        self.faults = faults

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # Logging out never takes a fault meant for the pull (tests count faults used up).
        if scope["type"] != "http" or scope["path"] in ("/favicon.ico", "/logout"):
            await self.app(scope, receive, send)
            return
        slow = self.faults.take("cole", "slow_page")
        if slow is not None:
            await asyncio.sleep(float(slow.get("delay", 3)))
        limited = self.faults.take("cole", "http_429")
        if limited is not None:
            response: Response = HTMLResponse(
                "<h1>Too many requests</h1><p>Please slow down.</p>",
                status_code=429,
                headers={"Retry-After": retry_after_header(limited)},
            )
        elif self.faults.take("cole", "http_500") is not None:
            response = _page("Error", "<h1>Server Error</h1><p>Something went wrong.</p>", 500)
        else:
            await self.app(scope, receive, send)
            return
        await response(scope, receive, send)
