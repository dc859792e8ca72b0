"""Monthly pulls on the 15th and weekly uploads on Mondays, 09:00 America/Chicago."""

from __future__ import annotations

from datetime import date

from dagster import (
    DefaultScheduleStatus,
    RunRequest,
    ScheduleEvaluationContext,
    SkipReason,
    schedule,
)

from homeowner_dagster import registry, store
from homeowner_dagster.jobs import monthly_pull_job, weekly_upload_job
from homeowner_dagster.leads.calendar import month_key, renewal_month_pulled_on, windows_to_upload
from homeowner_dagster.partitions import (
    TIMEZONE,
    client_month_key,
    client_window_key,
    cole_login_tags,
)
from homeowner_dagster.resources.database import PostgresResource


def _tick_date(context: ScheduleEvaluationContext) -> date:
    return context.scheduled_execution_time.date()


@schedule(
    job=monthly_pull_job,
    cron_schedule="0 9 15 * *",
    execution_timezone=TIMEZONE,
    default_status=DefaultScheduleStatus.RUNNING,
    description="PT1-PT3 on the 15th: one run per active client for renewal month M+2.",
)
def monthly_pull_schedule(context: ScheduleEvaluationContext, database: PostgresResource):
    day = _tick_date(context)
    month = renewal_month_pulled_on(day)
    clients = registry.load_clients(database.dsn())
    if not clients:
        return SkipReason("no active clients")
    return [
        RunRequest(
            run_key=f"monthly-{c.slug}-{month_key(month)}",
            partition_key=client_month_key(c.slug, month),
            tags={**cole_login_tags(c.licensed_states), "client": c.slug},
        )
        for c in clients
    ]


@schedule(
    job=weekly_upload_job,
    cron_schedule="0 9 * * 1",
    execution_timezone=TIMEZONE,
    default_status=DefaultScheduleStatus.RUNNING,
    description="PT4-PT5 on Mondays: each active client's due window, plus any late window.",
)
def weekly_upload_schedule(context: ScheduleEvaluationContext, database: PostgresResource):
    monday = _tick_date(context)
    dsn = database.dsn()
    requests = []
    for c in registry.load_clients(dsn):
        uploaded = store.uploaded_windows(dsn, c.slug)
        pulled = store.months_with_cleaned_leads(dsn, c.slug)
        for window, late in windows_to_upload(monday, uploaded, pulled):
            if not late and window.start in uploaded:
                continue
            requests.append(
                RunRequest(
                    run_key=f"weekly-{c.slug}-{window.key}",
                    partition_key=client_window_key(c.slug, window),
                    tags={"client": c.slug, "bison-workspace": c.workspace_name, "late": str(late).lower()},
                )
            )
    if not requests:
        return SkipReason(f"no renewal window due on {monday.isoformat()}")
    return requests
