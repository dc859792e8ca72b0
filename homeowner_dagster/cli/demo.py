"""`homeowner demo`: the main job on the embedded default, against the sandbox."""

from __future__ import annotations

import argparse
import json
import os
import time
from datetime import date

from homeowner_dagster.cli import CommandError
from homeowner_dagster.cli.database import add_database_host_flag, refuse_configured_database
from homeowner_dagster.sanitiser import first_line


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "demo",
        help="run the monthly and weekly pipeline for the demo clients (three and a high-net-worth one) on the sandbox",
    )
    p.add_argument(
        "--today", type=date.fromisoformat, default=None, help="pretend today is this date"
    )
    p.add_argument(
        "--weeks",
        type=int,
        default=6,
        help="simulated weeks: the windows go out one Monday at a time, each Monday's outcome read, "
        "the sandbox's Email Bison clock a week on each time (0: no outcomes)",
    )
    add_database_host_flag(p)
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from homeowner_dagster import db, settings
    from homeowner_dagster.demo import run_demo

    refuse_configured_database("`homeowner demo`", args.database_host)  # before anything is written
    began = time.perf_counter()
    # The embedded PostgreSQL: stopped at the end if the demo started it, else left as found.
    embedded = not os.environ.get(settings.DATABASE_URL_ENV)
    started_database = embedded and not db.embedded_running()
    try:
        summary = run_demo(today=args.today, weeks=args.weeks)
    except Exception as exc:  # one line for the user; the run's own logs hold the details
        raise CommandError(f"{exc.__class__.__name__}: {first_line(str(exc))}") from None
    finally:
        if started_database:
            db.stop_embedded()
    table = summary.pop("table")
    reports = summary.pop("gap_reports", {})
    print(f"renewal month {summary['month']}, {time.perf_counter() - began:.0f} s")
    print(table.to_string(index=False))
    for client, report in reports.items():
        if report:
            print(f"gap report {client}:")
            print("\n".join(f"  {line}" for line in report.splitlines() if line.strip()))
    print(json.dumps({"clients": summary["clients"], "stage_seconds": summary["stage_seconds"]}))
    if started_database:
        print(
            "embedded PostgreSQL stopped (`homeowner dev --sandbox` starts it again and shows these runs)"
        )
    elif embedded:
        print(
            "embedded PostgreSQL left running: it was running before the demo "
            "(Ctrl-C in the `homeowner dev` that started it stops it)"
        )
    return 0
