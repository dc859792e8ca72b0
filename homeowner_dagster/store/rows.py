"""Shared by every table family: the clock rows are stamped with, rows read back plain."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pandas as pd


def now() -> datetime:
    return datetime.now(UTC)


def first_row(frame: pd.DataFrame) -> dict[str, Any] | None:
    """The frame's first row with plain values: a column never set is None (not NaN or NaT)."""
    if frame.empty:
        return None
    return {
        k: (None if pd.api.types.is_scalar(v) and pd.isna(v) else v)
        for k, v in frame.iloc[0].to_dict().items()
    }
