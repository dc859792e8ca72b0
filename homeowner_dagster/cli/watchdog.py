"""`homeowner watchdog`: from cron or a Kubernetes CronJob, every few minutes (watchdog.py says what)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from homeowner_dagster.cli import CommandError


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "watchdog",
        help="post to Slack when the database, the Dagster daemon or a schedule has stopped "
        "(once when it goes wrong, once when it is back); run it from cron",
        description="Exit status 1 while anything is wrong. What was last posted is kept in "
        "--state (default $HOMEOWNER_WATCHDOG_STATE, else .homeowner/watchdog.json).",
    )
    p.add_argument("--state", type=Path, default=None, help="the JSON file of what was last posted")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from homeowner_dagster import registry, settings, watchdog
    from homeowner_dagster.resources.slack import HomeownerSlackResource
    from homeowner_dagster.sanitiser import first_line

    url = os.environ.get(settings.DATABASE_URL_ENV)
    if not url:  # never start an embedded server to watch
        raise CommandError(
            f"{settings.DATABASE_URL_ENV} is not set: the watchdog watches a configured database"
        )
    token = os.environ.get("SLACK_BOT_TOKEN")
    if not token:
        raise CommandError("SLACK_BOT_TOKEN is not set: the watchdog posts to Slack directly")
    path = args.state or watchdog.state_file()
    previous = watchdog.read_state(path)
    findings = watchdog.check(url)
    slack = HomeownerSlackResource(token=token)
    for text in watchdog.messages(previous, findings):
        if text:
            try:
                slack.post(registry.ops_channel(), text)
            except Exception as exc:  # the state is kept: the next run posts again
                raise CommandError(
                    f"Slack post failed ({first_line(str(exc)) or type(exc).__name__})"
                ) from None
    watchdog.write_state(path, findings)
    for finding in findings:
        print(finding.text)
    print(f"{len(findings)} problem(s)" if findings else "database, daemon and schedules are well")
    return 1 if findings else 0
