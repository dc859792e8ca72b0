"""Reads and writes of the pipeline's tables, one function per question the assets ask.

Every write of a partition happens in one transaction (delete + COPY), so a re-run replaces the
partition and a crash leaves the previous rows. All SQL is parameterized.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from typing import Any

import pandas as pd
import psycopg
from dagster import Failure
from psycopg import sql

from homeowner_dagster import db
from homeowner_dagster.leads import territories
from homeowner_dagster.leads.calendar import RenewalWindow, add_months, month_key
from homeowner_dagster.leads.columns import CLEANED_COLUMNS, SOURCE_COLUMNS

SOURCE_KEYS = {"source_export", "source_row"}


def now() -> datetime:
    return datetime.now(UTC)


# Territories: the standing assignment, carried forward month to month


def territory_changes(conn: Any, until: str | None = None) -> pd.DataFrame:
    """Every recorded sheet line, assignment and move (up to month `until`), oldest first."""
    frame = db.read_frame(
        conn,
        "select id, kind, month, zip, state, color, client_slug, from_client from territory_changes "
        "where %s::text is null or month <= %s order by id",
        [until, until],
    )
    return frame if not frame.empty else pd.DataFrame(columns=territories.CHANGE_COLUMNS)


def materialized_months(conn: Any, since: str) -> list[str]:
    """Months from `since` on whose territory is already written to `client_zipcodes`."""
    rows = conn.execute(
        "select distinct month from client_zipcodes where month >= %s order by month", [since]
    ).fetchall()
    return [r[0] for r in rows]


def sync_territory(conn: Any, month: str) -> territories.Territory:
    """Write month's derived territory to `client_zipcodes` (inside the caller's transaction).

    Rows that stay with their client keep their counts and pulled_at; a ZIP that changes hands
    is marked not pulled; a ZIP no longer held is removed. The caller holds the table lock.
    """
    derived = territories.derive_territory(territory_changes(conn, month), month)
    current = _written(conn, month)
    wanted = derived.zips.set_index("zip")
    gone = sorted(set(current) - set(wanted.index))
    with conn.cursor() as cur:
        if gone:
            cur.execute("delete from client_zipcodes where month = %s and zip = any(%s)", [month, gone])
        for z, row in wanted.iterrows():
            if current.get(z) == row["client_slug"]:
                continue
            if z in current:
                cur.execute(
                    "update client_zipcodes set client_slug = c.slug, client_name = c.name, "
                    "workspace_name = c.workspace_name, assigned_at = now(), pulled_at = null "
                    "from clients c where c.slug = %s and client_zipcodes.month = %s and client_zipcodes.zip = %s",
                    [row["client_slug"], month, z],
                )
            else:
                cur.execute(
                    "insert into client_zipcodes (client_slug, client_name, workspace_name, month, zip, state, color) "
                    "select slug, name, workspace_name, %s, %s, %s, %s from clients where slug = %s",
                    [month, z, row["state"], row["color"], row["client_slug"]],
                )
    return derived


def _written(conn: Any, month: str) -> dict[str, str]:
    return dict(conn.execute("select zip, client_slug from client_zipcodes where month = %s", [month]).fetchall())


def ensure_territory(dsn: str, month: date) -> territories.Territory:
    """Bring the month's `client_zipcodes` rows up to date with the sheet and changes (all clients).

    Pulls of many clients for one month run at once: the table lock is only taken when the
    written month differs from what the sheet and changes say.
    """
    m = month_key(month)
    with db.connect(dsn) as conn:
        derived = territories.derive_territory(territory_changes(conn, m), m)
        if _written(conn, m) == dict(zip(derived.zips["zip"], derived.zips["client_slug"], strict=True)):
            return derived
    with db.transaction(dsn) as conn:
        conn.execute("lock table client_zipcodes in share row exclusive mode")
        return sync_territory(conn, m)


def derived_territory(dsn: str, month: date) -> territories.Territory:
    """The month's territory as the sheet and changes define it (read only)."""
    with db.connect(dsn) as conn:
        return territories.derive_territory(territory_changes(conn, month_key(month)), month_key(month))


