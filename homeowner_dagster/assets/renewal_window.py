"""`renewal_window`: one place per client x renewal window that shows the window's whole state.

The state lives in the ledger and changes in weekly runs, in `homeowner windows accept` or
`forget-list` typed in a shell, and with the calendar (a window whose first day comes undone is
missed). So no run materializes this asset: a sensor reads every client's windows (the one rule,
`leads.window_states`) and records each window whose state, list or title changed as a
materialization of its partition, with the state as its `state` label. The sensor only records
events; it posts nothing and writes no table.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pandas as pd
from dagster import (
    AssetKey,
    AssetMaterialization,
    AssetSpec,
    DefaultSensorStatus,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    sensor,
)

from homeowner_dagster import registry
from homeowner_dagster.assets.weekly_upload import GROUP, bison_lead_lists, evergreen_campaign
from homeowner_dagster.leads.calendar import RenewalWindow
from homeowner_dagster.partitions import (
    client_partitions,
    client_window_key,
    client_window_partitions,
    today,
    window_partitions,
)
from homeowner_dagster.resources.database import PostgresResource
from homeowner_dagster.windows_ledger import client_window_states

RENEWAL_WINDOW = AssetKey("renewal_window")

renewal_window = AssetSpec(
    RENEWAL_WINDOW,
    group_name=GROUP,
    partitions_def=client_window_partitions,
    deps=[bison_lead_lists, evergreen_campaign],
    kinds={"postgres"},
    description="The renewal window's whole state, as `homeowner windows` shows it: not pulled, "
    "pending, held, list_created, list_verified, attached, done or missed, with its Bison list and "
    "the Evergreen title it produced. Recorded by the sensor renewal_window_states from the ledger "
    "(within a minute of any change); materialize bison_lead_lists and evergreen_campaign instead.",
)


def state_metadata(row: dict[str, Any], window: RenewalWindow) -> dict[str, str | int]:
    """What the partition shows: the state first, then the list and the title it produced."""
    meta: dict[str, str | int] = {
        "state": str(row["state"]),
        "ledger_state": str(_known(row.get("ledger_state")) or "no ledger row"),
        "list_name": str(_known(row.get("list_name")) or window.list_name),
        "due_monday": window.due_monday.isoformat(),
    }
    for label, column in (
        ("bison_list_id", "bison_list_id"),
        ("campaign_title", "campaign_title_after"),
    ):
        if (value := _known(row.get(column))) is not None:
            meta[label] = str(value)
    if (leads := _known(row.get("lead_count"))) is not None:
        meta["leads"] = int(leads)
    return meta


def _known(value: Any) -> Any:
    """None for an unset ledger value (None, NaN, NaT)."""
    return None if value is None or (not isinstance(value, str) and pd.isna(value)) else value


def _fingerprint(meta: dict[str, str | int]) -> str:
    return hashlib.sha1(json.dumps(meta, sort_keys=True).encode()).hexdigest()[:12]


def window_state_events(
    dsn: str, clients: list[str], window_keys: set[str], recorded: dict[str, str]
) -> list[AssetMaterialization]:
    """A materialization of `renewal_window` for each window whose state differs from `recorded`
    (partition key -> fingerprint, updated in place); only partitions the UI has."""
    day = today()
    events = []
    for client in clients:
        for row in client_window_states(dsn, client, day).to_dict("records"):
            window = RenewalWindow.starting(row["window_start"])
            if window.key not in window_keys:
                continue
            key, meta = str(client_window_key(client, window)), state_metadata(row, window)
            if recorded.get(key) != (fingerprint := _fingerprint(meta)):
                events.append(
                    AssetMaterialization(
                        RENEWAL_WINDOW,
                        partition=key,
                        metadata=meta,
                        description=f"{meta['state']}: {meta['list_name']}",
                    )
                )
                recorded[key] = fingerprint
    return events


@sensor(
    minimum_interval_seconds=30,
    default_status=DefaultSensorStatus.RUNNING,
    description="Records each renewal window's state (from the ledger, the pulled months and the "
    "calendar) on renewal_window's partition whenever it changes: after weekly runs, after "
    "`homeowner windows accept` or `forget-list`, when a window's first day comes.",
)
def renewal_window_states(context: SensorEvaluationContext, database: PostgresResource):
    dsn = database.dsn()
    shown = set(context.instance.get_dynamic_partitions(client_partitions.name))
    clients = [c.slug for c in registry.load_clients(dsn) if c.slug in shown]
    window_keys = set(window_partitions.get_partition_keys())
    recorded = json.loads(context.cursor or "{}")
    events = window_state_events(dsn, clients, window_keys, recorded)
    if not events:
        return SkipReason(f"no window of {len(clients)} client(s) changed state")
    context.log.info(f"{len(events)} window state(s) recorded")
    return SensorResult(asset_events=events, cursor=json.dumps(recorded, sort_keys=True))
