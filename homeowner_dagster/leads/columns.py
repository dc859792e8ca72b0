"""The column names every stage agrees on, in one place."""

from __future__ import annotations

# The 13 fields the SOP ticks on Cole X Dates' search form, in the order its CSV shows them.
COLE_SOP_FIELDS: tuple[str, ...] = (
    "First_Name",
    "Last_Name",
    "Address_1",
    "City",
    "State",
    "Zip",
    "Cell Phone Number",
    "Email_Address",
    "Purchase_Date",
    "Home_Value",
    "Head_Household",
    "Income",
    "Date_of_Birth",
)

# A cleaned lead, as stored in `cleaned_leads` and uploaded to Email Bison.
CLEANED_COLUMNS: list[str] = [
    "first_name",
    "last_name",
    "email",
    "phone",
    "address",
    "city",
    "state",
    "zip",
    "date_of_birth",
    "home_value",
    "purchase_date",
    "purchase_day",
    "readable_purchase_date",
    "renewal_date",
    "renewal_window",
    "dedupe_key",
]

# Where a row came from: the export file and its 1-based data row number.
SOURCE_COLUMNS: list[str] = ["source_export", "source_row"]

# Why a raw row did not become a cleaned lead, checked in this order (first match wins).
REJECTION_REASONS: list[str] = [
    "invalid_zip",
    "invalid_email",
    "invalid_purchase_date",
    "outside_renewal_month",
    "missing_home_value",
    "not_head_of_household",
    "home_value_above_max",
    "duplicate",
]

# Reasons added after cleaning, by the pipeline (email verification, other clients' leads).
PIPELINE_REJECTION_REASONS: list[str] = [
    "email_not_safe_to_send",
    "held_by_other_client",
]

# Email Bison lead list columns (SOP PT4 field mapping): CSV header -> Bison field.
BISON_FIELD_MAP: dict[str, str] = {
    "first_name": "first_name",
    "last_name": "last_name",
    "email": "email",
    "date_of_birth": "date_of_birth",
    "address": "street_address",
    "city": "city",
    "state": "state",
    "zip": "zip",
    "renewal_date": "renewal_date",
    "phone": "cellphone",
    "home_value": "home_value",
}
