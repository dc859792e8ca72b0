"""Spreadsheet-safe cells: the one rule for every CSV a person may open (Excel, Sheets).

A cell starting with `=`, `+`, `-`, `@`, a tab or a carriage return (OWASP's list), or with the
full-width `＝ ＋ － ＠` that Excel also reads as a formula start, gets a leading `'`: the
spreadsheet shows the text instead of running it. Header cells too. `neutralise_formula` is the
rule; the Series and Arrow forms below apply the same prefixes to whole columns.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

FORMULA_PREFIXES: tuple[str, ...] = (
    "=",
    "+",
    "-",
    "@",
    "\t",
    "\r",
    "\uff1d",
    "\uff0b",
    "\uff0d",
    "\uff20",
)
# The column forms test the ASCII starts off each string's first byte (cole_csv's fast path) and
# the full-width ones, all led by the UTF-8 byte 0xEF, only when that byte occurs at all.
ASCII_FORMULA_PREFIXES: tuple[str, ...] = tuple(c for c in FORMULA_PREFIXES if c.isascii())
WIDE_FORMULA_LEAD = b"\xef"
_WIDE_START = "^[" + "".join(c for c in FORMULA_PREFIXES if not c.isascii()) + "]"


def neutralise_formula(value: Any) -> str:
    """One cell as spreadsheet-safe text ("" for a missing value)."""
    if value is None or (isinstance(value, float) and value != value) or value is pd.NA:
        return ""
    text = str(value)
    return "'" + text if text.startswith(FORMULA_PREFIXES) else text


def neutralise_series(series: pd.Series) -> pd.Series:
    """`neutralise_formula`'s prefix rule on a text column (other dtypes hold no formula)."""
    if series.dtype != object and not isinstance(series.dtype, pd.StringDtype):
        return series
    text = series.astype(object)
    starts = text.str.startswith(FORMULA_PREFIXES, na=False)
    if not starts.any():
        return series
    out = text.copy()
    out[starts] = "'" + text[starts]
    return out


def wide_formula_starts(text: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    """Whether each string of an Arrow column starts with a full-width formula character."""
    return pc.match_substring_regex(text, _WIDE_START)


def guard_formulas(
    text: pa.Array | pa.ChunkedArray, starts: pa.Array | pa.ChunkedArray
) -> pa.Array | pa.ChunkedArray:
    """A leading `'` on the strings `starts` marks (an Arrow column with no nulls)."""
    if not pc.any(starts).as_py():
        return text
    guarded = pc.binary_join_element_wise(pa.scalar("'", text.type), text, pa.scalar("", text.type))
    return pc.if_else(starts, guarded, text)
