"""Group `weekly_upload` (PT4-PT5), partitioned by client x renewal window.

Exactly once: the Bison list is looked up by its name before any upload, so a re-run (or a run
after a crash between upload and ledger) finds the list instead of uploading it again; the
Evergreen campaign is only moved forward, never back.
"""


import os

import pandas as pd
from dagster import (
    AssetDep,
    AssetExecutionContext,
    Backoff,
    Jitter,
    MaterializeResult,
    RetryPolicy,
    asset,
)

from homeowner_dagster import registry, store
from homeowner_dagster.assets import checks
from homeowner_dagster.assets.hold import upload_hold
from homeowner_dagster.assets.monthly_pull import channel_for, cleaned_leads
from homeowner_dagster.assets.stopwatch import Stopwatch
from homeowner_dagster.leads.calendar import parse_evergreen_title, window_list_leads
from homeowner_dagster.partitions import (
    client_window_partitions,
    split_client_window,
    window_to_month,
)
from homeowner_dagster.resources import slack as messages
from homeowner_dagster.resources.bison import BisonResource
from homeowner_dagster.resources.database import PostgresResource
from homeowner_dagster.resources.slack import HomeownerSlackResource

GROUP = "weekly_upload"


def bison_workspace(bison: BisonResource, client: registry.Client):  # noqa: ANN201
    """The client's Bison workspace: its own instance URL, or the agency's (BISON_INSTANCE_URL)."""
    instance = client.bison_instance_url or os.environ.get("BISON_INSTANCE_URL")
    if not instance or not client.bison_token_env:
        raise ValueError(
            f"{client.slug}: set its Bison instance URL (or BISON_INSTANCE_URL) and token variable"
        )
    return bison.workspace(instance, client.bison_token_env)
BISON_RETRY = RetryPolicy(max_retries=2, delay=20, backoff=Backoff.EXPONENTIAL, jitter=Jitter.PLUS_MINUS)


@asset(
    group_name=GROUP,
    partitions_def=client_window_partitions,
    deps=[AssetDep(cleaned_leads, partition_mapping=window_to_month)],
    retry_policy=BISON_RETRY,
    kinds={"postgres"},
    check_specs=checks.specs("bison_lead_lists", "no_lead_uploaded_twice", "bison_count_matches_ledger"),
    description="PT4: the window's cleaned leads as one Email Bison lead list, e.g. "
    "'(February 1st - 7th renewals)', recorded in the client_lead_batches ledger.",
)
def bison_lead_lists(
    context: AssetExecutionContext,
    database: PostgresResource,
    bison: BisonResource,
    slack: HomeownerSlackResource,
) -> MaterializeResult:
    slug, window = split_client_window(context.partition_key)
    dsn = database.dsn()
    client = registry.get_client(slug, dsn)
    if held := upload_hold(context, dsn, client, window, slack):  # hold_below_minimum: `homeowner approve`
        return held
    workspace = bison_workspace(bison, client)
    watch = Stopwatch()
    with watch.stage("database"):
        leads = window_list_leads(store.window_leads(dsn, slug, window))
    with store.upload_lock(dsn, slug, window):
        # Announced once: when this window first reaches the ledger (also after a crash that
        # lost the ledger row but left the list in Bison).
        first_record = store.ledger_row(dsn, slug, window) is None
        clashes = store.keys_uploaded_elsewhere(dsn, slug, window, leads["dedupe_key"])
        check_results = checks.enforce([checks.no_lead_uploaded_twice(clashes, len(leads))])
        with watch.stage("api"):
            existing = workspace.find_lead_list(window.list_name)
        if existing is not None:
            list_id, created = str(existing["id"]), False
            context.log.info(f"{slug}: list {window.list_name} already in Bison (id {list_id}); not uploading again")
        else:
            context.log.info(f"{slug}: uploading {len(leads)} lead(s) as {window.list_name}")
            with watch.stage("api"):
                list_id, created = workspace.upload_lead_list(window.list_name, leads)
            list_id = str(list_id)
        with watch.stage("api"):
            in_bison = workspace.lead_list_count(list_id)
        # The ledger is written first: whatever the count says, the list exists and must be known.
        store.record_upload(dsn, slug, window, list_id, in_bison, leads["dedupe_key"])
        check_results += checks.enforce([checks.bison_count_matches_ledger(in_bison, len(leads))])
    if first_record and context.run.tags.get("late") == "true":
        slack.post(channel_for(client), messages.late_window(client.name, window.list_name, window.due_monday.isoformat()))
    if first_record:
        slack.post(
            channel_for(client),
            messages.refined_data_uploaded(client.name, [(window.list_name, in_bison)], in_bison),
        )
    return MaterializeResult(
        check_results=check_results,
        metadata={
            "list_name": window.list_name,
            "bison_list_id": list_id,
            "leads_in_window": len(leads),
            "leads_in_bison": in_bison,
            "new_upload": created,
            "uploaded_now": len(leads) if created else 0,
            **watch.metadata(),
        }
    )


