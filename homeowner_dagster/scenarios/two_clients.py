"""The two-client scenario of the end-to-end tests: Garden State (NJ) and Sunshine (FL).

Shared by `homeowner_dagster_tests/pipeline_fixtures.py` and `bench/bench_api_requests.py`: the
clients and their ZIPs in the registry, fresh Bison workspaces and Slack in the sandbox, a pulled
month written without running the Cole pull, and Bison's waits moved to the sandbox clock.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, timedelta

import pandas as pd

from homeowner_dagster import registry, store
from homeowner_dagster.leads.calendar import add_months, month_key, readable_date, windows_of_month
from homeowner_dagster.leads.territories import parse_clients, parse_zip_sheet
from homeowner_dagster.resources import bison as bison_resource
from homeowner_dagster.sandbox import Sandbox

MONTH = date(2027, 1, 1)
CLIENTS_YAML = """
clients:
  - slug: garden-state
    name: Garden State Insurance
    workspace: Garden State Insurance
    bison_token_env: BISON_TOKEN_GARDEN_STATE_INSURANCE
    package_tier: 100
    licensed_states: [NJ]
    slack_channel: "#garden-state"
  - slug: sunshine
    name: Sunshine Coverage
    workspace: Sunshine Coverage
    bison_token_env: BISON_TOKEN_SUNSHINE_COVERAGE
    package_tier: 100
    licensed_states: [FL]
    slack_channel: "#sunshine"
"""
TERRITORY = {"garden-state": ["07030", "07302", "07001"], "sunshine": ["33101", "33125", "32801"]}
QUIET = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}


def wait_on_the_sandbox_clock(bison_url: str) -> None:
    """For a run in a child process: the connector's waits for Bison (an import, an attach's
    5-minute sync) move the sandbox's clock over its own route instead of sleeping."""
    import httpx

    def advance(seconds: float) -> None:
        httpx.post(
            f"{bison_url}/sandbox/clock", json={"days": seconds / 86_400}, timeout=10
        ).raise_for_status()

    bison_resource.pause = advance


def seed_month(
    dsn: str,
    client: str,
    month: date,
    per_window: int = 3,
    email: Callable[[date, int], str] | None = None,
) -> None:
    """A pulled month: `per_window` cleaned leads in each renewal window, and its totals row.

    Written with the pipeline's own store functions, for tests of the weekly part that do not
    need the Cole pull (covered by test_pipeline) to run first. `email(renewal day, i)` names
    each lead's address (default: one of its own per client, day and i).
    """
    rows = []
    for window in windows_of_month(month):
        for i in range(per_window):
            day = window.start + timedelta(days=i)
            address = email(day, i) if email else f"{client}.{day.isoformat()}.{i}@example.com"
            rows.append(
                {
                    "first_name": f"Pat{i}",
                    "last_name": "Doe",
                    "email": address,
                    "phone": "5551234567",
                    "address": f"{i} Main St",
                    "city": "Hoboken",
                    "state": "NJ",
                    "zip": "07030",
                    "date_of_birth": "1970-01-01",
                    "home_value": 300000.0,
                    "purchase_date": day.replace(year=2015),
                    "purchase_day": day.day,
                    "readable_purchase_date": readable_date(day),
                    "renewal_date": day,
                    "renewal_window": window.start,
                    "dedupe_key": f"{client}-{day.isoformat()}-{i}",
                    "source_export": "seed.csv",
                    "source_row": len(rows) + 1,
                }
            )
    cleaned = pd.DataFrame(rows)
    rejected = pd.DataFrame(
        {
            "source_export": pd.Series(dtype=object),
            "source_row": pd.Series(dtype=int),
            "reason": pd.Series(dtype=object),
        }
    )
    store.write_cleaned_leads(dsn, client, month, cleaned, rejected)
    store.write_monthly_totals(
        dsn,
        {
            "client_slug": client,
            "month": month_key(month),
            "client_name": client,
            "workspace_name": client,
            "raw_count": len(rows),
            "cleaned_count": len(rows),
            "rejected_count": 0,
            "routed_count": 0,
            "target_count": 15000,
            "gap": 15000 - len(rows),
        },
    )


def load_clients(dsn: str, month: date = MONTH) -> None:
    registry.upsert_clients(parse_clients(CLIENTS_YAML, "clients.yaml"), dsn)
    lines = ["Zipcode,Territory,Color"] + [
        f"{z},{c}," for c, zips in TERRITORY.items() for z in zips
    ]
    registry.import_zips(parse_zip_sheet("\n".join(lines) + "\n"), month_key(month), dsn)


def reset_outside_world(sandbox: Sandbox) -> None:
    """Fresh Bison workspaces (Evergreen campaign on last month's last window) and empty Slack."""
    previous = windows_of_month(add_months(MONTH, -1))[-1]
    for client in parse_clients(CLIENTS_YAML, "clients.yaml").itertuples():
        sandbox.bison.add_workspace(client.workspace_name, f"token-{client.slug}")
        sandbox.bison.add_campaign(
            client.workspace_name, previous.evergreen_title, max_emails_per_day=333
        )
        sandbox.bison.add_campaign(client.workspace_name, "Spring newsletter")
    sandbox.slack.messages.clear()
    sandbox.faults.off()
