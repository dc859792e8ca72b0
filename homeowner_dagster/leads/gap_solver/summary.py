"""The gap report in words: the Markdown report, the Slack summary and the next step."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import pandas as pd

from homeowner_dagster.leads.gap import GapStatus, kind_label
from homeowner_dagster.leads.gap_solver.geography import _norm_states
from homeowner_dagster.leads.gap_solver.suggestion import Suggestion, _fmt
from homeowner_dagster.leads.outcomes import YieldBook
from homeowner_dagster.leads.yield_model import LOW_YIELD_CONFIDENCE


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
            f'Approve "{kind_label(best.kind)}{" from " + best.donor if best.donor else ""}" '
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
            "| kind | leads | "
            + ("expected interested (90%) | " if ranked else "")
            + "covers gap | ZIPs | basis |",
            "|---|---:|" + ("---:|" if ranked else "") + "---|---|---|",
        ]
        for s in proposals:
            kind = kind_label(s.kind) + (f" from {s.donor}" if s.donor else "")
            covers = (
                "—" if s.kind in ("surplus", "no_zips_left") else ("yes" if s.covers_gap else "no")
            )
            interested = f"{_interval(s)} | " if ranked else ""
            lines.append(
                f"| {_cell(kind)} | {_fmt(s.leads)} | {interested}{covers} | {_cell(_zip_list(s.zips))} | {_cell(s.basis)} |"
            )
    else:
        why = (
            "; ".join(reasons)
            if reasons
            else ("the client is on target" if status.gap == 0 else "nothing was found to propose")
        )
        lines.append(f"No suggestions: {why}.")
    if book is not None:
        lines += [
            "",
            "**Drop or swap low-yield ZIPs** (dropping widens the gap; a swap keeps the leads)",
        ]
        if drops:
            for s in drops:
                lines.append(
                    f"- {s.zips[0]}: {_cell(s.basis)}; a swap for an unmeasured ZIP adds about "
                    f"{s.expected_interested:,.1f} interested"
                )
        else:
            told = (
                ""
                if book.separable
                else " No ZIP differs from the average with 90% confidence yet: more leads are needed to tell them apart."
            )
            lines.append(
                f"- None: no ZIP lies below the client's average with "
                f"{int(LOW_YIELD_CONFIDENCE * 100)}% confidence.{told}"
            )
    if status.gap > 0:
        lines += ["", f"**Gap left after all proposals: {_fmt(gap_left(status, suggestions))}**"]
    lines += ["", f"**Next step:** {next_step(status, suggestions)}"]
    return "\n".join(lines)


def _interest(s: Suggestion) -> str:
    """ " (~N interested, 90% a-b)" when outcome data ranked the proposals, else nothing."""
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
                f"~+{_fmt(s.leads)} leads"
                + _interest(s)
                + (" (covers gap)" if s.covers_gap else "")
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
        lines.insert(
            0, f"Low-yield ZIP(s) to drop or swap: {', '.join(z for s in low for z in s.zips)}"
        )
    return "\n".join(lines[:4]) if lines else "No suggestions"
