"""Interested replies per ZIP, estimated so that the figures mean what they say.

Pure functions (numpy, scipy, pandas; no Dagster, database or network).

The model, in the order the data flows:

1. Time to answer. A homeowner answers days or weeks after the email, so a window read three days
   after its attach has only a fraction of its replies yet. `delay_curve` measures that fraction
   from the data itself: the share F(d) of first human replies that arrive within d days of the
   window's attach, by the reverse-time product-limit estimator for right-truncated delays
   (Lynden-Bell): each reply is seen only because its delay was at most its window's age, so the
   risk set of day d is the replies with delay <= d whose window is at least d days old. F is
   normalised at the oldest age seen; replies later than every window's age cannot be measured.
2. Exposure. A lead whose window is `age` days old has had the chance to give F(age) of a reply:
   its exposure. Leads below `MATURE_SHARE` are not counted at all (their share is the steep part
   of the curve, where an error in F matters most); the others count with their exposure.
3. Two rates per ZIP. Interested per lead = human replies per lead x share of replies marked
   interested. Each is a Beta-binomial across ZIPs: ZIP i's rate ~ Beta(mu s, (1 - mu) s), its
   count ~ Binomial(exposure, rate). The prior's mean mu and strength s are not fixed numbers: they
   are estimated from every ZIP given (all clients; a ZIP two clients share is one ZIP with both
   clients' leads), on a grid with the hyperprior p(mu, s) ~ s^-3/2 (Gelman et al., BDA3 5.3), and
   their uncertainty is kept (each ZIP's posterior is a mixture of Betas over the grid). Replies
   are ten times more frequent than interested replies, so they carry most of what separates ZIPs.
4. Quantiles. A ZIP's interested rate is the product of its two posteriors; its distribution is
   computed on a log grid of step `LOG_STEP` (2 %) by convolving the two log-densities, whose
   masses are exact Beta-mixture CDF differences. Mean and variance are exact (product of
   independent posteriors). A ZIP without leads gets the prior itself: the spread of all ZIPs.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import signal, special, stats

INTERVAL = 0.90  # every interval in the outcome loop is a central 90 % one
MATURE_SHARE = 0.6  # a lead counts once its window has had 60 % of its replies (by the curve)
LOW_YIELD_CONFIDENCE = 0.95  # "drop or swap": the ZIP is below the client's average with 95 %
MIN_REPLIES_FOR_CURVE = 20  # fewer replies than this: no curve, a window counts after FALLBACK_DAYS
FALLBACK_MATURE_DAYS = 28
LOG_STEP = 0.02  # grid step of log(rate): quantiles are exact to within about 2 %
_SPAN = 8.0  # the log grid covers the pooled rate / e^8 .. x e^8 (tails are lumped at its ends)
_GRID_MU = np.linspace(-3.0, 3.0, 31)  # logit(mu) around the pooled rate
_GRID_LOG_S = np.linspace(np.log(2.0), np.log(1e6), 37)
_KEEP_WEIGHT = 1e-4  # hyper-grid points below this share of the largest are dropped

ESTIMATE_COLUMNS = [
    "zip",
    "leads",
    "mature_leads",
    "exposure",
    "replies",
    "interested",
    "reply_per_1000",
    "interested_share",
    "interested_per_1000",
    "mean_per_1000",
    "lower_per_1000",
    "upper_per_1000",
    "p_below_average",
    "rate_var",
]


# -- 1. time to answer -------------------------------------------------------------------------


@dataclass(frozen=True)
class DelayCurve:
    """F(d) on whole days since the attach: F[u] = share of first replies within u + 1 days."""

    share: np.ndarray
    replies: int
    measured: bool  # False: too few replies, `at` is the fallback rule (0 before 28 days, else 1)

    def at(self, age_days: Iterable[float] | float) -> np.ndarray:
        """Share of a lead's eventual reply chance used up at `age_days` (linear within a day)."""
        age = np.clip(np.asarray(age_days, dtype=float), 0.0, None)
        if not self.measured:
            return np.where(age >= FALLBACK_MATURE_DAYS, 1.0, 0.0)
        cdf = np.concatenate(([0.0], self.share))  # cdf[i] = share within i days
        last = len(cdf) - 1
        whole = np.minimum(np.floor(age).astype(int), last)
        frac = np.where(whole >= last, 0.0, age - whole)
        upper = cdf[np.minimum(whole + 1, last)]
        return cdf[whole] + frac * (upper - cdf[whole])

    def days_to(self, share: float) -> float:
        """Days until `share` of the replies are in (whole days; the fallback's 28 when unmeasured)."""
        if not self.measured:
            return float(FALLBACK_MATURE_DAYS)
        return float(np.argmax(self.share >= share) + 1)


