"""Reading Cole X Dates exports, and writing every people CSV the project hands to a person.

Cole exports differ by account and by year: two header shapes, UTF-8 with or without a BOM or
Windows-1252, CRLF or LF, quoted fields holding commas and line breaks. Everything is read as
text (no guessing of types: ZIPs keep their leading zeros) and each row keeps where it came from.
"""

from __future__ import annotations

import csv
import io
import os
import re
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from homeowner_dagster.leads.columns import SOURCE_COLUMNS


class ColeFileError(ValueError):
    """A Cole export that cannot be cleaned as it is (unreadable, missing columns...)."""


# Canonical field -> accepted header spellings (normalised: lower case, letters and digits only),
# best first. Property fields outrank plain ones, which outrank mailing ones: territory and
# renewal are about the insured home, not where the owner gets mail.
HEADER_ALIASES: dict[str, tuple[str, ...]] = {
    "first_name": ("firstname", "first", "fname", "ownerfirstname"),
    "last_name": ("lastname", "last", "lname", "surname", "ownerlastname"),
    "address": (
        "propertyaddress", "propertyaddress1", "propertystreetaddress", "address1", "address",
        "streetaddress", "addressline1", "mailingaddress", "mailingaddress1",
    ),
    "city": ("propertycity", "city", "mailingcity"),
    "state": ("propertystate", "state", "mailingstate"),
    "zip": (
        "propertyzip", "propertyzipcode", "zip", "zipcode", "zip5", "postalcode", "mailingzip",
        "mailingzipcode",
    ),
    "phone": ("cellphonenumber", "cellphone", "cell", "mobilephone", "mobile", "phone", "phonenumber"),
    "email": ("emailaddress", "email", "emailaddress1"),
    "purchase_date": ("purchasedate", "saledate", "lastsaledate"),
    "home_value": ("homevalue", "homevalueestimate", "estimatedhomevalue", "homevalueest"),
    "head_of_household": ("headhousehold", "headofhousehold", "hoh"),
    "date_of_birth": ("dateofbirth", "dob", "birthdate"),
}  # fmt: skip

REQUIRED_FIELDS: tuple[str, ...] = (
    "first_name", "last_name", "address", "zip", "email", "purchase_date", "home_value",
)  # fmt: skip

_FORMULA_CHARS = ("=", "+", "-", "@")


def normalise_header(name: object) -> str:
    """`Purchase_Date (MM/DD/YYYY)` -> `purchasedate`: what a header says, not how it's typed."""
    text = re.sub(r"\([^)]*\)", "", str(name))
    return re.sub(r"[^0-9a-z]", "", text.lower())


def match_headers(columns: Iterable[object]) -> dict[str, str]:
    """Canonical field -> the export's own header, for every field the export has.

    Raises ColeFileError naming the missing required columns, or two headers that would both
    feed the same field at the same rank (the file does not say which one counts).
    """
    by_key: dict[str, list[str]] = {}
    for column in columns:
        if column in SOURCE_COLUMNS:
            continue
        by_key.setdefault(normalise_header(column), []).append(str(column))
    found: dict[str, str] = {}
    for field, aliases in HEADER_ALIASES.items():
        for alias in aliases:
            candidates = by_key.get(alias)
            if not candidates:
                continue
            if len(candidates) > 1:
                raise ColeFileError(
                    f"columns {', '.join(repr(c) for c in candidates)} all look like {field}; "
                    "keep one"
                )
            found[field] = candidates[0]
            break
    missing = [f for f in REQUIRED_FIELDS if f not in found]
    if missing:
        raise ColeFileError(f"missing required column(s): {', '.join(missing)}")
    return found


def _decode_choice(data: bytes) -> str:
    """The encoding to read with: UTF-8 (BOM or not) when the bytes are valid UTF-8, else cp1252."""
    try:
        data.decode("utf-8-sig")
        return "utf-8-sig"
    except UnicodeDecodeError:
        pass
    try:
        data.decode("cp1252")
    except UnicodeDecodeError as exc:
        raise ColeFileError(
            f"not UTF-8 or Windows-1252 text (byte {data[exc.start]:#04x} at offset {exc.start})"
        ) from None
    return "cp1252"


