"""Proposals ranked by the interested replies measured outcomes expect, and low-yield ZIPs."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from homeowner_dagster.leads.gap_solver.suggestion import Suggestion
from homeowner_dagster.leads.outcomes import YieldBook


def suggest_low_yield_drops(book: YieldBook) -> list[Suggestion]:
    """ "Drop or swap" for each of the client's ZIPs that the posterior puts below the client's
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


def rank_by_expected_interest(
    suggestions: Sequence[Suggestion], book: YieldBook
) -> list[Suggestion]:
    """Each proposal with its expected interested replies and interval, most first (ties keep
    their order). Ranked by the expected value; the interval says how sure that is."""
    scored = []
    for s in suggestions:
        mean, low, high = expected_interested(s, book)
        scored.append(
            replace(
                s,
                expected_interested=round(mean, 1),
                expected_interval=(round(low, 1), round(high, 1)),
            )
        )
    order = sorted(range(len(scored)), key=lambda i: (-(scored[i].expected_interested or 0.0), i))
    return [scored[i] for i in order]
