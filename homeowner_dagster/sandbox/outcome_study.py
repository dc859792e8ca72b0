"""Recovery study: plant per-ZIP rates, draw what homeowners do, estimate, compare with the truth.

The homeowners behave as the sandbox Bison's do (`bison_outcomes`: planted ZIP rates, send lag,
reply delays with a long tail), drawn here with numpy instead of through HTTP so that a study of
hundreds of ZIPs takes seconds. The estimator sees only what the pipeline would store: per lead
its ZIP, replied, interested, the window's age at the read and the first reply's delay.

Windows go out weekly (one a Monday, read two hours after that Monday's attach, as the schedules
do), so windows of every age from 0 to `weeks - 1` weeks are in the data; a share of the ZIPs joined
the territory only in the last few weeks (their leads are all young).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from homeowner_dagster.leads import yield_model
from homeowner_dagster.sandbox.bison_outcomes import (
    SEND_LAG_DAYS,
    planted_zip_rates,
    reply_delay_days,
)

READ_HOURS_AFTER_ATTACH = 2.0  # attach Mondays 09:00, outcomes read 11:00


@dataclass(frozen=True)
class Planted:
    leads: pd.DataFrame  # what the estimator sees
    truth: pd.DataFrame  # zip, leads, planted interested per 1,000


def plant(
    seed: int,
    zips: int = 400,
    weeks: int = 13,
    min_leads: int = 20,
    max_leads: int = 900,
    new_zip_share: float = 0.3,
) -> Planted:
    """ZIPs of `min_leads`-`max_leads` leads over `weeks` weekly windows, outcomes drawn."""
    rng = np.random.default_rng(seed)
    names = [f"{10000 + i:05d}" for i in range(zips)]
    size = rng.integers(min_leads, max_leads + 1, zips)
    reply_rate, interested_rate = planted_zip_rates(rng.random(zips), rng.random(zips))
    # A new ZIP's leads are in its last 1-4 windows only.
    first_week = np.where(rng.random(zips) < new_zip_share, rng.integers(1, 5, zips), weeks)
    zip_index = np.repeat(np.arange(zips), size)
    window = np.floor(rng.random(len(zip_index)) * first_week[zip_index]).astype(int)  # weeks old
    age = 7.0 * window + READ_HOURS_AFTER_ATTACH / 24
    send = rng.random(len(zip_index)) * SEND_LAG_DAYS
    delay = send + reply_delay_days(rng.random(len(zip_index)))
    will_reply = rng.random(len(zip_index)) < reply_rate[zip_index]
    interested_share = interested_rate / reply_rate
    will_be_interested = will_reply & (rng.random(len(zip_index)) < interested_share[zip_index])
    seen = will_reply & (delay <= age)
    leads = pd.DataFrame(
        {
            "zip": np.array(names)[zip_index],
            "replied": seen,
            "interested": seen & will_be_interested,
            "age_days": age,
            "delay_days": np.where(seen, delay, np.nan),
        }
    )
    truth = pd.DataFrame({"zip": names, "leads": size, "planted_per_1000": 1000 * interested_rate})
    return Planted(leads, truth)


@dataclass(frozen=True)
class Recovery:
    coverage: float  # share of ZIPs whose 90 % interval holds the planted rate
    coverage_extremes: float  # the same for the top and bottom 10 % of planted rates
    spearman_300: float  # estimate vs planted, ZIPs with 300+ mature leads
    zips_300: int
    top3_small_unjustified: int  # top-3 ZIPs under 100 leads whose interval does not say so
    top3: list[tuple[str, int, float, float]]  # zip, leads, planted, estimated (per 1,000)
    leads: int
    mature_leads: int
    curve_days_to_90: float

    def line(self) -> str:
        return (
            f"coverage {self.coverage:.3f} (extremes {self.coverage_extremes:.3f}), "
            f"Spearman {self.spearman_300:.3f} over {self.zips_300} ZIPs with 300+ mature leads, "
            f"top-3 led by an unjustified small ZIP: {self.top3_small_unjustified}, "
            f"{self.mature_leads:,} of {self.leads:,} leads mature"
        )


def recovery(planted: Planted, correct: bool = True) -> Recovery:
    """Estimate from the planted leads and compare with the truth."""
    result = yield_model.estimate(planted.leads, correct=correct)
    table = result.table.merge(planted.truth[["zip", "planted_per_1000"]], on="zip")
    inside = (table["lower_per_1000"] <= table["planted_per_1000"]) & (
        table["planted_per_1000"] <= table["upper_per_1000"]
    )
    low, high = table["planted_per_1000"].quantile([0.1, 0.9])
    extreme = (table["planted_per_1000"] <= low) | (table["planted_per_1000"] >= high)
    big = table[table["mature_leads"] >= 300]
    rho = float(stats.spearmanr(big["mean_per_1000"], big["planted_per_1000"]).statistic)
    top = table.head(3)  # sorted by posterior mean
    # A small ZIP may lead only when its own interval lies above the average of all leads.
    unjustified = int(
        ((top["leads"] < 100) & (top["lower_per_1000"] <= 1000 * result.average)).sum()
    )
    return Recovery(
        coverage=float(inside.mean()),
        coverage_extremes=float(inside[extreme].mean()),
        spearman_300=rho,
        zips_300=len(big),
        top3_small_unjustified=unjustified,
        top3=[
            (
                str(r.zip),
                int(r.leads),
                round(float(r.planted_per_1000), 2),
                round(float(r.mean_per_1000), 2),
            )
            for r in top.itertuples()
        ],
        leads=result.leads,
        mature_leads=result.mature_leads,
        curve_days_to_90=result.curve.days_to(0.9),
    )
