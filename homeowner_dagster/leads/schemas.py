"""pandera models: the single statement of each lead frame's columns and checks.

Asset checks and tests validate frames against these; the cleaning code never needs them to run.
"""

from __future__ import annotations

import pandas as pd
import pandera.pandas as pa
from pandera.typing import Series

from homeowner_dagster.leads.calendar import WINDOW_START_DAYS
from homeowner_dagster.leads.cole_csv import REQUIRED_FIELDS, ColeFileError, match_headers
from homeowner_dagster.leads.columns import PIPELINE_REJECTION_REASONS, REJECTION_REASONS


class RawLeadFrame(pa.DataFrameModel):
    """A Cole export as read: text cells under the export's own headers, plus where each came from.

    The header names vary by export shape, so the required fields are checked by meaning.
    """

    source_export: Series[str] = pa.Field(nullable=False)
    source_row: Series[int] = pa.Field(ge=1)

    class Config:
        strict = False

    @pa.dataframe_check
    def has_required_fields(cls, df: pd.DataFrame) -> bool:
        try:
            found = match_headers(df.columns)
        except ColeFileError:
            return False
        return all(f in found for f in REQUIRED_FIELDS)


class CleanedLeadFrame(pa.DataFrameModel):
    """A lead ready to email: one row per homeowner (unique dedupe_key)."""

    first_name: Series[str]
    last_name: Series[str]
    email: Series[str] = pa.Field(str_matches=r"^[^A-Z@\s]+@[^A-Z@\s]+$")
    phone: Series[str] = pa.Field(str_matches=r"^(\d{10})?$")
    address: Series[str]
    city: Series[str]
    state: Series[str]
    zip: Series[str] = pa.Field(str_matches=r"^\d{5}$")
    date_of_birth: Series[str]
    home_value: Series[float] = pa.Field(ge=0)
    purchase_date: Series[pd.Timestamp]
    purchase_day: Series[int] = pa.Field(ge=1, le=31)
    readable_purchase_date: Series[str]
    renewal_date: Series[pd.Timestamp]
    renewal_window: Series[pd.Timestamp]
    dedupe_key: Series[str] = pa.Field(str_matches=r"^[0-9a-f]{64}$", unique=True)
    source_export: Series[str]
    source_row: Series[int] = pa.Field(ge=1)

    class Config:
        strict = True
        ordered = True

    @pa.check("renewal_window")
    def window_starts_on_a_window_day(cls, window: Series[pd.Timestamp]) -> Series[bool]:
        return window.dt.day.isin(WINDOW_START_DAYS)

    @pa.dataframe_check
    def day_is_purchase_day(cls, df: pd.DataFrame) -> Series[bool]:
        return df["purchase_day"] == df["purchase_date"].dt.day


class RejectedLeadFrame(pa.DataFrameModel):
    """A raw row that did not become a lead, under its original headers, with its reason."""

    source_export: Series[str]
    source_row: Series[int] = pa.Field(ge=1)
    reason: Series[str] = pa.Field(isin=REJECTION_REASONS + PIPELINE_REJECTION_REASONS)

    class Config:
        strict = False
