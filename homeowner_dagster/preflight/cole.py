"""Cole X Dates, per state login: log in, reach the search page, count one ZIP, log out.

Read-only: one count query per login, never an export or a download. Each page reached is
surveyed (every selector key it must hold, found or missing, and the fallback that matched) and
kept as a screenshot in the artifact store, taken with password and code fields emptied; no
trace is recorded (a trace would hold what was typed at login). The login is taken under the
pipeline's one-session-per-login lock without waiting: a login in use by a pull is skipped, not
logged out from under it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

import pyotp

from homeowner_dagster import registry, settings, store
from homeowner_dagster.leads.calendar import add_months, month_key, renewal_month_pulled_on
from homeowner_dagster.preflight.findings import Finding, failed, ok, skipped
from homeowner_dagster.resources.cole import (
    AuthFailed,
    CaptchaBlocked,
    ColeError,
    ColeResource,
    MfaRequired,
    SearchRefused,
    SelectorMissing,
    SessionExpired,
    credentials_from_env,
)
from homeowner_dagster.resources.cole.errors import LoginOffSite
from homeowner_dagster.resources.cole.login_lock import LoginBusy, cole_login_lock
from homeowner_dagster.resources.cole.pages import ColePages, SearchForm
from homeowner_dagster.settings import CHROMIUM_ARGS

SERVICE = "cole"
SELECTORS_FILE = "resources/cole/selectors.toml"
# Where the flow uses each page's keys (drift: the place that breaks when one is missing).
PAGE_STEPS = {
    "login": "resources/cole/pages.py ColePages.submit_login",
    "mfa": "resources/cole/pages.py ColePages.submit_totp",
    "search": "resources/cole/pages.py ColePages.submit_search",
    "results": "resources/cole/pages.py ColePages.submit_search / export",
    "export": "resources/cole/pages.py ColePages.download",
}


@dataclass(frozen=True)
class ColeTarget:
    """One state login to probe, and the ZIP of a client licensed there to count."""

    state: str
    client: str | None
    zip_code: str | None


def next_pull_month(today: date) -> date:
    """The renewal month the next 15th's pull fetches (on or after `today`)."""
    pull_day = today.replace(day=15) if today.day <= 15 else add_months(today, 1).replace(day=15)
    return renewal_month_pulled_on(pull_day)


def targets(dsn: str | None, clients: Sequence[registry.Client], month: date) -> list[ColeTarget]:
    """Every licensed state of the active clients, each with one client's ZIP for `month`."""
    zips = None
    if dsn:
        try:
            zips = store.derived_territory(dsn, month).zips
        except Exception:  # noqa: BLE001 - the database line reports why; the login still counts
            zips = None
    found = []
    for state in sorted({s.upper() for c in clients for s in c.licensed_states}):
        target = ColeTarget(state, None, None)
        for client in sorted(clients, key=lambda c: c.slug):
            if state not in {s.upper() for s in client.licensed_states} or zips is None:
                continue
            mine = zips[(zips["client_slug"] == client.slug) & (zips["state"].str.upper() == state)]
            if not mine.empty:
                target = ColeTarget(state, client.slug, str(sorted(mine["zip"])[0]))
                break
        found.append(target)
    return found


