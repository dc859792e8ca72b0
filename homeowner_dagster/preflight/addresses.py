"""Service addresses no vendor documents: required settings, never guessed.

Cole X Dates publishes no address for its app, so its logins go only to `COLE_URL`. A missing
address is a failed line naming the variable, and the service behind it is not probed: no
credential goes to a guessed address. (Bison's instance is per client: its probe names
`BISON_INSTANCE_URL` or the client file.)
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from homeowner_dagster import registry
from homeowner_dagster.preflight.findings import Finding, failed, ok

SERVICE = "settings"
COLE_URL_ENV = "COLE_URL"


def address_findings(clients: Sequence[registry.Client]) -> tuple[list[Finding], set[str]]:
    """(one line per address the active clients need, the services whose address is missing)."""
    needed = []
    if any(c.licensed_states for c in clients):
        needed.append((COLE_URL_ENV, "cole", "Cole X Dates' address (the one the agency logs in at)"))
    out, missing = [], set()
    for variable, service, what in needed:
        if (os.environ.get(variable) or "").strip():
            out.append(ok(SERVICE, "", variable, f"set: {what}"))
        else:
            missing.add(service)
            out.append(failed(SERVICE, "", variable, f"set {variable}: {what}; not guessed, so {service} "
                              "was not probed (no credential sent anywhere)"))  # fmt: skip
    return out, missing
