"""What can go wrong on the Cole X Dates site, as types the pipeline can act on.

`transient` says whether trying again later can help: a 429, a 5xx, a slow page or a dropped
download pass; a refused password, an MFA step without a secret, a captcha or a changed page
layout need a person. Every error raised out of the resource carries links to a screenshot
and a Playwright trace of the moment it failed (never of the login: see resource.py).
"""

from __future__ import annotations


class ColeError(Exception):
    """Base of every Cole failure; `screenshot_url` and `trace_url` are set on the way out."""

    transient: bool = False

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.screenshot_url: str | None = None
        self.trace_url: str | None = None

    def __str__(self) -> str:
        text = super().__str__()
        links = [
            f"{k}: {v}"
            for k, v in (("screenshot", self.screenshot_url), ("trace", self.trace_url))
            if v
        ]
        return f"{text} ({'; '.join(links)})" if links else text


class AuthFailed(ColeError):
    """The site refused the state's username and password (or they are not configured)."""


class LoginOffSite(ColeError):
    """The login (or code) page is not on COLE_URL's origin: the site redirected elsewhere. No
    credential is typed there; a person checks COLE_URL."""


class MfaRequired(ColeError):
    """The site asks for a TOTP code and COLE_<STATE>_TOTP_SECRET is not set."""


class CaptchaBlocked(ColeError):
    """A captcha interstitial stands in the way; a person has to log in once by hand."""


class SelectorMissing(ColeError):
    """A page loaded but an element the page object expects is gone: the site changed.

    `selector_key` names the element in resources/cole/selectors.toml (the file to correct).
    """

    def __init__(self, message: str, *, selector_key: str | None = None) -> None:
        super().__init__(message)
        self.selector_key = selector_key


class ExportCapExceeded(ColeError):
    """The site refused an export of 10,000 or more records."""


class SearchRefused(ColeError):
    """The site refused the search form (its message says why, e.g. spaces between ZIPs)."""


class CountMismatch(ColeError):
    """The CSV does not hold the number of records the site showed for the search."""


class SiteTimeout(ColeError):
    """A page or download took longer than `timeout_ms`."""

    transient = True


class RateLimited(ColeError):
    """HTTP 429; `retry_after` holds the server's Retry-After in seconds (sent as seconds or as an
    HTTP date); the resource waits at most `max_retry_after_seconds`."""

    transient = True


class BadRetryAfter(ColeError):
    """A 429 whose Retry-After is neither seconds nor an HTTP date: the site changed; a person
    looks at the screenshot before the pipeline guesses how long to wait."""


class SiteUnavailable(ColeError):
    """HTTP 5xx or a network error."""

    transient = True


class DownloadFailed(ColeError):
    """The CSV download broke off (after Chromium's own resume attempts)."""

    transient = True


class SessionExpired(ColeError):
    """The site sent us back to its login page; the resource logs in again and resumes."""

    transient = True
