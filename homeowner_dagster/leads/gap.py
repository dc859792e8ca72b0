"""PT3 totals: where a client stands against its package for a renewal month."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import pandas as pd

from homeowner_dagster.leads.cleaning import parse_home_values, tidy_zips
from homeowner_dagster.leads.cole_csv import match_headers
from homeowner_dagster.leads.territories import minimum_for, target_for


@dataclass(frozen=True)
class GapStatus:
    """`gap` is target minus cleaned: positive means short of target, negative a surplus."""

    cleaned: int
    target: int
    minimum_to_proceed: int
    gap: int
    status: str  # one of STATUSES
    meets_minimum: bool

    @property
    def surplus(self) -> int:
        return max(0, -self.gap)

    def as_dict(self) -> dict[str, object]:
        return asdict(self) | {"surplus": self.surplus}


STATUSES: tuple[str, ...] = ("met", "under", "below_minimum", "over")
VERDICTS: dict[str, str] = {
    "met": "target met",
    "under": "under target, above the minimum to proceed",
    "below_minimum": "below the minimum to proceed",
    "over": "over target",
}


def gap_status(cleaned: int, package_tier: int, target_override: int | None = None) -> GapStatus:
    """`over` / `met` against the target; short of it, `under` while at or above the minimum to
    proceed (11,500 / 23,000), `below_minimum` beneath it."""
    target = target_for(package_tier, target_override)
    gap = target - cleaned
    minimum = minimum_for(package_tier, target_override)
    if gap < 0:
        status = "over"
    elif gap == 0:
        status = "met"
    else:
        status = "under" if cleaned >= minimum else "below_minimum"
    return GapStatus(cleaned, target, minimum, gap, status, cleaned >= minimum)


SUGGESTION_LABELS: dict[str, str] = {
    "move_zips": "Move ZIPs",
    "adjacent_zips": "Adjacent ZIPs",
    "raise_home_value_cap": "Raise home-value cap",
    "drop_head_of_household": "Drop head-of-household filter",
    "surplus": "Surplus",
    "no_zips_left": "No ZIPs left",
    "drop_low_yield_zip": "Drop or swap low-yield ZIP",
}


def kind_label(kind: str) -> str:
    """A proposal's kind in words ("Drop head-of-household filter"), in the report and in Slack."""
    return SUGGESTION_LABELS.get(kind, kind)


def suggestion_zip_lines(suggestions: Sequence[Any], limit: int = 15) -> list[str]:
    """One line per suggestion with its ZIP codes, for the Slack gap message (ZIPs are no one's
    personal data). Suggestions without ZIPs (filters, surplus) are left to the summary."""
    lines: list[str] = []
    for s in suggestions:
        zips = list(getattr(s, "zips", ()) or ())
        if not zips:
            continue
        label = kind_label(s.kind) + (f" from {s.donor}" if getattr(s, "donor", None) else "")
        shown = ", ".join(zips[:limit]) + (
            f", … (+{len(zips) - limit})" if len(zips) > limit else ""
        )
        # a low-yield ZIP's leads are what dropping it takes away (the report says: swap it)
        amount = f"-{int(s.leads):,}" if s.kind == "drop_low_yield_zip" else f"+{int(s.leads):,}"
        lines.append(f"• {label} ({amount} leads): {shown}")
    return lines


def rejected_facts(rejected: pd.DataFrame) -> pd.DataFrame:
    """ZIP and home value of each rejected row, read from its original Cole columns.

    The filter-relaxation suggestions count exactly these (home value above the cap, not head of
    household), so they are kept beside each rejected row.
    """
    headers = match_headers(rejected.columns) if len(rejected.columns) else {}

    def column(name: str) -> pd.Series:
        if name in headers:
            return rejected[headers[name]].fillna("").astype(str)
        return pd.Series("", index=rejected.index, dtype=object)

    return pd.DataFrame(
        {
            "zip": tidy_zips(column("zip")).replace("", None),
            "home_value": parse_home_values(column("home_value")),
        },
        index=rejected.index,
    )