@asset(
    group_name=GROUP,
    partitions_def=client_window_partitions,
    deps=[bison_lead_lists],
    retry_policy=BISON_RETRY,
    kinds={"postgres", "slack"},
    description="PT5: the window's list attached to the client's Evergreen campaign, title moved "
    "on to 'Evergreen, Last Upload: February 1–7'.",
)
def evergreen_campaign(
    context: AssetExecutionContext,
    database: PostgresResource,
    bison: BisonResource,
    slack: HomeownerSlackResource,
) -> MaterializeResult:
    slug, window = split_client_window(context.partition_key)
    dsn = database.dsn()
    client = registry.get_client(slug, dsn)
    if held := upload_hold(context, dsn, client, window):  # hold_below_minimum: nothing to attach
        return held
    workspace = bison_workspace(bison, client)
    watch = Stopwatch()
    with store.upload_lock(dsn, slug, window):  # one run moves the campaign at a time
        # Read under the lock: a run that waited must see what the run before it recorded.
        ledger = store.ledger_row(dsn, slug, window)
        if ledger is None or not ledger.get("bison_list_id"):
            raise RuntimeError(
                f"{slug}: no Bison list recorded for {window.list_name}; materialize bison_lead_lists first"
            )
        with watch.stage("api"):
            campaign = workspace.find_evergreen_campaign()
        title = str(campaign["name"])
        try:
            current = parse_evergreen_title(title).window(window.start)
        except ValueError:
            current = None
        if current is not None and current >= window:
            done_by_us = pd.notna(ledger.get("attached_at"))
            note = f"{slug}: campaign already says {title!r}; nothing attached"
            if done_by_us:
                context.log.info(note + " (this window was attached by an earlier run)")
            else:
                context.log.warning(note + " (someone moved it by hand to this window or later)")
            if not done_by_us:
                store.record_evergreen(dsn, slug, window, str(campaign["id"]), title, title, "skipped")
            return MaterializeResult(metadata={"campaign_title": title, "attached": False, "reason": "already at or past this window"})
        already_attached = pd.notna(ledger.get("attached_at"))
        if not already_attached:
            with watch.stage("api"):
                workspace.attach_lead_list(campaign["id"], ledger["bison_list_id"])
            # Recorded before the rename: a crash in between re-runs the rename only.
            store.record_evergreen(dsn, slug, window, str(campaign["id"]), title, title, "attached")
        with watch.stage("api"):
            workspace.rename_campaign(campaign["id"], window.evergreen_title)
        store.record_evergreen(dsn, slug, window, str(campaign["id"]), title, window.evergreen_title, "attached")
    slack.post(
        channel_for(client),
        messages.evergreen_uploads_completed(client.name, window.evergreen_title, int(ledger["lead_count"])),
    )
    return MaterializeResult(
        metadata={
            "campaign_id": str(campaign["id"]),
            "title_before": title,
            "title_after": window.evergreen_title,
            "attached": True,
            "leads": int(ledger["lead_count"]),
            **watch.metadata(),
        }
    )
