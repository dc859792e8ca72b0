"""A renewal window's whole state, in one word: the ledger's step, or why no step is taken.

The ledger (`client_lead_batches`) knows `pending -> list_created -> list_verified -> attached ->
done`. Three more facts decide what an operator must know about a window that is not `done`:
- `not pulled`: its renewal month has no cleaned leads (nothing to upload) although the month's
  Cole pull was due (the 15th two months before) or later months of the client were pulled;
- `missed`: its first day came without it being done (no email reaches those homeowners in time);
- `held`: nothing uploaded yet and the client's hold on a below-minimum month waits for
  `homeowner approve`.
`homeowner windows` and the Dagster UI's `renewal_window` both show this one rule.
"""

from __future__ import annotations

from datetime import date

import pandas as pd

from homeowner_dagster.leads.calendar import (
    RenewalWindow,
    add_months,
    month_key,
    parse_month,
    windows_of_month,
)

NOT_PULLED, MISSED, HELD = "not pulled", "missed", "held"
# Every state a window can be shown in, in the order a window lives them.
SHOWN_STATES: tuple[str, ...] = (
    NOT_PULLED,
    "pending",
    HELD,
    "list_created",
    "list_verified",
    "attached",
    "done",
    MISSED,
)
PULL_DAY = 15  # the monthly Cole pull: on the 15th of M the team pulls renewal month M+2


def last_month_due(today: date) -> date:
    """The latest renewal month whose Cole pull day has come."""
    return add_months(today.replace(day=1), 2 if today.day >= PULL_DAY else 1)


def window_state(
    ledger_state: str | None, pulled: bool, held: bool, window: RenewalWindow, today: date
) -> str:
    """The one word for a window: `ledger_state` None when the ledger has no row for it."""
    if ledger_state == "done":
        return "done"
    if not pulled and ledger_state in (None, "pending"):
        return NOT_PULLED
    if window.start <= today:
        return MISSED
    if held and ledger_state in (None, "pending"):
        return HELD
    return ledger_state or "pending"


def window_states(
    ledger: pd.DataFrame, pulled_months: set[str], held_months: set[str], today: date
) -> pd.DataFrame:
    """One row per renewal window of a client, oldest first, with `state` and `ledger_state`.

    `ledger`: the client's ledger rows (at least `window_start`, `status`, `list_name`); windows
    shown: those in the ledger, every window of a pulled month, and the windows of unpulled months
    from the client's first known month up to the last month whose pull was due.
    """
    rows = {pd.Timestamp(r["window_start"]).date(): dict(r) for r in ledger.to_dict("records")}
    known = {month_key(w) for w in (RenewalWindow.starting(d).month for d in rows)} | set(
        pulled_months
    )
    months = set(known)
    if known:
        month, last = parse_month(min(known)), last_month_due(today)
        while month <= last:
            months.add(month_key(month))
            month = add_months(month, 1)
    out = []
    for month in sorted(months):
        for window in windows_of_month(parse_month(month)):
            row = rows.pop(window.start, None) or {"list_name": window.list_name}
            ledger_state = row.get("status")
            row.update(
                window_start=window.start,
                ledger_state=ledger_state,
                state=window_state(
                    ledger_state, month in pulled_months, month in held_months, window, today
                ),
            )
            out.append(row)
    return pd.DataFrame(out, columns=_columns(ledger)).sort_values(
        "window_start", ignore_index=True
    )


def _columns(ledger: pd.DataFrame) -> list[str]:
    return [
        "window_start",
        "state",
        "ledger_state",
        *[c for c in ledger.columns if c not in ("window_start", "status")],
    ]
