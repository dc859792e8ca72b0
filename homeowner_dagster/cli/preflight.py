"""`homeowner preflight`: probe every configured service read-only with the real credentials.

One line per check (service, client, check, result, what to do) or `--json`; exit status 1 when
any check failed, 0 otherwise. Nothing is written to any service; `--post` adds one test message
per Slack channel instead of the read-only membership check. No secret and no homeowner's data is
printed: lines carry names, counts and statuses.
"""

from __future__ import annotations

import argparse
import os


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "preflight",
        help="probe Cole, Bison, DeBounce, Clay, Slack and the database with the real credentials",
        description="Read-only probes of every configured service for every active client; "
        "exits 1 when any check failed. See docs/runbook.md, 'First day with real credentials'.",
    )
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument(
        "--post", action="store_true", help="post a test message to each Slack channel checked"
    )
    p.add_argument(
        "--client",
        action="append",
        default=[],
        metavar="SLUG",
        help="only this client (repeatable)",
    )
    p.set_defaults(handler=run)


def build_services() -> object:
    """The probes' connectors, configured as the Definitions configure them."""
    from homeowner_dagster.preflight.services import Services
    from homeowner_dagster.resources.from_environment import build_resources, clay_resource

    resources = build_resources()
    clay = clay_resource(resources["slack"]) if os.environ.get("CLAY_WEBHOOK_URL") else None  # type: ignore[arg-type]
    return Services.from_resources(resources, clay)


def run(args: argparse.Namespace, browser: object | None = None) -> int:
    from homeowner_dagster.preflight import findings, run_preflight

    report = run_preflight(build_services(), post=args.post, only=args.client, browser=browser)  # type: ignore[arg-type]
    if args.json:
        print(findings.as_json(report.findings, report.seconds))
    else:
        print(findings.table(report.findings))
        print(f"({report.seconds:.1f} s)")
    return report.exit_code
