"""Which renewal windows are behind: not `done` by their Monday while their renewals still run.

A window's list must be in Bison and its Evergreen campaign moved on by its due Monday (28-34
days before the first renewal day). One not `done` after that Monday, while the window has not
ended, is overdue; once the window is over it is missed (the weekly schedule reports those).
"""

from __future__ import annotations

from datetime import date

import pandas as pd

from homeowner_dagster.leads.calendar import RenewalWindow, parse_month, windows_of_month

OVERDUE_COLUMNS = ["client", "window", "list_name", "due_monday", "state"]


def overdue_windows(
    ledger: pd.DataFrame, pulled: pd.DataFrame, active_clients: list[str], today: date
) -> pd.DataFrame:
    """Overdue windows of active clients.

    `ledger`: [client_slug, window_start, status] (the Bison ledger; no row means `pending`);
    `pulled`: [client_slug, month] (months with cleaned leads: only those have lists to upload).
    """
    states = {
        (r.client_slug, pd.Timestamp(r.window_start).date()): r.status for r in ledger.itertuples()
    }
    rows = []
    for r in pulled.itertuples():
        if r.client_slug not in active_clients:
            continue
        for window in windows_of_month(parse_month(r.month)):
            state = states.get((r.client_slug, window.start), "pending")
            if _overdue(window, state, today):
                rows.append(
                    [
                        r.client_slug,
                        window.key,
                        window.list_name,
                        window.due_monday.isoformat(),
                        state,
                    ]
                )
    frame = pd.DataFrame(rows, columns=OVERDUE_COLUMNS)
    return frame.sort_values(["due_monday", "client"], ignore_index=True)


def _overdue(window: RenewalWindow, state: str, today: date) -> bool:
    return state != "done" and window.due_monday < today <= window.end
