"""SOP part 2 (formatting) as vectorized rules on a raw Cole export.

Every raw row ends in exactly one place: `cleaned` (a lead to email), `rejected` (its original
values and the first reason it failed, in REJECTION_REASONS order) or `hnw` (a lead above the
client's maximum home value that a routing rule sends to another client: leads/routing.py). Rules work on whole
columns (pandas .str methods, regex, numpy); columns with few distinct values (names, cities,
states, ZIPs, dates) are computed once per distinct value and spread back with their codes.

Text is Arrow-backed (pandas "string[pyarrow]"), so .str methods run as pyarrow kernels and RE2
regexes. Those agree with Python's str methods and `re` on ASCII text when the patterns avoid
`\s` (spelled out as WHITESPACE below) and look-around; rules whose results could differ beyond
ASCII (case mapping, Unicode digits) run Python's way on the rare non-ASCII values
(`_ascii_in_arrow`), so the results are exactly those of plain Python strings.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import date
from operator import methodcaller

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from homeowner_dagster.leads.calendar import readable_dates, renewal_dates, window_starts
from homeowner_dagster.leads.cole_csv import TEXT, match_headers
from homeowner_dagster.leads.columns import (
    CLEANED_COLUMNS,
    PIPELINE_REJECTION_REASONS,
    REJECTION_REASONS,
    SOURCE_COLUMNS,
)
from homeowner_dagster.leads.routing import RoutingRule, route_destinations, routed_counts

ALL_REASONS: list[str] = REJECTION_REASONS + PIPELINE_REJECTION_REASONS
OUTPUT_COLUMNS: list[str] = CLEANED_COLUMNS + SOURCE_COLUMNS

# Head_Household values that mean "not the head of household" (compared lower-cased, trimmed).
NOT_HEAD_OF_HOUSEHOLD = ("", "n", "no", "0", "false")
# A first name naming two people ("John & Mary", "John and Mary", "Smith, John") is a joint owner.
JOINT_OWNER = r"&|,| and "

US_STATES: dict[str, str] = {
    "alabama": "AL", "alaska": "AK", "arizona": "AZ", "arkansas": "AR", "california": "CA",
    "colorado": "CO", "connecticut": "CT", "delaware": "DE", "district of columbia": "DC",
    "florida": "FL", "georgia": "GA", "hawaii": "HI", "idaho": "ID", "illinois": "IL",
    "indiana": "IN", "iowa": "IA", "kansas": "KS", "kentucky": "KY", "louisiana": "LA",
    "maine": "ME", "maryland": "MD", "massachusetts": "MA", "michigan": "MI", "minnesota": "MN",
    "mississippi": "MS", "missouri": "MO", "montana": "MT", "nebraska": "NE", "nevada": "NV",
    "new hampshire": "NH", "new jersey": "NJ", "new mexico": "NM", "new york": "NY",
    "north carolina": "NC", "north dakota": "ND", "ohio": "OH", "oklahoma": "OK", "oregon": "OR",
    "pennsylvania": "PA", "rhode island": "RI", "south carolina": "SC", "south dakota": "SD",
    "tennessee": "TN", "texas": "TX", "utah": "UT", "vermont": "VT", "virginia": "VA",
    "washington": "WA", "west virginia": "WV", "wisconsin": "WI", "wyoming": "WY",
}  # fmt: skip

# The local part starts with a letter, digit or underscore (so no written CSV ever needs a
# formula guard on an email), no two dots in a row; the domain has labels and a letter TLD.
EMAIL_PATTERN = (
    r"[a-z0-9_](?:\.?[a-z0-9_%+'\-])*"
    r"@(?:[a-z0-9](?:[a-z0-9\-]*[a-z0-9])?\.)+[a-z]{2,}"
)
SHORT_ZIP_PATTERN = r"\d{3,5}"  # zero-padded to 5
ZIP_PLUS4_PATTERN = r"\d{5}-?\d{4}"  # cut to 5
US_DATE_PATTERN = r"(?P<m>\d{1,2})(?P<sep>[/-])(?P<d>\d{1,2})(?P=sep)(?P<y>\d{4})"
ISO_DATE_PATTERN = r"(?P<y>\d{4})-(?P<m>\d{1,2})-(?P<d>\d{1,2})"
MONEY_PATTERN = r"\d{1,15}(?:\.\d+)?"

# What Python's str.strip() and re's \s take for whitespace (every c with c.isspace()), spelled out
# so that a pattern means the same to RE2 (whose \s is narrower) as to Python's re.
WHITESPACE = (
    "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006"
    "\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)
# What re.sub(r"\s+", " ", text) changes: runs of two or more, and any single whitespace but " ".
SPACE_RUNS = f"[{WHITESPACE}]{{2,}}|[{WHITESPACE.replace(' ', '')}]"
MONEY_NOISE = f"[{WHITESPACE}$,]"


@dataclass
class CleaningResult:
    """Where each raw row went, with the raw frame kept so any later rejection keeps originals."""

    cleaned: pd.DataFrame
    rejected: pd.DataFrame
    hnw: pd.DataFrame
    raw: pd.DataFrame = field(repr=False)
    # The destination client of each `hnw` lead (indexed like `hnw`).
    destinations: pd.Series = field(default_factory=lambda: pd.Series(dtype=object), repr=False)

    def routed(self) -> dict[str, pd.DataFrame]:
        """The routed leads per destination client, in destination order."""
        return {
            str(d): self.hnw.loc[(self.destinations == d).to_numpy()]
            for d in sorted(set(self.destinations))
        }

    def reject(self, mask: pd.Series, reason: str) -> CleaningResult:
        """Move cleaned leads matching `mask` (indexed like `cleaned`) to `rejected` with `reason`.

        Used by later stages (email verification, leads other clients hold); originals come back
        from the raw frame, so the rejected file always shows what Cole sent.
        """
        if reason not in ALL_REASONS:
            raise ValueError(f"unknown rejection reason {reason!r}; one of {ALL_REASONS}")
        mask = mask.reindex(self.cleaned.index, fill_value=False).astype(bool)
        moved = self.cleaned.index[mask.to_numpy()]
        if len(moved) == 0:
            return self
        newly = self.raw.loc[moved].copy()
        newly["reason"] = reason
        rejected = pd.concat([self.rejected, newly]).sort_index(kind="stable")
        return replace(self, cleaned=self.cleaned.loc[~mask.to_numpy()], rejected=rejected)

    def summary(self) -> dict:
        """Counts for summary.json, Slack and the asset metadata."""
        counts = self.rejected["reason"].value_counts()
        by_reason = {r: int(counts.get(r, 0)) for r in ALL_REASONS}
        by_reason.update({str(r): int(n) for r, n in counts.items() if r not in by_reason})
        return {
            "input_rows": len(self.raw),
            "cleaned_rows": len(self.cleaned),
            "rejected_rows": len(self.rejected),
            "hnw_rows": len(self.hnw),
            "routed_to": routed_counts(self.destinations),
            "by_reason": by_reason,
        }


def _per_value(series: pd.Series, rule: Callable[[pd.Series], pd.Series | pd.DataFrame]):
    """Apply a column rule once per distinct value: names, cities and dates repeat a lot.

    The rule sees the distinct values as Python str (object dtype); text results spread back
    Arrow-backed.
    """
    codes, uniques = pd.factorize(series, use_na_sentinel=False)
    values = pd.Series(uniques)
    result = rule(values.astype(object) if values.dtype == TEXT else values)
    if isinstance(result, pd.DataFrame):
        out = result.iloc[codes]
        out.index = series.index
        return out
    if result.dtype == object or isinstance(result.dtype, pd.StringDtype):
        result = result.astype(TEXT)
    return pd.Series(result.array.take(codes), index=series.index)


def _text(series: pd.Series) -> pd.Series:
    """Raw cells as Arrow-backed text (str() of any non-text cell), missing as ""."""
    if series.dtype != TEXT:
        series = series.astype(TEXT)
    return series.fillna("") if series.hasnans else series


def _arrow(series: pd.Series) -> pa.Array:
    """The Arrow array behind Arrow-backed text, in one piece."""
    data = pa.array(series)
    return data.combine_chunks() if isinstance(data, pa.ChunkedArray) else data


def _ascii_in_arrow(rule: Callable[[pd.Series], pd.Series]) -> Callable[[pd.Series], pd.Series]:
    """Run a text rule on Arrow-backed text, and again Python's way (object dtype) for values
    beyond ASCII, where pyarrow's case mapping and RE2's \\d, \\b may differ from Python's."""

    @functools.wraps(rule)
    def run(series: pd.Series) -> pd.Series:
        text = _text(series)
        out = rule(text)
        other = ~pc.string_is_ascii(_arrow(text)).to_numpy(zero_copy_only=False)
        if other.any():
            out = out.copy()
            out[other] = rule(text[other].astype(object)).to_numpy()
        return out

    return run


