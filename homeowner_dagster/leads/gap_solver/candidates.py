"""Proposals that add leads, counted: ZIPs moved from a donor, adjacent free ZIPs, filters relaxed.

- Moves: a donor is another client holding ZIPs in the client's licensed states whose cleaned
  total is over its own target. Only the donor's surplus (cleaned - target) can be given, so the
  donor never drops below target. The ZIP set is found exactly (a min-count subset-sum over the
  donor's ZIP yields): fewest ZIPs, then smallest overshoot. When no donor can cover the gap,
  each donor's best partial set is listed with `covers_gap=False`. Donors are not combined.
- Adjacent: free ZIPs (active STANDARD ZIPs of the licensed states held by no client this month)
  whose distance to the nearest centroid of the client's ZIPs is within the radius. The
  `max_candidates` nearest are asked for an expected yield (so a caller that runs a Cole count
  query per ZIP is bounded; with a mapping, the nearest that have history); unknown or zero yields
  are skipped. The chosen set has the fewest ZIPs possible (largest yields first; the last pick
  is the smallest ZIP that closes the gap, to limit overshoot); ties go to the nearer ZIP. A
  client holding no ZIPs this month has no territory to be adjacent to: None.
- Relaxation: exact counts of this month's rejected rows. Cleaning stops at the first failing
  rule (head of household is checked before the home-value cap; duplicates and email safety come
  after both), so the counts are upper bounds; see each suggestion's `basis`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

import numpy as np
import pandas as pd

from homeowner_dagster.leads.gap_solver.geography import (
    _free_zips,
    _locate,
    _nearest_miles,
    _norm_states,
)
from homeowner_dagster.leads.gap_solver.suggestion import Suggestion, _fmt

# Largest subset-sum table (ZIPs x reachable sums) the exact move solver builds before it falls
# back to the greedy choice.
_MAX_SUBSET_CELLS = 25_000_000


# Moving ZIPs from an over-target client


def _choose_subset(counts: np.ndarray, gap: int, capacity: int) -> tuple[list[int], bool]:
    """Indices whose counts sum within [gap, capacity] with the fewest items, then least overshoot.

    Exact: a 0/1 min-count subset-sum table over sums up to `min(capacity, gap + max - 1)`. Any
    covering set with the fewest items sums below `gap + max item` (else one item could go), so
    nothing better lies beyond that bound. When nothing reaches `gap`, the largest reachable sum
    is returned with False. Very large tables fall back to largest-first greedy.
    """
    if gap <= 0:
        return [], True
    keep = np.flatnonzero((counts > 0) & (counts <= capacity))
    if keep.size == 0:
        return [], False
    values = counts[keep].astype(np.int64)
    bound = int(min(capacity, gap + values.max() - 1))
    if values.size * (bound + 1) > _MAX_SUBSET_CELLS:
        return _greedy_subset(keep, values, gap, capacity)
    big = np.iinfo(np.int32).max
    best = np.full(bound + 1, big, dtype=np.int32)
    best[0] = 0
    took = np.zeros((values.size, bound + 1), dtype=bool)
    for i, v in enumerate(values):
        if v > bound:
            continue
        candidate = best[: bound + 1 - v] + 1
        better = candidate < best[v:]
        better &= best[: bound + 1 - v] < big
        took[i, v:] = better
        best[v:] = np.where(better, candidate, best[v:])
    reachable = best < big
    covering = np.flatnonzero(reachable[gap:]) + gap if bound >= gap else np.zeros(0, int)
    if covering.size:
        fewest = best[covering].min()
        total = int(covering[best[covering] == fewest].min())
        covers = True
    else:
        total = int(np.flatnonzero(reachable).max())
        covers = False
    picked: list[int] = []
    for i in range(values.size - 1, -1, -1):
        if total == 0:
            break
        if took[i, total]:
            picked.append(int(keep[i]))
            total -= int(values[i])
    return sorted(picked), covers


def _greedy_subset(
    keep: np.ndarray, values: np.ndarray, gap: int, capacity: int
) -> tuple[list[int], bool]:
    picked: list[int] = []
    total = 0
    for i in np.argsort(-values, kind="stable"):
        if total >= gap:
            break
        if total + values[i] <= capacity:
            picked.append(int(keep[i]))
            total += int(values[i])
    return sorted(picked), total >= gap


def suggest_moves(
    client: str,
    gap: int,
    states: Iterable[str],
    assignments: pd.DataFrame,
    totals: pd.DataFrame,
) -> list[Suggestion]:
    """ZIPs an over-target client in the same states could hand over without dropping below target.

    One suggestion per donor. If any donor covers the gap, only covering donors are listed (fewest
    ZIPs, then least overshoot, first); otherwise each donor's largest partial set, biggest first.
    """
    if gap <= 0:
        return []
    licensed = _norm_states(states)
    over = totals[(totals["client_slug"] != client) & (totals["cleaned"] > totals["target"])]
    if over.empty:
        return []
    mine = assignments[assignments["client_slug"] == client]
    territory = _locate(mine["zip"].astype(str))
    full: list[tuple[tuple[int, int, str], Suggestion]] = []
    partial: list[tuple[tuple[int, str], Suggestion]] = []
    for donor in over.sort_values("client_slug").itertuples(index=False):
        spare = int(donor.cleaned) - int(donor.target)
        theirs = assignments[
            (assignments["client_slug"] == donor.client_slug)
            & assignments["state"].astype(str).str.upper().isin(licensed)
        ].sort_values("zip")
        if theirs.empty:
            continue
        counts = theirs["cleaned_count"].fillna(0).astype(np.int64).to_numpy()
        picked, covers = _choose_subset(counts, gap, spare)
        if not picked:
            continue
        chosen = theirs.iloc[picked]
        moved = int(chosen["cleaned_count"].sum())
        located = _locate(chosen["zip"].astype(str))
        miles = dict(
            zip(located["zip"], np.round(_nearest_miles(located, territory), 1), strict=True)
        )
        suggestion = Suggestion(
            kind="move_zips",
            leads=moved,
            basis="this month's cleaned yield of the donor's ZIPs",
            zips=tuple(chosen["zip"].astype(str)),
            donor=str(donor.client_slug),
            covers_gap=covers,
            details={
                "cleaned_by_zip": dict(
                    zip(chosen["zip"].astype(str), chosen["cleaned_count"], strict=True)
                ),
                "miles_to_client_territory": {
                    z: (float(m) if np.isfinite(m) else None) for z, m in miles.items()
                },
                "donor_cleaned": int(donor.cleaned),
                "donor_target": int(donor.target),
                "donor_after_move": int(donor.cleaned) - moved,
                "gap": int(gap),
            },
        )
        if covers:
            full.append(((len(picked), moved - gap, suggestion.donor or ""), suggestion))
        else:
            partial.append(((-moved, suggestion.donor or ""), suggestion))
    if full:
        return [s for _, s in sorted(full, key=lambda t: t[0])]
    return [s for _, s in sorted(partial, key=lambda t: t[0])]


# Adjacent free ZIPs


def _yield_of(
    expected_yield: Mapping[str, float] | Callable[[str], float | None], zip_code: str
) -> float | None:
    raw = (
        expected_yield.get(zip_code)
        if isinstance(expected_yield, Mapping)
        else expected_yield(zip_code)
    )
    if raw is None:
        return None
    value = float(raw)
    return value if np.isfinite(value) and value > 0 else None


def suggest_adjacent(
    client: str,
    gap: int,
    states: Iterable[str],
    assignments: pd.DataFrame,
    expected_yield: Mapping[str, float] | Callable[[str], float | None],
    radius_miles: float = 25.0,
    max_candidates: int = 200,
    yield_basis: str | None = None,
) -> Suggestion | None:
    """Free ZIPs near the client's territory, fewest that cover the gap; None when there are none.

    `expected_yield` maps a ZIP to expected cleaned leads (history), or is a callable (e.g. a Cole
    count query times a yield ratio) asked only for the `max_candidates` nearest free ZIPs (with a
    mapping: the `max_candidates` nearest free ZIPs that have history).
    Without a covering set, every candidate with a known yield is offered, `covers_gap=False`.
    """
    if gap <= 0:
        return None
    licensed = _norm_states(states)
    territory = _locate(assignments.loc[assignments["client_slug"] == client, "zip"].astype(str))
    if territory.empty or not licensed:
        return None
    free = _free_zips(licensed, assignments)
    if free.empty:
        return None
    free = free.assign(miles=_nearest_miles(free, territory))
    near = free[free["miles"] <= radius_miles].sort_values(["miles", "zip"])
    if isinstance(expected_yield, Mapping):
        # History costs nothing to read: ZIPs without any do not take a candidate's place.
        near = near[near["zip"].isin(list(expected_yield))]
    near = near.head(max_candidates)
    if near.empty:
        return None
    yields = [_yield_of(expected_yield, z) for z in near["zip"]]
    near = near.assign(expected=pd.Series(yields, index=near.index, dtype=float)).dropna(
        subset=["expected"]
    )
    if near.empty:
        return None
    ranked = near.sort_values(["expected", "miles", "zip"], ascending=[False, True, True])
    chosen: list[int] = []
    needed = float(gap)
    pool = ranked
    while not pool.empty and needed > 0:
        closing = pool[pool["expected"] >= needed]
        if not closing.empty:
            pick = closing.sort_values(["expected", "miles", "zip"]).index[0]
        else:
            pick = pool.index[0]
        chosen.append(pick)
        needed -= float(pool.at[pick, "expected"])
        pool = pool.drop(index=pick)
    picked = near.loc[chosen]
    expected = float(picked["expected"].sum())
    if yield_basis is None:
        yield_basis = (
            "ZIP history"
            if isinstance(expected_yield, Mapping)
            else "expected yield per ZIP from the caller"
        )
    return Suggestion(
        kind="adjacent_zips",
        leads=int(round(expected)),
        basis=yield_basis,
        zips=tuple(picked["zip"]),
        donor=None,
        covers_gap=expected >= gap,
        details={
            "expected_by_zip": {
                z: round(float(e), 1)
                for z, e in zip(picked["zip"], picked["expected"], strict=True)
            },
            "miles_to_client_territory": {
                z: round(float(m), 1) for z, m in zip(picked["zip"], picked["miles"], strict=True)
            },
            "radius_miles": float(radius_miles),
            "free_zips_within_radius": int((free["miles"] <= radius_miles).sum()),
            "candidates_with_known_yield": len(near),
            "gap": int(gap),
        },
    )


def adjacent_candidates(
    client: str,
    states: Iterable[str],
    assignments: pd.DataFrame,
    radius_miles: float = 25.0,
    max_candidates: int = 200,
) -> pd.DataFrame:
    """The `max_candidates` nearest free ZIPs within the radius: [zip, state, miles].

    The caller asks Cole for all of their counts in one session, then passes the yields to
    `suggest` as a mapping (one login instead of one per ZIP).
    """
    licensed = _norm_states(states)
    territory = _locate(assignments.loc[assignments["client_slug"] == client, "zip"].astype(str))
    free = _free_zips(licensed, assignments) if licensed else pd.DataFrame()
    if territory.empty or free.empty:
        return pd.DataFrame(columns=["zip", "state", "miles"])
    free = free.assign(miles=_nearest_miles(free, territory))
    near = free[free["miles"] <= radius_miles].sort_values(["miles", "zip"]).head(max_candidates)
    return near[["zip", "state", "miles"]].reset_index(drop=True)


# Filter relaxation


def suggest_relaxation(
    rejected: pd.DataFrame,
    max_home_value: float,
    raise_to: float = 1_000_000,
    head_of_household_required: bool = True,
    gap: int | None = None,
) -> list[Suggestion]:
    """Leads this month's own rejected rows would add under a wider filter, counted exactly.

    `gap` (optional) only sets `covers_gap`.
    """
    out: list[Suggestion] = []
    reason = rejected["reason"].astype(str)
    value = pd.to_numeric(rejected["home_value"], errors="coerce")
    zips = rejected["zip"].astype(object).where(rejected["zip"].notna(), "unknown").astype(str)

    def by_zip(mask: pd.Series) -> dict[str, int]:
        counts = zips[mask].value_counts().sort_index()
        return {str(k): int(v) for k, v in counts.items()}

    def covers(n: int) -> bool:
        return gap is not None and gap > 0 and n >= gap

    if raise_to > max_home_value:
        above = (reason == "home_value_above_max") & (value > max_home_value) & (value <= raise_to)
        n = int(above.sum())
        if n:
            out.append(
                Suggestion(
                    kind="raise_home_value_cap",
                    leads=n,
                    basis=(
                        f"exact count of this month's rejected rows with home value above "
                        f"${_fmt(max_home_value)} and at most ${_fmt(raise_to)}; an upper bound, "
                        "since those rows were not yet checked for duplicates or email safety"
                    ),
                    zips=tuple(by_zip(above)),
                    covers_gap=covers(n),
                    details={
                        "from": float(max_home_value),
                        "to": float(raise_to),
                        "rows_by_zip": by_zip(above),
                        "still_above_new_cap": int(
                            ((reason == "home_value_above_max") & (value > raise_to)).sum()
                        ),
                    },
                )
            )
    if head_of_household_required:
        not_head = reason == "not_head_of_household"
        within_cap = not_head & ~(value > max_home_value)
        n = int(within_cap.sum())
        if n:
            out.append(
                Suggestion(
                    kind="drop_head_of_household",
                    leads=n,
                    basis=(
                        "exact count of this month's rows rejected as not head of household, less "
                        f"those above the ${_fmt(max_home_value)} cap; cleaning stopped at that "
                        "rule, so rows that would also be duplicates or unsafe emails are not "
                        "known yet: an upper bound"
                    ),
                    zips=tuple(by_zip(within_cap)),
                    covers_gap=covers(n),
                    details={
                        "rows_by_zip": by_zip(within_cap),
                        "rejected_not_head_of_household": int(not_head.sum()),
                        "also_above_cap": int((not_head & (value > max_home_value)).sum()),
                    },
                )
            )
    return out
