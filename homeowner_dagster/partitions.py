"""Partitions: client (dynamic, from the registry) x renewal month, and client x renewal window.

Keys are built with `MultiPartitionKey`, never by string concatenation: dimension order in the
string form is alphabetical (`acme|2027-02`, `acme|2027-02-08`).
"""

from __future__ import annotations

import warnings
from datetime import date

from dagster import (
    BetaWarning,
    DimensionPartitionMapping,
    DynamicPartitionsDefinition,
    IdentityPartitionMapping,
    MonthlyPartitionsDefinition,
    MultiPartitionKey,
    MultiPartitionMapping,
    MultiPartitionsDefinition,
    MultiToSingleDimensionPartitionMapping,
    PartitionMapping,
    TimeWindowPartitionMapping,
    TimeWindowPartitionsDefinition,
)

from homeowner_dagster.leads.calendar import RenewalWindow, month_key, parse_month

TIMEZONE = "America/Chicago"
FIRST_MONTH = "2026-01"

client_partitions = DynamicPartitionsDefinition(name="client")

# Renewal months through M+2 (on Jan 15 the team pulls March); a month partition counts as
# complete only at its end, hence an offset of 3 from the last complete month.
month_partitions = MonthlyPartitionsDefinition(
    start_date=FIRST_MONTH, fmt="%Y-%m", timezone=TIMEZONE, end_offset=3
)

# Renewal windows: days 1-7, 8-14, 15-21, 22-end; as many ahead as the months above.
window_partitions = TimeWindowPartitionsDefinition(
    cron_schedule="0 0 1,8,15,22 * *",
    start=f"{FIRST_MONTH}-01",
    fmt="%Y-%m-%d",
    timezone=TIMEZONE,
    end_offset=12,
)

client_month_partitions = MultiPartitionsDefinition(
    {"client": client_partitions, "month": month_partitions}
)
client_window_partitions = MultiPartitionsDefinition(
    {"client": client_partitions, "window": window_partitions}
)

# MultiPartitionMapping and MultiToSingleDimensionPartitionMapping have been "beta" throughout
# Dagster 1.x; the paths they serve are kept under test (test_definitions, the outcome tests), so
# they are built here without the BetaWarning every command would print, that nobody can act on.


def same_client(upstream: str, downstream: str, mapping: PartitionMapping) -> MultiPartitionMapping:
    """The same client; the upstream's time dimension `upstream` mapped from the downstream's
    `downstream` by `mapping`."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", BetaWarning)
        return MultiPartitionMapping(
            {
                "client": DimensionPartitionMapping("client", IdentityPartitionMapping()),
                upstream: DimensionPartitionMapping(downstream, mapping),
            }
        )


def client_dimension() -> MultiToSingleDimensionPartitionMapping:
    """From a client x time partition to the client's own partition (and back: all its times)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", BetaWarning)
        return MultiToSingleDimensionPartitionMapping(partition_dimension_name="client")


# A renewal window reads its renewal month's cleaned leads.
window_to_month = same_client("month", "window", TimeWindowPartitionMapping())


def client_month_key(client: str, month: date | str) -> MultiPartitionKey:
    month_text = month if isinstance(month, str) else month_key(month)
    return MultiPartitionKey({"client": client, "month": month_text})


def client_window_key(client: str, window: RenewalWindow | date | str) -> MultiPartitionKey:
    if isinstance(window, RenewalWindow):
        text = window.key
    elif isinstance(window, date):
        text = window.isoformat()
    else:
        text = window
    return MultiPartitionKey({"client": client, "window": text})


def split_client_month(key: MultiPartitionKey | str) -> tuple[str, date]:
    dims = _dims(key)
    return dims["client"], parse_month(dims["month"])


def split_client_window(key: MultiPartitionKey | str) -> tuple[str, RenewalWindow]:
    dims = _dims(key)
    return dims["client"], RenewalWindow.starting(date.fromisoformat(dims["window"]))


def _dims(key: MultiPartitionKey | str) -> dict[str, str]:
    if isinstance(key, MultiPartitionKey):
        return dict(key.keys_by_dimension)
    raise TypeError("expected a MultiPartitionKey (use context.partition_key)")


def cole_login_tags(states: tuple[str, ...] | list[str]) -> dict[str, str]:
    """Run tags that make dagster.yaml allow one run per Cole state login at a time."""
    return {f"cole-login-{s.upper()}": "in-use" for s in states}
