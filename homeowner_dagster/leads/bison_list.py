"""How a lead list's values look when they reach Email Bison.

Every date goes as `YYYY-MM-DD`, whichever path built the frame: leads read back from Postgres
carry `datetime.date`, leads straight from cleaning carry pandas timestamps (whose text would be
`2027-02-03 00:00:00`), and a birth date Cole wrote as `3/4/1961` is still text.
"""

from __future__ import annotations

import hashlib
from datetime import date, datetime

import pandas as pd

from homeowner_dagster.leads.cleaning import parse_dates

BISON_DATE_COLUMNS: tuple[str, ...] = ("renewal_date", "date_of_birth", "purchase_date")
ISO_DAY = r"\d{4}-\d{2}-\d{2}"


def iso_dates(values: pd.Series) -> pd.Series:
    """Dates as `YYYY-MM-DD` text; missing as ""; text that is no date stays as it was."""
    if pd.api.types.is_datetime64_any_dtype(values):
        return values.dt.strftime("%Y-%m-%d").fillna("").astype(object)
    out = values.astype(object).copy()
    is_day = out.map(lambda v: isinstance(v, (date, datetime, pd.Timestamp)) and not pd.isna(v))
    out[is_day] = [v.strftime("%Y-%m-%d") for v in out[is_day]]
    out[out.map(lambda v: v is None or v is pd.NaT or (isinstance(v, float) and v != v))] = ""
    text = out.astype(str).str.strip()
    midnight = text.str.fullmatch(rf"{ISO_DAY}(?:[ T]00:00:00)?")
    out[midnight] = text[midnight].str[:10]
    other = ~midnight & ~is_day & (text != "")
    if other.any():
        parsed = parse_dates(text[other])
        readable = parsed.notna()
        out.loc[readable[readable].index] = parsed[readable].dt.strftime("%Y-%m-%d")
    return out


def bison_frame(leads: pd.DataFrame) -> pd.DataFrame:
    """The leads with every date column as `YYYY-MM-DD` text (the one form Bison gets)."""
    out = leads.copy()
    for column in BISON_DATE_COLUMNS:
        if column in out.columns:
            out[column] = iso_dates(out[column])
    return out


def email_keys(emails: pd.Series) -> pd.Series:
    """What identifies a lead in a Bison workspace (B-UNIQUE: its email), as the ledger keeps it:
    the SHA-256 of the trimmed, lower-cased address (the same as the migration's SQL)."""
    return (
        emails.fillna("")
        .astype(str)
        .str.strip()
        .str.lower()
        .map(lambda e: hashlib.sha256(e.encode("utf-8")).hexdigest())
    )


def expected_growth(list_leads: int, already_in_campaign: int) -> int:
    """How much a campaign's `total_leads` must grow once a list is attached and synced.

    Bison adds only leads the campaign does not hold yet (B-UNIQUE): the list's leads (as Bison
    counted them) less those already attached to it in earlier windows.
    """
    return max(0, list_leads - already_in_campaign)
