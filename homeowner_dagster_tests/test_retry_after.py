"""Retry-After as RFC 9110 defines it: delay-seconds or an HTTP date; anything else is typed."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from homeowner_dagster.resources.retry_after import (
    InvalidRetryAfter,
    capped_wait,
    retry_after_seconds,
)

NOW = datetime(2026, 12, 2, 10, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        (None, None),
        ("", None),
        ("0", 0.0),
        ("7", 7.0),
        (" 2.5 ", 2.5),
        ("Wed, 02 Dec 2026 10:00:30 GMT", 30.0),  # IMF-fixdate
        ("Wednesday, 02-Dec-26 10:01:00 GMT", 60.0),  # obsolete RFC 850 form
        ("Wed, 02 Dec 2026 09:59:00 GMT", 0.0),  # a date in the past: no wait
    ],
)
def test_seconds_and_http_dates_are_read(header: str | None, seconds: float | None) -> None:
    assert retry_after_seconds(header, now=NOW) == seconds


@pytest.mark.parametrize("header", ["soon", "-5", "1e3", "Wed, 32 Foo 2026"])
def test_anything_else_is_a_typed_error(header: str) -> None:
    with pytest.raises(InvalidRetryAfter, match="neither seconds nor an HTTP date"):
        retry_after_seconds(header, now=NOW)


def test_the_wait_is_capped_and_falls_back_when_absent() -> None:
    assert capped_wait("86400", cap_seconds=30, fallback=1) == 30
    assert capped_wait(None, cap_seconds=30, fallback=1.5) == 1.5
    assert capped_wait("2", cap_seconds=30, fallback=1) == 2
