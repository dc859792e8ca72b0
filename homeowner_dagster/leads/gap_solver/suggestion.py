"""A counted proposal for the gap report (`Suggestion`) and how its counts are written."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

KINDS: tuple[str, ...] = (
    "move_zips",
    "adjacent_zips",
    "raise_home_value_cap",
    "drop_head_of_household",
    "surplus",
    "no_zips_left",
    "drop_low_yield_zip",
)


@dataclass(frozen=True)
class Suggestion:
    """One counted proposal for the gap report; never applied by this module."""

    kind: str
    leads: int
    basis: str
    zips: tuple[str, ...] = ()
    donor: str | None = None
    covers_gap: bool = False
    details: dict[str, Any] = field(default_factory=dict)
    # Interested replies the proposal is expected to bring (measured yields); None without outcome data.
    expected_interested: float | None = None
    # Its 90 % interval (predictive: the ZIPs' rate uncertainty and the chance in who answers).
    expected_interval: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown suggestion kind {self.kind!r}")

    def as_dict(self) -> dict[str, Any]:
        """JSON-able form, for the `gap_reports` row and asset metadata."""
        return _jsonable(asdict(self))


def _jsonable(value: Any) -> Any:
    """Plain Python types only (numpy scalars and tuples sneak in from pandas)."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return None if np.isnan(value) else float(value)
    if isinstance(value, float) and np.isnan(value):
        return None
    return value


def _fmt(n: int | float) -> str:
    return f"{int(round(n)):,}"