# PT1: raw leads


def territory(dsn: str, client: str, month: date) -> pd.DataFrame:
    """The client's ZIPs for the month, with last month's raw count when known (for chunking).

    The month's territory is first written from the latest sheet at or before it plus the
    changes approved since, so a month needs no import of its own.
    """
    ensure_territory(dsn, month)
    with db.connect(dsn) as conn:
        return db.read_frame(
            conn,
            "select z.zip, z.state, prev.raw_count as last_count "
            "from client_zipcodes z left join client_zipcodes prev "
            "  on prev.zip = z.zip and prev.month = %s "
            "where z.client_slug = %s and z.month = %s order by z.state, z.zip",
            [month_key(add_months(month, -1)), client, month_key(month)],
        )


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


# PT2: cleaned and rejected leads


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
        c for c in rejected.columns
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
        conn.execute(
            "delete from cleaned_leads where month = %s and routed_from = %s", [m, client]
        )
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


# PT3: totals and gap


def month_counts(dsn: str, client: str, month: date) -> dict[str, int]:
    m = month_key(month)
    with db.connect(dsn) as conn:
        raw = conn.execute(
            "select count(*) from raw_leads where client_slug = %s and month = %s", [client, m]
        ).fetchone()[0]
        cleaned = conn.execute(
            "select count(*) filter (where routed_from is null), count(*) filter (where routed_from is not null) "
            "from cleaned_leads where client_slug = %s and month = %s",
            [client, m],
        ).fetchone()
        rejected = conn.execute(
            "select count(*) from rejected_leads where client_slug = %s and month = %s", [client, m]
        ).fetchone()[0]
        routed_out = conn.execute(
            "select count(*) from cleaned_leads where routed_from = %s and month = %s", [client, m]
        ).fetchone()[0]
        held = conn.execute(
            "select count(*) from rejected_leads where client_slug = %s and month = %s "
            "and reason = 'held_by_other_client'",
            [client, m],
        ).fetchone()[0]
    return {
        "raw": int(raw),
        "cleaned": int(cleaned[0]) + int(cleaned[1]),
        "own_cleaned": int(cleaned[0]),
        "routed_in": int(cleaned[1]),
        "rejected": int(rejected),
        "routed_out": int(routed_out),
        "held_by_other_client": int(held),
    }


def refresh_routed_totals(dsn: str, totals: dict[str, Any], status: str, meets_minimum: bool) -> bool:
    """Bring a destination's totals and gap report rows up to date after a source routed leads
    to it, so they agree with its cleaned leads whichever of the two months ran first.

    False (nothing written) when the destination's month has not been totalled yet: its own run
    will count the routed leads.
    """
    key = {"client_slug": totals["client_slug"], "month": totals["month"]}
    with db.transaction(dsn) as conn:
        exists = conn.execute(
            "select 1 from monthly_cleaned_leads where client_slug = %s and month = %s for update",
            [key["client_slug"], key["month"]],
        ).fetchone()
        if not exists:
            return False
        _replace_totals(conn, totals)
        conn.execute(
            "update gap_reports set cleaned_count = %s, routed_in_count = %s, gap = %s, status = %s, "
            "meets_minimum = %s where client_slug = %s and month = %s",
            [totals["cleaned_count"], totals["routed_in_count"], totals["gap"], status, meets_minimum,
             key["client_slug"], key["month"]],
        )
    return True


def write_monthly_totals(dsn: str, row: dict[str, Any]) -> None:
    with db.transaction(dsn) as conn:
        _replace_totals(conn, row)


def _replace_totals(conn: psycopg.Connection, row: dict[str, Any]) -> None:
    db.replace_partition(
        conn,
        "monthly_cleaned_leads",
        {"client_slug": row["client_slug"], "month": row["month"]},
        pd.DataFrame([row]).drop(columns=["client_slug", "month"]).assign(updated_at=now()),
    )


