"""PT3 gap suggestions and the over-target sample: pure functions on pandas frames.

When a client is short of its monthly target, a person used to read sheets and ask around for
ZIPs. These functions do that thinking and return counted proposals; they never apply anything
(no Dagster, no database, no network). The `gap_report` asset feeds them this month's frames and
stores / posts what they return.

Inputs (one renewal month):

- `assignments`: DataFrame[zip, state, client_slug, cleaned_count], every client's ZIPs with the
  cleaned leads each ZIP yielded.
- `totals`: DataFrame[client_slug, cleaned, target], one row per client.
- `rejected`: DataFrame[reason, zip, home_value], the client's rejected rows
  (`homeowner_dagster.leads.gap.rejected_facts` plus the cleaning reason).

API:

- `Suggestion(kind, leads, basis, zips, donor, covers_gap, details)`, frozen; `as_dict()` is
  JSON-able. `kind` is one of `KINDS`. `leads` is the expected leads added (for "surplus": the
  surplus size). `basis` says how `leads` was obtained. `covers_gap` is False for "surplus" and
  "no_zips_left" (nothing to cover / nothing offered).
- `zip_centroids(states) -> DataFrame[zip, state, lat, lon]`: active STANDARD ZIPs of the offline
  `zipcodes` package, cached. `distance_miles(lat1, lon1, lat2, lon2)`: broadcasting haversine.
- `suggest_moves(client, gap, states, assignments, totals) -> list[Suggestion]`.
- `suggest_adjacent(client, gap, states, assignments, expected_yield, radius_miles=25.0,
  max_candidates=200, yield_basis=None) -> Suggestion | None`.
- `suggest_relaxation(rejected, max_home_value, raise_to=1_000_000,
  head_of_household_required=True, gap=None) -> list[Suggestion]`.
- `suggest(client, status, states, assignments, totals, rejected, expected_yield, max_home_value,
  head_of_household_required, radius_miles=25.0, ...) -> list[Suggestion]`.
- `surplus_sample(cleaned, target, seed=0) -> Series[bool]` (True = surplus).
- `markdown_report(status, suggestions) -> str`, `slack_summary(suggestions) -> str`.

Choices worth knowing:

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
- Surplus sample: every ZIP keeps its proportional share of the target, rounded by largest
  remainder so the kept total is exactly the target. When target >= number of ZIPs, every ZIP
  keeps at least one row; ZIPs whose share is below one get exactly one and the others share
  what is left in proportion (so the one-row floor wins over proportion for tiny ZIPs).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd

from homeowner_dagster.leads.gap import GapStatus
from homeowner_dagster.leads.outcomes import YieldBook
from homeowner_dagster.leads.yield_model import LOW_YIELD_CONFIDENCE

KINDS: tuple[str, ...] = (
    "move_zips",
    "adjacent_zips",
    "raise_home_value_cap",
    "drop_head_of_household",
    "surplus",
    "no_zips_left",
    "drop_low_yield_zip",
)
EARTH_RADIUS_MILES = 3958.8
# Cells of a candidate x territory distance matrix computed at once (bounds memory).
_DISTANCE_BLOCK_CELLS = 2_000_000
# Largest subset-sum table (ZIPs x reachable sums) the exact move solver builds before it falls
# back to the greedy choice.
_MAX_SUBSET_CELLS = 25_000_000


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


# ZIP centroids


@lru_cache(maxsize=1)
def _all_centroids() -> pd.DataFrame:
    """Every ZIP of the offline package with its type and active flag, read once."""
    import zipcodes

    rows = zipcodes.list_all()
    frame = pd.DataFrame(
        {
            "zip": [z["zip_code"] for z in rows],
            "state": [z["state"] for z in rows],
            "lat": pd.to_numeric([z["lat"] for z in rows], errors="coerce"),
            "lon": pd.to_numeric([z["long"] for z in rows], errors="coerce"),
            "standard": [z["zip_code_type"] == "STANDARD" and bool(z["active"]) for z in rows],
        }
    )
    return frame.dropna(subset=["lat", "lon"]).drop_duplicates("zip").reset_index(drop=True)


@lru_cache(maxsize=64)
def _centroids_for(states: tuple[str, ...]) -> pd.DataFrame:
    frame = _all_centroids()
    picked = frame[frame["standard"] & frame["state"].isin(states)]
    return picked[["zip", "state", "lat", "lon"]].sort_values("zip").reset_index(drop=True)


def zip_centroids(states: Iterable[str]) -> pd.DataFrame:
    """Active STANDARD ZIPs of `states` with their centroid: where homeowners can be pulled.

    PO boxes, unique (single-organisation) and military ZIPs hold no homes to pull.
    """
    key = tuple(sorted({str(s).strip().upper() for s in states if str(s).strip()}))
    return _centroids_for(key).copy()


def _locate(zips: Iterable[str]) -> pd.DataFrame:
    """Centroids of any known ZIPs (a client's own ZIPs need not be STANDARD to have a place)."""
    wanted = pd.Index(pd.unique(pd.Series(list(zips), dtype=object)))
    frame = _all_centroids()
    return frame[frame["zip"].isin(wanted)][["zip", "state", "lat", "lon"]].reset_index(drop=True)


def distance_miles(lat1: Any, lon1: Any, lat2: Any, lon2: Any) -> np.ndarray:
    """Great-circle (haversine) miles; arguments broadcast like numpy arrays."""
    phi1, phi2 = np.radians(np.asarray(lat1, float)), np.radians(np.asarray(lat2, float))
    dphi = phi2 - phi1
    dlmb = np.radians(np.asarray(lon2, float)) - np.radians(np.asarray(lon1, float))
    a = np.sin(dphi / 2) ** 2 + np.cos(phi1) * np.cos(phi2) * np.sin(dlmb / 2) ** 2
    return 2 * EARTH_RADIUS_MILES * np.arcsin(np.sqrt(np.clip(a, 0.0, 1.0)))


def _nearest_miles(points: pd.DataFrame, sites: pd.DataFrame) -> np.ndarray:
    """For each point, miles to the nearest site; computed in blocks to bound memory."""
    if points.empty:
        return np.zeros(0)
    if sites.empty:
        return np.full(len(points), np.inf)
    s_lat, s_lon = sites["lat"].to_numpy()[None, :], sites["lon"].to_numpy()[None, :]
    p_lat, p_lon = points["lat"].to_numpy(), points["lon"].to_numpy()
    step = max(1, _DISTANCE_BLOCK_CELLS // len(sites))
    out = np.empty(len(points))
    for start in range(0, len(points), step):
        block = slice(start, start + step)
        out[block] = distance_miles(p_lat[block, None], p_lon[block, None], s_lat, s_lon).min(
            axis=1
        )
    return out


# Helpers on this month's frames


def _norm_states(states: Iterable[str]) -> list[str]:
    return sorted({str(s).strip().upper() for s in states if str(s).strip()})


def _held_zips(assignments: pd.DataFrame) -> set[str]:
    return set(assignments["zip"].dropna().astype(str))


def _free_zips(states: Sequence[str], assignments: pd.DataFrame) -> pd.DataFrame:
    """ZIPs of the licensed states that nobody holds this month."""
    centroids = zip_centroids(states)
    return centroids[~centroids["zip"].isin(_held_zips(assignments))].reset_index(drop=True)


def _fmt(n: int | float) -> str:
    return f"{int(round(n)):,}"


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


# The whole report


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


# Ranking by measured outcomes


def suggest_low_yield_drops(book: YieldBook) -> list[Suggestion]:
    """"Drop or swap" for each of the client's ZIPs that the posterior puts below the client's
    average with `LOW_YIELD_CONFIDENCE` (95 %). Dropping widens the gap by the ZIP's leads;
    `expected_interested` is what a swap for as many leads at an unmeasured ZIP would add."""
    out = []
    for row in book.client_zips.itertuples(index=False):
        if not bool(row.low_yield):
            continue
        leads = int(row.leads)
        here = book.expected({str(row.zip): leads})
        there = book.expected({"": leads})  # an unmeasured ZIP
        out.append(
            Suggestion(
                kind="drop_low_yield_zip",
                leads=leads,
                basis=(
                    f"{int(row.interested)} interested of {int(row.mature_leads):,} mature leads (all clients); "
                    f"{float(row.shrunk_per_1000):.1f} per 1,000, 90% {float(row.lower_per_1000):.1f}-"
                    f"{float(row.upper_per_1000):.1f}; below the client's {book.client_rate * 1000:.1f} with "
                    f"probability {float(row.p_below_average):.0%}; dropping it widens the gap by {leads:,}"
                ),
                zips=(str(row.zip),),
                covers_gap=False,
                details={
                    "interested_per_1000": float(row.shrunk_per_1000),
                    "interval_per_1000": [float(row.lower_per_1000), float(row.upper_per_1000)],
                    "p_below_average": float(row.p_below_average),
                    "client_per_1000": round(book.client_rate * 1000, 2),
                    "expected_here": round(here[0], 1),
                },
                expected_interested=round(there[0] - here[0], 1),
            )
        )
    return out


def _leads_by_zip(s: Suggestion) -> dict[str, float]:
    for key in ("cleaned_by_zip", "expected_by_zip", "rows_by_zip"):
        if key in s.details:
            return {str(z): float(n) for z, n in s.details[key].items()}
    return {}


def expected_interested(s: Suggestion, book: YieldBook) -> tuple[float, float, float]:
    """Interested replies a proposal is expected to bring, with a 90 % interval, from each ZIP's
    estimate (an unmeasured ZIP: the spread of all ZIPs)."""
    if s.kind == "no_zips_left":
        return 0.0, 0.0, 0.0
    by_zip = _leads_by_zip(s) or {"": float(s.leads)}
    return book.expected(by_zip)


def rank_by_expected_interest(suggestions: Sequence[Suggestion], book: YieldBook) -> list[Suggestion]:
    """Each proposal with its expected interested replies and interval, most first (ties keep
    their order). Ranked by the expected value; the interval says how sure that is."""
    from dataclasses import replace

    scored = []
    for s in suggestions:
        mean, low, high = expected_interested(s, book)
        scored.append(
            replace(s, expected_interested=round(mean, 1), expected_interval=(round(low, 1), round(high, 1)))
        )
    order = sorted(range(len(scored)), key=lambda i: (-(scored[i].expected_interested or 0.0), i))
    return [scored[i] for i in order]


# Over-target sample


def _largest_remainder(quota: np.ndarray, total: int, tiebreak: np.ndarray) -> np.ndarray:
    """Integers summing to `total`, each the floor or ceiling of its quota."""
    base = np.floor(quota).astype(np.int64)
    short = int(total - base.sum())
    if short > 0:
        order = np.lexsort((tiebreak, -(quota - base)))
        base[order[:short]] += 1
    return base


def surplus_sample(cleaned: pd.DataFrame, target: int, seed: int = 0) -> pd.Series:
    """True for the rows set aside as surplus when sampling evenly by ZIP down to `target`.

    Rows are marked, not deleted: the caller keeps them as surplus. Deterministic for a seed and
    a given row order. Rows without a ZIP form one group of their own.
    """
    n = len(cleaned)
    if target >= n:
        return pd.Series(False, index=cleaned.index, dtype=bool, name="surplus")
    if target <= 0:
        return pd.Series(True, index=cleaned.index, dtype=bool, name="surplus")
    zips = cleaned["zip"].astype(object).where(cleaned["zip"].notna(), "").astype(str).to_numpy()
    names, codes = np.unique(zips, return_inverse=True)
    sizes = np.bincount(codes, minlength=len(names)).astype(np.int64)
    # Tiebreak for equal remainders: bigger ZIP first, then ZIP order.
    tiebreak = np.argsort(np.lexsort((np.arange(len(names)), -sizes)))
    keep = np.zeros(len(names), dtype=np.int64)
    floored = np.zeros(len(names), dtype=bool)
    if target >= len(names):
        # ZIPs whose share is below one keep exactly one; the rest share the remainder. The ratio
        # left / rows only falls as ZIPs are floored, so no ZIP is asked for more than it has.
        while True:
            rest = ~floored
            left = target - int(floored.sum())
            quota = np.where(rest, left * sizes / sizes[rest].sum(), 0.0)
            newly = rest & (quota < 1)
            if not newly.any():
                break
            floored |= newly
        keep[floored] = 1
        rest = ~floored
        keep[rest] = _largest_remainder(quota[rest], left, tiebreak[rest])
    else:
        keep = _largest_remainder(target * sizes / n, target, tiebreak)
    keep = np.minimum(keep, sizes)
    rng = np.random.default_rng(seed)
    order = np.lexsort((rng.random(n), codes))
    rank = np.empty(n, dtype=np.int64)
    starts = np.concatenate(([0], np.cumsum(sizes)[:-1]))
    rank[order] = np.arange(n) - np.repeat(starts, sizes)
    surplus = rank >= keep[codes]
    return pd.Series(surplus, index=cleaned.index, dtype=bool, name="surplus")


# Rendering


_LABELS = {
    "move_zips": "Move ZIPs",
    "adjacent_zips": "Adjacent ZIPs",
    "raise_home_value_cap": "Raise home-value cap",
    "drop_head_of_household": "Drop head-of-household filter",
    "surplus": "Surplus",
    "no_zips_left": "No ZIPs left",
    "drop_low_yield_zip": "Drop or swap low-yield ZIP",
}


def kind_label(kind: str) -> str:
    """A proposal's kind in words ("Drop head-of-household filter")."""
    return _LABELS.get(kind, kind)


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _zip_list(zips: Sequence[str], limit: int = 10) -> str:
    if not zips:
        return "—"
    shown = ", ".join(zips[:limit])
    return f"{shown}, … (+{len(zips) - limit})" if len(zips) > limit else shown


def outcome_note(book: YieldBook | None) -> str:
    """One line saying how the proposals are ranked, from how many leads, and why."""
    if book is None:
        return (
            "No outcome data for this client yet (no uploaded lead measured in Email Bison): "
            "proposals are ranked by leads."
        )
    counts = (
        "a lead counts once its window has had 60% of its replies by the measured reply-delay curve "
        f"(about {book.days_to_mature:.0f} days)"
        if book.curve_measured
        else "too few replies to measure the reply delays: a lead counts once its window is 28 days old"
    )
    return (
        f"Ranked by expected interested replies (90% interval): rates from {book.mature_leads:,} of the "
        f"client's {book.leads_measured:,} measured leads ({counts}); client average "
        f"{book.client_rate * 1000:.1f} interested per 1,000; a ZIP never measured is assumed typical "
        "of all measured ZIPs, with their whole spread as its interval."
    )


_FIXES = ("move_zips", "adjacent_zips", "raise_home_value_cap", "drop_head_of_household")


def missing_reasons(
    client: str,
    status: GapStatus,
    states: Iterable[str],
    assignments: pd.DataFrame,
    totals: pd.DataFrame,
    rejected: pd.DataFrame,
    suggestions: Sequence[Suggestion],
    radius_miles: float = 25.0,
) -> list[str]:
    """Why each kind of fix is missing from `suggestions` (for a report with few or none)."""
    if status.gap <= 0:
        return []
    licensed = _norm_states(states)
    kinds = {s.kind for s in suggestions}
    out: list[str] = []
    if "move_zips" not in kinds:
        over = totals[(totals["client_slug"] != client) & (totals["cleaned"] > totals["target"])]
        out.append(
            f"no other client in {', '.join(licensed) or 'its states'} is over its target"
            if over.empty
            else "the clients over target hold no ZIPs in its licensed states they could spare"
        )
    if "adjacent_zips" not in kinds:
        mine = assignments[assignments["client_slug"] == client]
        out.append(
            "it holds no ZIPs of its own this month (its leads come from routing), so no free ZIP is adjacent"
            if mine.empty
            else f"no free ZIP within {radius_miles:g} miles of its ZIPs has a known expected yield"
        )
    reason = rejected["reason"].astype(str) if not rejected.empty else pd.Series(dtype=str)
    if "raise_home_value_cap" not in kinds:
        out.append(
            "no row was rejected for the home-value cap"
            if not (reason == "home_value_above_max").any()
            else "the rows above the home-value cap are also above the wider cap"
        )
    if "drop_head_of_household" not in kinds:
        out.append(
            "no row was rejected as not head of household (or the filter is off)"
            if not (reason == "not_head_of_household").any()
            else "the rows rejected as not head of household are also above the home-value cap"
        )
    return out


def gap_left(status: GapStatus, suggestions: Sequence[Suggestion]) -> int:
    """The gap after every proposal that adds leads (moves from every donor, adjacent ZIPs, both
    filter relaxations: they add different leads, so their counts add up; relaxations are upper
    bounds), never below zero. Dropping low-yield ZIPs is not counted (it would widen the gap)."""
    if status.gap <= 0:
        return 0
    added = sum(s.leads for s in suggestions if s.kind in _FIXES)
    return max(0, status.gap - added)


def next_step(status: GapStatus, suggestions: Sequence[Suggestion]) -> str:
    """What to do now, in one sentence the operator can act on."""
    if status.gap == 0:
        return "On target: nothing to do."
    if status.gap < 0:
        return (
            f"Over target by {_fmt(status.surplus)}: offer the client the surplus (an upsell), or "
            "upload the target sampled evenly by ZIP."
        )
    fixes = [s for s in suggestions if s.kind in _FIXES]
    covering = [s for s in fixes if s.covers_gap]
    left = gap_left(status, suggestions)
    if covering:
        best = covering[0]
        interest = _interest(best)
        return (
            f"Approve \"{_LABELS[best.kind]}{' from ' + best.donor if best.donor else ''}\" "
            f"(+{_fmt(best.leads)} leads{interest}): it closes the gap on its own."
        )
    if fixes and left == 0:
        return (
            "Combine the proposals in the order above until the gap is closed: none closes it alone, "
            "together they do (relaxation counts are upper bounds)."
        )
    minimum = (
        f" The month is below the minimum to proceed ({_fmt(status.minimum_to_proceed)}): uploads wait "
        "for `homeowner approve` if the client holds them."
        if not status.meets_minimum
        else ""
    )
    return (
        f"Still {_fmt(left)} short after all of these: talk to the client about a larger territory, "
        f"another licensed state or a smaller package.{minimum}"
    )


def _interval(s: Suggestion) -> str:
    if s.expected_interested is None:
        return "—"
    if s.expected_interval is None:
        return f"{s.expected_interested:,.1f}"
    low, high = s.expected_interval
    return f"{s.expected_interested:,.1f} ({low:,.1f}-{high:,.1f})"


def markdown_report(
    status: GapStatus,
    suggestions: Sequence[Suggestion],
    note: str | None = None,
    *,
    book: YieldBook | None = None,
    reasons: Sequence[str] = (),
) -> str:
    """The gap report as Markdown: proposals, low-yield ZIPs, the gap left and the next step.

    `note`: see `outcome_note`; `reasons`: why fixes are missing (`missing_reasons`).
    """
    head = (
        f"**Cleaned {_fmt(status.cleaned)} of {_fmt(status.target)}** "
        f"(minimum to proceed {_fmt(status.minimum_to_proceed)}; "
        + (
            f"short by {_fmt(status.gap)})"
            if status.gap > 0
            else (f"surplus {_fmt(status.surplus)})" if status.gap < 0 else "on target)")
        )
    )
    if note:
        head += "\n\n" + note
    proposals = [s for s in suggestions if s.kind != "drop_low_yield_zip"]
    drops = [s for s in suggestions if s.kind == "drop_low_yield_zip"]
    lines = [head, ""]
    if proposals:
        ranked = any(s.expected_interested is not None for s in proposals)
        lines += [
            "| kind | leads | " + ("expected interested (90%) | " if ranked else "") + "covers gap | ZIPs | basis |",
            "|---|---:|" + ("---:|" if ranked else "") + "---|---|---|",
        ]
        for s in proposals:
            kind = _LABELS.get(s.kind, s.kind) + (f" from {s.donor}" if s.donor else "")
            covers = "—" if s.kind in ("surplus", "no_zips_left") else ("yes" if s.covers_gap else "no")
            interested = f"{_interval(s)} | " if ranked else ""
            lines.append(
                f"| {_cell(kind)} | {_fmt(s.leads)} | {interested}{covers} | {_cell(_zip_list(s.zips))} | {_cell(s.basis)} |"
            )
    else:
        why = "; ".join(reasons) if reasons else (
            "the client is on target" if status.gap == 0 else "nothing was found to propose"
        )
        lines.append(f"No suggestions: {why}.")
    if book is not None:
        lines += ["", "**Drop or swap low-yield ZIPs** (dropping widens the gap; a swap keeps the leads)"]
        if drops:
            for s in drops:
                lines.append(
                    f"- {s.zips[0]}: {_cell(s.basis)}; a swap for an unmeasured ZIP adds about "
                    f"{s.expected_interested:,.1f} interested"
                )
        else:
            told = "" if book.separable else " No ZIP differs from the average with 90% confidence yet: more leads are needed to tell them apart."
            lines.append(
                f"- None: no ZIP lies below the client's average with "
                f"{int(LOW_YIELD_CONFIDENCE * 100)}% confidence.{told}"
            )
    if status.gap > 0:
        lines += ["", f"**Gap left after all proposals: {_fmt(gap_left(status, suggestions))}**"]
    lines += ["", f"**Next step:** {next_step(status, suggestions)}"]
    return "\n".join(lines)


def _interest(s: Suggestion) -> str:
    """" (~N interested, 90% a-b)" when outcome data ranked the proposals, else nothing."""
    if s.expected_interested is None:
        return ""
    if s.expected_interval is None:
        return f" (~{s.expected_interested:,.0f} interested)"
    low, high = s.expected_interval
    return f" (~{s.expected_interested:,.0f} interested, 90% {low:,.0f}-{high:,.0f})"


def slack_summary(suggestions: Sequence[Suggestion]) -> str:
    """1-4 short lines of numbers for the "📊 Gap Analysis" message (no lead data)."""
    lines: list[str] = []
    moves = [s for s in suggestions if s.kind == "move_zips"]
    if moves:
        best = moves[0]
        lines.append(
            f"Move {len(best.zips)} ZIP(s) from {best.donor}: +{_fmt(best.leads)} leads"
            + _interest(best)
            + (" (covers gap)" if best.covers_gap else "")
            + (f"; {len(moves) - 1} other donor(s)" if len(moves) > 1 else "")
        )
    for s in suggestions:
        if s.kind == "adjacent_zips":
            lines.append(
                f"Adjacent: {len(s.zips)} free ZIP(s) within {s.details.get('radius_miles', 0):g} mi: "
                f"~+{_fmt(s.leads)} leads" + _interest(s) + (" (covers gap)" if s.covers_gap else "")
            )
    relax = [s for s in suggestions if s.kind in ("raise_home_value_cap", "drop_head_of_household")]
    if relax:
        parts = [
            (
                f"cap to ${_fmt(s.details.get('to', 0))}"
                if s.kind == "raise_home_value_cap"
                else "no HoH filter"
            )
            + f" +{_fmt(s.leads)}"
            + _interest(s)
            for s in relax
        ]
        lines.append("Filters: " + ", ".join(parts))
    for s in suggestions:
        if s.kind == "surplus":
            lines.append(f"Surplus: {_fmt(s.leads)} leads over target (upsell)")
        elif s.kind == "no_zips_left":
            lines.append("No free ZIPs left in licensed states: escalate to head of fulfilment")
    low = [s for s in suggestions if s.kind == "drop_low_yield_zip"]
    if low:
        lines.insert(0, f"Low-yield ZIP(s) to drop or swap: {', '.join(z for s in low for z in s.zips)}")
    return "\n".join(lines[:4]) if lines else "No suggestions"