@dataclass
class _Probe:
    """One state's walk through the site, collecting findings and screenshots."""

    cole: ColeResource
    base_url: str  # COLE_URL, checked before any credential is read
    target: ColeTarget
    month: date
    stamp: str
    findings: list[Finding] = field(default_factory=list)
    surveyed: dict[str, dict[str, str | None]] = field(default_factory=dict)
    shots: list[str] = field(default_factory=list)
    page_shots: dict[str, str] = field(default_factory=dict)  # page -> its screenshot's link

    @property
    def label(self) -> str:
        return f"{self.target.state} login"

    def shot(self, pages: ColePages, name: str) -> str | None:
        """The page as it is now, password and code fields emptied, into the artifact store."""
        pages.blank_secrets()
        try:
            png = pages.page.screenshot(full_page=True)
            key = f"preflight/{self.stamp}/cole-{self.target.state}-{len(self.shots) + 1:02d}-{name}.png"
            link = self.cole.artifacts.put_bytes(png, key, "image/png")
        except Exception:  # noqa: BLE001 - a screenshot never hides what the probe found
            return None
        self.shots.append(link)
        return link

    def survey(self, pages: ColePages, name: str) -> None:
        self.surveyed[name] = pages.survey(name)
        link = self.shot(pages, name)
        if link:
            self.page_shots[name] = link

    def page_link(self, page_name: str) -> tuple[str, ...]:
        return (self.page_shots[page_name],) if page_name in self.page_shots else ()

    def selector_findings(self, pages: ColePages) -> list[Finding]:
        out = []
        for page_name, found in self.surveyed.items():
            for key, selector in found.items():
                check = f"selector {key}"
                candidates = pages.book.candidates(key)
                if selector is None:
                    out.append(
                        failed(
                            SERVICE,
                            self.label,
                            check,
                            f"the {page_name} page has none of this key's selectors: add the page's "
                            f"own selector first under `{key}` in {SELECTORS_FILE}",
                            f"tried {len(candidates)}: {', '.join(candidates)}",
                            depends=PAGE_STEPS[page_name],
                            links=self.page_link(page_name),
                        )
                    )
                elif selector == candidates[0]:
                    out.append(ok(SERVICE, self.label, check, f"{page_name} page: {selector}"))
                else:
                    # Drift: the automation still works, on a selector that was not the first
                    # guess. A person confirms it on the screenshot and makes it the first.
                    index = candidates.index(selector) + 1
                    out.append(
                        failed(
                            SERVICE,
                            self.label,
                            check,
                            f"the site differs from the first selector; the automation works through "
                            f"fallback {index} of {len(candidates)}: put `{selector}` first under "
                            f"`{key}` in {SELECTORS_FILE} once the screenshot confirms it",
                            f"{page_name} page",
                            depends=PAGE_STEPS[page_name],
                            links=self.page_link(page_name),
                        )
                    )
        if "results" in self.surveyed:
            for key in pages.book.keys("export"):
                out.append(
                    skipped(
                        SERVICE,
                        self.label,
                        f"selector {key}",
                        "not checked: the export page is reached only by exporting, which "
                        "preflight never does",
                    )
                )
        return out


# What a person does about each Cole error, and the code that meets it ({state}: the login's).
# MfaRequired before AuthFailed: the first is a kind of the second.
ERROR_ADVICE: tuple[tuple[type[ColeError], str, str], ...] = (
    (LoginOffSite, "the login page is not on COLE_URL's site (a redirect): nothing was typed; check "
     "COLE_URL", "resources/cole/pages.py ColePages._on_site"),
    (MfaRequired, "Cole asks for a code after the password: set COLE_{state}_TOTP_SECRET to the "
     "secret of the login's authenticator (runbook section 3)", "resources/cole/pages.py ColePages.submit_totp"),
    (AuthFailed, "check COLE_{state}_USERNAME / COLE_{state}_PASSWORD (and COLE_{state}_TOTP_SECRET if it "
     "asks for a code); runbook section 3", ""),
    (CaptchaBlocked, "a captcha page stands in the way: log in once by hand from this machine, then run "
     "preflight again", ""),
    (SessionExpired, "the site sent the session back to its login page: another session on this login "
     "(Cole allows one), or an extra step after login the page model does not know", "resources/cole/pages.py"),
    (SelectorMissing, "add the page's own selector first under `{key}` in " + SELECTORS_FILE, SELECTORS_FILE),
    (SearchRefused, "the site refused the search form", "resources/cole/pages.py ColePages.submit_search"),
    (ColeError, "Cole did not answer as expected: check COLE_URL and try again later", ""),
)  # fmt: skip


