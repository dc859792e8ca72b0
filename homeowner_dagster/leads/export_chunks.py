"""Cutting a Cole pull into exports that each stay under the 10,000-record cap, with few exports.

Pure planning, no I/O: ZIP counts in, export chunks out. ZIPs are packed first-fit decreasing
into chunks of at most 9,999 records. A ZIP that alone holds more than that is split by
purchase-day ranges (day of month of the purchase date, 1-31): the caller passes a
`count_days(zip, first_day, last_day)` function (a count query on the site), and the plan
bisects for the longest day range that still fits, so a 12,000-row ZIP costs about ten
count queries instead of 31. A day-range chunk holds one ZIP only, because the site applies
one day range to every ZIP of a search.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

EXPORT_CAP = 9_999  # the site refuses 10,000 or more records per export
FIRST_DAY, LAST_DAY = 1, 31

DayCounter = Callable[[str, int, int], int]


@dataclass(frozen=True)
class ExportChunk:
    """One export: its ZIPs, an optional purchase-day range, and the records it should hold."""

    zips: tuple[str, ...]
    count: int
    day_range: tuple[int, int] | None = None

    @property
    def label(self) -> str:
        days = f" days {self.day_range[0]}-{self.day_range[1]}" if self.day_range else ""
        return f"{len(self.zips)} ZIPs{days} ({self.count:,} records)"


class ZipTooDenseError(ValueError):
    """A single purchase day of one ZIP holds more than the cap: no day range can fit it."""


def lower_bound(total: int, cap: int = EXPORT_CAP) -> int:
    """The fewest exports any plan could use: ceil(total / 9,999)."""
    return math.ceil(total / cap) if total > 0 else 0


def pack_zips(counts: Mapping[str, int], cap: int = EXPORT_CAP) -> list[ExportChunk]:
    """First-fit decreasing of ZIPs that fit the cap; ZIPs with no records are left out.

    Raises ValueError for a ZIP over the cap: split it with `split_zip` first.
    """
    over = [z for z, c in counts.items() if c > cap]
    if over:
        raise ValueError(f"ZIPs over the export cap must be split by day range: {over}")
    bins: list[list[str]] = []
    loads: list[int] = []
    # Ties broken by ZIP so the plan is the same on every run.
    for zip_code, count in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
        if count <= 0:
            continue
        for i, load in enumerate(loads):
            if load + count <= cap:
                bins[i].append(zip_code)
                loads[i] += count
                break
        else:
            bins.append([zip_code])
            loads.append(count)
    return [ExportChunk(tuple(b), load) for b, load in zip(bins, loads, strict=True)]


def split_zip(
    zip_code: str,
    count_days: DayCounter,
    cap: int = EXPORT_CAP,
    first_day: int = FIRST_DAY,
    last_day: int = LAST_DAY,
    total: int | None = None,
) -> list[ExportChunk]:
    """Consecutive purchase-day ranges of one ZIP, each the longest that fits the cap.

    Greedy longest-prefix is optimal for splitting a sequence into capped pieces; bisection
    keeps the count queries to about log2(31) per piece. `total` (the ZIP's count over
    first_day..last_day, when already known) saves one query.
    """
    chunks: list[ExportChunk] = []
    start = first_day
    while start <= last_day:
        if start == first_day and total is not None:
            whole = total
        else:
            whole = count_days(zip_code, start, last_day)
        if whole <= cap:
            if whole > 0:
                chunks.append(ExportChunk((zip_code,), whole, (start, last_day)))
            break
        lo, hi = start - 1, last_day  # count(start..lo) fits (lo=start-1: empty), hi does not
        fits = 0
        while hi - lo > 1:
            mid = (lo + hi) // 2
            c = count_days(zip_code, start, mid)
            if c <= cap:
                lo, fits = mid, c
            else:
                hi = mid
        if lo < start:
            raise ZipTooDenseError(
                f"ZIP {zip_code}: purchase day {start} alone holds more than {cap:,} records"
            )
        if fits > 0:
            chunks.append(ExportChunk((zip_code,), fits, (start, lo)))
        start = lo + 1
    return chunks


def plan_exports(
    counts: Mapping[str, int],
    count_days: DayCounter | None = None,
    cap: int = EXPORT_CAP,
) -> list[ExportChunk]:
    """The whole plan: ZIPs over the cap split by day range, the rest packed FFD.

    Day-range chunks come first (biggest work first); `count_days` is needed only when some
    ZIP is over the cap.
    """
    over = sorted(z for z, c in counts.items() if c > cap)
    if over and count_days is None:
        raise ValueError(f"ZIPs {over} exceed the cap; a day-range counter is needed")
    chunks: list[ExportChunk] = []
    for zip_code in over:
        assert count_days is not None
        chunks.extend(split_zip(zip_code, count_days, cap, total=counts[zip_code]))
    chunks.extend(pack_zips({z: c for z, c in counts.items() if c <= cap}, cap))
    return chunks


def per_day_counter(day_counts: Mapping[str, Mapping[int, int]]) -> DayCounter:
    """A `count_days` from known per-day counts (e.g. last month's rows), no site queries."""

    def count_days(zip_code: str, first: int, last: int) -> int:
        days = day_counts.get(zip_code, {})
        return sum(c for d, c in days.items() if first <= d <= last)

    return count_days
