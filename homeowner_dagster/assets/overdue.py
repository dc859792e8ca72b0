"""The catalog tells at a glance which clients are behind: an asset check on the Evergreen
campaign that fails (warning) while any renewal window is not `done` by its Monday."""

from datetime import datetime
from zoneinfo import ZoneInfo

from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetCheckSeverity,
    AssetSelection,
    DefaultScheduleStatus,
    MetadataValue,
    ScheduleDefinition,
    TableColumn,
    TableRecord,
    TableSchema,
    asset_check,
    define_asset_job,
)

from homeowner_dagster import db, registry
from homeowner_dagster.assets.weekly_upload import evergreen_campaign
from homeowner_dagster.leads.overdue import overdue_windows
from homeowner_dagster.partitions import TIMEZONE
from homeowner_dagster.resources.database import PostgresResource

OVERDUE_SCHEMA = TableSchema(
    columns=[
        TableColumn("client", "string", description="client slug"),
        TableColumn("window", "string", description="renewal window partition (first day)"),
        TableColumn("list_name", "string", description="the window's Email Bison list"),
        TableColumn("due_monday", "string", description="the Monday its upload was due"),
        TableColumn("state", "string", description="ledger state: pending, list_created, list_verified or attached"),
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
        ledger = db.read_frame(conn, "select client_slug, window_start, status from client_lead_batches")
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