def delay_curve(delays_days: Iterable[float], ages_days: Iterable[float]) -> DelayCurve:
    """The reverse-time product-limit estimate of F from replies (delay, age of their window).

    Only replies with 0 <= delay <= age are used (a reply dated before its window's attach answered
    an earlier email).
    """
    delay = np.asarray(list(delays_days), dtype=float)
    age = np.asarray(list(ages_days), dtype=float)
    ok = np.isfinite(delay) & np.isfinite(age) & (delay >= 0) & (delay <= age)
    delay, age = np.floor(delay[ok]).astype(int), np.floor(age[ok]).astype(int)
    if len(delay) < MIN_REPLIES_FOR_CURVE:
        return DelayCurve(np.ones(1), int(len(delay)), measured=False)
    last = int(age.max())
    counts = np.bincount(delay, minlength=last + 1).astype(float)
    # risk[u] = replies with delay <= u <= age
    entered = np.cumsum(np.bincount(delay, minlength=last + 1))
    left = np.concatenate(([0], np.cumsum(np.bincount(age, minlength=last + 1))[:-1]))
    risk = (entered - left).astype(float)
    hazard = np.divide(counts, risk, out=np.zeros_like(counts), where=risk > 0)
    # F[last] = 1; F[u - 1] = F[u] (1 - hazard[u])
    survive = np.cumprod((1.0 - hazard)[::-1])[::-1]  # survive[u] = prod_{v >= u} (1 - h[v])
    share = np.concatenate((survive[1:], [1.0]))
    return DelayCurve(share, int(len(delay)), measured=True)


# -- 2. exposure -------------------------------------------------------------------------------


def lead_exposure(leads: pd.DataFrame, curve: DelayCurve, correct: bool = True) -> pd.DataFrame:
    """`leads` with `exposure` (0 for leads not yet mature) and `mature`.

    `leads` needs `age_days`. With `correct=False` every lead counts in full, whatever its age
    (the old behaviour; kept to show what the correction changes).
    """
    if not correct:
        return leads.assign(exposure=1.0, mature=True)
    share = curve.at(leads["age_days"].to_numpy(dtype=float))
    mature = share >= (MATURE_SHARE if curve.measured else 1.0)
    return leads.assign(exposure=np.where(mature, share, 0.0), mature=mature)


# -- 3. the hierarchical Beta-binomial ---------------------------------------------------------


@dataclass(frozen=True)
class BetaMixture:
    """The prior of a rate across ZIPs: Beta(a_g, b_g) with weight w_g (the hyper-posterior)."""

    a: np.ndarray
    b: np.ndarray
    w: np.ndarray

    @property
    def mean(self) -> float:
        return float(np.sum(self.w * self.a / (self.a + self.b)))

    @property
    def strength(self) -> float:
        """Prior strength a + b (leads' worth), weighted over the grid (log-average)."""
        return float(np.exp(np.sum(self.w * np.log(self.a + self.b))))


