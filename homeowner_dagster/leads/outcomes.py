"""What homeowners did with the emails: replies matched to our leads, yield per ZIP, bounce rates.

Pure functions on plain data (no Dagster, database or network). The `outcomes` assets feed them
Email Bison replies and the ledger's leads and store what they return.

Counted: per lead replied (a human reply) / interested (Bison's flag) / bounced / unsubscribed
(asked in the reply's own words, not in the quoted email below them) / automated reply (Bison's
`automated_reply` flag) and the first human reply time; one outcome per lead and window, however
many replies the homeowner sent. A reply belongs to the lead Bison names (`lead_id`) once that id
is known; a lead's first reply is matched by its address (Bison offers no listing of a campaign's
lead ids short of one request per 15 leads), which teaches its id. A reply goes to the window of
that lead attached last before the reply (a homeowner renewing next year is the same lead).
Estimated: interested per 1,000 leads per ZIP, see `leads.yield_model`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from homeowner_dagster.leads import yield_model

_EMAIL = re.compile(r"[A-Za-z0-9._%+'-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
_UNSUBSCRIBE = re.compile(r"\b(unsubscribe|remove me|take me off|stop emailing|opt.?out)\b", re.I)
# Where the quoted earlier email starts in a reply: "> " lines, "On ... wrote:", an Outlook header.
_QUOTE_START = re.compile(
    r"^\s*(>|on\b.{0,200}\bwrote:|-{2,}\s*original message|_{5,}|from:\s.+)", re.I | re.M
)

OUTCOME_COLUMNS = [
    "dedupe_key",
    "zip",
    "verification_result",
    "replied",
    "interested",
    "bounced",
    "unsubscribed",
    "automated_reply",
    "first_reply_at",
    "bison_lead_id",
    "matched_by",
    "attached_at",
]
FLAGS = ("replied", "interested", "bounced", "unsubscribed", "automated_reply")
YIELD_COLUMNS = [
    "zip",
    "leads",
    "mature_leads",
    "replies",
    "interested",
    "bounces",
    "interested_per_1000",
    "shrunk_per_1000",
    "lower_per_1000",
    "upper_per_1000",
    "p_below_average",
    "low_yield",
]
FACT_COLUMNS = [
    "reply_id",
    "lead_id",
    "folder",
    "candidates",
    "interested",
    "automated_reply",
    "unsubscribe",
    "date_received",
]


# -- replies -> facts (no text kept) -------------------------------------------------------------


def own_text(body: str) -> str:
    """The part of a reply the homeowner wrote: everything above the quoted earlier email."""
    found = _QUOTE_START.search(body or "")
    return (body or "")[: found.start()].rstrip() if found else (body or "")


def _lead_id(value: Any) -> int | None:
    try:
        return int(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


def reply_facts(replies: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """The few facts the loop needs from each reply; bodies are read here and dropped.

    Outgoing emails (`type` "Outgoing Email" or folder "sent", which `/api/replies` mixes in) are
    skipped. A bounce notice comes from the mail system, so its failed recipient is read from the
    notice's text (a standard delivery-status notice names it). An unsubscribe request counts only
    in the homeowner's own words (a new subject, or the body above the quote): the quoted email's
    footer says "unsubscribe" in every reply.
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
        subject = str(r.get("subject") or "")
        new_subject = "" if re.match(r"^\s*(re|fwd?|aw)\s*:", subject, re.I) else subject
        words = f"{new_subject} {own_text(str(r.get('text_body') or ''))}"
        rows.append(
            {
                "reply_id": str(r.get("id")),
                "lead_id": _lead_id(r.get("lead_id")),
                "folder": folder,
                "candidates": [c for c in candidates if c],
                "interested": bool(r.get("interested")),
                "automated_reply": bool(r.get("automated_reply")),
                "unsubscribe": folder == "inbox" and bool(_UNSUBSCRIBE.search(words)),
                "date_received": pd.to_datetime(r.get("date_received"), utc=True, errors="coerce"),
            }
        )
    frame = pd.DataFrame(rows, columns=FACT_COLUMNS)
    frame["lead_id"] = frame["lead_id"].astype("Int64")
    return frame.drop_duplicates("reply_id").reset_index(drop=True)


# -- facts -> one outcome per lead ---------------------------------------------------------------


