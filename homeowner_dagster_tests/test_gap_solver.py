"""Gap suggestions and the over-target sample on constructed territories (real NJ / DE ZIPs)."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from homeowner_dagster.leads.gap import gap_status
from homeowner_dagster.leads.gap_solver import (
    Suggestion,
    distance_miles,
    markdown_report,
    slack_summary,
    suggest,
    suggest_adjacent,
    suggest_moves,
    suggest_relaxation,
    surplus_sample,
    zip_centroids,
)
from homeowner_dagster.leads.gap_solver.candidates import _choose_subset

# Montclair / Glen Ridge area, NJ.
MONTCLAIR = ("07042", "07043")
NEAR_FREE = {"07028": 300.0, "07003": 500.0, "07009": 450.0, "07012": 200.0}
VERONA = "07044"  # 1.9 mi from Montclair, held by another client
BRONX = "10451"  # about 10 mi away, but in NY
ATLANTIC_CITY = "08401"  # NJ, far beyond 25 mi


def frame(rows: list[tuple[str, str, str, int]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["zip", "state", "client_slug", "cleaned_count"])


def totals(rows: list[tuple[str, int, int]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["client_slug", "cleaned", "target"])


NO_REJECTS = pd.DataFrame({"reason": [], "zip": [], "home_value": []})


# Moves


def test_move_covers_gap_with_fewest_zips_and_donor_stays_at_target() -> None:
    assignments = frame(
        [
            ("07042", "NJ", "alpha", 14_000),
            ("07001", "NJ", "beta", 900),
            ("07002", "NJ", "beta", 700),
            ("07004", "NJ", "beta", 400),
            ("07005", "NJ", "beta", 300),
            ("07006", "NJ", "beta", 1_600),  # more than beta can spare
            ("10451", "NY", "beta", 1_200),  # alpha is not licensed in NY
            ("07008", "NJ", "beta", 12_400),
            ("10452", "NY", "gamma", 20_000),  # over target, but only in NY
            ("07010", "NJ", "delta", 5_000),  # in NJ, but under target
        ]
    )
    t = totals(
        [
            ("alpha", 14_000, 15_000),
            ("beta", 16_500, 15_000),
            ("gamma", 20_000, 15_000),
            ("delta", 5_000, 15_000),
        ]
    )
    moves = suggest_moves("alpha", 1_000, ["NJ"], assignments, t)
    assert [m.donor for m in moves] == ["beta"]
    move = moves[0]
    assert move.kind == "move_zips" and move.covers_gap
    assert set(move.zips) == {"07002", "07005"}  # 700 + 300: two ZIPs, no overshoot
    assert move.leads == 1_000
    assert move.details["donor_after_move"] == 15_500 >= move.details["donor_target"]
    assert move.details["cleaned_by_zip"] == {"07002": 700, "07005": 300}
    assert set(move.details["miles_to_client_territory"]) == {"07002", "07005"}


def test_move_lists_partial_donors_when_none_covers() -> None:
    assignments = frame(
        [
            ("07042", "NJ", "alpha", 10_000),
            ("07001", "NJ", "beta", 300),
            ("07002", "NJ", "beta", 250),
            ("07003", "NJ", "beta", 15_000),
            ("07004", "NJ", "kappa", 100),
            ("07005", "NJ", "kappa", 15_050),
        ]
    )
    t = totals([("alpha", 10_000, 15_000), ("beta", 15_550, 15_000), ("kappa", 15_150, 15_000)])
    moves = suggest_moves("alpha", 5_000, ["NJ"], assignments, t)
    assert [(m.donor, m.leads, m.covers_gap) for m in moves] == [
        ("beta", 550, False),
        ("kappa", 100, False),
    ]
    for m in moves:
        assert m.details["donor_after_move"] >= m.details["donor_target"]


def test_move_prefers_covering_donor_over_partial_one() -> None:
    assignments = frame(
        [
            ("07042", "NJ", "alpha", 10_000),
            ("07001", "NJ", "beta", 400),
            ("07003", "NJ", "beta", 15_000),
            ("07004", "NJ", "kappa", 600),
            ("07005", "NJ", "kappa", 15_000),
        ]
    )
    t = totals([("alpha", 10_000, 15_000), ("beta", 15_400, 15_000), ("kappa", 15_600, 15_000)])
    moves = suggest_moves("alpha", 500, ["NJ"], assignments, t)
    assert [(m.donor, m.zips, m.covers_gap) for m in moves] == [("kappa", ("07004",), True)]


@settings(max_examples=150, deadline=None)
@given(
    counts=st.lists(st.integers(0, 60), min_size=1, max_size=8),
    gap=st.integers(1, 150),
    capacity=st.integers(0, 200),
)
def test_subset_choice_matches_brute_force(counts: list[int], gap: int, capacity: int) -> None:
    picked, covers = _choose_subset(np.array(counts), gap, capacity)
    total = sum(counts[i] for i in picked)
    assert total <= capacity and len(set(picked)) == len(picked)
    subsets = [
        c for r in range(len(counts) + 1) for c in itertools.combinations(range(len(counts)), r)
    ]
    sums = [(sum(counts[i] for i in c), c) for c in subsets]
    feasible = [(s, c) for s, c in sums if s <= capacity]
    covering = [(len(c), s - gap) for s, c in feasible if s >= gap]
    assert covers == bool(covering)
    if covering:
        assert (len(picked), total - gap) == min(covering)
    else:
        assert total == max(s for s, _ in feasible)


# Adjacent ZIPs


def adjacent_setup() -> pd.DataFrame:
    return frame(
        [
            (MONTCLAIR[0], "NJ", "alpha", 5_000),
            (MONTCLAIR[1], "NJ", "alpha", 5_000),
            (VERONA, "NJ", "beta", 4_000),
        ]
    )


def test_adjacent_covers_gap_with_free_nearby_zips() -> None:
    yields = {**NEAR_FREE, VERONA: 5_000.0, BRONX: 5_000.0, ATLANTIC_CITY: 5_000.0}
    s = suggest_adjacent("alpha", 900, ["NJ"], adjacent_setup(), yields, radius_miles=25.0)
    assert s is not None and s.kind == "adjacent_zips" and s.covers_gap
    assert set(s.zips) == {"07003", "07009"}  # the two largest yields reach 900
    assert s.leads == 950 and s.basis == "ZIP history"
    assert all(m <= 25.0 for m in s.details["miles_to_client_territory"].values())


def test_adjacent_excludes_held_other_state_and_far_zips() -> None:
    yields = {VERONA: 9_000.0, BRONX: 9_000.0, ATLANTIC_CITY: 9_000.0, "07028": 10.0}
    s = suggest_adjacent("alpha", 5_000, ["NJ"], adjacent_setup(), yields, radius_miles=25.0)
    assert s is not None and s.zips == ("07028",) and not s.covers_gap
    assert s.leads == 10
    # Atlantic City qualifies once the radius reaches it; the Bronx only when NY is licensed.
    wide = suggest_adjacent("alpha", 5_000, ["NJ"], adjacent_setup(), yields, radius_miles=200)
    assert wide is not None and set(wide.zips) == {ATLANTIC_CITY}
    both = suggest_adjacent("alpha", 5_000, ["NJ", "NY"], adjacent_setup(), yields)
    assert both is not None and set(both.zips) == {BRONX}
    assert VERONA not in wide.zips + both.zips
    assert suggest_adjacent("alpha", 5_000, ["NJ"], adjacent_setup(), {VERONA: 1.0}) is None


def test_adjacent_last_pick_is_the_smallest_zip_that_closes_the_gap() -> None:
    s = suggest_adjacent("alpha", 250, ["NJ"], adjacent_setup(), NEAR_FREE)
    assert s is not None and s.zips == ("07028",) and s.leads == 300


def test_adjacent_asks_a_callable_only_for_the_nearest_candidates() -> None:
    asked: list[str] = []

    def cole_count(zip_code: str) -> float | None:
        asked.append(zip_code)
        return 100.0 if zip_code in NEAR_FREE else None

    s = suggest_adjacent(
        "alpha", 350, ["NJ"], adjacent_setup(), cole_count, max_candidates=5,
        yield_basis="Cole count query x yield ratio",
    )  # fmt: skip
    assert len(asked) == 5 and VERONA not in asked and not set(asked) & set(MONTCLAIR)
    assert s is not None and s.basis == "Cole count query x yield ratio"
    assert set(s.zips) == set(NEAR_FREE) & set(asked)


def test_zip_centroids_and_distance() -> None:
    nj = zip_centroids(["nj"])
    assert list(nj.columns) == ["zip", "state", "lat", "lon"]
    assert set(nj["state"]) == {"NJ"} and "07030" in set(nj["zip"])
    nj.loc[:, "lat"] = 0.0  # callers get a copy; the cache is untouched
    assert zip_centroids(["NJ"])["lat"].gt(38).all()
    miles = distance_miles(
        40.7128, -74.0060, np.array([34.0522, 40.7128]), np.array([-118.2437, -74.0060])
    )
    assert miles[0] == pytest.approx(2445, rel=0.01) and miles[1] == 0


# Filter relaxation


def test_relaxation_counts_rejected_rows_exactly() -> None:
    rejected = pd.DataFrame(
        {
            "reason": ["home_value_above_max"] * 4
            + ["not_head_of_household"] * 3
            + ["invalid_email", "duplicate"],
            "zip": ["07042", "07042", "07043", "07043", "07042", "07043", None, "07042", "07042"],
            "home_value": [
                950_000,
                1_000_000,
                1_000_001,
                2e6,
                300_000,
                950_000,
                400_000,
                500_000,
                950_000,
            ],
        }
    )
    cap, hoh = suggest_relaxation(rejected, 900_000, gap=3)
    assert cap.kind == "raise_home_value_cap" and cap.leads == 2 and not cap.covers_gap
    assert cap.details["rows_by_zip"] == {"07042": 2} and cap.details["still_above_new_cap"] == 2
    assert hoh.kind == "drop_head_of_household" and hoh.leads == 2 and not hoh.covers_gap
    assert hoh.details["also_above_cap"] == 1 and hoh.details["rows_by_zip"] == {
        "07042": 1,
        "unknown": 1,
    }
    assert "upper bound" in hoh.basis and "not head of household" in hoh.basis
    assert [s.covers_gap for s in suggest_relaxation(rejected, 900_000, gap=2)] == [True, True]
    assert (
        suggest_relaxation(rejected, 900_000, head_of_household_required=False, raise_to=900_000)
        == []
    )


# The whole report


def test_suggest_under_target_gap_covered_by_relaxation() -> None:
    assignments = frame([(z, "NJ", "alpha", 7_000) for z in MONTCLAIR])
    rejected = pd.DataFrame(
        {"reason": ["home_value_above_max"] * 1_200, "zip": "07042", "home_value": 950_000.0}
    )
    status = gap_status(14_000, 100)
    out = suggest(
        "alpha",
        status,
        ["NJ"],
        assignments,
        totals([("alpha", 14_000, 15_000)]),
        rejected,
        {},
        900_000,
        True,
    )
    assert [s.kind for s in out] == ["raise_home_value_cap"]
    assert out[0].covers_gap and out[0].leads == 1_200
    report = markdown_report(status, out)
    assert "| Raise home-value cap | 1,200 | yes | 07042 |" in report
    assert "short by 1,000" in report
    assert json.loads(json.dumps([s.as_dict() for s in out]))[0]["zips"] == ["07042"]


def test_no_free_zips_in_any_licensed_state_says_so() -> None:
    de = sorted(zip_centroids(["DE"])["zip"])
    half = len(de) // 2
    assignments = frame(
        [(z, "DE", "alpha", 100) for z in de[:half]] + [(z, "DE", "beta", 100) for z in de[half:]]
    )
    t = totals([("alpha", 100 * half, 15_000), ("beta", 100 * (len(de) - half), 15_000)])
    status = gap_status(100 * half, 100)
    out = suggest(
        "alpha", status, ["DE"], assignments, t, NO_REJECTS, {z: 500.0 for z in de}, 900_000, True
    )
    assert [s.kind for s in out] == ["no_zips_left"]
    assert "every ZIP in DE is held" in out[0].basis and "head of fulfilment" in out[0].basis
    assert "No free ZIPs" in slack_summary(out)
    # One free ZIP, or an over-target donor, and there is something left to try.
    fewer = assignments.iloc[1:]
    assert "no_zips_left" not in [
        s.kind for s in suggest("alpha", status, ["DE"], fewer, t, NO_REJECTS, {}, 900_000, True)
    ]
    rich = totals([("alpha", 100 * half, 15_000), ("beta", 100_000, 15_000)])
    kinds = [
        s.kind
        for s in suggest("alpha", status, ["DE"], assignments, rich, NO_REJECTS, {}, 900_000, True)
    ]
    assert kinds == ["move_zips"]


def test_suggest_all_kinds_and_summaries() -> None:
    assignments = frame(
        [
            (MONTCLAIR[0], "NJ", "alpha", 7_000),
            (MONTCLAIR[1], "NJ", "alpha", 7_000),
            (VERONA, "NJ", "beta", 1_000),
            ("07001", "NJ", "beta", 15_000),
        ]
    )
    t = totals([("alpha", 14_000, 15_000), ("beta", 16_000, 15_000)])
    rejected = pd.DataFrame(
        {"reason": ["not_head_of_household"] * 40, "zip": "07042", "home_value": 1.0}
    )
    status = gap_status(14_000, 100)
    out = suggest("alpha", status, ["NJ"], assignments, t, rejected, NEAR_FREE, 900_000, True)
    assert [s.kind for s in out] == ["move_zips", "adjacent_zips", "drop_head_of_household"]
    assert out[0].zips == (VERONA,) and out[0].covers_gap
    lines = slack_summary(out).splitlines()
    assert 1 <= len(lines) <= 4 and lines[0] == "Move 1 ZIP(s) from beta: +1,000 leads (covers gap)"
    assert all(any(ch.isdigit() for ch in line) for line in lines)
    assert "07042" not in slack_summary(out)
    report = markdown_report(status, out)
    assert report.count("\n|") == 2 + len(out)


def test_suggest_over_and_met() -> None:
    over = gap_status(18_000, 100)
    out = suggest(
        "alpha",
        over,
        ["NJ"],
        frame([]),
        totals([]),
        NO_REJECTS,
        {},
        900_000,
        True,
        sample_surplus=True,
    )
    assert out == [
        Suggestion(
            kind="surplus",
            leads=3_000,
            basis="cleaned leads minus the package target",
            details={"upsell": True, "cleaned": 18_000, "target": 15_000, "sample_to_target": True},
        )
    ]
    assert "Surplus: 3,000 leads over target (upsell)" == slack_summary(out)
    assert "| Surplus | 3,000 | — |" in markdown_report(over, out)
    met = gap_status(15_000, 100)
    assert suggest("alpha", met, ["NJ"], frame([]), totals([]), NO_REJECTS, {}, 900_000, True) == []
    met_report = markdown_report(met, [])
    assert "No suggestions: the client is on target." in met_report
    assert met_report.endswith("**Next step:** On target: nothing to do.")
    assert markdown_report(over, out).endswith("upload the target sampled evenly by ZIP.")


def test_markdown_truncates_long_zip_lists() -> None:
    s = Suggestion(
        "adjacent_zips",
        5,
        "ZIP history | x",
        tuple(f"070{i:02d}" for i in range(12)),
        covers_gap=True,
    )
    row = [
        line
        for line in markdown_report(gap_status(14_000, 100), [s]).splitlines()
        if line.startswith("| Adjacent")
    ][0]
    assert "07009, … (+2)" in row and "07010" not in row and "ZIP history \\| x" in row
    with pytest.raises(ValueError):
        Suggestion("wider_net", 1, "")


# Over-target sample


def test_surplus_sample_is_even_by_zip_and_deterministic() -> None:
    cleaned = pd.DataFrame({"zip": ["07042"] * 600 + ["07043"] * 300 + ["07044"] * 100})
    cleaned.index = cleaned.index + 1_000
    surplus = surplus_sample(cleaned, 500, seed=7)
    assert surplus.index.equals(cleaned.index) and surplus.dtype == bool
    kept = cleaned.loc[~surplus, "zip"].value_counts().to_dict()
    assert kept == {"07042": 300, "07043": 150, "07044": 50}
    assert surplus.equals(surplus_sample(cleaned, 500, seed=7))
    assert not surplus.equals(surplus_sample(cleaned, 500, seed=8))
    assert not surplus_sample(cleaned, 1_000).any() and surplus_sample(cleaned, 0).all()


def test_surplus_sample_keeps_one_row_of_tiny_zips() -> None:
    cleaned = pd.DataFrame({"zip": ["07042"] * 10_000 + ["07043", "07044"]})
    kept = cleaned.loc[~surplus_sample(cleaned, 3), "zip"].value_counts().to_dict()
    assert kept == {"07042": 1, "07043": 1, "07044": 1}


@settings(max_examples=200, deadline=None)
@given(
    sizes=st.lists(st.integers(1, 40), min_size=1, max_size=12),
    fraction=st.floats(0.0, 1.0),
    seed=st.integers(0, 2**32 - 1),
)
def test_surplus_sample_property(sizes: list[int], fraction: float, seed: int) -> None:
    zips = [f"{7000 + i:05d}" for i in range(len(sizes))]
    cleaned = pd.DataFrame({"zip": np.repeat(zips, sizes)}).sample(
        frac=1.0, random_state=seed % 1000
    )
    n = len(cleaned)
    target = int(round(fraction * n))
    surplus = surplus_sample(cleaned, target, seed=seed)
    kept = cleaned.loc[~surplus, "zip"].value_counts().reindex(zips, fill_value=0).to_numpy()
    size = np.array(sizes)
    assert kept.sum() == min(target, n)
    assert (kept <= size).all()
    share = target * size / n
    if target >= len(sizes):
        assert (kept >= 1).all()
    if (share >= 1).all() or target < len(sizes):
        assert (np.abs(kept - share) < 1 + 1e-9).all()
    else:
        # ZIPs below one row's share keep exactly one; the rest share what is left in proportion.
        floored = np.zeros(len(sizes), dtype=bool)
        while True:
            left = target - floored.sum()
            quota = left * size / size[~floored].sum()
            newly = ~floored & (quota < 1)
            if not newly.any():
                break
            floored |= newly
        assert (kept[floored] == 1).all()
        assert (np.abs(kept[~floored] - quota[~floored]) < 1 + 1e-9).all()


def test_every_kind_has_its_words_in_slack_and_the_report() -> None:
    """Slack's ZIP lines and the report name each kind in words, never its code name (the
    low-yield drop once reached Slack as `drop_low_yield_zip`)."""
    from homeowner_dagster.leads.gap import kind_label, suggestion_zip_lines
    from homeowner_dagster.leads.gap_solver import KINDS, Suggestion

    for kind in KINDS:
        assert kind_label(kind) != kind, kind
    drop = Suggestion(kind="drop_low_yield_zip", leads=412, basis="measured", zips=("07001",))
    move = Suggestion(kind="move_zips", leads=95, basis="free", zips=("07002", "07003"))
    assert suggestion_zip_lines([drop, move]) == [
        "• Drop or swap low-yield ZIP (-412 leads): 07001",
        "• Move ZIPs (+95 leads): 07002, 07003",
    ]
