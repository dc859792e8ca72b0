"""Every proposal for one client and month, in order: fixes when short, surplus when over."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

import pandas as pd

from homeowner_dagster.leads.gap import GapStatus
from homeowner_dagster.leads.gap_solver.candidates import (
    suggest_adjacent,
    suggest_moves,
    suggest_relaxation,
)
from homeowner_dagster.leads.gap_solver.geography import _free_zips, _norm_states
from homeowner_dagster.leads.gap_solver.ranking import (
    rank_by_expected_interest,
    suggest_low_yield_drops,
)
from homeowner_dagster.leads.gap_solver.suggestion import Suggestion
from homeowner_dagster.leads.outcomes import YieldBook


def _suggest_by_leads(
    client: str,
    status: GapStatus,
    states: Iterable[str],
    assignments: pd.DataFrame,
    totals: pd.DataFrame,
    rejected: pd.DataFrame,
    expected_yield: Mapping[str, float] | Callable[[str], float | None],
    max_home_value: float,
    head_of_household_required: bool,
    radius_miles: float = 25.0,
    *,
    raise_to: float = 1_000_000,
    max_candidates: int = 200,
    yield_basis: str | None = None,
    sample_surplus: bool = False,
) -> list[Suggestion]:
    """The proposals counted in leads: under -> fixes, over -> surplus, met -> none."""
    licensed = _norm_states(states)
    if status.status == "met" or status.gap == 0:
        return []
    if status.gap < 0:
        return [
            Suggestion(
                kind="surplus",
                leads=status.surplus,
                basis="cleaned leads minus the package target",
                covers_gap=False,
                details={
                    "upsell": True,
                    "cleaned": status.cleaned,
                    "target": status.target,
                    "sample_to_target": bool(sample_surplus),
                },
            )
        ]
    gap = status.gap
    out = suggest_moves(client, gap, licensed, assignments, totals)
    adjacent = suggest_adjacent(
        client,
        gap,
        licensed,
        assignments,
        expected_yield,
        radius_miles,
        max_candidates,
        yield_basis,
    )
    if adjacent is not None:
        out.append(adjacent)
    out.extend(
        suggest_relaxation(rejected, max_home_value, raise_to, head_of_household_required, gap=gap)
    )
    has_donor = any(s.kind == "move_zips" for s in out)
    if not has_donor and _free_zips(licensed, assignments).empty:
        out.append(
            Suggestion(
                kind="no_zips_left",
                leads=0,
                basis=(
                    f"every ZIP in {', '.join(licensed) or 'no licensed state'} is held by a client "
                    "this month and no same-state client over target can spare a ZIP: escalate to the head of "
                    "fulfilment"
                ),
                covers_gap=False,
                details={"states": licensed, "free_zips": 0, "gap": int(gap)},
            )
        )
    return out


def suggest(
    client: str,
    status: GapStatus,
    states: Iterable[str],
    assignments: pd.DataFrame,
    totals: pd.DataFrame,
    rejected: pd.DataFrame,
    expected_yield: Mapping[str, float] | Callable[[str], float | None],
    max_home_value: float,
    head_of_household_required: bool,
    radius_miles: float = 25.0,
    *,
    raise_to: float = 1_000_000,
    max_candidates: int = 200,
    yield_basis: str | None = None,
    sample_surplus: bool = False,
    outcomes: YieldBook | None = None,
) -> list[Suggestion]:
    """Every proposal for one client and month: under -> fixes, over -> surplus, met -> none.

    With measured outcomes (`outcomes`, see leads.outcomes.yield_book) each proposal also gets its
    expected interested replies, low-yield ZIPs get a "drop or swap" proposal, and the list is
    ranked by expected interested replies instead of leads. Without, the list is as before.
    """
    out = _suggest_by_leads(
        client,
        status,
        states,
        assignments,
        totals,
        rejected,
        expected_yield,
        max_home_value,
        head_of_household_required,
        radius_miles,
        raise_to=raise_to,
        max_candidates=max_candidates,
        yield_basis=yield_basis,
        sample_surplus=sample_surplus,
    )
    if outcomes is None:
        return out
    return rank_by_expected_interest(out, outcomes) + suggest_low_yield_drops(outcomes)
