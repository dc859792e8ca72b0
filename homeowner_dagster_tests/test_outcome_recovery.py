"""The yield estimator recovers planted per-ZIP rates (pure functions, seconds; `bench/` has the
full study over many seeds).

400 ZIPs of 20-900 leads, about 2-8 interested per 1,000 with ZIP-level variation, windows of
every age from 0 to 12 weeks (read two hours after each Monday's attach), 30 % of the ZIPs new in
the last 1-4 weeks; replies arrive with the sandbox's long-tailed delays.
"""

from __future__ import annotations

import pytest

from homeowner_dagster.sandbox.outcome_study import Recovery, plant, recovery

SEED = 11


def assert_recovers(result: Recovery) -> None:
    """What the estimate must do for the gap report to rely on it."""
    assert 0.85 <= result.coverage <= 0.95, (
        f"90% intervals cover {result.coverage:.3f} of the planted rates"
    )
    assert result.spearman_300 >= 0.7, (
        f"Spearman {result.spearman_300:.3f} over ZIPs with 300+ mature leads"
    )
    assert result.top3_small_unjustified == 0, f"top three led by a small ZIP: {result.top3}"


@pytest.fixture(scope="module")
def planted():
    return plant(SEED)


def test_estimates_recover_the_planted_rates(planted) -> None:
    result = recovery(planted)
    print(f"recovery (seed {SEED}): {result.line()}; top three {result.top3}")
    assert_recovers(result)
    assert result.zips_300 >= 150 and result.coverage_extremes >= 0.5
    assert result.mature_leads < result.leads  # the youngest windows are not counted yet


def test_without_the_exposure_correction_the_estimates_fail(planted) -> None:
    result = recovery(planted, correct=False)
    print(f"recovery without exposure correction (seed {SEED}): {result.line()}")
    with pytest.raises(AssertionError):
        assert_recovers(result)
    assert result.coverage < 0.85  # young windows' missing replies bias every rate low