def _replace(series: pd.Series, pattern: str, replacement: str) -> pd.Series:
    """`series.str.replace(pattern, replacement, regex=True)`; for Arrow-backed text, RE2 replaces
    only where the pattern occurs (its replace is slow even where nothing matches), and also when
    the replacement refers to a group (`\\1`), which pandas would hand to Python's re."""
    if series.dtype != TEXT:
        return series.str.replace(pattern, replacement, regex=True)
    text = _arrow(series)
    found = pc.match_substring_regex(text, pattern)
    if not pc.any(found).as_py():
        return series
    replaced = pc.replace_substring_regex(text.filter(found), pattern, replacement)
    out = pc.replace_with_mask(text, found, replaced)
    return pd.Series(pd.arrays.ArrowStringArray(out), index=series.index)


def _tidy(series: pd.Series) -> pd.Series:
    """Whitespace and line breaks collapsed, ends trimmed, a formula guard (`'=`) taken off."""
    out = _replace(series, SPACE_RUNS, " ").str.strip(WHITESPACE)
    return _replace(out, r"^'([=+\-@])", r"\1")


def tidy_names(series: pd.Series) -> pd.Series:
    """`o'brien` -> `O'Brien`, `mary-jane` -> `Mary-Jane`, `JOSÉ` -> `José`."""
    return _per_value(series, _ascii_in_arrow(lambda s: _tidy(s).str.title()))