def write_gap_report(dsn: str, row: dict[str, Any]) -> None:
    with db.transaction(dsn) as conn:
        db.replace_partition(
            conn,
            "gap_reports",
            {"client_slug": row["client_slug"], "month": row["month"]},
            pd.DataFrame([row]).drop(columns=["client_slug", "month"]).assign(created_at=now()),
        )


def upload_held(dsn: str, client: str, month: date) -> str | None:
    """Why the weekly upload of this renewal month waits for a person, or None to go ahead.

    Only a client with `hold_below_minimum: true` is held, only for a month whose gap report is
    `below_minimum`, and only until someone runs `homeowner approve` for it (the default is to
    upload and flag).
    """
    m = month_key(month)
    with db.connect(dsn) as conn:
        row = conn.execute(
            "select g.cleaned_count, g.minimum_to_proceed from clients c "
            "join gap_reports g on g.client_slug = c.slug and g.month = %s "
            "left join upload_approvals a on a.client_slug = c.slug and a.month = g.month "
            "where c.slug = %s and c.hold_below_minimum and g.status = 'below_minimum' "
            "and a.client_slug is null",
            [m, client],
        ).fetchone()
    if row is None:
        return None
    return (
        f"{client} {m} is below its minimum to proceed ({row[0]:,} of {row[1]:,} cleaned leads) and "
        f"the client is set to hold_below_minimum: run `homeowner approve --client {client} --month {m}` "
        "to upload it"
    )


def approve_upload(dsn: str, client: str, month: date, approved_by: str) -> dict[str, Any]:
    """Record a person's go-ahead for a below-minimum month (who, when, and the counts then)."""
    m = month_key(month)
    with db.transaction(dsn) as conn:
        report = conn.execute(
            "select status, cleaned_count, minimum_to_proceed from gap_reports "
            "where client_slug = %s and month = %s",
            [client, m],
        ).fetchone()
        row = conn.execute(
            "insert into upload_approvals (client_slug, month, approved_by, cleaned_count, minimum_to_proceed) "
            "values (%s, %s, %s, %s, %s) on conflict (client_slug, month) do update set "
            "approved_by = excluded.approved_by, approved_at = now(), cleaned_count = excluded.cleaned_count, "
            "minimum_to_proceed = excluded.minimum_to_proceed returning approved_at",
            [client, m, approved_by, report[1] if report else None, report[2] if report else None],
        ).fetchone()
    return {
        "status": report[0] if report else None,
        "cleaned": report[1] if report else None,
        "minimum": report[2] if report else None,
        "approved_at": row[0],
    }


def hnw_rules_for(dsn: str, client: str) -> list[dict[str, Any]]:
    """High-net-worth routing rules that apply to this source client, in the client file's order."""
    with db.connect(dsn) as conn:
        frame = db.read_frame(
            conn,
            "select name, destination_client, source_states, threshold from hnw_routing_rules "
            "where %s = any(source_clients) and destination_client <> %s order by position, name",
            [client, client],
        )
    return frame.to_dict("records")


def hnw_sources_of(dsn: str, destination: str) -> list[str]:
    """The clients whose rules route leads to `destination`."""
    with db.connect(dsn) as conn:
        rows = conn.execute(
            "select distinct unnest(source_clients) from hnw_routing_rules where destination_client = %s",
            [destination],
        ).fetchall()
    return sorted(r[0] for r in rows)


def routed_destinations(dsn: str, source: str, month: date) -> set[str]:
    """The clients holding leads routed from `source` this month (before a re-run replaces them)."""
    with db.connect(dsn) as conn:
        rows = conn.execute(
            "select distinct client_slug from cleaned_leads where routed_from = %s and month = %s",
            [source, month_key(month)],
        ).fetchall()
    return {r[0] for r in rows}


def raw_pulled_on(dsn: str, client: str, month: date) -> date | None:
    """The day the month's raw rows were pulled from Cole (the earliest, when in several runs)."""
    with db.connect(dsn) as conn:
        row = conn.execute(
            "select min(pulled_at) from raw_leads where client_slug = %s and month = %s",
            [client, month_key(month)],
        ).fetchone()
    return row[0].date() if row and row[0] is not None else None


