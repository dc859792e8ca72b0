"""`homeowner debounce-job`: settle a DeBounce bulk upload whose answer was lost.

DeBounce documents no way to look a bulk list up, so the pipeline never uploads a list again
once an upload's answer went missing (it may have been paid for). After checking the DeBounce
dashboard, a person tells the pipeline what happened; the next run then resumes or re-uploads.
"""

from __future__ import annotations

import argparse

from homeowner_dagster.cli import CommandError


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "debounce-job", help="record the list id of a DeBounce bulk upload whose answer was lost"
    )
    p.add_argument("listing_key", help="the key named in the failed run's error")
    action = p.add_mutually_exclusive_group(required=True)
    action.add_argument("--list-id", help="the list's id as the DeBounce dashboard shows it")
    action.add_argument(
        "--forget", action="store_true", help="DeBounce never got it: let the next run upload"
    )
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from homeowner_dagster import db
    from homeowner_dagster.resources.email_verification import BulkJobs

    jobs = BulkJobs(db.database_url())
    done = (
        jobs.record(args.listing_key, args.list_id)
        if args.list_id
        else jobs.forget(args.listing_key)
    )
    if not done:
        raise CommandError(f"no DeBounce bulk job {args.listing_key!r} is recorded")
    print(
        f"DeBounce bulk job {args.listing_key}: "
        + (
            f"list {args.list_id} recorded; the next run polls it"
            if args.list_id
            else "forgotten; the next run uploads the list"
        )
    )
    return 0