@_ascii_in_arrow
def tidy_addresses(series: pd.Series) -> pd.Series:
    """`9 5TH AVE` -> `9 5th Ave`: title case, ordinals after a digit kept lower."""
    out = _tidy(series).str.title()
    for suffix in ("St", "Nd", "Rd", "Th"):
        out = _replace(out, rf"(\d){suffix}\b", rf"\1{suffix.lower()}")
    return out


def tidy_cities(series: pd.Series) -> pd.Series:
    return _per_value(series, tidy_addresses)


def tidy_states(series: pd.Series) -> pd.Series:
    """Two-letter upper case; a spelled-out state name becomes its code."""

    def rule(s: pd.Series) -> pd.Series:
        text = _tidy(s)
        code = text.str.lower().map(US_STATES)
        return code.where(code.notna(), text.str.upper()).astype(object)

    return _per_value(series, rule)


def tidy_zips(series: pd.Series) -> pd.Series:
    """5 digits, zero-padded (`7034` -> `07034`), ZIP+4 cut to 5; "" when it is no ZIP."""

    @_ascii_in_arrow
    def rule(s: pd.Series) -> pd.Series:
        text = s.str.strip(WHITESPACE)
        plus4 = text.str[:5].where(text.str.fullmatch(ZIP_PLUS4_PATTERN), "")
        short = text.str.fullmatch(SHORT_ZIP_PATTERN)
        return text.str.pad(5, side="left", fillchar="0").where(short, plus4)

    return _per_value(series, rule)


@_ascii_in_arrow
def tidy_emails(series: pd.Series) -> pd.Series:
    return series.str.strip(WHITESPACE).str.lower()


def valid_emails(emails: pd.Series) -> pd.Series:
    return emails.str.fullmatch(EMAIL_PATTERN, na=False).astype(bool)


@_ascii_in_arrow
def tidy_phones(series: pd.Series) -> pd.Series:
    """10 digits, a leading country code 1 dropped; anything else becomes ""."""
    digits = series.str.replace(r"\D+", "", regex=True)
    return digits.str[-10:].where(digits.str.fullmatch(r"1?\d{10}"), "")


def parse_dates(series: pd.Series) -> pd.Series:
    """M/D/YYYY, MM/DD/YYYY, MM-DD-YYYY or YYYY-MM-DD -> datetime64; anything else NaT."""

    def rule(s: pd.Series) -> pd.Series:
        text = s.str.strip()
        us = text.str.extract(rf"^{US_DATE_PATTERN}$")
        iso = text.str.extract(rf"^{ISO_DATE_PATTERN}$")
        parts = pd.DataFrame({k: us[k].combine_first(iso[k]) for k in ("y", "m", "d")}).apply(
            pd.to_numeric, errors="coerce"
        )  # three columns, not rows
        parts.columns = ["year", "month", "day"]
        ok = parts.notna().all(axis=1)
        out = pd.Series(pd.NaT, index=s.index, dtype="datetime64[ns]")
        if ok.any():
            out[ok] = pd.to_datetime(parts[ok].astype("int64"), errors="coerce")
        return out

    return _per_value(series, rule)


