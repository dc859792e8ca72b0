"""Materialization metadata a person can read in the Dagster UI: a short Markdown summary first
(the numbers one looks for), counts as integers (shown with thousands separators), tables with a
schema whose columns say what they hold, instead of Markdown tables that wrap one ZIP per line."""

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd
from dagster import MetadataValue, TableColumn, TableRecord, TableSchema

# (type, description) per column of each table the assets report.
PER_ZIP = {
    "zip": ("string", "ZIP code of the territory"),
    "records": ("int", "records Cole X Dates listed for this ZIP and renewal month"),
}
REJECTION_REASONS = {
    "reason": ("string", "why a raw row did not become a cleaned lead"),
    "rows": ("int", "raw rows rejected for this reason"),
}
GAP_PROPOSALS = {
    "kind": ("string", "suggestion: move ZIPs, adjacent ZIPs, relax a filter, surplus"),
    "leads": ("int", "expected cleaned leads it adds (negative: surplus)"),
    "covers_gap": ("bool", "whether it alone closes the gap"),
    "zips": ("string", "ZIPs involved, comma-separated"),
    "donor": ("string", "client that gives the ZIPs, for a move"),
    "basis": ("string", "where the expected count comes from"),
}


def table(frame: pd.DataFrame, columns: Mapping[str, tuple[str, str]]) -> MetadataValue:
    """`frame` as Dagster table metadata with a described schema."""
    schema = TableSchema(
        columns=[TableColumn(name, kind, description=text) for name, (kind, text) in columns.items()]
    )
    records = [
        TableRecord({name: _plain(row[name]) for name in columns})
        for row in frame.to_dict("records")
    ]
    return MetadataValue.table(records, schema=schema)


def proposals_frame(suggestions: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    rows = [
        {
            "kind": s.get("kind", ""),
            "leads": int(s.get("leads") or 0),
            "covers_gap": bool(s.get("covers_gap")),
            "zips": ", ".join(s.get("zips") or ()),
            "donor": s.get("donor") or "",
            "basis": s.get("basis") or "",
        }
        for s in suggestions
    ]
    return pd.DataFrame(rows, columns=list(GAP_PROPOSALS))


def summary(title: str, numbers: Mapping[str, int | float | str]) -> MetadataValue:
    """`**title**` then one line per number, thousands separated."""
    lines = [f"**{title}**", ""]
    for label, value in numbers.items():
        shown = f"{value:,}" if isinstance(value, int | float) and not isinstance(value, bool) else str(value)
        lines.append(f"- {label}: **{shown}**")
    return MetadataValue.md("\n".join(lines))


def counts(values: Mapping[str, int]) -> dict[str, MetadataValue]:
    return {k: MetadataValue.int(int(v)) for k, v in values.items()}


def seconds(values: Mapping[str, float]) -> dict[str, MetadataValue]:
    return {k: MetadataValue.float(float(v)) for k, v in values.items()}


def _plain(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    return value