def month_assignments(dsn: str, month: date) -> pd.DataFrame:
    """Every client's ZIPs this month with the cleaned leads each yielded: [zip, state, client_slug, cleaned_count]."""
    with db.connect(dsn) as conn:
        return db.read_frame(
            conn,
            "select zip, state, client_slug, coalesce(cleaned_count, 0) as cleaned_count "
            "from client_zipcodes where month = %s",
            [month_key(month)],
        )


def month_totals(dsn: str, month: date) -> pd.DataFrame:
    """Each client's cleaned total and target this month: [client_slug, cleaned, target]."""
    with db.connect(dsn) as conn:
        return db.read_frame(
            conn,
            "select client_slug, cleaned_count as cleaned, target_count as target "
            "from monthly_cleaned_leads where month = %s",
            [month_key(month)],
        )


def zip_history(dsn: str, zips: list[str], before: date) -> dict[str, float]:
    """Cleaned leads each ZIP yielded in its latest earlier month (any client)."""
    with db.connect(dsn) as conn:
        rows = conn.execute(
            "select distinct on (zip) zip, cleaned_count from client_zipcodes "
            "where zip = any(%s) and month < %s and cleaned_count is not null "
            "order by zip, month desc",
            [zips, month_key(before)],
        ).fetchall()
    return {z: float(c) for z, c in rows}


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


def is_hnw_destination(dsn: str, client: str) -> bool:
    """A high-net-worth client may hold no ZIPs: its leads come from routing."""
    with db.connect(dsn) as conn:
        return conn.execute(
            "select exists(select 1 from hnw_routing_rules where destination_client = %s)", [client]
        ).fetchone()[0]


def rejected_counts(dsn: str, client: str, month: date) -> pd.DataFrame:
    """Rejected rows by reason, ZIP and home value: the filter-relaxation arithmetic needs them."""
    with db.connect(dsn) as conn:
        return db.read_frame(
            conn,
            "select reason, zip, home_value from rejected_leads where client_slug = %s and month = %s",
            [client, month_key(month)],
        )


# PT4-PT5: the Bison ledger


def window_leads(dsn: str, client: str, window: RenewalWindow) -> pd.DataFrame:
    """The client's cleaned leads renewing in the window (surplus excluded), oldest source first."""
    with db.connect(dsn) as conn:
        return db.read_frame(
            conn,
            "select * from cleaned_leads where client_slug = %s and month = %s "
            "and renewal_window = %s and not surplus order by source_export, source_row, dedupe_key",
            [client, month_key(window.month), window.start],
        )


class UploadLockLost(Failure):
    """The upload lock's database session died: another run may now hold the window.

    Raised before any further Bison call; the cause (the database error) is kept as
    `__cause__`. Not retried in place: a re-run finds the list by name and uploads nothing twice.
    """

    def __init__(self, key: str, cause: BaseException) -> None:
        super().__init__(
            description=f"upload lock {key} lost ({type(cause).__name__}: {str(cause).strip()[:200]}); "
            "nothing more was sent to Bison. Re-run the window (it finds its list by name)",
            metadata={"error_type": "UploadLockLost"},
            allow_retries=False,
        )


# The lock's session: fail fast when the server is unreachable, give up waiting for another
# run's lock after LOCK_WAIT, and notice a dead peer (keepalives) instead of hanging on it.
LOCK_CONNECT_TIMEOUT_SECONDS = 10
LOCK_WAIT = os.environ.get("HOMEOWNER_UPLOAD_LOCK_TIMEOUT", "15min")
LOCK_APPLICATION_NAME = "homeowner-upload-lock"


