"""Reading Cole X Dates exports, and writing every people CSV the project hands to a person.

Cole exports differ by account and by year: two header shapes, UTF-8 with or without a BOM or
Windows-1252, CRLF or LF, quoted fields holding commas and line breaks. Everything is read as
text (no guessing of types: ZIPs keep their leading zeros) and each row keeps where it came from.

Reading and writing go through pyarrow (multi-threaded parsing, text kept as Arrow strings, CSV
lines built by Arrow kernels); a file pyarrow's strict parser refuses (short or long rows,
whitespace-only lines, blank or repeated headers) is read by pandas as before.
"""

from __future__ import annotations

import io
import os
import re
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv

from homeowner_dagster.leads.columns import SOURCE_COLUMNS
from homeowner_dagster.leads.spreadsheet import (
    ASCII_FORMULA_PREFIXES,
    WIDE_FORMULA_LEAD,
    guard_formulas,
    neutralise_formula,
    neutralise_series,
    wide_formula_starts,
)


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


# Arrow-backed text (pandas "string[pyarrow]"): Python str values, stored and computed in Arrow.
TEXT = pd.StringDtype("pyarrow")


def _large(text: str) -> pa.Scalar:
    """A text constant for Arrow kernels on large_string columns (what TEXT stores)."""
    return pa.scalar(text, pa.large_string())


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
    if _is_utf8(data):
        return "utf-8-sig"
    try:
        data.decode("cp1252")
    except UnicodeDecodeError as exc:
        raise ColeFileError(
            f"not UTF-8 or Windows-1252 text (byte {data[exc.start]:#04x} at offset {exc.start})"
        ) from None
    return "cp1252"


def _is_utf8(data: bytes) -> bool:
    """Whether the bytes are valid UTF-8, as Python's strict decoder judges them (surrogates and
    overlong forms refused), checked by Arrow in place: no decoded copy of the whole file."""
    offsets = pa.py_buffer(np.array([0, len(data)], dtype=np.int64))
    text = pa.Array.from_buffers(pa.large_string(), 1, [None, offsets, pa.py_buffer(data)])
    try:
        text.validate(full=True)
    except pa.ArrowInvalid:
        return False
    return True


