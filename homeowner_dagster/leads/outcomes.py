"""What homeowners did with the emails: replies matched to our leads, yield per ZIP, bounce rates.

Pure functions on plain data (no Dagster, database or network). The `outcomes` assets feed them
Email Bison replies and the ledger's leads and store what they return.

Counted vs estimated:
- counted: per lead replied / interested / bounced / unsubscribed-by-reply and the first reply time;
  per ZIP leads, replies, interested, bounces.
- estimated: "interested per 1,000" shrunk toward the client's average (a Beta prior worth
  `PRIOR_LEADS` leads at the client's rate: (k + m p) / (n + m)) and its 95 % interval (Wilson
  score interval of those shrunk counts, an approximation of the Beta posterior's). A ZIP with few
  leads stays near the client's average, so one lucky reply does not crown it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

PRIOR_LEADS = 100.0
Z_95 = 1.959964
_EMAIL = re.compile(r"[A-Za-z0-9._%+'-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
_UNSUBSCRIBE = re.compile(r"\b(unsubscribe|remove me|take me off|stop emailing|opt.?out)\b", re.I)

OUTCOME_COLUMNS = [
    "dedupe_key", "zip", "verification_result", "replied", "interested", "bounced",
    "unsubscribed", "automated_reply", "first_reply_at",
]
YIELD_COLUMNS = [
    "zip", "leads", "replies", "interested", "bounces", "interested_per_1000",
    "shrunk_per_1000", "lower_per_1000", "upper_per_1000", "low_yield",
]


# -- replies -> facts (no text kept) -------------------------------------------------------------


def reply_facts(replies: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """The few facts the loop needs from each reply; bodies are read here and dropped.

    Outgoing emails (`type` "Outgoing Email" or folder "sent", which `/api/replies` mixes in) are
    skipped. A bounce notice comes from the mail system, so its failed recipient is read from the
    notice's text (a standard delivery-status notice names it).
    """
    rows = []
    for r in replies:
        folder = str(r.get("folder") or "").lower()
        if str(r.get("type") or "") == "Outgoing Email" or folder == "sent":
            continue
        if folder == "bounced":
            text = f"{r.get('text_body') or ''} {r.get('html_body') or ''}"
            candidates = sorted({e.lower() for e in _EMAIL.findall(text)})
        else:
            candidates = [str(r.get("from_email_address") or "").strip().lower()]
        text = f"{r.get('subject') or ''} {r.get('text_body') or ''}"
        rows.append(
            {
                "reply_id": str(r.get("id")),
                "folder": folder,
                "candidates": [c for c in candidates if c],
                "interested": bool(r.get("interested")),
                "automated_reply": bool(r.get("automated_reply")),
                "unsubscribe": folder == "inbox" and bool(_UNSUBSCRIBE.search(text)),
                "date_received": pd.to_datetime(r.get("date_received"), utc=True, errors="coerce"),
            }
        )
    columns = ["reply_id", "folder", "candidates", "interested", "automated_reply", "unsubscribe", "date_received"]
    frame = pd.DataFrame(rows, columns=columns)
    return frame.drop_duplicates("reply_id").reset_index(drop=True)


def lead_outcomes(
    leads: pd.DataFrame, facts: pd.DataFrame, since: pd.Timestamp | None = None
) -> tuple[pd.DataFrame, int]:
    """One row per uploaded lead (`leads`: dedupe_key, email, zip, verification_result).

    A reply counts for the lead whose address it names; `replied` means a human reply (automated
    ones are kept apart). Replies received before `since` (the window's attach) answered an
    earlier email to the same address and do not count. Returns (outcomes, replies that matched
    no lead of these leads).
    """
    if since is not None and not facts.empty:
        facts = facts[~(facts["date_received"] < pd.Timestamp(since))]
    by_email = {str(e).lower(): i for i, e in enumerate(leads["email"])}
    n = len(leads)
    replied = [False] * n
    interested = [False] * n
    bounced = [False] * n
    unsubscribed = [False] * n
    automated = [False] * n
    first: list[Any] = [pd.NaT] * n
    unmatched = 0
    for fact in facts.itertuples(index=False):
        hits = [by_email[c] for c in fact.candidates if c in by_email]
        if not hits:
            unmatched += 1
            continue
        for i in hits:
            if fact.folder == "bounced":
                bounced[i] = True
                continue
            if fact.automated_reply:
                automated[i] = True
                continue
            replied[i] = True
            interested[i] |= fact.interested
            unsubscribed[i] |= fact.unsubscribe
            if pd.isna(first[i]) or fact.date_received < first[i]:
                first[i] = fact.date_received
    out = pd.DataFrame(
        {
            "dedupe_key": leads["dedupe_key"].to_numpy(),
            "zip": leads["zip"].astype(str).to_numpy(),
            "verification_result": leads["verification_result"].fillna("unknown").to_numpy(),
            "replied": replied,
            "interested": interested,
            "bounced": bounced,
            "unsubscribed": unsubscribed,
            "automated_reply": automated,
            "first_reply_at": pd.to_datetime(pd.Series(first, dtype="object"), utc=True),
        }
    )
    return out[OUTCOME_COLUMNS], unmatched


# -- rates ---------------------------------------------------------------------------------------


def wilson(successes: float, trials: float, z: float = Z_95) -> tuple[float, float]:
    """Wilson score interval of a proportion (works for 0 and n successes)."""
    if trials <= 0:
        return 0.0, 1.0
    p = successes / trials
    denom = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denom
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def shrunk_rate(successes: float, trials: float, prior_rate: float, prior_leads: float = PRIOR_LEADS) -> float:
    """Posterior mean under a Beta prior worth `prior_leads` leads at `prior_rate`."""
    return (successes + prior_leads * prior_rate) / (trials + prior_leads)


def zip_yield(outcomes: pd.DataFrame, prior_leads: float = PRIOR_LEADS) -> tuple[pd.DataFrame, float]:
    """Per ZIP: leads, replies, interested, bounces, interested per 1,000 (raw, shrunk, interval).

    Returns (table sorted best first by the shrunk rate, the client's average interested rate per lead).
    `low_yield` marks a ZIP whose whole interval lies below the client's average.
    """
    if outcomes.empty:
        return pd.DataFrame(columns=YIELD_COLUMNS), 0.0
    grouped = outcomes.groupby("zip").agg(
        leads=("dedupe_key", "size"),
        replies=("replied", "sum"),
        interested=("interested", "sum"),
        bounces=("bounced", "sum"),
    )
    average = float(grouped["interested"].sum() / grouped["leads"].sum())
    rows = []
    for zip_code, g in grouped.iterrows():
        k, n = float(g["interested"]), float(g["leads"])
        shrunk = shrunk_rate(k, n, average, prior_leads)
        lower, upper = wilson(k + prior_leads * average, n + prior_leads)
        rows.append(
            {
                "zip": str(zip_code),
                "leads": int(n),
                "replies": int(g["replies"]),
                "interested": int(k),
                "bounces": int(g["bounces"]),
                "interested_per_1000": round(1000 * k / n, 2),
                "shrunk_per_1000": round(1000 * shrunk, 2),
                "lower_per_1000": round(1000 * lower, 2),
                "upper_per_1000": round(1000 * upper, 2),
                "low_yield": bool(upper < average),
            }
        )
    table = pd.DataFrame(rows, columns=YIELD_COLUMNS)
    table = table.sort_values(["shrunk_per_1000", "zip"], ascending=[False, True]).reset_index(drop=True)
    return table, average


def bounce_by_verification(outcomes: pd.DataFrame) -> pd.DataFrame:
    """Bounce rate per verification result: the measured quality of "Safe to Send"."""
    columns = ["verification_result", "leads", "bounces", "bounce_rate", "lower", "upper"]
    if outcomes.empty:
        return pd.DataFrame(columns=columns)
    grouped = outcomes.groupby("verification_result").agg(
        leads=("dedupe_key", "size"), bounces=("bounced", "sum")
    )
    rows = []
    for result, g in grouped.iterrows():
        lower, upper = wilson(float(g["bounces"]), float(g["leads"]))
        rows.append(
            {
                "verification_result": str(result),
                "leads": int(g["leads"]),
                "bounces": int(g["bounces"]),
                "bounce_rate": round(float(g["bounces"]) / float(g["leads"]), 4),
                "lower": round(lower, 4),
                "upper": round(upper, 4),
            }
        )
    return pd.DataFrame(rows, columns=columns)


def weekly_trend(outcomes: pd.DataFrame) -> pd.DataFrame:
    """Human replies and interested per week of first reply (Monday-based)."""
    columns = ["week", "replies", "interested"]
    replied = outcomes[outcomes["replied"] & outcomes["first_reply_at"].notna()]
    if replied.empty:
        return pd.DataFrame(columns=columns)
    at = pd.to_datetime(replied["first_reply_at"], utc=True).dt.tz_convert(None)
    week = (at - pd.to_timedelta(at.dt.weekday, unit="D")).dt.normalize().dt.date
    frame = replied.assign(week=week.to_numpy())
    out = frame.groupby("week").agg(replies=("replied", "sum"), interested=("interested", "sum"))
    return out.reset_index()[columns]


# -- what the gap report needs -------------------------------------------------------------------


@dataclass(frozen=True)
class YieldBook:
    """Measured interest per lead: per ZIP (any client) and the client's own average."""

    client_rate: float
    zip_rates: dict[str, float] = field(default_factory=dict)
    client_zips: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=YIELD_COLUMNS))
    leads_measured: int = 0

    def rate(self, zip_code: str) -> float:
        return self.zip_rates.get(str(zip_code), self.client_rate)


