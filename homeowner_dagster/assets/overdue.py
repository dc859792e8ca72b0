"""Windows behind their Monday: the catalog's overdue check, and the missed-window notices.

An asset check on the Evergreen campaign fails (warning) while any renewal window is not `done`
by its Monday. A window whose first day came without being done is posted to Slack as missed,
once, by a run the Monday schedule requests per client (never by the schedule itself: its
evaluation only reads, so a preview in the UI posts nothing and a Slack outage stops no upload).
"""

from datetime import date, datetime
from zoneinfo import ZoneInfo

from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetCheckSeverity,
    AssetSelection,
    Backoff,
    Config,
    DefaultScheduleStatus,
    MetadataValue,
    OpExecutionContext,
    RetryPolicy,
    RunRequest,
    ScheduleDefinition,
    ScheduleEvaluationContext,
    SkipReason,
    TableColumn,
    TableRecord,
    TableSchema,
    asset_check,
    define_asset_job,
    job,
    op,
    schedule,
)

from homeowner_dagster import db, registry, store
from homeowner_dagster.assets.monthly_pull import channel_for
from homeowner_dagster.assets.weekly_upload import evergreen_campaign, force_command
from homeowner_dagster.leads.calendar import RenewalWindow, missed_windows
from homeowner_dagster.leads.overdue import overdue_windows
from homeowner_dagster.partitions import TIMEZONE
from homeowner_dagster.resources import slack as messages
from homeowner_dagster.resources.database import PostgresResource
from homeowner_dagster.resources.slack import HomeownerSlackResource

OVERDUE_SCHEMA = TableSchema(
    columns=[
        TableColumn("client", "string", description="client slug"),
        TableColumn("window", "string", description="renewal window partition (first day)"),
        TableColumn("list_name", "string", description="the window's Email Bison list"),
        TableColumn("due_monday", "string", description="the Monday its upload was due"),
        TableColumn(
            "state",
            "string",
            description="ledger state: pending, list_created, list_verified or attached",
        ),
    ]
)


@asset_check(
    asset=evergreen_campaign,
    name="windows_done_by_their_monday",
    blocking=False,
    description="Warns while any active client's renewal window is not `done` (list uploaded, "
    "attached, Evergreen campaign renamed) after its due Monday and before its renewals end. "
    "Fix: materialize the window's partition (the weekly schedule re-asks it too).",
)
def windows_done_by_their_monday(
    context: AssetCheckExecutionContext, database: PostgresResource
) -> AssetCheckResult:
    dsn = database.dsn()
    today = datetime.now(ZoneInfo(TIMEZONE)).date()
    with db.connect(dsn) as conn:
        ledger = db.read_frame(
            conn, "select client_slug, window_start, status from client_lead_batches"
        )
        pulled = db.read_frame(conn, "select client_slug, month from monthly_cleaned_leads")
    active = [c.slug for c in registry.load_clients(dsn)]
    overdue = overdue_windows(ledger, pulled, active, today)
    behind = sorted(set(overdue["client"]))
    summary = (
        f"**{len(overdue)} window(s) overdue** for {len(behind)} client(s): {', '.join(behind)}"
        if behind
        else f"Every window due by {today.isoformat()} is done."
    )
    return AssetCheckResult(
        passed=overdue.empty,
        severity=AssetCheckSeverity.WARN,
        metadata={
            "summary": MetadataValue.md(summary),
            "overdue_windows": MetadataValue.int(len(overdue)),
            "clients_behind": MetadataValue.text(", ".join(behind) or "none"),
            "overdue": MetadataValue.table(
                [TableRecord(r) for r in overdue.to_dict("records")], schema=OVERDUE_SCHEMA
            ),
        },
    )


overdue_windows_job = define_asset_job(
    "overdue_windows",
    selection=AssetSelection.checks(windows_done_by_their_monday),
    description="Checks that every renewal window was done by its Monday.",
)

# Mondays after the weekly upload (09:00 CT) has had time to finish, and every other morning.
overdue_windows_schedule = ScheduleDefinition(
    job=overdue_windows_job,
    cron_schedule="0 11 * * *",
    execution_timezone=TIMEZONE,
    default_status=DefaultScheduleStatus.RUNNING,
    description="Daily 11:00 CT: flags renewal windows not done by their Monday.",
)


def unreported_missed_windows(dsn: str, client: str, monday: date) -> list[RenewalWindow]:
    """Windows of the client whose first day came by `monday` without being done and that were
    not posted yet (read only)."""
    settled = store.done_windows(dsn, client) | store.missed_reported(dsn, client)
    return missed_windows(monday, settled, store.months_with_cleaned_leads(dsn, client))


class MissedWindowsConfig(Config):
    client: str
    monday: str  # ISO date of the Monday the schedule ticked for


@op(retry_policy=RetryPolicy(max_retries=3, delay=30, backoff=Backoff.EXPONENTIAL))
def post_missed_windows(
    context: OpExecutionContext,
    config: MissedWindowsConfig,
    database: PostgresResource,
    slack: HomeownerSlackResource,
) -> None:
    """Post each window of the client that began without being done, once (remembered in the
    ledger as each post lands: a retry posts only the rest)."""
    dsn = database.dsn()
    client = registry.get_client(config.client, dsn)
    for window in unreported_missed_windows(dsn, client.slug, date.fromisoformat(config.monday)):
        row = store.ensure_window(dsn, client.slug, window)
        text = messages.missed_window(
            client.name,
            str(row.get("list_name") or window.list_name),
            str(row["status"]),
            force_command(client.slug, window),
        )
        slack.post(channel_for(client), text)
        store.mark_announced(dsn, client.slug, window, "missed_reported_at")
        context.log.info(f"{client.slug}: {window.list_name} posted as missed")


@job(description="Posts a client's renewal windows that began without being done (once each).")
def missed_windows_notice() -> None:
    post_missed_windows()


@schedule(
    job=missed_windows_notice,
    cron_schedule="0 9 * * 1",
    execution_timezone=TIMEZONE,
    default_status=DefaultScheduleStatus.RUNNING,
    description="Mondays 09:00 CT, beside the weekly upload: one run per client with renewal windows "
    "that began without being done, posting each to Slack once. The evaluation only reads.",
)
def missed_windows_schedule(context: ScheduleEvaluationContext, database: PostgresResource):
    monday = context.scheduled_execution_time.date()
    dsn = database.dsn()
    requests = [
        RunRequest(
            run_key=f"missed-{c.slug}-{monday.isoformat()}",
            run_config={
                "ops": {
                    "post_missed_windows": {
                        "config": {"client": c.slug, "monday": monday.isoformat()}
                    }
                }
            },
            tags={"client": c.slug},
        )
        for c in registry.load_clients(dsn)
        if unreported_missed_windows(dsn, c.slug, monday)
    ]
    return requests or SkipReason(f"no renewal window missed by {monday.isoformat()}")
