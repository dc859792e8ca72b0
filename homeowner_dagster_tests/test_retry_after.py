"""Retry-After as RFC 9110 defines it: delay-seconds or an HTTP date; anything else is typed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

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


def test_the_http_retry_rule_reads_both_forms_capped() -> None:
    """Bison, DeBounce and Clay share `send_with_retries`' RetryPolicy: a 429's Retry-After as
    seconds or as an HTTP date, capped; anything else falls back to the backoff.

    Fails against the old RetryPolicy: it read only seconds, so a date fell back to the backoff."""
    from email.utils import format_datetime

    import httpx

    from homeowner_dagster.resources.bison import RetryPolicy

    policy = RetryPolicy(max_backoff_seconds=30.0, base_seconds=100.0)  # backoff would be >= 15 s
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=8), usegmt=True)
    dated = policy.retry_after(httpx.Response(429, headers={"Retry-After": later}), 0)
    assert 6.0 <= dated <= 8.0
    assert policy.retry_after(httpx.Response(429, headers={"Retry-After": "3"}), 0) == 3.0
    assert policy.retry_after(httpx.Response(429, headers={"Retry-After": "86400"}), 0) == 30.0
    assert (
        15.0 <= policy.retry_after(httpx.Response(429, headers={"Retry-After": "soon"}), 0) <= 30.0
    )


def test_every_connector_reads_retry_after_through_the_one_parser() -> None:
    """No connector parses the header itself: a module that reads `Retry-After` imports
    resources/retry_after.py (Cole, Slack) or uses the shared RetryPolicy (Bison, DeBounce, Clay)."""
    from homeowner_dagster import settings

    resources = settings.project_root() / "homeowner_dagster" / "resources"
    for path in resources.rglob("*.py"):
        text = path.read_text()
        if path.name == "retry_after.py" or "retry-after" not in text.lower():
            continue
        reads_header = (
            '"Retry-After"' in text
            or "'retry-after'" in text.lower()
            or '"retry-after"' in text.lower()
        )
        if reads_header:
            assert "retry_after import" in text, (
                f"{path.name} reads Retry-After without resources/retry_after.py"
            )
    assert "float(header)" not in (resources / "bison.py").read_text()
