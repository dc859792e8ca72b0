"""The weekly preflight: the same probes as `homeowner preflight`, as a Dagster job on a schedule.

One asset per service (`preflight_cole`, `preflight_bison`, ...; group `preflight`), each with
an asset check that fails while any of its lines (per client or state login) fails; the
materialization carries the lines as a table. The run posts to the ops channel only what changed:
a check failing that was not announced before (once per failure), and a check announced as
failing that passes again. What was announced is kept in each asset's materialization metadata
(`announced`), so the memory lives with the runs; a check stays announced until it is seen
passing (a step skipped behind another failure is not a recovery). Posting happens in the run,
never in schedule evaluation: the UI previews ticks.

Schedule: Thursdays and the 13th, 08:00 America/Chicago: before each Monday's upload and before
the 15th's pull, with a working day to fix what it finds.
"""

import os
from collections.abc import Iterator

from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetKey,
    AssetSelection,
    AssetSpec,
    DefaultScheduleStatus,
    MaterializeResult,
    MetadataValue,
    RunRequest,
    ScheduleEvaluationContext,
    define_asset_job,
    multi_asset,
    schedule,
)

from homeowner_dagster import registry
from homeowner_dagster.partitions import TIMEZONE
from homeowner_dagster.preflight.findings import OK, SERVICES, Finding, counts
from homeowner_dagster.preflight.runner import run_preflight
from homeowner_dagster.preflight.services import Services
from homeowner_dagster.resources import slack as messages
from homeowner_dagster.resources.bison import BisonResource
from homeowner_dagster.resources.cole import ColeResource
from homeowner_dagster.resources.email_verification import EmailVerificationResource
from homeowner_dagster.resources.from_environment import clay_resource
from homeowner_dagster.resources.slack import HomeownerSlackResource

GROUP = "preflight"
CHECK = "no_failed_probe"
WHAT = {
    "settings": "every service address a secret goes to: set (COLE_URL has no default), https, the vendor's host",
    "database": "reachable, migrations current, row-level security, Dagster's own schema",
    "cole": "per state login: login, search page, one count query, logout, every selector",
    "bison": "per client workspace: token, Evergreen campaign, custom variables, fields, listing",
    "debounce": "the key, and credits for next month's expected verifications",
    "clay": "table and webhooks answer, their remaining row budget",
    "slack": "auth.test, and the bot in each client's channel and the ops channel",
}


def asset_key(service: str) -> AssetKey:
    return AssetKey(f"preflight_{service}")


@multi_asset(
    name="preflight_probes",
    specs=[
        AssetSpec(asset_key(s), group_name=GROUP, description=f"Preflight, {s}: {WHAT[s]}.")
        for s in SERVICES
    ],
    check_specs=[
        AssetCheckSpec(
            CHECK, asset=asset_key(s), description=f"No {s} line of the preflight failed."
        )
        for s in SERVICES
    ],
)
def preflight_probes(
    context: AssetExecutionContext,
    cole: ColeResource,
    bison: BisonResource,
    email_verification: EmailVerificationResource,
    slack: HomeownerSlackResource,
) -> Iterator[MaterializeResult | AssetCheckResult]:
    clay = clay_resource(slack) if os.environ.get("CLAY_WEBHOOK_URL") else None
    resources = {
        "cole": cole,
        "bison": bison,
        "email_verification": email_verification,
        "slack": slack,
    }
    report = run_preflight(Services.from_resources(resources, clay))
    context.log.info(f"preflight: {counts(report.findings)} in {report.seconds:.1f} s")
    announced = announce(context, slack, report.findings, previously_announced(context))
    for service in SERVICES:
        mine = [f for f in report.findings if f.service == service]
        failing = [f for f in mine if f.failed]
        yield MaterializeResult(
            asset_key=asset_key(service),
            metadata={
                **counts(mine),
                "lines": MetadataValue.md(_markdown(mine)),
                "announced": MetadataValue.json(
                    sorted(k for k in announced if k.startswith(service + "|"))
                ),
            },
        )
        yield AssetCheckResult(
            asset_key=asset_key(service),
            check_name=CHECK,
            passed=not failing,
            severity=AssetCheckSeverity.ERROR,
            description="; ".join(f"{f.client or '-'} {f.check}: {f.todo}" for f in failing)[:2000]
            or None,
            metadata={"failed": len(failing)},
        )


def previously_announced(context: AssetExecutionContext) -> set[str]:
    """Checks posted as failing and not seen passing since, from the assets' last runs."""
    found: set[str] = set()
    for service in SERVICES:
        event = context.instance.get_latest_materialization_event(asset_key(service))
        materialization = event.asset_materialization if event else None
        value = materialization.metadata.get("announced") if materialization else None
        found |= set(getattr(value, "value", None) or [])
    return found


def announce(
    context: AssetExecutionContext,
    slack: HomeownerSlackResource,
    findings: list[Finding],
    before: set[str],
) -> set[str]:
    """Post new failures and recoveries to the ops channel; returns what stays announced."""
    by_key = {f.key: f for f in findings}
    new = [f for f in findings if f.failed and f.key not in before]
    recovered = [by_key[k] for k in sorted(before) if k in by_key and by_key[k].status == OK]
    announced = before - {f.key for f in recovered}
    if new:
        lines = [(f.service, f.client, f.check, f.todo) for f in new]
        if _post(context, slack, messages.preflight_failures(lines)):
            announced |= {f.key for f in new}
    if recovered:
        if not _post(
            context,
            slack,
            messages.preflight_recovered([(f.service, f.client, f.check) for f in recovered]),
        ):
            announced |= {f.key for f in recovered}  # not told yet: tell next time
    return announced


def _post(context: AssetExecutionContext, slack: HomeownerSlackResource, text: str) -> bool:
    try:
        slack.post(registry.ops_channel(), text)
    except Exception as exc:  # noqa: BLE001 - Slack itself may be what is failing; next run tries again
        context.log.error(
            f"preflight: the Slack post to the ops channel failed ({type(exc).__name__})"
        )
        return False
    return True


def _markdown(findings: list[Finding]) -> str:
    def cell(text: str) -> str:
        return text.replace("|", "\\|").replace("\n", " ")

    rows = ["| client | check | result | what to do / what was seen |", "|---|---|---|---|"]
    rows += [
        f"| {cell(f.client or '-')} | {cell(f.check)} | {f.status} | {cell(f.note())} |"
        for f in findings
    ]
    return "\n".join(rows)


preflight_job = define_asset_job(
    "preflight",
    selection=AssetSelection.groups(GROUP),
    description="Read-only probes of every service with the real credentials (homeowner preflight); "
    "posts new failures and recoveries to the ops channel.",
)


@schedule(
    job=preflight_job,
    cron_schedule=["0 8 * * 4", "0 8 13 * *"],
    execution_timezone=TIMEZONE,
    default_status=DefaultScheduleStatus.RUNNING,
    description="Thursdays and the 13th, 08:00 CT: the preflight before each Monday's upload and "
    "before the 15th's pull.",
)
def preflight_schedule(context: ScheduleEvaluationContext) -> RunRequest:
    day = context.scheduled_execution_time.date()
    return RunRequest(
        run_key=f"preflight-{day.isoformat()}", tags={"homeowner/preflight": day.isoformat()}
    )