def parse_home_values(series: pd.Series) -> pd.Series:
    """`$1,250,000.00`, `900,001`, `450000` -> float; empty or unreadable -> NaN.

    Up to 16 characters (at most 15 digits) Arrow's cast gives the very float pandas' parser
    does; longer numbers keep pandas' parser, as the two can differ in the last bit there.
    """
    text = _text(series).str.replace(MONEY_NOISE, "", regex=True)
    readable = text.str.fullmatch(MONEY_PATTERN, na=False).to_numpy(dtype=bool)
    short = readable & (text.str.len() <= 16).to_numpy(dtype=bool)
    values = np.full(len(text), np.nan)
    values[short] = pc.cast(_arrow(text[short]), pa.float64()).to_numpy()
    long = readable & ~short
    if long.any():
        values[long] = pd.to_numeric(text[long].astype(object), errors="coerce")
    return pd.Series(values, index=series.index)


@_ascii_in_arrow
def normalised_address(address: pd.Series) -> pd.Series:
    """The address as the dedupe key sees it: lower case, `.` and `,` gone, whitespace collapsed."""
    out = _replace(address.str.lower(), r"[.,]", "")
    return _replace(out, SPACE_RUNS, " ").str.strip(WHITESPACE)


def dedupe_key(email: pd.Series, address: pd.Series) -> pd.Series:
    """sha256 hex of `email|address` (lower-cased email, normalised address): one homeowner.

    The hashing is hashlib per value through C-level map (no Python frame per row); pandas,
    numpy and pyarrow have no vectorized sha256.
    """
    text = pc.binary_join_element_wise(
        _arrow(tidy_emails(email)),
        _arrow(normalised_address(address)),
        pa.scalar("|", pa.large_string()),
    )
    data = pc.cast(text, pa.large_binary()).to_numpy(zero_copy_only=False)  # UTF-8 bytes
    digests = map(methodcaller("hexdigest"), map(hashlib.sha256, data))
    return pd.Series(list(digests), index=email.index, dtype=object)


