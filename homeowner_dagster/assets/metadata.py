"""Materialization metadata a person can read in the Dagster UI: a short Markdown summary first
(the numbers one looks for), counts as integers (shown with thousands separators), tables with a
schema whose columns say what they hold, instead of Markdown tables that wrap one ZIP per line."""

import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd
import pandera.pandas as pa
from dagster import BetaWarning, MetadataValue, TableColumn, TableRecord, TableSchema
from dagster_pandera import pandera_schema_to_dagster_type

from homeowner_dagster.leads.gap_solver import kind_label

# (type, description) per column of each table the assets report.
PER_ZIP = {
    "zip": ("string", "ZIP code of the territory"),
    "records": ("int", "records Cole X Dates listed for this ZIP and renewal month"),
}
REJECTION_REASONS = {
    "reason": ("string", "why a raw row did not become a cleaned lead"),
    "rows": ("int", "raw rows rejected for this reason"),
}
# Column names are the table's headers: words that wrap, so a narrow panel still shows the
# basis as lines of text (not one word per line beside an unbreakable `drop_head_of_household`).
GAP_PROPOSALS = {
    "proposal": ("string", "what to do, and from which client for a move"),
    "leads": ("int", "expected cleaned leads it adds (negative: surplus)"),
    "expected interested": (
        "float",
        "interested replies it is expected to bring, from measured ZIP "
        "yields (empty without outcome data)",
    ),
    "covers gap": ("bool", "whether it alone closes the gap"),
    "ZIPs": ("string", "ZIPs involved"),
    "basis": ("string", "where the count comes from, in short (the report below has it in full)"),
}


def table(frame: pd.DataFrame, columns: Mapping[str, tuple[str, str]]) -> MetadataValue:
    """`frame` as Dagster table metadata with a described schema."""
    schema = TableSchema(
        columns=[
            TableColumn(name, kind, description=text) for name, (kind, text) in columns.items()
        ]
    )
    records = [
        TableRecord({name: _plain(row[name]) for name in columns})
        for row in frame.to_dict("records")
    ]
    return MetadataValue.table(records, schema=schema)


def column_schema(
    model: type[pa.DataFrameModel], only: Mapping[str, str] | None = None
) -> dict[str, MetadataValue]:
    """Definition metadata for the asset's Columns panel in the UI (`dagster/column_schema`),
    from the table's pandera model via dagster-pandera: names, types, nullability, checks.

    `only`: the columns kept, in that order, each with its description (a table that holds a
    part of the model's columns). The assets write to Postgres and return no frame, so the
    Dagster type dagster-pandera builds would never run: its schema is what they use.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", BetaWarning)  # the converter is marked beta
        schema: TableSchema = pandera_schema_to_dagster_type(model).metadata["schema"].schema
    if only is not None:
        by_name = {column.name: column for column in schema.columns}
        schema = TableSchema(
            columns=[
                TableColumn(name, by_name[name].type, text, by_name[name].constraints)
                for name, text in only.items()
            ]
        )
    return {"dagster/column_schema": MetadataValue.table_schema(schema)}


def proposals_frame(suggestions: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    rows = [
        {
            "proposal": kind_label(s.get("kind", ""))
            + (f" from {s['donor']}" if s.get("donor") else ""),
            "leads": int(s.get("leads") or 0),
            "expected interested": None
            if s.get("expected_interested") is None
            else round(float(s["expected_interested"]), 1),
            "covers gap": bool(s.get("covers_gap")),
            "ZIPs": ", ".join(s.get("zips") or ()),
            "basis": (s.get("basis") or "").split(";")[0],
        }
        for s in suggestions
    ]
    return pd.DataFrame(rows, columns=list(GAP_PROPOSALS))


def link(url: str) -> MetadataValue:
    """A clickable link only where any browser can open it (http/https: a signed storage URL);
    a local artifact (`file://` on the Dagster machine) is shown as text, not as a dead link."""
    return (
        MetadataValue.url(url)
        if url.startswith(("https://", "http://"))
        else MetadataValue.text(url)
    )


def summary(title: str, numbers: Mapping[str, int | float | str]) -> MetadataValue:
    """`**title**` then one line per number, thousands separated."""
    lines = [f"**{title}**", ""]
    for label, value in numbers.items():
        shown = (
            f"{value:,}"
            if isinstance(value, int | float) and not isinstance(value, bool)
            else str(value)
        )
        lines.append(f"- {label}: **{shown}**")
    return MetadataValue.md("\n".join(lines))


def counts(values: Mapping[str, int]) -> dict[str, MetadataValue]:
    return {k: MetadataValue.int(int(v)) for k, v in values.items()}


def seconds(values: Mapping[str, float]) -> dict[str, MetadataValue]:
    return {k: MetadataValue.float(float(v)) for k, v in values.items()}


def _plain(value: Any) -> Any:
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and value != value:  # NaN (an empty cell): JSON has no NaN
        return None
    return value