class UploadLock:
    """A held upload lock; `ensure_held()` before every Bison call."""

    def __init__(self, conn: Any, key: str) -> None:
        self._conn = conn
        self.key = key
        self.lost: BaseException | None = None

    def ensure_held(self) -> None:
        """Raise UploadLockLost unless this session still holds the advisory lock."""
        if self.lost is not None:
            raise UploadLockLost(self.key, self.lost)
        try:
            held = self._conn.execute(
                "select exists (select 1 from pg_locks where locktype = 'advisory' and granted "
                "and pid = pg_backend_pid() and objsubid = 1 "
                "and ((classid::int8 << 32) | objid::int8) = hashtextextended(%s, 0))",
                [self.key],
            ).fetchone()[0]
        except Exception as exc:  # noqa: BLE001 - any failure of the session loses the lock
            self.lost = exc
            raise UploadLockLost(self.key, exc) from exc
        if not held:
            self.lost = RuntimeError("the session no longer holds the lock")
            raise UploadLockLost(self.key, self.lost)


@contextmanager
def upload_lock(dsn: str, client: str, window: RenewalWindow) -> Iterator[UploadLock]:
    """One uploader per client and window at a time, across processes and machines.

    Two runs for the same window (a retry racing a manual re-run) would both find no list by
    name and both upload; a session-level advisory lock makes the second wait, then find it.
    The session has connect and lock timeouts and TCP keepalives; a lost session surfaces as
    UploadLockLost at the next `ensure_held()`, and the unlock never hides the run's own error.
    """
    key = f"bison-upload|{client}|{window.key}"
    conn = db.connect(
        dsn,
        autocommit=True,
        connect_timeout=LOCK_CONNECT_TIMEOUT_SECONDS,
        keepalives=1,
        keepalives_idle=30,
        keepalives_interval=10,
        keepalives_count=3,
        application_name=LOCK_APPLICATION_NAME,
    )
    with conn:
        conn.execute(sql.SQL("set lock_timeout = {}").format(sql.Literal(LOCK_WAIT)))
        conn.execute("select pg_advisory_lock(hashtextextended(%s, 0))", [key])
        lock = UploadLock(conn, key)
        lock.ensure_held()
        try:
            yield lock
        except BaseException:
            _unlock_quietly(conn, key)
            raise
        _unlock_quietly(conn, key)


def _unlock_quietly(conn: Any, key: str) -> None:
    """Release the lock if the session still lives; a dead session released it already."""
    try:
        conn.execute("select pg_advisory_unlock(hashtextextended(%s, 0))", [key])
    except Exception:  # noqa: BLE001, S110 - never mask the error that ended the block
        pass


def ledger_row(dsn: str, client: str, window: RenewalWindow) -> dict[str, Any] | None:
    with db.connect(dsn) as conn:
        frame = db.read_frame(
            conn,
            "select * from client_lead_batches where client_slug = %s and window_start = %s",
            [client, window.start],
        )
    if frame.empty:
        return None
    # Plain values: a column never set is None (not NaN or NaT).
    return {k: (None if pd.api.types.is_scalar(v) and pd.isna(v) else v) for k, v in frame.iloc[0].to_dict().items()}


def keys_uploaded_elsewhere(dsn: str, client: str, window: RenewalWindow, keys: Iterable[str]) -> int:
    """How many of these leads already went out this month in another window or client's list."""
    with db.connect(dsn) as conn:
        row = conn.execute(
            "select count(*) from client_lead_batch_leads where month = %s and dedupe_key = any(%s) "
            "and not (client_slug = %s and window_start = %s)",
            [month_key(window.month), list(keys), client, window.start],
        ).fetchone()
    return int(row[0])


_STATE_ORDER = "array['pending','list_created','list_verified','attached','done']"


def _advance(state: str) -> sql.Composable:
    """SQL for `status` moved on to `state`, never back (a slow run cannot undo a later one)."""
    return sql.SQL(
        "status = case when array_position({order}, status) < array_position({order}, {state}) "
        "then {state} else status end"
    ).format(order=sql.SQL(_STATE_ORDER), state=sql.Literal(state))


def _update_window(
    dsn: str, client: str, window: RenewalWindow, state: str | None, values: dict[str, Any]
) -> None:
    sets = [sql.SQL("{} = %s").format(sql.Identifier(k)) for k in values]
    if state is not None:
        sets.append(_advance(state))
    sets.append(sql.SQL("updated_at = now()"))
    stmt = sql.SQL("update client_lead_batches set {sets} where client_slug = %s and window_start = %s").format(
        sets=sql.SQL(", ").join(sets)
    )
    with db.transaction(dsn) as conn:
        conn.execute(stmt, [*values.values(), client, window.start])