def yield_book(client: str, outcomes: pd.DataFrame, prior_leads: float = PRIOR_LEADS) -> YieldBook | None:
    """From measured lead outcomes of every client ([client_slug, zip, dedupe_key, interested, ...]).

    None when the client has no measured lead (a new client): the gap report stays as it was.
    """
    mine = outcomes[outcomes["client_slug"] == client]
    if mine.empty:
        return None
    table, average = zip_yield(mine, prior_leads)
    rates: dict[str, float] = {}
    for _other, group in outcomes[outcomes["client_slug"] != client].groupby("client_slug"):
        theirs, _ = zip_yield(group, prior_leads)
        rates.update({z: r / 1000 for z, r in zip(theirs["zip"], theirs["shrunk_per_1000"], strict=True)})
    rates.update({z: r / 1000 for z, r in zip(table["zip"], table["shrunk_per_1000"], strict=True)})
    return YieldBook(average, rates, table, int(len(mine)))


def best_and_worst(table: pd.DataFrame, count: int = 3) -> tuple[list[str], list[str]]:
    """ZIPs with the highest and lowest shrunk yield (the table is sorted best first)."""
    zips = list(table["zip"])
    best = zips[:count]
    worst = [z for z in reversed(zips) if z not in best][:count]
    return best, worst
