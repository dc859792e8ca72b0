"""Monthly pulls on the 15th and weekly uploads on Mondays, 09:00 America/Chicago; outcomes after."""

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
from homeowner_dagster.jobs import (
    campaign_outcomes_job,
    monthly_pull_job,
    weekly_upload_job,
    zip_yield_job,
)
from homeowner_dagster.leads.calendar import (
    add_months,
    month_key,
    renewal_month_pulled_on,
    windows_to_upload,
)
from homeowner_dagster.partitions import (
    TIMEZONE,
    client_month_key,
    client_window_key,
    cole_login_tags,
)
from homeowner_dagster.resources.database import PostgresResource

ACTIVE_DAYS = 90  # a renewal month's yield is redone weekly for 90 days after its windows' attach
READ_DAYS = (
    120  # a client's campaigns are read while a window attached in the last 120 days answers
)


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
    description="PT4-PT5 on Mondays: per active client the due window and every window not done "
    "whose first day is still ahead (up to Monday + 34 days). The evaluation only reads (missed "
    "windows are posted by the runs of missed_windows_schedule).",
)
def weekly_upload_schedule(context: ScheduleEvaluationContext, database: PostgresResource):
    monday = _tick_date(context)
    dsn = database.dsn()
    requests = []
    for c in registry.load_clients(dsn):
        pulled = store.months_with_cleaned_leads(dsn, c.slug)
        finished = store.done_windows(dsn, c.slug, announced=True)
        for window, late in windows_to_upload(monday, finished, pulled):
            requests.append(
                RunRequest(
                    # One run per window and Monday: a window not done is asked for again next Monday.
                    run_key=f"weekly-{c.slug}-{window.key}-{monday.isoformat()}",
                    partition_key=client_window_key(c.slug, window),
                    tags={
                        "client": c.slug,
                        "bison-workspace": c.workspace_name,
                        "late": str(late).lower(),
                    },
                )
            )
    if not requests:
        return SkipReason(f"no renewal window to upload on {monday.isoformat()}")
    return requests


# Outcomes: Mondays after the uploads (09:00): each client with a window attached in the last 120
# days, once (its campaigns' new replies since the stored cursor).


@schedule(
    job=campaign_outcomes_job,
    cron_schedule="0 11 * * 1",
    execution_timezone=TIMEZONE,
    default_status=DefaultScheduleStatus.RUNNING,
    description="Mondays 11:00 CT, after the uploads: each client's campaigns' new replies and stats, "
    "for every client with a window attached in the last 120 days.",
)
def weekly_outcomes_schedule(context: ScheduleEvaluationContext, database: PostgresResource):
    day = _tick_date(context)
    clients = store.clients_to_measure(database.dsn(), day, READ_DAYS)
    if not clients:
        return SkipReason(f"no window attached in the {READ_DAYS} days before {day.isoformat()}")
    return [
        RunRequest(
            run_key=f"outcomes-{slug}-{day.isoformat()}", partition_key=slug, tags={"client": slug}
        )
        for slug in clients
    ]


@schedule(
    job=zip_yield_job,
    cron_schedule="0 12 * * 1",
    execution_timezone=TIMEZONE,
    default_status=DefaultScheduleStatus.RUNNING,
    description="Mondays 12:00 CT, after the outcomes: yield per ZIP of every renewal month measured.",
)
def weekly_zip_yield_schedule(context: ScheduleEvaluationContext, database: PostgresResource):
    day = _tick_date(context)
    windows = store.windows_to_measure(database.dsn(), day, ACTIVE_DAYS)
    months = sorted({(slug, month_key(start.replace(day=1))) for slug, start in windows})
    if not months:
        return SkipReason("no renewal month with outcomes to measure")
    return [
        RunRequest(
            run_key=f"zip-yield-{slug}-{month}-{day.isoformat()}",
            partition_key=client_month_key(slug, month),
            tags={"client": slug},
        )
        for slug, month in months
    ]


@schedule(
    job=zip_yield_job,
    cron_schedule="0 12 2 * *",
    execution_timezone=TIMEZONE,
    default_status=DefaultScheduleStatus.RUNNING,
    description="The 2nd of each month: yield of the renewal month two months back (its uploads are "
    "5-9 weeks old) and the monthly outcome message per client in Slack.",
)
def monthly_outcomes_schedule(context: ScheduleEvaluationContext, database: PostgresResource):
    month = add_months(_tick_date(context).replace(day=1), -2)
    clients = registry.load_clients(database.dsn())
    if not clients:
        return SkipReason("no active clients")
    return [
        RunRequest(
            run_key=f"outcomes-message-{c.slug}-{month_key(month)}",
            partition_key=client_month_key(c.slug, month),
            run_config={"ops": {"zip_yield": {"config": {"post_to_slack": True}}}},
            tags={"client": c.slug},
        )
        for c in clients
    ]