def ensure_window(dsn: str, client: str, window: RenewalWindow) -> dict[str, Any]:
    """The window's ledger row, created `pending` (month pulled, nothing in Bison) when missing."""
    with db.transaction(dsn) as conn:
        conn.execute(
            "insert into client_lead_batches (client_slug, window_start, window_end, month, list_name, status) "
            "values (%s, %s, %s, %s, %s, 'pending') on conflict (client_slug, window_start) do nothing",
            [client, window.start, window.end, month_key(window.month), window.list_name],
        )
    row = ledger_row(dsn, client, window)
    assert row is not None
    return row


def record_list_requested(dsn: str, client: str, window: RenewalWindow) -> datetime:
    """Written just before the list is created: a list found by name later than this is ours."""
    with db.transaction(dsn) as conn:
        at = conn.execute(
            "update client_lead_batches set list_requested_at = now(), list_name = %s, updated_at = now() "
            "where client_slug = %s and window_start = %s returning list_requested_at",
            [window.list_name, client, window.start],
        ).fetchone()[0]
    return at


def record_list_created(
    dsn: str, client: str, window: RenewalWindow, list_id: str, dedupe_keys: Iterable[str]
) -> None:
    """`list_created`: the list's id and the leads sent to it, in one transaction."""
    m = month_key(window.month)
    keys = pd.DataFrame({"dedupe_key": list(dedupe_keys)})
    with db.transaction(dsn) as conn:
        updated = conn.execute(
            sql.SQL(
                "update client_lead_batches set bison_list_id = %s, lead_count = %s, list_name = %s, "
                "uploaded_at = coalesce(uploaded_at, now()), updated_at = now(), {advance} "
                "where client_slug = %s and window_start = %s "
                "and (bison_list_id is null or bison_list_id = %s)"
            ).format(advance=_advance("list_created")),
            [list_id, len(keys), window.list_name, client, window.start, list_id],
        ).rowcount
        if updated != 1:
            raise ListAlreadyRecorded(
                f"{client}: another list is already recorded for {window.list_name}; Bison list "
                f"{list_id} is a second one (two runs uploaded at once?): delete it in Bison"
            )
        db.replace_partition(
            conn,
            "client_lead_batch_leads",
            {"client_slug": client, "window_start": window.start, "month": m},
            keys,
        )


class ListAlreadyRecorded(RuntimeError):
    """The window's ledger row already names a different Bison list: never overwritten."""


def record_list_verified(dsn: str, client: str, window: RenewalWindow, in_bison: int) -> None:
    _update_window(dsn, client, window, "list_verified", {"lead_count": in_bison, "list_verified_at": now()})


def record_campaign_before_attach(
    dsn: str, client: str, window: RenewalWindow, campaign_id: str, title: str, leads_before: int
) -> None:
    """The campaign and its lead count just before attaching: the attach check compares with it."""
    _update_window(
        dsn, client, window, None,
        {"campaign_id": campaign_id, "campaign_title_before": title, "campaign_leads_before": leads_before},
    )


def record_attached(dsn: str, client: str, window: RenewalWindow, leads_after: int) -> None:
    with db.transaction(dsn) as conn:
        conn.execute(
            sql.SQL(
                "update client_lead_batches set campaign_leads_after = %s, "
                "attached_at = coalesce(attached_at, now()), updated_at = now(), {advance} "
                "where client_slug = %s and window_start = %s"
            ).format(advance=_advance("attached")),
            [leads_after, client, window.start],
        )


def record_done(dsn: str, client: str, window: RenewalWindow, title_after: str) -> None:
    with db.transaction(dsn) as conn:
        conn.execute(
            sql.SQL(
                "update client_lead_batches set campaign_title_after = %s, "
                "done_at = coalesce(done_at, now()), updated_at = now(), {advance} "
                "where client_slug = %s and window_start = %s"
            ).format(advance=_advance("done")),
            [title_after, client, window.start],
        )


