"""Export planning: every export under the cap, every ZIP exported once, few exports."""

from __future__ import annotations

from collections import Counter
from datetime import date

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from homeowner_dagster.leads.export_chunks import (
    EXPORT_CAP,
    ZipTooDenseError,
    lower_bound,
    pack_zips,
    per_day_counter,
    plan_exports,
    split_zip,
)
from homeowner_dagster.sandbox import generator


def test_lower_bound() -> None:
    assert lower_bound(0) == 0
    assert lower_bound(1) == 1
    assert lower_bound(9_999) == 1
    assert lower_bound(10_000) == 2
    assert lower_bound(80_000) == 9


def test_pack_is_first_fit_decreasing() -> None:
    chunks = pack_zips({"a": 6_000, "b": 5_000, "c": 4_000, "d": 3_000, "e": 0})
    # 6,000 + 4,000 would be 10,000: over the cap, so c goes with b and d with a.
    assert [c.zips for c in chunks] == [("a", "d"), ("b", "c")]
    assert [c.count for c in chunks] == [9_000, 9_000]
    assert all(c.count <= EXPORT_CAP for c in chunks)
    assert "e" not in {z for c in chunks for z in c.zips}  # nothing to export
    with pytest.raises(ValueError, match="split"):
        pack_zips({"big": 10_000})


def test_exactly_at_the_cap_fits() -> None:
    chunks = pack_zips({"a": 9_000, "b": 999, "c": 1})
    assert chunks[0].zips == ("a", "b") and chunks[0].count == 9_999


def test_split_zip_by_day_ranges_with_few_count_queries() -> None:
    days = {"77494": {d: 400 for d in range(1, 32)}}  # 12,400 records
    calls: list[tuple[int, int]] = []
    exact = per_day_counter(days)

    def counting(zip_code: str, first: int, last: int) -> int:
        calls.append((first, last))
        return exact(zip_code, first, last)

    chunks = split_zip("77494", counting)
    assert [c.day_range for c in chunks] == [(1, 24), (25, 31)]
    assert [c.count for c in chunks] == [9_600, 2_800]
    assert len(calls) <= 12


def test_a_single_day_over_the_cap_cannot_be_split() -> None:
    with pytest.raises(ZipTooDenseError):
        split_zip("x", per_day_counter({"x": {1: 10_500, 2: 5}}))


def test_plan_with_a_huge_zip_from_the_generator() -> None:
    month = date(2027, 3, 1)
    zips = generator.pick_zips("TX", month, 60, 80_000)
    counts = {z: generator.count_for(z, month) for z in zips}

    def count_days(zip_code: str, first: int, last: int) -> int:
        return generator.count_for(zip_code, month, (first, last))

    chunks = plan_exports(counts, count_days)
    assert all(0 < c.count <= EXPORT_CAP for c in chunks)
    assert sum(c.count for c in chunks) == sum(counts.values())
    assert len(chunks) <= lower_bound(sum(counts.values())) + 1
    huge = [c for c in chunks if c.day_range]
    assert huge and all(len(c.zips) == 1 for c in huge)
    with pytest.raises(ValueError, match="counter"):
        plan_exports(counts)


@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(
        st.text("0123456789", min_size=5, max_size=5), st.integers(0, EXPORT_CAP), max_size=80
    )
)
def test_every_chunk_under_the_cap_and_every_zip_once(counts: dict[str, int]) -> None:
    chunks = pack_zips(counts)
    seen = Counter(z for c in chunks for z in c.zips)
    assert set(seen) == {z for z, n in counts.items() if n > 0}
    assert all(v == 1 for v in seen.values())
    assert all(c.count < 10_000 for c in chunks)
    assert all(c.count == sum(counts[z] for z in c.zips) for c in chunks)
    # First fit: no two exports could have been one.
    loads = sorted(c.count for c in chunks)
    if len(loads) >= 2:
        assert loads[0] + loads[1] > EXPORT_CAP


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(10, 500), min_size=1, max_size=200))
def test_typical_inputs_within_one_of_the_lower_bound(sizes: list[int]) -> None:
    """ZIPs much smaller than the cap (the usual case) pack within one export of optimal."""
    counts = {f"{i:05d}": n for i, n in enumerate(sizes)}
    chunks = pack_zips(counts)
    assert len(chunks) <= lower_bound(sum(sizes)) + 1


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.integers(10, 3_000), min_size=1, max_size=60),
    st.lists(st.integers(0, 700), min_size=31, max_size=31),
)
def test_plan_with_split_covers_every_record_once(sizes: list[int], huge_days: list[int]) -> None:
    counts = {f"{i:05d}": n for i, n in enumerate(sizes)}
    day_counts = {"99999": dict(enumerate(huge_days, start=1))}
    counts["99999"] = sum(huge_days)
    chunks = plan_exports(counts, per_day_counter(day_counts))
    assert all(c.count <= EXPORT_CAP for c in chunks)
    assert sum(c.count for c in chunks) == sum(counts.values())
    pieces = sorted((c.day_range, c.count) for c in chunks if c.day_range)
    covered = [d for (a, b), _ in pieces for d in range(a, b + 1)]
    assert len(covered) == len(set(covered))  # day ranges never overlap
    for ((_, last), count), _next in zip(pieces, pieces[1:], strict=False):
        # each range is as long as the cap allows: one more day would not fit
        assert count + huge_days[last] > EXPORT_CAP
