"""How many email verifications next month will need: what the budget check in preflight uses.

Next month is taken to look like the last month pulled: per active client, the addresses that
went to verification then (cleaned leads, leads routed on to another client, and leads rejected
as not safe to send). A client with no month pulled yet counts its package target instead.
Addresses verified recently are not paid again (the verification cache), so this is an upper
bound: a shortfall it reports may be smaller in practice, never larger.
"""

from __future__ import annotations

import pandas as pd

FORECAST_COLUMNS = ["client_slug", "verified_last_month", "target"]


def verifications_next_month(clients: pd.DataFrame) -> tuple[int, int]:
    """(addresses to verify next month, clients estimated from their target for lack of a month).

    `clients`: one row per active client, `verified_last_month` missing (NA) where no month
    was pulled yet, `target` the package target.
    """
    if clients.empty:
        return 0, 0
    verified = pd.to_numeric(clients["verified_last_month"], errors="coerce")
    unknown = verified.isna()
    total = verified.fillna(0).sum() + clients.loc[unknown, "target"].sum()
    return int(total), int(unknown.sum())
