"""High-net-worth routing: which client a home above its source client's cap goes to.

A rule (from the client file's `hnw_routing:` section) names source states, a threshold (default
$900,000) and a destination client. Only leads above the source client's own cap are routed: a
lead at or under the cap is the source client's lead whatever the rules say. Rules are tried in
the order the client file lists them and the first that matches wins (state in the rule's source
states and home value above the rule's threshold). A lead above the cap that matches no rule is
rejected `home_value_above_max`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

DEFAULT_THRESHOLD = 900_000.0


@dataclass(frozen=True)
class RoutingRule:
    """One `hnw_routing:` entry as it applies to one source client."""

    name: str
    destination: str
    source_states: tuple[str, ...]
    threshold: float = DEFAULT_THRESHOLD

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> RoutingRule:
        """From a row of `hnw_routing_rules` (or a parsed client file)."""
        states = record.get("source_states") or ()
        threshold = record.get("threshold")
        return cls(
            name=str(record.get("name") or ""),
            destination=str(record.get("destination_client") or record.get("destination")),
            source_states=tuple(sorted({str(s).strip().upper() for s in states if str(s).strip()})),
            threshold=float(threshold)
            if threshold is not None and pd.notna(threshold)
            else DEFAULT_THRESHOLD,
        )


def route_destinations(
    states: pd.Series,
    home_values: pd.Series,
    max_home_value: float,
    rules: Iterable[RoutingRule],
) -> pd.Series:
    """The destination client of each lead (indexed like `states`), "" where it stays or is rejected.

    `states` are two-letter codes, `home_values` numbers (NaN never routes).
    """
    values = pd.to_numeric(home_values, errors="coerce").to_numpy(dtype=float)
    destination = np.full(len(values), "", dtype=object)
    above_cap = np.flatnonzero(values > float(max_home_value))  # NaN compares False
    rules = list(rules)
    if not rules or len(above_cap) == 0:
        return pd.Series(destination, index=states.index, dtype=object)
    # Only homes above the cap can route; their states are tidied once per distinct value.
    text = states.iloc[above_cap].astype(object).fillna("").astype(str).to_numpy()
    codes, uniques = pd.factorize(text)
    state_codes = np.array([s.strip().upper() for s in uniques], dtype=object)
    open_ = np.ones(len(above_cap), dtype=bool)
    for rule in rules:
        in_states = np.isin(state_codes, list(rule.source_states))[codes]
        match = open_ & in_states & (values[above_cap] > rule.threshold)
        destination[above_cap[match]] = rule.destination
        open_ &= ~match
    return pd.Series(destination, index=states.index, dtype=object)


def routed_counts(destinations: pd.Series) -> dict[str, int]:
    """Leads per destination client (the empty destination, "not routed", left out)."""
    counts = destinations[destinations != ""].value_counts()
    return {str(k): int(v) for k, v in counts.sort_index().items()}
