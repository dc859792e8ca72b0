"""Leads (`raw_leads`, `cleaned_leads`, `rejected_leads`): a month's rows, pulled and cleaned."""

from __future__ import annotations

import json
from datetime import date

import pandas as pd

from homeowner_dagster import db
from homeowner_dagster.leads.calendar import RenewalWindow, month_key
from homeowner_dagster.leads.columns import CLEANED_COLUMNS, SOURCE_COLUMNS
from homeowner_dagster.store.rows import now

SOURCE_KEYS = {"source_export", "source_row"}


def write_raw_leads(
    dsn: str, client: str, month: date, raw: pd.DataFrame, zip_counts: dict[str, int]
) -> int:
    """Replace the client's raw rows for the month and stamp its ZIPs as pulled."""
    data_columns = [c for c in raw.columns if c not in SOURCE_KEYS]
    records = raw[data_columns].to_dict("records")
    frame = pd.DataFrame(
        {
            "source_export": raw["source_export"].to_numpy(),
            "source_row": raw["source_row"].astype(int).to_numpy(),
            "record": [json.dumps(r, ensure_ascii=False) for r in records],
        }
    )
    pulled_at = now()
    with db.transaction(dsn) as conn:
        written = db.replace_partition(
            conn,
            "raw_leads",
            {"client_slug": client, "month": month_key(month)},
            frame.assign(pulled_at=pulled_at),
        )
        with conn.cursor() as cur:
            for zip_code, count in zip_counts.items():
                cur.execute(
                    "update client_zipcodes set raw_count = %s, pulled_at = %s "
                    "where client_slug = %s and month = %s and zip = %s",
                    [int(count), pulled_at, client, month_key(month), zip_code],
                )
    return written


def read_raw_leads(dsn: str, client: str, month: date) -> pd.DataFrame:
    """The raw rows as downloaded: original columns (strings) plus source_export/source_row."""
    with db.connect(dsn) as conn:
        rows = conn.execute(
            "select source_export, source_row, record from raw_leads "
            "where client_slug = %s and month = %s order by source_export, source_row",
            [client, month_key(month)],
        ).fetchall()
    if not rows:
        return pd.DataFrame(columns=["source_export", "source_row"])
    frame = pd.DataFrame.from_records([r[2] for r in rows]).fillna("").astype(str)
    frame["source_export"] = [r[0] for r in rows]
    frame["source_row"] = [r[1] for r in rows]
    return frame


def raw_pulled_on(dsn: str, client: str, month: date) -> date | None:
    """The day the month's raw rows were pulled from Cole (the earliest, when in several runs)."""
    with db.connect(dsn) as conn:
        row = conn.execute(
            "select min(pulled_at) from raw_leads where client_slug = %s and month = %s",
            [client, month_key(month)],
        ).fetchone()
    return row[0].date() if row and row[0] is not None else None


def dedupe_keys_held_elsewhere(dsn: str, client: str, month: date) -> set[str]:
    """Keys of leads another client already holds this month, or routed to us from another
    client (excluding leads routed from us): those rows are rejected `held_by_other_client`."""
    with db.connect(dsn) as conn:
        rows = conn.execute(
            "select dedupe_key from cleaned_leads where month = %s "
            "and (client_slug <> %s or routed_from is not null) and coalesce(routed_from, '') <> %s",
            [month_key(month), client, client],
        ).fetchall()
    return {r[0] for r in rows}


def _cleaned_rows(frame: pd.DataFrame) -> pd.DataFrame:
    out = frame[CLEANED_COLUMNS + SOURCE_COLUMNS].copy()
    for col in ("purchase_date", "renewal_date", "renewal_window"):
        out[col] = pd.to_datetime(out[col]).dt.date
    out["purchase_day"] = out["purchase_day"].astype(int)
    out["source_row"] = out["source_row"].astype(int)
    return out