def _error_finding(probe: _Probe, check: str, error: ColeError, link: str | None) -> Finding:
    """What a person does about a Cole error at this step (a missing element: its key's line)."""
    key = getattr(error, "selector_key", None)
    todo, depends = next((t, d) for kind, t, d in ERROR_ADVICE if isinstance(error, kind))
    return failed(
        SERVICE,
        probe.label,
        f"selector {key}" if key else check,
        todo.format(state=probe.target.state, key=key),
        str(error).split(" (screenshot:")[0],
        depends=depends,
        links=(link,) if link else (),
    )


def probe_state(
    cole: ColeResource, browser: object, target: ColeTarget, month: date, stamp: str
) -> list[Finding]:
    """Log in to one state, survey and count, log out; findings in the order they happened."""
    probe = _Probe(cole, cole.base_url(), target, month, stamp)
    label, state = probe.label, target.state
    try:
        creds = credentials_from_env(state)
    except AuthFailed:
        return [
            failed(SERVICE, label, "credentials",
                   f"set COLE_{state}_USERNAME and COLE_{state}_PASSWORD (`homeowner check` lists them)")
        ]  # fmt: skip
    lock_url = os.environ.get(settings.DATABASE_URL_ENV) or None
    try:
        with cole_login_lock(creds.username, state, lock_url, wait=False):
            _walk(probe, browser, creds)
    except LoginBusy:
        return [
            skipped(SERVICE, label, "login",
                    "a pull has a session open on this login now (Cole allows one); not probed")
        ]  # fmt: skip
    return probe.findings


STEPS: tuple[str, ...] = ("login", "search page", "count query")
# The keys one count query fills or reads (the filter fields are only reported).
COUNT_KEYS: tuple[str, ...] = (
    "licensed_state", "list_type", "zip_codes", "renewal_month", "field_boxes", "search_button",
)  # fmt: skip


class _Blocked(Exception):
    """A step cannot run: its page lacks a key (already reported by the page's survey)."""


def _require(probe: _Probe, page_name: str, keys: Sequence[str] | None = None) -> None:
    found = probe.surveyed[page_name]
    missing = [k for k in (keys or list(found)) if found.get(k, "") is None]
    if missing:
        raise _Blocked(f"not run: selector {missing[0]} is missing")