@dataclass
class MatchCounts:
    """How this read's replies found their leads (shown in the asset and stored per read)."""

    by_lead_id: int = 0
    by_address: int = 0
    unmatched: int = 0  # no lead of ours has this id or address: shown, never guessed
    before_attach: int = 0  # our lead, but dated before any of its windows' attach
    second_replies: int = 0  # a lead that had already replied wrote again

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


def new_outcome_rows(leads: pd.DataFrame) -> pd.DataFrame:
    """Blank outcomes (nothing happened yet) for ledger leads [window_start, dedupe_key, zip, ...]."""
    out = leads.copy()
    for flag in FLAGS:
        out[flag] = False
    out["first_reply_at"] = pd.Series(pd.NaT, index=out.index, dtype="datetime64[ns, UTC]")
    out["bison_lead_id"] = pd.Series(pd.NA, index=out.index, dtype="Int64")
    out["matched_by"] = pd.Series(None, index=out.index, dtype=object)
    return out


def apply_replies(outcomes: pd.DataFrame, facts: pd.DataFrame) -> tuple[pd.DataFrame, MatchCounts]:
    """Fold reply facts into per-lead outcomes (idempotent: re-reading a reply changes nothing).

    `outcomes`: one row per (window_start, dedupe_key) with email, attached_at (on Bison's clock),
    bison_lead_id (known ids) and the flags so far.
    """
    out = outcomes.copy().reset_index(drop=True)
    counts = MatchCounts()
    by_id: dict[int, list[int]] = {}
    for i, lead_id in enumerate(out["bison_lead_id"]):
        if not pd.isna(lead_id):
            by_id.setdefault(int(lead_id), []).append(i)
    by_email: dict[str, list[int]] = {}
    for i, email in enumerate(out["email"].astype(str).str.lower()):
        by_email.setdefault(email, []).append(i)
    attached = pd.to_datetime(out["attached_at"], utc=True)
    first = out["first_reply_at"].astype("datetime64[ns, UTC]").tolist()
    flags = {f: out[f].astype(bool).to_numpy().copy() for f in FLAGS}
    lead_ids = out["bison_lead_id"].astype("Int64").tolist()
    matched = out["matched_by"].tolist()
    for fact in facts.sort_values("date_received", kind="stable").itertuples(index=False):
        lead_id = None if pd.isna(fact.lead_id) else int(fact.lead_id)
        if lead_id is not None and lead_id in by_id:
            rows, how = by_id[lead_id], "lead_id"
        else:
            rows = [i for c in fact.candidates for i in by_email.get(c, [])]
            how = "address"
        if not rows:
            counts.unmatched += 1
            continue
        # One homeowner, several windows (next year's renewal): the window attached last before it.
        when = fact.date_received
        targets: dict[str, int] = {}
        for i in rows:
            if pd.isna(when) or attached.iloc[i] <= when:
                key = str(out.at[i, "dedupe_key"])
                if key not in targets or attached.iloc[i] > attached.iloc[targets[key]]:
                    targets[key] = i
        if not targets:
            counts.before_attach += 1
            continue
        setattr(counts, f"by_{how}", getattr(counts, f"by_{how}") + 1)
        for i in targets.values():
            if lead_id is not None and fact.folder != "bounced":
                if pd.isna(lead_ids[i]):
                    lead_ids[i] = lead_id
                    by_id.setdefault(lead_id, []).extend(
                        r for r in rows if r not in by_id.get(lead_id, [])
                    )
            matched[i] = matched[i] if isinstance(matched[i], str) else how
            if fact.folder == "bounced":
                flags["bounced"][i] = True
            elif fact.automated_reply:
                flags["automated_reply"][i] = True
            else:
                if flags["replied"][i] and not pd.isna(first[i]) and when > first[i]:
                    counts.second_replies += 1
                flags["replied"][i] = True
                flags["interested"][i] |= bool(fact.interested)
                flags["unsubscribed"][i] |= bool(fact.unsubscribe)
                if pd.isna(first[i]) or when < first[i]:
                    first[i] = when
    for flag in FLAGS:
        out[flag] = flags[flag]
    out["first_reply_at"] = pd.to_datetime(pd.Series(first, dtype="object"), utc=True)
    out["bison_lead_id"] = pd.array(lead_ids, dtype="Int64")
    out["matched_by"] = matched
    return out, counts