def clean_leads(
    raw: pd.DataFrame,
    month: date,
    *,
    max_home_value: float = 900000,
    hnw_states: Iterable[str] = (),
    routing_rules: Iterable[RoutingRule] = (),
    head_of_household_required: bool = True,
    known_dedupe_keys: Iterable[str] = (),
    held_by_others: Iterable[str] = (),
    pulled_on: date | None = None,
) -> CleaningResult:
    """Apply every PT2 rule to a raw export for renewal month `month`.

    `known_dedupe_keys` are leads already seen in this batch (earlier files): rows with those keys
    are `duplicate`. `held_by_others` are leads another client holds this month: those rows are
    `held_by_other_client`. `routing_rules` (in the client file's order) route homes above the cap;
    `hnw_states` is the short form used by `homeowner clean`: every home above the cap in those
    states goes to `hnw`. `pulled_on` is the day of the Cole pull: a purchase after it is no date.
    """
    rules = list(routing_rules)
    short = sorted({s.strip().upper() for s in hnw_states if s and s.strip()})
    if short:
        rules.append(RoutingRule("hnw", "hnw", tuple(short), float(max_home_value)))
    raw = raw.reset_index(drop=True)
    headers = match_headers(raw.columns)
    n = len(raw)

    def column(name: str) -> pd.Series:
        if name in headers:
            return _text(raw[headers[name]])
        return pd.Series("", index=raw.index, dtype=TEXT)

    zips = tidy_zips(column("zip"))
    emails = tidy_emails(column("email"))
    purchase = parse_dates(column("purchase_date"))
    home_value = parse_home_values(column("home_value"))
    first_name = tidy_names(column("first_name"))

    bad_zip = (zips == "").to_numpy(dtype=bool)
    bad_email = ~valid_emails(emails).to_numpy(dtype=bool)
    bad_date = purchase.isna().to_numpy() | no_renewal_in_month(purchase, month, pulled_on)
    outside = ~bad_date & (purchase.dt.month != month.month).to_numpy()
    no_value = home_value.isna().to_numpy()
    not_head = _not_head_of_household(raw, headers, first_name, head_of_household_required)
    above_max = (home_value > float(max_home_value)).to_numpy()

    earlier = bad_zip | bad_email | bad_date | outside | no_value | not_head
    states = tidy_states(column("state"))
    destination = route_destinations(states, home_value, max_home_value, rules).to_numpy()
    to_hnw = destination != ""
    above_max &= ~to_hnw
    survivors = ~earlier & ~above_max  # cleaned or HNW, unless a duplicate

    addresses = tidy_addresses(column("address").loc[survivors])
    keys = dedupe_key(emails.loc[survivors], addresses)
    known = set(known_dedupe_keys)
    held = np.zeros(n, dtype=bool)
    held[survivors] = keys.isin(set(held_by_others)).to_numpy(dtype=bool)
    duplicate = np.zeros(n, dtype=bool)
    duplicate[survivors] = (keys.duplicated(keep="first") | keys.isin(known)).to_numpy(dtype=bool)
    duplicate &= ~held

    failed = [bad_zip, bad_email, bad_date, outside, no_value, not_head, above_max, held, duplicate]
    first_failed = np.select(failed, list(range(1, len(failed) + 1)), default=0)  # 0: none
    rejected_mask = first_failed > 0
    rejected = raw.loc[rejected_mask].copy()
    reasons = pd.array(REJECTION_REASONS[:-1] + ["held_by_other_client", "duplicate"], dtype=TEXT)
    rejected["reason"] = reasons.take(first_failed[rejected_mask] - 1)

    duplicate |= held
    keep = survivors & ~duplicate  # boolean masks below: no index lookups
    kept = raw.index[keep]
    fresh = keep[survivors]  # survivors that are not duplicates
    dates = purchase[keep]
    renewal = renewal_dates(dates, month.year) if len(dates) else dates
    leads = pd.DataFrame(
        {
            "first_name": first_name[keep],
            "last_name": tidy_names(column("last_name")[keep]),
            "email": emails[keep],
            "phone": tidy_phones(column("phone")[keep]),
            "address": addresses[fresh],
            "city": tidy_cities(column("city")[keep]),
            "state": states[keep],
            "zip": zips[keep],
            "date_of_birth": _tidy_birth_dates(column("date_of_birth")[keep]),
            "home_value": home_value[keep].astype("float64"),
            "purchase_date": dates,
            "purchase_day": dates.dt.day.astype("int64"),
            "readable_purchase_date": _per_value(dates, readable_dates),
            "renewal_date": renewal.astype("datetime64[ns]"),
            "renewal_window": window_starts(renewal).astype("datetime64[ns]")
            if len(renewal)
            else renewal.astype("datetime64[ns]"),
            "dedupe_key": keys[fresh],
            "source_export": raw["source_export"][keep].astype(str).astype(object)
            if "source_export" in raw
            else "",
            "source_row": raw["source_row"][keep].astype("int64")
            if "source_row" in raw
            else (kept + 1).astype("int64"),
        },
        index=kept,
        columns=OUTPUT_COLUMNS,
    )
    hnw_mask = to_hnw[keep]
    hnw = leads.loc[hnw_mask]
    return CleaningResult(
        cleaned=leads.loc[~hnw_mask] if hnw_mask.any() else leads,
        rejected=rejected,
        hnw=hnw,
        raw=raw,
        destinations=pd.Series(destination[keep][hnw_mask], index=hnw.index, dtype=object),
    )


def no_renewal_in_month(
    purchase: pd.Series, month: date, pulled_on: date | None = None
) -> np.ndarray:
    """Purchase dates that cannot give a renewal in `month`: on or after January 1st of the renewal
    month's year (the first anniversary is a year later), or after the day of the pull."""
    late = (purchase >= pd.Timestamp(month.year, 1, 1)).to_numpy()
    if pulled_on is not None:
        late |= (purchase > pd.Timestamp(pulled_on)).to_numpy()
    return late


def _not_head_of_household(
    raw: pd.DataFrame, headers: dict[str, str], first_name: pd.Series, required: bool
) -> np.ndarray:
    """Head_Household says no; without that column, a joint-owner first name.

    A file this project cleaned (it has `dedupe_key`) was already checked, so its names are not
    judged again: cleaning it twice changes nothing.
    """
    if not required:
        return np.zeros(len(raw), dtype=bool)
    if "head_of_household" in headers:
        values = _text(raw[headers["head_of_household"]])
        return _per_value(
            values, lambda s: s.str.strip().str.lower().isin(NOT_HEAD_OF_HOUSEHOLD)
        ).to_numpy(dtype=bool)
    if "dedupe_key" in raw.columns:
        return np.zeros(len(raw), dtype=bool)
    return _per_value(
        first_name, lambda s: s.str.contains(JOINT_OWNER, case=False, regex=True)
    ).to_numpy(dtype=bool)


def _tidy_birth_dates(series: pd.Series) -> pd.Series:
    """ISO date when it reads as one of the accepted date forms, else the trimmed text."""
    parsed = parse_dates(series)
    text = _tidy(series)
    iso = _per_value(parsed, lambda s: s.dt.strftime("%Y-%m-%d"))
    return iso.where(parsed.notna(), text)