def fit_prior(successes: np.ndarray, trials: np.ndarray) -> BetaMixture:
    """Hyper-posterior of (mu, s) on a grid from ZIPs' counts (`trials` may be fractional)."""
    k = np.asarray(successes, dtype=float)
    n = np.maximum(np.asarray(trials, dtype=float), k)
    used = n > 0
    k, n = k[used], n[used]
    pooled = (k.sum() + 0.5) / (n.sum() + 1.0)
    logit_mu, log_s = np.meshgrid(special.logit(pooled) + _GRID_MU, _GRID_LOG_S, indexing="ij")
    mu, s = special.expit(logit_mu).ravel(), np.exp(log_s).ravel()
    a, b = mu * s, (1.0 - mu) * s
    loglik = (
        special.betaln(k[None, :] + a[:, None], (n - k)[None, :] + b[:, None])
        - special.betaln(a, b)[:, None]
    ).sum(axis=1)
    # p(mu, s) ~ s^-3/2 (BDA3's p(a, b) ~ (a + b)^-5/2) on the grid's logit(mu), log(s) scale.
    logpost = loglik + np.log(mu * (1.0 - mu)) - 0.5 * np.log(s)
    w = np.exp(logpost - logpost.max())
    keep = w >= _KEEP_WEIGHT
    return BetaMixture(a[keep], b[keep], w[keep] / w[keep].sum())


