"""Every renewal window of a client with its whole state, read from the ledger and the months.

Reads only, through the store's functions; the rule is `leads.window_states` (one place for
`homeowner windows` and the Dagster UI's `renewal_window`).
"""

from __future__ import annotations

from datetime import date

import pandas as pd

from homeowner_dagster import store
from homeowner_dagster.leads.calendar import parse_month
from homeowner_dagster.leads.window_states import window_states


def client_window_states(dsn: str, client: str, today: date) -> pd.DataFrame:
    """The client's windows, oldest first: `state` (the one word), `ledger_state` and the
    ledger's columns (list, list id, leads, campaign title)."""
    ledger = store.client_windows(dsn, client)
    pulled = store.months_with_cleaned_leads(dsn, client)
    held = {m for m in pulled if store.upload_held(dsn, client, parse_month(m)) is not None}
    return window_states(ledger, pulled, held, today)