ANNOUNCEMENTS = ("list_announced_at", "evergreen_announced_at", "missed_reported_at")


def mark_announced(dsn: str, client: str, window: RenewalWindow, which: str) -> None:
    """Remember that a window's Slack message went out, so a later run does not post it again."""
    if which not in ANNOUNCEMENTS:
        raise ValueError(which)
    _update_window(dsn, client, window, None, {which: now()})


def windows_in_states(dsn: str, client: str, states: Iterable[str]) -> set[date]:
    with db.connect(dsn) as conn:
        rows = conn.execute(
            "select window_start from client_lead_batches where client_slug = %s and status = any(%s)",
            [client, list(states)],
        ).fetchall()
    return {r[0] for r in rows}


def done_windows(dsn: str, client: str, announced: bool = False) -> set[date]:
    """Windows whose list is attached and whose campaign title has moved on (state `done`).

    `announced`: only those whose 'Evergreen uploads completed' message went out too (a run that
    died between the two leaves a window the next Monday finishes by posting it).
    """
    if not announced:
        return windows_in_states(dsn, client, ["done"])
    with db.connect(dsn) as conn:
        rows = conn.execute(
            "select window_start from client_lead_batches where client_slug = %s and status = 'done' "
            "and evergreen_announced_at is not null",
            [client],
        ).fetchall()
    return {r[0] for r in rows}


def missed_reported(dsn: str, client: str) -> set[date]:
    """Windows whose miss was already posted to Slack (posted once)."""
    with db.connect(dsn) as conn:
        rows = conn.execute(
            "select window_start from client_lead_batches where client_slug = %s and missed_reported_at is not null",
            [client],
        ).fetchall()
    return {r[0] for r in rows}


def client_windows(dsn: str, client: str) -> pd.DataFrame:
    """Every ledger row of the client, oldest window first (what `homeowner windows` prints)."""
    with db.connect(dsn) as conn:
        return db.read_frame(
            conn,
            "select window_start, window_end, month, status, list_name, bison_list_id, lead_count, "
            "campaign_title_after, missed_reported_at, updated_at from client_lead_batches "
            "where client_slug = %s order by window_start",
            [client],
        )


def stored_campaign(dsn: str, client: str) -> dict[str, Any] | None:
    """The Evergreen campaign found for this client before: pattern, campaign_id, campaign_name."""
    with db.connect(dsn) as conn:
        frame = db.read_frame(
            conn, "select pattern, campaign_id, campaign_name from client_campaigns where client_slug = %s", [client]
        )
    return frame.iloc[0].to_dict() if not frame.empty else None


def store_campaign(dsn: str, client: str, pattern: str, campaign_id: str, name: str) -> None:
    with db.transaction(dsn) as conn:
        db.upsert(
            conn,
            "client_campaigns",
            {"client_slug": client, "pattern": pattern, "campaign_id": campaign_id, "campaign_name": name, "found_at": now()},
            key="client_slug",
        )


def months_with_cleaned_leads(dsn: str, client: str) -> set[str]:
    with db.connect(dsn) as conn:
        rows = conn.execute(
            "select month from monthly_cleaned_leads where client_slug = %s", [client]
        ).fetchall()
    return {r[0] for r in rows}


# The dashboard's run mirror


def record_run(dsn: str, row: dict[str, Any]) -> None:
    """Upsert one run into `agent_runs` (what the predecessor dashboard shows)."""
    with db.transaction(dsn) as conn:
        db.upsert(conn, "agent_runs", {**row, "updated_at": now()}, key="run_id")


def record_error(dsn: str, row: dict[str, Any]) -> None:
    """Append one error to `agent_errors`."""
    cols = list(row)
    stmt = sql.SQL("insert into agent_errors ({cols}) values ({vals})").format(
        cols=sql.SQL(", ").join(map(sql.Identifier, cols)),
        vals=sql.SQL(", ").join(sql.Placeholder() * len(cols)),
    )
    with db.transaction(dsn) as conn:
        conn.execute(stmt, [row[c] for c in cols])