def _moments(prior: BetaMixture, k: np.ndarray, n: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Posterior E[rate] and E[rate^2] per ZIP (exact mixture moments)."""
    a = prior.a[None, :] + k[:, None]
    b = prior.b[None, :] + (n - k)[:, None]
    m1 = (prior.w[None, :] * a / (a + b)).sum(axis=1)
    m2 = (prior.w[None, :] * a * (a + 1) / ((a + b) * (a + b + 1))).sum(axis=1)
    return m1, m2


def _log_masses(prior: BetaMixture, k: np.ndarray, n: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Posterior mass of each log-rate bin per ZIP (rows): the Beta-mixture density at the bin's
    centre times its width (midpoint rule on the 2 % grid), normalised over the grid."""
    centre = edges[:-1] + LOG_STEP / 2
    x = np.exp(centre)
    a = prior.a[None, :] + k[:, None]
    b = prior.b[None, :] + (n - k)[:, None]
    log_w = np.log(prior.w)[None, :] - special.betaln(a, b)
    dens = np.zeros((len(k), len(x)))
    for g in range(len(prior.w)):  # one grid point at a time keeps memory at ZIPs x bins
        dens += np.exp(
            log_w[:, g : g + 1]
            + (a[:, g : g + 1]) * centre[None, :]  # x^(a-1) times the Jacobian x of d log x
            + (b[:, g : g + 1] - 1) * np.log1p(-x)[None, :]
        )
    return dens / dens.sum(axis=1, keepdims=True)


def _edges(centre: float) -> np.ndarray:
    low = np.log(centre) - _SPAN
    high = min(0.0, np.log(centre) + _SPAN)
    return low + LOG_STEP * np.arange(int(np.floor((high - low) / LOG_STEP)) + 1)


@dataclass(frozen=True)
class RatePosterior:
    """Per ZIP: the interested rate's distribution on a log grid, and its exact moments."""

    log_edges: np.ndarray  # edges of the product grid (length bins + 1)
    mass: np.ndarray  # ZIPs x bins
    mean: np.ndarray
    var: np.ndarray

    def cdf(self, rate: float | np.ndarray) -> np.ndarray:
        """P(rate_i <= rate) per ZIP (linear within a bin)."""
        cum = np.concatenate(
            (np.zeros((self.mass.shape[0], 1)), np.cumsum(self.mass, axis=1)), axis=1
        )
        x = np.log(np.maximum(np.asarray(rate, dtype=float), 1e-300))
        pos = np.clip((x - self.log_edges[0]) / LOG_STEP, 0, len(self.log_edges) - 1)
        whole = np.minimum(np.floor(pos).astype(int), len(self.log_edges) - 2)
        frac = pos - whole
        rows = np.arange(self.mass.shape[0])
        whole = np.broadcast_to(whole, rows.shape)
        frac = np.broadcast_to(frac, rows.shape)
        return cum[rows, whole] + frac * (cum[rows, whole + 1] - cum[rows, whole])

    def quantile(self, q: float) -> np.ndarray:
        cum = np.cumsum(self.mass, axis=1)
        cum /= cum[:, -1:]
        idx = np.argmax(cum >= q, axis=1)
        before = np.where(idx > 0, cum[np.arange(len(idx)), np.maximum(idx - 1, 0)], 0.0)
        inside = self.mass[np.arange(len(idx)), idx]
        frac = np.divide(q - before, inside, out=np.full(len(idx), 0.5), where=inside > 0)
        return np.exp(self.log_edges[idx] + np.clip(frac, 0, 1) * LOG_STEP)


def interested_posterior(
    replies: np.ndarray,
    interested: np.ndarray,
    exposure: np.ndarray,
    reply_prior: BetaMixture,
    share_prior: BetaMixture,
) -> RatePosterior:
    """Posterior of interested per lead = reply rate x interested share, per ZIP."""
    y = np.asarray(replies, dtype=float)
    k = np.asarray(interested, dtype=float)
    n = np.maximum(np.asarray(exposure, dtype=float), y)
    r_edges, q_edges = _edges(reply_prior.mean), _edges(share_prior.mean)
    r_mass = _log_masses(reply_prior, y, n, r_edges)
    q_mass = _log_masses(share_prior, k, y, q_edges)
    mass = np.clip(signal.fftconvolve(r_mass, q_mass, axes=1), 0.0, None)
    mass /= mass.sum(axis=1, keepdims=True)
    # bin i of r and bin j of q put their mass around r_lo + q_lo + (i + j + 1) steps
    start = r_edges[0] + q_edges[0] + LOG_STEP / 2
    log_edges = start + LOG_STEP * np.arange(mass.shape[1] + 1)
    r1, r2 = _moments(reply_prior, y, n)
    q1, q2 = _moments(share_prior, k, y)
    return RatePosterior(log_edges, mass, r1 * q1, r2 * q2 - (r1 * q1) ** 2)


# -- 4. per-ZIP table --------------------------------------------------------------------------


@dataclass(frozen=True)
class YieldEstimate:
    """What the estimator returns for a set of leads (all clients)."""

    table: pd.DataFrame  # ESTIMATE_COLUMNS, one row per ZIP with leads
    reply_prior: BetaMixture
    share_prior: BetaMixture
    curve: DelayCurve
    leads: int
    mature_leads: int
    average: float  # interested per mature lead, pooled (exposure-weighted), of the leads given
    posterior: RatePosterior
    posterior_zips: list[str]  # the posterior's row order

    def p_below(self, rate: float) -> pd.Series:
        """P(ZIP's interested rate < `rate`) per ZIP: how sure the data is that it is lower."""
        return pd.Series(self.posterior.cdf(rate), index=self.posterior_zips)

    def prior_row(self) -> dict[str, float]:
        """An unmeasured ZIP: the spread of all ZIPs (mean, 90 % interval, per 1,000)."""
        post = interested_posterior(
            np.zeros(1), np.zeros(1), np.zeros(1), self.reply_prior, self.share_prior
        )
        lo, hi = _interval(post)
        return {
            "mean_per_1000": float(post.mean[0] * 1000),
            "lower_per_1000": float(lo[0] * 1000),
            "upper_per_1000": float(hi[0] * 1000),
            "var": float(post.var[0]),
        }


def _interval(post: RatePosterior) -> tuple[np.ndarray, np.ndarray]:
    tail = (1 - INTERVAL) / 2
    return post.quantile(tail), post.quantile(1 - tail)


def per_zip_counts(leads: pd.DataFrame) -> pd.DataFrame:
    """[zip, leads, mature_leads, exposure, replies, interested] from leads with exposure."""
    mature = leads[leads["mature"]]
    total = leads.groupby("zip").size().rename("leads")
    counted = mature.groupby("zip").agg(
        mature_leads=("exposure", "size"),
        exposure=("exposure", "sum"),
        replies=("replied", "sum"),
        interested=("interested", "sum"),
    )
    out = pd.concat([total, counted], axis=1).fillna(0).reset_index(names="zip")
    return out.astype({"leads": int, "mature_leads": int, "replies": int, "interested": int})


def estimate(
    leads: pd.DataFrame, curve: DelayCurve | None = None, correct: bool = True
) -> YieldEstimate:
    """Per-ZIP estimates from leads [zip, replied, interested, age_days, delay_days].

    `delay_days` is the first human reply's days since the attach (NaN without one); `age_days`
    the window's days since the attach at the read. `curve` defaults to the one measured from
    these leads.
    """
    frame = leads.assign(zip=leads["zip"].astype(str))
    if curve is None:
        replied = frame[frame["replied"] & frame["delay_days"].notna()]
        curve = delay_curve(replied["delay_days"], replied["age_days"])
    frame = lead_exposure(frame, curve, correct)
    counts = per_zip_counts(frame)
    y, k, n = (counts[c].to_numpy(dtype=float) for c in ("replies", "interested", "exposure"))
    reply_prior, share_prior = fit_prior(y, n), fit_prior(k, y)
    post = interested_posterior(y, k, n, reply_prior, share_prior)
    lower, upper = _interval(post)
    average = float(k.sum() / n.sum()) if n.sum() > 0 else share_prior.mean * reply_prior.mean
    table = counts.assign(
        reply_per_1000=np.round(1000 * np.divide(y, n, out=np.zeros_like(y), where=n > 0), 2),
        interested_share=np.round(np.divide(k, y, out=np.zeros_like(k), where=y > 0), 3),
        interested_per_1000=np.round(1000 * np.divide(k, n, out=np.zeros_like(k), where=n > 0), 2),
        mean_per_1000=1000 * post.mean,
        lower_per_1000=1000 * lower,
        upper_per_1000=1000 * upper,
        p_below_average=post.cdf(average),
        rate_var=post.var,
    )[ESTIMATE_COLUMNS]
    table = table.sort_values(["mean_per_1000", "zip"], ascending=[False, True]).reset_index(
        drop=True
    )
    return YieldEstimate(
        table,
        reply_prior,
        share_prior,
        curve,
        len(frame),
        int(frame["mature"].sum()),
        average,
        post,
        list(counts["zip"]),
    )


def client_average(leads: pd.DataFrame, curve: DelayCurve, correct: bool = True) -> float:
    """A client's pooled interested per mature lead (exposure-weighted)."""
    frame = lead_exposure(leads, curve, correct)
    mature = frame[frame["mature"]]
    exposure = float(mature["exposure"].sum())
    return float(mature["interested"].sum()) / exposure if exposure > 0 else 0.0


# -- what a proposal is expected to bring ------------------------------------------------------


def expected_count(
    leads_by_zip: Mapping[str, float], rates: pd.DataFrame, unmeasured: Mapping[str, float]
) -> tuple[float, float, float]:
    """Interested replies expected from `leads_by_zip` new leads: (mean, lower, upper), 90 %.

    `rates` is indexed by ZIP with mean and var of the interested rate (per lead); ZIPs not in it
    take `unmeasured` (mean, var: the spread of all ZIPs). The interval is predictive (the rates'
    uncertainty and the chance in who answers), from a gamma with the sum's mean and variance.
    """
    mean = var = 0.0
    for zip_code, count in leads_by_zip.items():
        row = rates.loc[zip_code] if zip_code in rates.index else unmeasured
        m, v = float(row["mean"]), float(row["var"])
        mean += count * m
        var += count * count * v + count * m * (1 - m)
    if mean <= 0:
        return 0.0, 0.0, 0.0
    shape, scale = mean * mean / var, var / mean
    tail = (1 - INTERVAL) / 2
    low, high = stats.gamma.ppf([tail, 1 - tail], shape, scale=scale)
    return mean, float(low), float(high)
