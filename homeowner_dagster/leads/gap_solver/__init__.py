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

Modules: `suggestion` (the `Suggestion` type), `geography` (ZIP centroids, distances, free
ZIPs), `candidates` (moves, adjacent ZIPs and filter relaxations, counted; how each is chosen),
`proposals` (`suggest`: all of them for one month), `ranking` (by measured outcomes), `surplus`
(the over-target sample), `summary` (the Markdown report and the Slack summary).
"""

from __future__ import annotations

from homeowner_dagster.leads.gap_solver.candidates import (
    adjacent_candidates,
    suggest_adjacent,
    suggest_moves,
    suggest_relaxation,
)
from homeowner_dagster.leads.gap_solver.geography import (
    EARTH_RADIUS_MILES,
    distance_miles,
    zip_centroids,
)
from homeowner_dagster.leads.gap_solver.proposals import (
    suggest,
)
from homeowner_dagster.leads.gap_solver.ranking import (
    expected_interested,
    rank_by_expected_interest,
    suggest_low_yield_drops,
)
from homeowner_dagster.leads.gap_solver.suggestion import (
    KINDS,
    Suggestion,
)
from homeowner_dagster.leads.gap_solver.summary import (
    gap_left,
    kind_label,
    markdown_report,
    missing_reasons,
    next_step,
    outcome_note,
    slack_summary,
)
from homeowner_dagster.leads.gap_solver.surplus import (
    surplus_sample,
)

__all__ = [
    "EARTH_RADIUS_MILES",
    "KINDS",
    "Suggestion",
    "adjacent_candidates",
    "distance_miles",
    "expected_interested",
    "gap_left",
    "kind_label",
    "markdown_report",
    "missing_reasons",
    "next_step",
    "outcome_note",
    "rank_by_expected_interest",
    "slack_summary",
    "suggest",
    "suggest_adjacent",
    "suggest_low_yield_drops",
    "suggest_moves",
    "suggest_relaxation",
    "surplus_sample",
    "zip_centroids",
]
