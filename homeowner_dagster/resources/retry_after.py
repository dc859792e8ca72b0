"""`Retry-After` as the HTTP spec defines it (RFC 9110 §10.2.3): delay-seconds or an HTTP-date.

One parser for every connector that honours it (Cole, Slack), so a vendor switching forms, or
sending a date far ahead, neither crashes a run with an untyped error nor parks it for hours:
the caller caps the wait.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

_SECONDS = re.compile(r"^\d+(\.\d+)?$")


class InvalidRetryAfter(ValueError):
    """The header is neither a number of seconds nor an HTTP-date."""


def retry_after_seconds(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait (>= 0) per the header; None when there is no header."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    if _SECONDS.match(text):
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        raise InvalidRetryAfter(
            f"Retry-After {text[:40]!r} is neither seconds nor an HTTP date"
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def capped_wait(value: str | None, cap_seconds: float, fallback: float) -> float:
    """The wait a caller sleeps: the header's (at most `cap_seconds`), else `fallback`."""
    seconds = retry_after_seconds(value)
    return min(cap_seconds, fallback if seconds is None else seconds)
