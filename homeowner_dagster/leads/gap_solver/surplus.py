"""The over-target sample: which cleaned leads stay back as surplus when a month has too many.

Every ZIP keeps its proportional share of the target, rounded by largest remainder so the kept
total is exactly the target. When target >= number of ZIPs, every ZIP keeps at least one row;
ZIPs whose share is below one get exactly one and the others share what is left in proportion
(so the one-row floor wins over proportion for tiny ZIPs).
"""

from __future__ import annotations

import numpy as np
import pandas as pd


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
