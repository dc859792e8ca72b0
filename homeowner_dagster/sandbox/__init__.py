"""The fake outside world: Cole X Dates, DeBounce, Email Bison, Clay, Slack and Supabase Storage.

One module per service; `faults.py` is the switchboard and the fault answers they share;
`startup.py` starts them all (`Sandbox`), re-exported here for `from homeowner_dagster.sandbox
import Sandbox`. Imports go one way: start-up -> services -> faults.
"""

from __future__ import annotations

from homeowner_dagster.sandbox.startup import (
    DEMO_CHANNELS,
    DEMO_WORKSPACES,
    Sandbox,
    slug,
    start_time_seconds,
)

__all__ = ["DEMO_CHANNELS", "DEMO_WORKSPACES", "Sandbox", "slug", "start_time_seconds"]