def _walk(probe: _Probe, browser: object, creds: object) -> None:
    cole, target = probe.cole, probe.target
    state, label = target.state, probe.label
    context = browser.new_context()  # type: ignore[attr-defined]
    pages = ColePages(context.new_page(), probe.base_url, cole.timeout_ms)
    submitted = logged_in = False
    step = "login"
    try:
        try:
            pages.open_login(state)
            probe.survey(pages, "login")
            _require(probe, "login")
            submitted = True
            if pages.submit_login(state, creds.username, creds.password):  # type: ignore[attr-defined]
                probe.survey(pages, "mfa")
                _require(probe, "mfa", ["mfa_code", "mfa_button"])
                secret = creds.totp_secret  # type: ignore[attr-defined]
                pages.submit_totp(state, pyotp.TOTP(secret).now() if secret else None)
            logged_in = True
            how = "with a TOTP code" if "mfa" in probe.surveyed else "with username and password"
            probe.findings.append(ok(SERVICE, label, "login", f"logged in {how}"))
            step = "search page"
            pages.open_search()
            probe.survey(pages, "search")
            probe.findings.append(ok(SERVICE, label, step, "reached"))
            step = "count query"
            if target.zip_code is None:
                raise _Blocked(
                    f"no active client licensed in {state} holds a ZIP in {month_key(probe.month)}: "
                    "import the territory (`homeowner zips import`), then run preflight again"
                )
            _require(probe, "search", COUNT_KEYS)
            count = pages.submit_search(SearchForm(state, [target.zip_code], probe.month))
            probe.survey(pages, "results")
            probe.findings.append(
                ok(SERVICE, label, step,
                   f"{count:,} records for ZIP {target.zip_code} ({target.client}), renewal month "
                   f"{month_key(probe.month)}; nothing exported")
            )  # fmt: skip
        except _Blocked as blocked:
            probe.findings.append(skipped(SERVICE, label, step, str(blocked)))
            _skip_after(probe, step)
        except ColeError as error:
            key = getattr(error, "selector_key", None)
            link = probe.shot(pages, f"failed-{type(error).__name__}" + (f"-{key}" if key else ""))
            probe.findings.append(_error_finding(probe, step, error, link))
            _skip_after(probe, step)
        probe.findings.extend(probe.selector_findings(pages))
        if submitted:
            pages.logout()  # also ends a session left half-way (a code asked for and not given)
        if logged_in:
            back = pages.locate("login_form") is not None
            link = probe.shot(pages, "logout")
            probe.findings.append(
                ok(SERVICE, label, "logout", "the site shows its login page again")
                if back
                else failed(
                    SERVICE, label, "logout",
                    "after logging out the site does not show its login page: correct `logout` in "
                    f"[paths] of {SELECTORS_FILE}, or the session stays open (Cole allows one)",
                    depends="resources/cole/resource.py _ColeSession.close",
                    links=(link,) if link else (),
                )
            )  # fmt: skip
        probe.findings.append(
            ok(
                SERVICE,
                label,
                "screenshots",
                f"{len(probe.shots)} pages kept",
                links=tuple(probe.shots),
            )
        )
    finally:
        context.close()


def _skip_after(probe: _Probe, step: str) -> None:
    for later in STEPS[STEPS.index(step) + 1 :]:
        probe.findings.append(skipped(SERVICE, probe.label, later, f"not run: {step} did not pass"))


@contextmanager
def chromium(cole: ColeResource) -> Iterator[object]:
    """A browser launched as the pipeline launches it (its executable, headless, arguments)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=cole._executable(), headless=cole.headless, args=list(CHROMIUM_ARGS)
        )
        try:
            yield browser
        finally:
            browser.close()


COLE_BROWSERS = 3  # state logins probed side by side, one browser each (the site is the wait)


def probe_cole(
    cole: ColeResource,
    dsn: str | None,
    clients: Sequence[registry.Client],
    today: date,
    browser: object | None = None,
) -> list[Finding]:
    """Every state login of the active clients: in the lent browser one after the other, else
    in up to COLE_BROWSERS browsers of their own, each in its own thread (Playwright's sync API
    belongs to the thread that started it)."""
    month = next_pull_month(today)
    found_targets = targets(dsn, clients, month)
    if not found_targets:
        return [skipped(SERVICE, "", "logins", "no active client has a licensed state")]
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    if browser is not None:
        return [f for t in found_targets for f in probe_state(cole, browser, t, month, stamp)]
    lanes = min(COLE_BROWSERS, len(found_targets))
    groups = [found_targets[i::lanes] for i in range(lanes)]

    def lane(group: list[ColeTarget]) -> dict[str, list[Finding]]:
        try:
            with chromium(cole) as own:
                return {t.state: probe_state(cole, own, t, month, stamp) for t in group}
        except Exception as exc:  # noqa: BLE001 - Chromium would not start: one line, not a crash
            return {
                group[0].state: [
                    failed(SERVICE, "", "chromium starts",
                           "install Chromium or set HOMEOWNER_CHROMIUM (`homeowner check` tries it)",
                           type(exc).__name__)
                ]
            }  # fmt: skip

    with ThreadPoolExecutor(max_workers=lanes, thread_name_prefix="preflight-cole") as pool:
        by_state: dict[str, list[Finding]] = {}
        for result in pool.map(lane, groups):
            by_state.update(result)
    return [f for t in found_targets for f in by_state.get(t.state, [])]
