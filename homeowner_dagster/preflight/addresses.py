"""The addresses the deployment sends secrets to, one line each (`homeowner_dagster.addresses`,
the rule `homeowner check` uses too): set, `https://`, on the vendor's host. Cole X Dates
documents no address for its app, so `COLE_URL` has no default. A missing or refused address is
a failed line naming its variable, and the service behind it is not probed: no credential goes
to an address that is not the deployment's own.
"""

from __future__ import annotations

from homeowner_dagster import addresses
from homeowner_dagster.preflight.findings import Finding, failed, ok

SERVICE = "settings"
# The probe each address serves (Supabase's keeps the screenshots: refused, none is stored).
PROBES = {
    addresses.COLE_URL: "cole",
    addresses.SLACK_API_URL: "slack",
    addresses.DEBOUNCE_API_URL: "debounce",
    addresses.DEBOUNCE_BULK_URL: "debounce",
    addresses.CLAY_API_URL: "clay",
}


def address_findings() -> tuple[list[Finding], set[str]]:
    """(one line per address the deployment needs, the probes whose address is refused)."""
    out, refused = [], set()
    for check in addresses.check_addresses():
        if check.ok:
            out.append(ok(SERVICE, "", check.variable, f"{check.service} address"))
            continue
        probe = PROBES.get(
            check.variable, "clay" if check.variable.startswith(addresses.CLAY_WEBHOOK_URL) else ""
        )
        if probe:
            refused.add(probe)
        result = (
            f"{probe} was not probed" if probe else "nothing is stored there"
        ) + " (no credential sent)"
        out.append(
            failed(
                SERVICE, "", check.variable, f"{check.problem}; {result}", depends="addresses.py"
            )
        )
    return out, refused