def read_cole_csv(source: Path | bytes, source_export: str, *, arrow: bool = False) -> pd.DataFrame:
    """Every cell as text ("" when empty), the export's own headers, plus source_export/source_row.

    A file this project wrote (it already carries source_export and source_row) keeps its
    provenance, so re-cleaning a cleaned file points at the original Cole export. The text
    columns hold Python str objects, or with `arrow=True` the same values Arrow-backed
    (`string[pyarrow]`): far quicker to build and to clean, and what `homeowner clean` uses.
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
        header = pd.read_csv(io.BytesIO(data), header=None, nrows=1, **options).iloc[0].tolist()
        frame = _read_with_arrow(data, encoding, header, arrow)
        if frame is None:
            frame = pd.read_csv(io.BytesIO(data), **options)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise ColeFileError(f"not a readable CSV: {str(exc).strip().splitlines()[0]}") from None
    _refuse_ambiguous_duplicates(header)
    match_headers(frame.columns)
    if frame.isna().any().any():  # short rows
        frame = frame.fillna("")
    if arrow:
        frame = frame.astype(TEXT)
    _attach_source(frame, source_export)
    return frame


def _read_with_arrow(
    data: bytes, encoding: str, header: list[object], arrow: bool
) -> pd.DataFrame | None:
    """pyarrow's parser, every column as text; None when the file needs pandas' leniency.

    pyarrow refuses what pandas quietly mends (rows with too few or too many cells, lines of
    blanks) and names blank or repeated headers differently, so those files go to pandas.
    """
    names = [str(h) for h in header]
    if "" in names or len(set(names)) != len(names):
        return None
    try:
        table = pa_csv.read_csv(
            pa.py_buffer(data),
            read_options=pa_csv.ReadOptions(
                encoding="utf8" if encoding == "utf-8-sig" else encoding,  # skips a BOM
                # One block, so one chunk per column and nothing to copy into one piece after.
                block_size=min(len(data) + 1, 1 << 30),
            ),
            parse_options=pa_csv.ParseOptions(newlines_in_values=True),
            convert_options=pa_csv.ConvertOptions(
                # What pandas' Arrow-backed text stores: no conversion after reading.
                column_types=dict.fromkeys(names, pa.large_string()),
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
            ),
        )
    except pa.ArrowInvalid:
        return None
    if table.column_names != names:
        return None
    if arrow:  # one chunk per column: quicker to take rows from and to factorize
        if any(column.num_chunks > 1 for column in table.columns):
            table = table.combine_chunks()
        return table.to_pandas(types_mapper={pa.large_string(): TEXT}.get)
    return table.to_pandas()


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


def _as_text_column(series: pd.Series) -> tuple[pa.Array | pa.ChunkedArray, bool]:
    """A column as CSV-ready Arrow text (dates as ISO days, floats without a trailing `.0`, text
    formula-safe, missing as ""), and whether it is free text (numbers and dates never need
    quotes)."""
    if pd.api.types.is_datetime64_any_dtype(series.dtype):
        codes, uniques = pd.factorize(series)
        return _spread(list(pd.DatetimeIndex(uniques).strftime("%Y-%m-%d")), codes), False
    if pd.api.types.is_float_dtype(series.dtype):
        return _float_text(series.to_numpy(dtype="float64")), False
    if isinstance(series.dtype, np.dtype) and series.dtype.kind in "iu":
        return pc.cast(pa.array(series), pa.large_string()), False
    if series.dtype == object or isinstance(series.dtype, pd.StringDtype):
        try:
            text = pa.array(series, type=pa.large_string(), from_pandas=True)
        except (pa.ArrowInvalid, pa.ArrowTypeError):  # not all str: str() of each, as csv did
            guarded = neutralise_series(series.astype(object))
            return pa.array(guarded.where(guarded.notna(), "").map(str), pa.large_string()), True
        text = pc.fill_null(text, _large(""))
        starts = _starts_with_any(text, ASCII_FORMULA_PREFIXES)
        if _holds_any(text, WIDE_FORMULA_LEAD):  # a full-width start is possible only then
            starts = pc.or_(starts, wide_formula_starts(text))
        return guard_formulas(text, starts), True
    return pa.array(series.astype(str).to_numpy(dtype=object), pa.large_string()), True


def _starts_with_any(text: pa.Array | pa.ChunkedArray, characters: tuple[str, ...]) -> pa.Array:
    """Whether each string starts with one of these ASCII characters, read off its first byte (in
    UTF-8 no other character's bytes start with an ASCII one): one pass, not one per character."""
    wanted = np.zeros(256, dtype=bool)
    wanted[[ord(c) for c in characters]] = True  # single ASCII characters only
    parts = [np.zeros(0, dtype=bool)]
    for bounds, data in _string_chunks(text):
        found = np.zeros(len(bounds) - 1, dtype=bool)
        filled = np.flatnonzero(bounds[1:] > bounds[:-1])
        if len(filled):
            found[filled] = wanted[np.frombuffer(data, dtype=np.uint8)[bounds[:-1][filled]]]
        parts.append(found)
    return pa.array(np.concatenate(parts))


def _float_text(values: np.ndarray) -> pa.Array:
    """`f"{v:.15g}"` of each float, "" for NaN; whole numbers below 1e15 (home values) are
    simply their integer digits, cast by Arrow rather than formatted one by one."""
    whole = (np.abs(values) < 1e15) & (np.floor(values) == values) & ~np.signbit(values)
    digits = pc.cast(pa.array(np.where(whole, values, 0).astype(np.int64)), pa.large_string())
    if whole.all():
        return digits
    codes, uniques = pd.factorize(np.where(whole, np.nan, values))
    return pc.if_else(whole, digits, _spread([f"{v:.15g}" for v in uniques], codes))


def _spread(texts: list[str], codes: np.ndarray) -> pa.Array:
    """texts[code] for every row; "" where the code is -1 (a missing value)."""
    table = pa.array([*texts, ""], pa.large_string())
    return table.take(np.where(codes < 0, len(texts), codes))


def _csv_cells(text: pa.Array | pa.ChunkedArray, alone: bool) -> pa.Array | pa.ChunkedArray:
    """Text as CSV cells, quoted like the csv module's QUOTE_MINIMAL (`"` doubled) when they
    hold a comma, a quote or a line break; a lone cell (one-column file) that is empty too."""
    if not alone and not _holds_any(text, b',"\r\n'):  # most columns: no cell needs quotes
        return text
    needs = pc.match_substring_regex(text, r'^$|[,"\r\n]' if alone else r'[,"\r\n]')
    if not pc.any(needs).as_py():
        return text
    doubled = pc.replace_substring(text, '"', '""')
    quoted = pc.binary_join_element_wise(_large('"'), doubled, _large('"'), _large(""))
    return pc.if_else(needs, quoted, text)


def write_people_csv(frame: pd.DataFrame, path: Path | str) -> None:
    """Write a CSV a person may open in Excel or Sheets: UTF-8, formula-safe, dates as ISO days.

    Each line is built by Arrow kernels (cells quoted where needed, joined with commas) and the
    lines' bytes are written as they lie in memory.
    """
    alone = len(frame.columns) == 1
    # Header cells too: a Cole export's header reaches rejected.csv as it came.
    names = pa.array([neutralise_formula(c) for c in frame.columns], pa.large_string())
    header = ",".join(_csv_cells(names, alone).to_pylist()) + "\n"
    with open(path, "wb") as handle:
        handle.write(header.encode("utf-8"))
        if len(frame.columns) and len(frame):
            cells = []
            for name in frame.columns:
                text, free = _as_text_column(frame[name])
                cells.append(_csv_cells(text, alone) if free or alone else text)
            cells[-1] = pc.binary_join_element_wise(cells[-1], _large("\n"), _large(""))
            _write_strings(handle, pc.binary_join_element_wise(*cells, _large(",")))
        handle.flush()
        os.fsync(handle.fileno())


def _string_chunks(text: pa.Array | pa.ChunkedArray) -> Iterator[tuple[np.ndarray, pa.Buffer]]:
    """Each non-empty chunk's string bounds (its len + 1 offsets into the data) and data buffer."""
    for chunk in text.chunks if isinstance(text, pa.ChunkedArray) else [text]:
        if len(chunk) == 0:
            continue
        chunk = chunk.cast(pa.large_string())
        _, offsets, data = chunk.buffers()
        bounds = np.frombuffer(offsets, dtype=np.int64)[chunk.offset :][: len(chunk) + 1]
        yield bounds, data if data is not None else pa.py_buffer(b"")


def _utf8_bytes(text: pa.Array | pa.ChunkedArray) -> list[memoryview]:
    """The UTF-8 bytes of every string, back to back: one slice of each chunk's data buffer."""
    return [memoryview(data)[bounds[0] : bounds[-1]] for bounds, data in _string_chunks(text)]


def _holds_any(text: pa.Array | pa.ChunkedArray, characters: bytes) -> bool:
    """Whether any string holds one of these ASCII characters: a byte search through the whole
    column's data, far quicker than matching string by string."""
    for piece in _utf8_bytes(text):
        data = piece.tobytes()
        if any(c in data for c in characters):
            return True
    return False


def _write_strings(handle: io.BufferedWriter, text: pa.Array | pa.ChunkedArray) -> None:
    """The UTF-8 bytes of every string, back to back, written as they lie in memory."""
    for piece in _utf8_bytes(text):
        handle.write(piece)
