"""What every table family shares: the clock its rows are stamped with."""

from __future__ import annotations

from datetime import UTC, datetime


def now() -> datetime:
    return datetime.now(UTC)