# -- rates ---------------------------------------------------------------------------------------


def estimator_leads(outcomes: pd.DataFrame) -> pd.DataFrame:
    """Stored outcomes [zip, replied, interested, attached_at, as_of, first_reply_at] as the
    estimator's input: the window's age at the read and the first reply's delay, in days."""
    attached = pd.to_datetime(outcomes["attached_at"], utc=True)
    as_of = pd.to_datetime(outcomes["as_of"], utc=True)
    first = pd.to_datetime(outcomes["first_reply_at"], utc=True)
    day = pd.Timedelta(days=1)
    return pd.DataFrame(
        {
            "zip": outcomes["zip"].astype(str).to_numpy(),
            "replied": outcomes["replied"].astype(bool).to_numpy(),
            "interested": outcomes["interested"].astype(bool).to_numpy(),
            "age_days": ((as_of - attached) / day).to_numpy(dtype=float),
            "delay_days": ((first - attached) / day).to_numpy(dtype=float),
        }
    )


def bounce_by_verification(outcomes: pd.DataFrame) -> pd.DataFrame:
    """Bounce rate per verification result: the measured quality of "Safe to Send".

    Interval: the 90 % Jeffreys interval (Beta(1/2, 1/2) prior), exact Beta quantiles.
    """
    from scipy import stats

    columns = ["verification_result", "leads", "bounces", "bounce_rate", "lower", "upper"]
    if outcomes.empty:
        return pd.DataFrame(columns=columns)
    grouped = outcomes.groupby("verification_result").agg(
        leads=("dedupe_key", "size"), bounces=("bounced", "sum")
    )
    k, n = grouped["bounces"].to_numpy(float), grouped["leads"].to_numpy(float)
    tail = (1 - yield_model.INTERVAL) / 2
    lower = np.where(k > 0, stats.beta.ppf(tail, k + 0.5, n - k + 0.5), 0.0)
    upper = np.where(k < n, stats.beta.ppf(1 - tail, k + 0.5, n - k + 0.5), 1.0)
    return pd.DataFrame(
        {
            "verification_result": grouped.index.astype(str),
            "leads": n.astype(int),
            "bounces": k.astype(int),
            "bounce_rate": np.round(k / n, 4),
            "lower": np.round(lower, 4),
            "upper": np.round(upper, 4),
        }
    )[columns]


def weekly_trend(outcomes: pd.DataFrame) -> pd.DataFrame:
    """Human replies and interested per week of first reply (Monday-based)."""
    columns = ["week", "replies", "interested"]
    if outcomes.empty:
        return pd.DataFrame(columns=columns)
    replied = outcomes[outcomes["replied"] & outcomes["first_reply_at"].notna()]
    if replied.empty:
        return pd.DataFrame(columns=columns)
    at = pd.to_datetime(replied["first_reply_at"], utc=True).dt.tz_convert(None)
    week = (at - pd.to_timedelta(at.dt.weekday, unit="D")).dt.normalize().dt.date
    frame = replied.assign(week=week.to_numpy())
    out = frame.groupby("week").agg(replies=("replied", "sum"), interested=("interested", "sum"))
    return out.reset_index()[columns]


# -- what the gap report and the chart need ------------------------------------------------------


@dataclass(frozen=True)
class YieldBook:
    """Measured interest per lead of one client's ZIPs, estimated with every client's ZIPs.

    Rates are per lead. `estimates` holds every measured ZIP (any client; shared ZIPs pooled),
    `client_zips` the client's own (YIELD_COLUMNS); a ZIP never measured takes `unmeasured`: the
    spread of all ZIPs (a wide interval), since nothing about it is known yet.
    """

    client_rate: float
    estimates: pd.DataFrame = field(
        default_factory=pd.DataFrame
    )  # index zip: mean, var, lower, upper
    client_zips: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=YIELD_COLUMNS))
    unmeasured: dict[str, float] = field(default_factory=dict)
    leads_measured: int = 0
    mature_leads: int = 0
    days_to_mature: float = 0.0
    curve_measured: bool = True

    def rate(self, zip_code: str) -> float:
        z = str(zip_code)
        return (
            float(self.estimates.at[z, "mean"])
            if z in self.estimates.index
            else self.unmeasured["mean"]
        )

    def expected(self, leads_by_zip: Mapping[str, float]) -> tuple[float, float, float]:
        """Interested replies expected from new leads in these ZIPs: (mean, lower, upper), 90 %."""
        return yield_model.expected_count(
            {str(z): float(n) for z, n in leads_by_zip.items()}, self.estimates, self.unmeasured
        )

    @property
    def separable(self) -> bool:
        """Whether any of the client's ZIPs differs from its average with 90 % confidence."""
        table = self.client_zips
        if table.empty:
            return False
        average = 1000 * self.client_rate
        return bool(
            ((table["upper_per_1000"] < average) | (table["lower_per_1000"] > average)).any()
        )


