"""`homeowner approve --client C --month M`: a person's go-ahead to upload a below-minimum month.

Only clients with `hold_below_minimum: true` wait for it; the approval is recorded with who gave
it and when, and the next weekly run uploads the month's windows.
"""

from __future__ import annotations

import argparse

from homeowner_dagster import registry, store
from homeowner_dagster.cli import CommandError
from homeowner_dagster.cli.database import _month, _ready_database, login_name
from homeowner_dagster.leads.calendar import parse_month


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "approve", help="let a month below the minimum to proceed be uploaded"
    )
    p.add_argument("--client", required=True)
    p.add_argument("--month", required=True, help="renewal month YYYY-MM")
    p.add_argument("--by", help="who approves (default: the login name)")
    p.set_defaults(handler=run_approve)


def _who(given: str | None) -> str:
    who = (given or "").strip() or login_name()
    if not who:
        raise CommandError("say who approves with --by NAME")
    return who


def run_approve(args: argparse.Namespace) -> int:
    month = _month(args.month)
    who = _who(args.by)
    url = _ready_database()
    try:
        client = registry.get_client(args.client, url)
    except LookupError as exc:
        raise CommandError(str(exc)) from None
    done = store.approve_upload(url, client.slug, parse_month(month), who)
    when = done["approved_at"].isoformat(timespec="seconds")
    if done["status"] is None:
        state = "no gap report yet"
    else:
        state = (
            f"{done['status']}, {done['cleaned']:,} of minimum {done['minimum']:,} cleaned leads"
        )
    print(f"{client.slug} {month} approved for upload by {who} at {when} ({state})")
    if not client.hold_below_minimum:
        print(f"note: {client.slug} does not hold below-minimum months (hold_below_minimum is off)")
    return 0
