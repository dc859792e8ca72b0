"""The one Definitions object: assets, jobs, schedules, sensors and the resources they use.

The resources are chosen from the environment in `resources/from_environment.py`
(`build_resources`, which tests still import from here).
"""

from __future__ import annotations

from collections.abc import Mapping

from dagster import (
    Definitions,
    ExecutorDefinition,
    Field,
    load_assets_from_modules,
    multi_or_in_process_executor,
)

from homeowner_dagster.assets import monthly_pull, outcomes, weekly_upload
from homeowner_dagster.assets.overdue import (
    missed_windows_notice,
    missed_windows_schedule,
    overdue_windows_job,
    overdue_windows_schedule,
    windows_done_by_their_monday,
)
from homeowner_dagster.assets.renewal_window import renewal_window, renewal_window_states
from homeowner_dagster.jobs import (
    campaign_outcomes_job,
    monthly_pull_job,
    weekly_upload_job,
    zip_yield_job,
)
from homeowner_dagster.preflight.job import preflight_job, preflight_probes, preflight_schedule
from homeowner_dagster.resources.from_environment import build_resources
from homeowner_dagster.schedules import (
    monthly_outcomes_schedule,
    monthly_pull_schedule,
    weekly_outcomes_schedule,
    weekly_upload_schedule,
    weekly_zip_yield_schedule,
)
from homeowner_dagster.sensors import (
    agent_runs_success_sensor,
    client_registry_sensor,
    gap_report_refresh_sensor,
    run_failure_alert_sensor,
)

# A run's steps run in the run's own process unless its config asks for `multiprocess`. A step
# process imports the project again (3.5 s a step, measured from a run's events), and a run's
# steps are a chain (Cole pull -> cleaning -> totals -> gap report; list -> campaign): nothing
# runs beside them to pay for it. Runs still run in parallel, one process each, under the queue's
# limits; the concurrency pool (`debounce`) holds in process too.
steps_in_the_run_process = ExecutorDefinition(
    name="in_process_unless_configured",
    config_schema=Field(
        multi_or_in_process_executor.config_schema.config_type, default_value={"in_process": {}}
    ),
    requirements=multi_or_in_process_executor.get_requirements,
    executor_creation_fn=multi_or_in_process_executor.executor_creation_fn,
    description="Dagster's default executor, in_process by default instead of multiprocess.",
)


def build_definitions(resources: Mapping[str, object] | None = None) -> Definitions:
    """The project's Definitions; `resources` replaces some (tests: a shorter timeout, say)."""
    return Definitions(
        assets=[
            *load_assets_from_modules([monthly_pull, weekly_upload, outcomes]),
            preflight_probes,
            renewal_window,
        ],
        asset_checks=[windows_done_by_their_monday],
        jobs=[
            monthly_pull_job,
            weekly_upload_job,
            overdue_windows_job,
            missed_windows_notice,
            campaign_outcomes_job,
            zip_yield_job,
            preflight_job,
        ],
        schedules=[
            monthly_pull_schedule,
            weekly_upload_schedule,
            overdue_windows_schedule,
            missed_windows_schedule,
            weekly_outcomes_schedule,
            weekly_zip_yield_schedule,
            monthly_outcomes_schedule,
            preflight_schedule,
        ],
        sensors=[
            client_registry_sensor,
            run_failure_alert_sensor,
            agent_runs_success_sensor,
            gap_report_refresh_sensor,
            renewal_window_states,
        ],
        resources={**build_resources(), **(resources or {})},
        executor=steps_in_the_run_process,
    )


defs = build_definitions()
