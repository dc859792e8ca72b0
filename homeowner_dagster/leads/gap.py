"""PT3 totals: where a client stands against its package for a renewal month."""

from __future__ import annotations

from dataclasses import asdict, dataclass

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
    status: str  # under | met | over
    meets_minimum: bool

    @property
    def surplus(self) -> int:
        return max(0, -self.gap)

    def as_dict(self) -> dict[str, object]:
        return asdict(self) | {"surplus": self.surplus}


def gap_status(cleaned: int, package_tier: int, target_override: int | None = None) -> GapStatus:
    target = target_for(package_tier, target_override)
    gap = target - cleaned
    status = "under" if gap > 0 else ("met" if gap == 0 else "over")
    minimum = minimum_for(package_tier, target_override)
    return GapStatus(cleaned, target, minimum, gap, status, cleaned >= minimum)


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