def read_cole_csv(source: Path | bytes, source_export: str) -> pd.DataFrame:
    """Every cell as text ("" when empty), the export's own headers, plus source_export/source_row.

    A file this project wrote (it already carries source_export and source_row) keeps its
    provenance, so re-cleaning a cleaned file points at the original Cole export.
    """
    if isinstance(source, bytes | bytearray):
        data = bytes(source)
    else:
        try:
            data = Path(source).read_bytes()
        except OSError as exc:
            raise ColeFileError(f"cannot read {source}: {exc.strerror or exc}") from None
    if not data.strip():
        raise ColeFileError("empty file (no header row)")
    encoding = _decode_choice(data)
    options = dict(
        dtype=str, keep_default_na=False, na_filter=False, index_col=False, encoding=encoding
    )
    try:
        frame = pd.read_csv(io.BytesIO(data), **options)
        header = pd.read_csv(io.BytesIO(data), header=None, nrows=1, **options).iloc[0].tolist()
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise ColeFileError(f"not a readable CSV: {str(exc).strip().splitlines()[0]}") from None
    _refuse_ambiguous_duplicates(header)
    match_headers(frame.columns)
    if frame.isna().any().any():  # short rows
        frame = frame.fillna("")
    _attach_source(frame, source_export)
    return frame


def _refuse_ambiguous_duplicates(header: list[object]) -> None:
    """Two identical headers are fine for extra columns (pandas names the second `X.1`), but not
    for a field the cleaning reads: which of two `Email` columns would count?"""
    seen: dict[str, int] = {}
    for name in header:
        seen[str(name)] = seen.get(str(name), 0) + 1
    known = {alias for aliases in HEADER_ALIASES.values() for alias in aliases}
    clashing = [n for n, count in seen.items() if count > 1 and normalise_header(n) in known]
    if clashing:
        raise ColeFileError(f"duplicate column(s) in header: {', '.join(clashing)}")


def _attach_source(frame: pd.DataFrame, source_export: str) -> None:
    if set(SOURCE_COLUMNS) <= set(frame.columns):
        rows = frame["source_row"].astype(str).str.strip()
        if rows.str.fullmatch(r"\d+").all() and (frame["source_export"].astype(str) != "").all():
            frame["source_export"] = frame["source_export"].astype(str)
            frame["source_row"] = rows.astype("int64")
            return
    frame["source_export"] = str(source_export)
    frame["source_row"] = np.arange(1, len(frame) + 1, dtype="int64")


def neutralise_formula(series: pd.Series) -> pd.Series:
    """Prefix `'` to text starting with = + - @ so a spreadsheet shows it instead of running it."""
    if series.dtype != object and not isinstance(series.dtype, pd.StringDtype):
        return series
    text = series.astype(object)
    starts = text.str.startswith(_FORMULA_CHARS, na=False)
    if not starts.any():
        return series
    out = text.copy()
    out[starts] = "'" + text[starts]
    return out


def _as_text_column(series: pd.Series) -> np.ndarray:
    """A column as CSV-ready text: dates as ISO days, floats without a trailing `.0`."""
    if pd.api.types.is_datetime64_any_dtype(series.dtype):
        codes, uniques = pd.factorize(series)
        text = np.append(pd.DatetimeIndex(uniques).strftime("%Y-%m-%d").to_numpy(object), "")
        return text[codes]  # NaT has code -1: the appended ""
    if pd.api.types.is_float_dtype(series.dtype):
        codes, uniques = pd.factorize(series)
        text = np.array([f"{v:.15g}" for v in uniques] + [""], dtype=object)
        return text[codes]
    if series.dtype == object or isinstance(series.dtype, pd.StringDtype):
        text = neutralise_formula(series.astype(object)).to_numpy(dtype=object)
        missing = pd.isna(text)
        if missing.any():
            text = text.copy()
            text[missing] = ""
        return text
    return series.astype(str).to_numpy(dtype=object)


def write_people_csv(frame: pd.DataFrame, path: Path | str) -> None:
    """Write a CSV a person may open in Excel or Sheets: UTF-8, formula-safe, dates as ISO days."""
    columns = [_as_text_column(frame[c]) for c in frame.columns]
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow([str(c) for c in frame.columns])
        writer.writerows(zip(*columns, strict=True))
        handle.flush()
        os.fsync(handle.fileno())
