"""DeBounce's documented result codes: which addresses are safe to send to (code 5 only)."""

from __future__ import annotations

SAFE_TO_SEND_CODE = 5

# code -> `result` as DeBounce's documentation names it.
DEBOUNCE_RESULTS: dict[int, str] = {
    1: "Invalid",  # syntax error
    2: "Invalid",  # spam trap
    3: "Invalid",  # disposable
    4: "Risky",  # accept-all
    5: "Safe to Send",  # deliverable
    6: "Invalid",  # invalid
    7: "Unknown",
    8: "Risky",  # role address
}
