"""Cole X Dates connector: a Playwright-driven resource, its page object and typed errors."""

from homeowner_dagster.resources.cole.errors import (
    AuthFailed,
    BadRetryAfter,
    CaptchaBlocked,
    ColeError,
    CountMismatch,
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
from homeowner_dagster.resources.cole.resource import (
    ColeExport,
    ColeFilters,
    ColePull,
    ColeResource,
    credentials_from_env,
)

__all__ = [
    "AuthFailed",
    "BadRetryAfter",
    "CaptchaBlocked",
    "ColeError",
    "ColeExport",
    "ColeFilters",
    "ColePull",
    "ColeResource",
    "CountMismatch",
    "DownloadFailed",
    "ExportCapExceeded",
    "LoginOffSite",
    "MfaRequired",
    "RateLimited",
    "SearchRefused",
    "SelectorMissing",
    "SessionExpired",
    "SiteTimeout",
    "SiteUnavailable",
    "credentials_from_env",
]
