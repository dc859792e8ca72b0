"""The recovery study: many seeded runs of planted ZIP rates through the yield estimator.

Prints, per run and summarised, the 90 % intervals' coverage of the planted rates (all ZIPs and
the top / bottom 10 %), Spearman over ZIPs with 300+ mature leads, and whether a ZIP under 100
leads led the top three without its interval saying so; with and without the exposure correction.

    .venv/bin/python bench/bench_outcome_recovery.py [runs]
"""

from __future__ import annotations

import sys
import time

import numpy as np

from homeowner_dagster.sandbox.outcome_study import plant, recovery


def main(runs: int = 20) -> None:
    began = time.perf_counter()
    rows = {True: [], False: []}
    for seed in range(runs):
        planted = plant(seed)
        for correct in (True, False):
            r = recovery(planted, correct=correct)
            rows[correct].append(
                (r.coverage, r.coverage_extremes, r.spearman_300, r.top3_small_unjustified)
            )
            if correct:
                print(f"seed {seed:2d}: {r.line()}")
    for correct, label in ((True, "exposure correction on"), (False, "exposure correction off")):
        a = np.array(rows[correct])
        print(
            f"{label}, {runs} runs x 400 ZIPs: coverage mean {a[:, 0].mean():.3f} "
            f"(range {a[:, 0].min():.3f}-{a[:, 0].max():.3f}), extremes mean {a[:, 1].mean():.3f} "
            f"(min {a[:, 1].min():.3f}), Spearman 300+ mean {a[:, 2].mean():.3f} "
            f"(range {a[:, 2].min():.3f}-{a[:, 2].max():.3f}), runs with an unjustified small "
            f"top-3 ZIP {int((a[:, 3] > 0).sum())}, runs meeting all three "
            f"{int(((a[:, 0] >= 0.85) & (a[:, 0] <= 0.95) & (a[:, 2] >= 0.7) & (a[:, 3] == 0)).sum())}"
        )
    print(f"{time.perf_counter() - began:.1f} s")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 20)