def _rejected_rows(rejected: pd.DataFrame) -> pd.DataFrame:
    data_columns = [
        c
        for c in rejected.columns
        if c not in SOURCE_KEYS and c != "reason" and not c.startswith("reason_")
    ]
    records = rejected[data_columns].fillna("").astype(str).to_dict("records")
    zips = rejected.get("reason_zip", pd.Series(None, index=rejected.index))
    values = rejected.get("reason_home_value", pd.Series(None, index=rejected.index))
    return pd.DataFrame(
        {
            "source_export": rejected["source_export"].to_numpy(),
            "source_row": rejected["source_row"].astype(int).to_numpy(),
            "reason": rejected["reason"].to_numpy(),
            "zip": zips.to_numpy(),
            "home_value": pd.to_numeric(values, errors="coerce").to_numpy(),
            "record": [json.dumps(r, ensure_ascii=False) for r in records],
        }
    )


def write_cleaned_leads(
    dsn: str,
    client: str,
    month: date,
    cleaned: pd.DataFrame,
    rejected: pd.DataFrame,
    routed: dict[str, pd.DataFrame] | None = None,
) -> None:
    """Replace the month's cleaned and rejected leads of the client, and leads it routed out."""
    m = month_key(month)
    with db.transaction(dsn) as conn:
        conn.execute("delete from cleaned_leads where month = %s and routed_from = %s", [m, client])
        # The client's own leads only: leads other clients routed to it stay.
        conn.execute(
            "delete from cleaned_leads where client_slug = %s and month = %s and routed_from is null",
            [client, m],
        )
        own = _cleaned_rows(cleaned).assign(client_slug=client, month=m)
        db.copy_rows(conn, "cleaned_leads", own, list(own.columns))
        db.replace_partition(
            conn, "rejected_leads", {"client_slug": client, "month": m}, _rejected_rows(rejected)
        )
        for destination, frame in (routed or {}).items():
            rows = _cleaned_rows(frame).assign(client_slug=destination, month=m, routed_from=client)
            db.copy_rows(conn, "cleaned_leads", rows, list(rows.columns))
        per_zip = cleaned.groupby("zip").size()
        conn.execute(
            "update client_zipcodes set cleaned_count = 0 where client_slug = %s and month = %s",
            [client, m],
        )
        with conn.cursor() as cur:
            for zip_code, count in per_zip.items():
                cur.execute(
                    "update client_zipcodes set cleaned_count = %s "
                    "where client_slug = %s and month = %s and zip = %s",
                    [int(count), client, m, zip_code],
                )


def cleaned_for_sampling(dsn: str, client: str, month: date) -> pd.DataFrame:
    with db.connect(dsn) as conn:
        return db.read_frame(
            conn,
            "select dedupe_key, zip from cleaned_leads where client_slug = %s and month = %s "
            "order by dedupe_key",
            [client, month_key(month)],
        )


def mark_surplus(dsn: str, client: str, month: date, surplus_keys: list[str]) -> None:
    """Flag the leads held back as surplus (kept, not uploaded, not deleted)."""
    with db.transaction(dsn) as conn:
        conn.execute(
            "update cleaned_leads set surplus = (dedupe_key = any(%s)) "
            "where client_slug = %s and month = %s",
            [surplus_keys, client, month_key(month)],
        )


def rejected_counts(dsn: str, client: str, month: date) -> pd.DataFrame:
    """Rejected rows by reason, ZIP and home value: the filter-relaxation arithmetic needs them."""
    with db.connect(dsn) as conn:
        return db.read_frame(
            conn,
            "select reason, zip, home_value from rejected_leads where client_slug = %s and month = %s",
            [client, month_key(month)],
        )


def window_leads(dsn: str, client: str, window: RenewalWindow) -> pd.DataFrame:
    """The client's cleaned leads renewing in the window (surplus excluded), oldest source first."""
    with db.connect(dsn) as conn:
        return db.read_frame(
            conn,
            "select * from cleaned_leads where client_slug = %s and month = %s "
            "and renewal_window = %s and not surplus order by source_export, source_row, dedupe_key",
            [client, month_key(window.month), window.start],
        )
