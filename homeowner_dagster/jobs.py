"""The jobs the schedules run: monthly pull (PT1-PT3), weekly upload (PT4-PT5), outcomes."""

from __future__ import annotations

from dagster import AssetSelection, define_asset_job

from homeowner_dagster.partitions import (
    client_month_partitions,
    client_partitions,
    client_window_partitions,
)

monthly_pull_job = define_asset_job(
    "monthly_pull",
    selection=AssetSelection.groups("monthly_pull"),
    partitions_def=client_month_partitions,
    description="PT1-PT3 for one client and renewal month: Cole pull, cleaning, totals, gap report.",
)

weekly_upload_job = define_asset_job(
    "weekly_upload",
    selection=AssetSelection.groups("weekly_upload"),
    partitions_def=client_window_partitions,
    description="PT4-PT5 for one client and renewal window: Bison list, Evergreen campaign.",
)

campaign_outcomes_job = define_asset_job(
    "outcomes_weekly",
    selection=AssetSelection.assets("campaign_outcomes"),
    partitions_def=client_partitions,
    description="New replies and stats of each campaign of one client, assigned to its windows (lead_outcomes).",
)

zip_yield_job = define_asset_job(
    "outcomes_monthly",
    selection=AssetSelection.assets("zip_yield"),
    partitions_def=client_month_partitions,
    description="Yield per ZIP and bounce rate per verification result for one client and renewal month.",
)
