"""Sensors: the client registry keeps the `client` partitions in step with the `clients` table."""

from __future__ import annotations

import os

from dagster import (
    AssetSelection,
    AutomationConditionSensorDefinition,
    DagsterRun,
    DagsterRunStatus,
    DefaultSensorStatus,
    RunFailureSensorContext,
    RunStatusSensorContext,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    run_failure_sensor,
    run_status_sensor,
    sensor,
)

from homeowner_dagster import db, registry, store
from homeowner_dagster.assets.monthly_pull import REFRESH_TAG
from homeowner_dagster.partitions import client_partitions
from homeowner_dagster.resources import slack as messages
from homeowner_dagster.resources.database import PostgresResource
from homeowner_dagster.resources.slack import HomeownerSlackResource
from homeowner_dagster.run_errors import RunErrorInfo, failure_info, run_failure_info
from homeowner_dagster.sanitiser import sanitise


def registry_partition_requests(
    existing: list[str], active: list[str], known: list[str]
) -> tuple[list[str], list[str]]:
    """Partitions to add (active clients without one) and to delete (clients no longer in the table).

    Inactive clients keep their partitions so their history stays visible in the UI.
    """
    to_add = sorted(set(active) - set(existing))
    to_delete = sorted(set(existing) - set(known))
    return to_add, to_delete


@sensor(
    minimum_interval_seconds=60,
    default_status=DefaultSensorStatus.RUNNING,
    description="Adds a `client` partition for each active client; reports and removes client "
    "partitions the registry does not know (added by hand in the UI).",
)
def client_registry_sensor(
    context: SensorEvaluationContext, database: PostgresResource, slack: HomeownerSlackResource
):
    with db.connect(database.dsn()) as conn:
        rows = conn.execute("select slug, active from clients").fetchall()
    known = [slug for slug, _ in rows]
    active = [slug for slug, is_active in rows if is_active]
    existing = list(context.instance.get_dynamic_partitions(client_partitions.name))
    to_add, to_delete = registry_partition_requests(existing, active, known)
    if not to_add and not to_delete:
        return SkipReason(f"{len(active)} active client(s), partitions up to date")
    requests = []
    if to_add:
        context.log.info(f"adding client partition(s): {', '.join(to_add)}")
        requests.append(client_partitions.build_add_request(to_add))
    if to_delete:
        context.log.warning(
            f"client partition(s) not in the client registry: {', '.join(to_delete)}; removing them "
            "(runs for them fail as unknown client). Add a real client with `homeowner clients import FILE`."
        )
        slack.post(ops_channel(), messages.unknown_client_partitions(to_delete))
        requests.append(client_partitions.build_delete_request(to_delete))
    return SensorResult(dynamic_partitions_requests=requests)


def ops_channel() -> str:
    return registry.ops_channel()


# Run outcomes: mirrored into agent_runs / agent_errors for the dashboard, failures to Slack.


def _run_url(run_id: str) -> str:
    base = os.environ.get("HOMEOWNER_DAGSTER_URL", "http://127.0.0.1:3000").rstrip("/")
    return f"{base}/runs/{run_id}"


def job_label(run: DagsterRun) -> str:
    """The job's name, or the assets materialized for a run launched from an asset's page
    (Dagster names those jobs `__ASSET_JOB`)."""
    if run.job_name.startswith("__ASSET_JOB") and run.asset_selection:
        return ", ".join(sorted(key.to_user_string() for key in run.asset_selection))
    return run.job_name


def run_client(run: DagsterRun) -> str | None:
    """The client of a run, from its partition key (UI runs and backfills carry no other tag)."""
    client = run.tags.get("dagster/partition/client")
    if client:
        return client
    partition = run.tags.get("dagster/partition")
    return partition.split("|")[0] if partition and "|" in partition else None


def mirror_run(dsn: str, run: DagsterRun, status: str, error: RunErrorInfo | None = None) -> None:
    """Write a run's outcome (and its error, if any) where the predecessor dashboard reads it."""
    partition = run.tags.get("dagster/partition")
    client = run_client(run)
    store.record_run(
        dsn,
        {
            "run_id": run.run_id,
            "job_name": job_label(run),
            "client_slug": client,
            "partition_key": partition,
            "status": status,
            "finished_at": store.now(),
            "run_url": _run_url(run.run_id),
            "trace_url": error.trace_url if error else None,
            "error_count": 1 if error else 0,
        },
    )
    if error:
        store.record_error(
            dsn,
            {
                "run_id": run.run_id,
                "client_slug": client,
                "step": error.step,
                "error_type": error.error_type,
                "message": sanitise(error.message)[:2000],
                "screenshot_url": error.screenshot_url,
                "trace_url": error.trace_url,
            },
        )


@run_status_sensor(
    run_status=DagsterRunStatus.SUCCESS,
    minimum_interval_seconds=30,
    default_status=DefaultSensorStatus.RUNNING,
)
def agent_runs_success_sensor(context: RunStatusSensorContext, database: PostgresResource) -> None:
    mirror_run(database.dsn(), context.dagster_run, "success")


# Evaluated on every pass of Dagster's sensor daemon (a fixed 5 s loop): an interval of 5 would
# let jitter skip a pass and post the alert 10 s after the failure instead of 5.
@run_failure_sensor(minimum_interval_seconds=1, default_status=DefaultSensorStatus.RUNNING)
def run_failure_alert_sensor(
    context: RunFailureSensorContext, database: PostgresResource, slack: HomeownerSlackResource
) -> None:
    """Alert the team in Slack with the run link, the error type and the screenshot/trace links.

    The alert goes first and the mirror after, each on its own: a database outage (a likely
    cause of the failure) must not silence the alert, a Slack outage must not lose the mirror.
    A failed alert fails the tick (Dagster evaluates the run again, the mirror is an upsert);
    a failed mirror alone is logged, so the alert is not posted twice.
    """
    try:
        error = failure_info(context)  # reads the step failures from Dagster's storage
    except Exception:  # noqa: BLE001 - still alert, with what the run failure event says
        error = run_failure_info(context)
    run = context.dagster_run
    alert_error: Exception | None = None
    try:
        slack.post(
            ops_channel(),
            messages.failure_alert(
                job_label(run),
                run_client(run) or "?",
                run.tags.get("dagster/partition", "?"),
                error.error_type,
                _run_url(run.run_id),
                error.screenshot_url,
                error.trace_url,
                error.message,
            ),
        )
    except Exception as exc:  # noqa: BLE001 - the mirror is still written, then re-raised
        alert_error = exc
    try:
        mirror_run(database.dsn(), run, "failure", error)
    except Exception as exc:  # noqa: BLE001 - the alert already went out
        context.log.error(
            f"run {run.run_id}: agent_runs/agent_errors not written ({type(exc).__name__}); "
            + ("the alert failed too" if alert_error else "the failure alert was posted")
        )
    if alert_error is not None:
        raise alert_error


# Evaluates the gap report's automation condition (assets/monthly_pull.py GAP_REPORT_REFRESH):
# one run per partition to make again, tagged so the report knows not to post to Slack twice.
gap_report_refresh_sensor = AutomationConditionSensorDefinition(
    "gap_report_refresh",
    target=AssetSelection.assets("gap_report"),
    run_tags={REFRESH_TAG: "true"},
    emit_backfills=False,
    default_status=DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=30,
    description="Makes a gap report again when its month's totals change after it was made (leads "
    "routed in by a source client's cleaning) or, for the month being pulled, when ZIP yields change.",
)
