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

FORMULA_PREFIXES: tuple[str, ...] = ("=", "+", "-", "@", "\t", "\r", "\uff1d", "\uff0b", "\uff0d", "\uff20")
# The same prefixes as an RE2 character class (Arrow's regex): `-` escaped, tab and CR as \t \r.
_STARTS_A_FORMULA = "^[" + "".join({"-": r"\-", "\t": r"\t", "\r": r"\r"}.get(c, c) for c in FORMULA_PREFIXES) + "]"


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


def neutralise_arrow(text: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    """The same rule on an Arrow string column (no nulls), for the fast CSV writer."""
    starts = pc.match_substring_regex(text, _STARTS_A_FORMULA)
    if not pc.any(starts).as_py():
        return text
    guarded = pc.binary_join_element_wise(pa.scalar("'", text.type), text, pa.scalar("", text.type))
    return pc.if_else(starts, guarded, text)