def yield_book(client: str, outcomes: pd.DataFrame, correct: bool = True) -> YieldBook | None:
    """From measured lead outcomes of every client (`store.outcomes_until`'s columns).

    None when the client has no measured lead (a new client): the gap report ranks by leads.
    """
    if outcomes.empty or not (outcomes["client_slug"] == client).any():
        return None
    leads = estimator_leads(outcomes)
    result = yield_model.estimate(leads, correct=correct)
    mine = estimator_leads(outcomes[outcomes["client_slug"] == client])
    average = yield_model.client_average(mine, result.curve, correct)
    table = result.table
    prior = result.prior_row()
    estimates = pd.DataFrame(
        {
            "mean": table["mean_per_1000"].to_numpy() / 1000,
            "var": table["rate_var"].to_numpy(),
            "lower": table["lower_per_1000"].to_numpy() / 1000,
            "upper": table["upper_per_1000"].to_numpy() / 1000,
        },
        index=pd.Index(table["zip"].astype(str), name="zip"),
    )
    unmeasured = {
        "mean": prior["mean_per_1000"] / 1000,
        "var": prior["var"],
        "lower": prior["lower_per_1000"] / 1000,
        "upper": prior["upper_per_1000"] / 1000,
    }
    below = result.p_below(average)
    client_zips = _client_table(outcomes[outcomes["client_slug"] == client], table, below)
    exposed = yield_model.lead_exposure(mine, result.curve, correct)
    return YieldBook(
        client_rate=average,
        estimates=estimates,
        client_zips=client_zips,
        unmeasured=unmeasured,
        leads_measured=len(mine),
        mature_leads=int(exposed["mature"].sum()),
        days_to_mature=result.curve.days_to(yield_model.MATURE_SHARE),
        curve_measured=result.curve.measured,
    )


def _client_table(mine: pd.DataFrame, table: pd.DataFrame, below: pd.Series) -> pd.DataFrame:
    """The client's ZIPs, best first, with P(below the client's average) (`below`, by ZIP).

    Counts are pooled over every client holding the ZIP (the estimate's own input)."""
    zips = mine["zip"].astype(str)
    bounces = mine.assign(zip=zips).groupby("zip")["bounced"].sum().rename("bounces")
    own = table[table["zip"].isin(set(zips))].merge(bounces, left_on="zip", right_index=True)
    out = pd.DataFrame(
        {
            "zip": own["zip"],
            "leads": own["leads"],
            "mature_leads": own["mature_leads"],
            "replies": own["replies"],
            "interested": own["interested"],
            "bounces": own["bounces"].astype(int),
            "interested_per_1000": own["interested_per_1000"],
            "shrunk_per_1000": own["mean_per_1000"].round(2),
            "lower_per_1000": own["lower_per_1000"].round(2),
            "upper_per_1000": own["upper_per_1000"].round(2),
            "p_below_average": own["zip"].map(below).round(3),
            "low_yield": own["zip"].map(below) >= yield_model.LOW_YIELD_CONFIDENCE,
        }
    )[YIELD_COLUMNS]
    return out.sort_values(["shrunk_per_1000", "zip"], ascending=[False, True]).reset_index(
        drop=True
    )


def best_and_worst(table: pd.DataFrame, count: int = 3) -> tuple[list[str], list[str]]:
    """ZIPs with the highest and lowest estimated yield (the table is sorted best first)."""
    zips = list(table["zip"])
    best = zips[:count]
    worst = [z for z in reversed(zips) if z not in best][:count]
    return best, worst
