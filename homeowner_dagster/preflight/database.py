"""The database and the settings around it: reachable, migrations current, row-level security on
every table of `public`, Dagster's tables in their own schema (the rules of `homeowner check`,
one place: cli/check.py), and the active clients preflight then probes."""

from __future__ import annotations

import os

from homeowner_dagster import registry, settings
from homeowner_dagster.cli import check
from homeowner_dagster.preflight.findings import Finding, failed, ok

SERVICE = "database"
TODO = {
    "reachable": "set HOMEOWNER_DATABASE_URL (Supabase: the direct connection) and check the network",
    "database migrated": "run `homeowner migrate`",
    "client registry readable": "run `homeowner migrate`, then `homeowner clients import FILE`",
}


def _todo(item: check.CheckItem) -> str:
    for key, todo in TODO.items():
        if key in item.item:
            return todo
    return item.detail


def probe_database() -> tuple[list[Finding], str | None, list[registry.Client] | None]:
    """(findings, the database URL when usable, the active clients when readable)."""
    items, active = check.database_items()
    findings = [
        ok(SERVICE, "", item.item, item.detail)
        if item.ok
        else failed(SERVICE, "", item.item, _todo(item), item.detail)
        for item in items
    ]
    if active is None:
        return findings, None, None
    url = os.environ.get(settings.DATABASE_URL_ENV)  # set by check.database_items (embedded too)
    return findings, url, registry.load_clients(url, active_only=True)
