"""Group `weekly_upload` (PT4-PT5), partitioned by client x renewal window.

A window's life is a state machine kept in the ledger (`client_lead_batches.status`):
pending -> list_created -> list_verified (PT4) -> attached -> done (PT5). Each step reads the
state it finds, under the window's upload lock, and does only what is left, so a run after a
crash at any point finishes the window without doing anything twice.

Identity: the list is looked up by the id in the ledger; by name only when the ledger has none,
and then only a list created after this window's own upload request is taken as ours. Any other
list with the name stops the run (a person's list, or last year's) instead of being reused.
"""

import os
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

from dagster import (
    AssetCheckResult,
    AssetDep,
    AssetExecutionContext,
    Backoff,
    Jitter,
    MaterializeResult,
    RetryPolicy,
    asset,
)

from homeowner_dagster import registry, run_errors, store
from homeowner_dagster.assets import checks
from homeowner_dagster.assets import metadata as md
from homeowner_dagster.assets.hold import upload_hold
from homeowner_dagster.assets.monthly_pull import channel_for, cleaned_leads
from homeowner_dagster.assets.stopwatch import Stopwatch
from homeowner_dagster.leads.bison_list import BISON_DATE_COLUMNS, email_keys, expected_growth
from homeowner_dagster.leads.calendar import (
    RenewalWindow,
    client_list_name,
    month_key,
    parse_evergreen_title,
    retitle,
    state_at_least,
    window_list_leads,
)
from homeowner_dagster.leads.columns import BISON_FIELD_MAP
from homeowner_dagster.leads.schemas import CleanedLeadFrame
from homeowner_dagster.partitions import (
    client_month_key,
    client_window_partitions,
    split_client_window,
    today,
    window_to_month,
)
from homeowner_dagster.resources import slack as messages
from homeowner_dagster.resources.bison import (
    BisonAttachNotSynced,
    BisonError,
    BisonImportFailed,
    BisonResource,
    BisonWorkspace,
    total_leads,
)
from homeowner_dagster.resources.database import PostgresResource
from homeowner_dagster.resources.slack import HomeownerSlackResource

# The list's columns in the UI: the cleaned leads' columns Email Bison gets (their pandera types
# and checks), each named with the Bison field it fills; dates go as YYYY-MM-DD text.
BISON_LIST_COLUMNS: dict[str, str] = {
    column: f"Email Bison field `{field}`"
    + (" (YYYY-MM-DD text)" if column in BISON_DATE_COLUMNS else "")
    for column, field in BISON_FIELD_MAP.items()
}

GROUP = "weekly_upload"
# A list found by name is ours when Bison created it after our request, give or take clock skew.
CLOCK_SKEW = timedelta(minutes=2)
DEFAULT_CAMPAIGN = "Evergreen"
HNW_CAMPAIGN = "HNW Evergreen"


def bison_workspace(bison: BisonResource, client: registry.Client):  # noqa: ANN201
    """The client's Bison workspace: its own instance URL, or the agency's (BISON_INSTANCE_URL)."""
    registry.ensure_bison_destination_allowed(client)  # issue 13: token only to allowed hosts
    instance = client.bison_instance_url or os.environ.get("BISON_INSTANCE_URL")
    if not instance or not client.bison_token_env:
        raise run_errors.stated(
            f"{client.slug}: set its Bison instance URL (or BISON_INSTANCE_URL) and token variable "
            "in the client file, then `homeowner clients import`",
            "BisonNotConfigured",
        )
    return bison.workspace(instance, client.bison_token_env)


BISON_RETRY = RetryPolicy(
    max_retries=2, delay=20, backoff=Backoff.EXPONENTIAL, jitter=Jitter.PLUS_MINUS
)


def force_command(slug: str, window: RenewalWindow) -> str:
    return f"homeowner windows force --client {slug} --window {window.key}"


def _created_at(lead_list: dict[str, Any]) -> datetime | None:
    text = str(lead_list.get("created_at") or "")
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


def _list_is_ours(lead_list: dict[str, Any], requested_at: Any) -> bool:
    created = _created_at(lead_list)
    if created is None or requested_at is None:
        return False
    return created >= requested_at - CLOCK_SKEW


def _adopt_or_refuse(
    slug: str, window: RenewalWindow, list_name: str, found: list[dict[str, Any]], requested_at: Any
) -> dict[str, Any] | None:
    """A list by the window's name and no id in the ledger after an upload request: ours (the
    request's answer was lost), or a stranger's."""
    ours = [lst for lst in found if _list_is_ours(lst, requested_at)]
    strangers = [lst for lst in found if lst not in ours]
    if strangers or len(ours) > 1:
        listed = ", ".join(f"id {lst.get('id')} created {lst.get('created_at')}" for lst in found)
        raise run_errors.stated(
            f"{slug}: Email Bison already has a list named {list_name!r} ({listed}) that this "
            "pipeline did not create for this window; it is not reused. Rename or delete it in Bison, "
            f"then run `{force_command(slug, window)}`",
            "BisonListForeign",
        )
    return ours[0] if ours else None


def _skip(context: AssetExecutionContext, reason: str) -> None:
    """End the run as skipped: no materialization, PT5 not run, the reason on the run's tags."""
    context.log.warning(reason)
    context.instance.add_run_tags(context.run_id, {"homeowner/skipped": reason[:200]})


@asset(
    group_name=GROUP,
    partitions_def=client_window_partitions,
    deps=[AssetDep(cleaned_leads, partition_mapping=window_to_month)],
    retry_policy=BISON_RETRY,
    output_required=False,
    kinds={"postgres"},
    check_specs=checks.specs(
        "bison_lead_lists", "no_lead_uploaded_twice", "bison_count_matches_ledger"
    ),
    metadata=md.column_schema(CleanedLeadFrame, BISON_LIST_COLUMNS),
    description="PT4: the window's cleaned leads as one Email Bison lead list, e.g. "
    "'(February 1st - 7th renewals) 2027'; window state pending -> list_created -> list_verified.",
)
def bison_lead_lists(
    context: AssetExecutionContext,
    database: PostgresResource,
    bison: BisonResource,
    slack: HomeownerSlackResource,
) -> Iterator[MaterializeResult | AssetCheckResult]:
    slug, window = split_client_window(context.partition_key)
    dsn = database.dsn()
    client = run_errors.client_for_run(slug, dsn)
    registry.ensure_bison_destination_allowed(
        client
    )  # a row edited since its import is refused too
    month = month_key(window.month)
    if month not in store.months_with_cleaned_leads(dsn, slug):
        pull = f"Dagster UI, job monthly_pull, partition {client_month_key(slug, window.month)}"
        slack.post(
            channel_for(client),
            messages.month_not_pulled(client.name, window.list_name, month, pull),
        )
        reason = f"renewal month {month} not pulled: nothing uploaded for {window.list_name}"
        _skip(context, reason)
        # Nothing was uploaded, so nothing can be uploaded twice or miscounted; the asset itself
        # is not materialized, which skips PT5.
        for name in ("no_lead_uploaded_twice", "bison_count_matches_ledger"):
            yield AssetCheckResult(check_name=name, passed=True, metadata={"skipped": reason})
        return
    if held := upload_hold(
        context, dsn, client, window, slack
    ):  # hold_below_minimum: `homeowner approve`
        yield held
        return
    watch = Stopwatch()
    with watch.stage("database"):
        cleaned_in_window = store.window_leads(dsn, slug, window)
    leads = window_list_leads(cleaned_in_window)
    same_owner = len(cleaned_in_window) - len(leads)  # an owner of two homes gets one email
    if same_owner:
        context.log.info(
            f"{slug}: {same_owner} cleaned lead(s) share an email with another home in {window.list_name}"
        )
    new_upload = False
    list_name = client_list_name(window, client.name, store.shares_workspace(dsn, client))
    with bison_workspace(bison, client) as workspace, store.upload_lock(dsn, slug, window) as lock:
        row = store.ensure_window(dsn, slug, window)
        state_found = row["status"]
        clashes = store.keys_uploaded_elsewhere(dsn, slug, window, leads["dedupe_key"])
        check_results = checks.enforce([checks.no_lead_uploaded_twice(clashes, len(leads))])
        list_id = str(row["bison_list_id"]) if row.get("bison_list_id") else None
        if list_id is None:
            adopted = None
            if (
                row.get("list_requested_at") is not None
            ):  # an earlier run asked Bison: find its list
                list_name = str(row.get("list_name") or list_name)
                lock.ensure_held()  # a lost upload lock stops the run before any further Bison call
                with watch.stage("api"):
                    named = workspace.find_lead_lists(list_name)
                adopted = _adopt_or_refuse(
                    slug, window, list_name, named, row.get("list_requested_at")
                )
            if adopted is not None:
                list_id = str(adopted["id"])
                context.log.info(
                    f"{slug}: {list_name} was created by an earlier run (id {list_id})"
                )
            else:
                store.record_list_requested(dsn, slug, window, list_name)
                context.log.info(f"{slug}: uploading {len(leads)} lead(s) as {list_name}")
                lock.ensure_held()  # a lost upload lock stops the run before any further Bison call
                known = store.bison_variables(dsn, client.workspace_name)
                with watch.stage("api"):
                    created_id, new_upload = workspace.upload_lead_list(list_name, leads, known)
                store.confirm_bison_variables(
                    dsn, client.workspace_name, workspace.variables_confirmed
                )
                list_id = str(created_id)
            try:
                store.record_list_created(
                    dsn,
                    slug,
                    window,
                    list_id,
                    leads["dedupe_key"],
                    email_keys(leads["email"]),
                    list_name,
                )
            except store.ListAlreadyRecorded as exc:
                raise run_errors.as_stated(exc) from None
        row = store.ledger_row(dsn, slug, window) or row
        list_name = str(row.get("list_name") or list_name)
        sent = int(row["lead_count"])
        refused = (
            int(row.get("refused_rows") or 0) if row.get("refused_accepted_at") is not None else 0
        )
        if not state_at_least(row["status"], "list_verified"):
            lock.ensure_held()  # a lost upload lock stops the run before any further Bison call
            near = row.get("list_position")
            with watch.stage("api"):
                in_bison = _imported(dsn, slug, window, workspace, list_id, list_name, near, row)
            store.record_list_position(dsn, slug, window, workspace.list_positions.get(list_id))
            expected = sent - refused  # rows Bison refused, a person accepted going on without
            if in_bison != expected:
                raise run_errors.stated(
                    f"{slug}: Bison list {list_name} (id {list_id}) holds {in_bison} lead(s), "
                    f"{sent} were sent; the window stays list_created. Check the list in Bison, then run "
                    f"`{force_command(slug, window)}`",
                    "BisonListShort",
                )
            store.record_list_verified(dsn, slug, window, in_bison)
        else:
            in_bison = expected = sent  # verified: the ledger holds Bison's count
        check_results += checks.enforce([checks.bison_count_matches_ledger(in_bison, expected)])
        row = store.ledger_row(dsn, slug, window) or row
        # Announced once per window, under the lock: a run that waited sees it was posted.
        if row.get("list_announced_at") is None:
            if context.run.tags.get("late") == "true":
                slack.post(
                    channel_for(client),
                    messages.late_window(client.name, list_name, window.due_monday.isoformat()),
                )
            slack.post(
                channel_for(client),
                messages.refined_data_uploaded(
                    client.name, [(list_name, in_bison)], in_bison, same_owner
                ),
            )
            store.mark_announced(dsn, slug, window, "list_announced_at")
    yield MaterializeResult(
        check_results=check_results,
        metadata={
            "window_state": str(row["status"]),
            "window_state_found": str(state_found),
            "list_name": list_name,
            "bison_list_id": list_id,
            "leads_in_window": len(leads),
            "cleaned_in_window": len(cleaned_in_window),
            "same_owner_other_home": same_owner,
            "leads_in_bison": in_bison,
            "refused_rows_accepted": refused,
            "new_upload": new_upload,
            "uploaded_now": len(leads) if new_upload else 0,
            **watch.metadata(),
        },
    )


def accept_command(slug: str, window: RenewalWindow) -> str:
    return f"homeowner windows accept --client {slug} --window {window.key}"


def _imported(
    dsn: str,
    slug: str,
    window: RenewalWindow,
    workspace: BisonWorkspace,
    list_id: str,
    list_name: str,
    near: Any,
    row: dict[str, Any],
) -> int:
    """How many leads Bison imported into the window's list (waiting for its queued import).

    Looked for in the paged list of lead lists, from where the client's next list should be. Rows
    Bison refused stop the window in `list_created` until a person accepts going on without them
    (`homeowner windows accept`); then the list counts as it is.
    """
    where = int(near) if near is not None else store.next_list_position(dsn, slug)
    try:
        return workspace.lead_list_count(list_id, where)
    except BisonImportFailed as exc:
        if (
            row.get("refused_accepted_at") is not None
            and int(row.get("refused_rows") or 0) == exc.failed
        ):
            return exc.succeeded
        store.record_refused(dsn, slug, window, exc.failed, exc.messages)
        raise run_errors.stated(
            f"{slug}: {exc} The window stays list_created: fix the rows and run "
            f"`homeowner windows forget-list --client {slug} --window {window.key}` to upload the "
            f"window again, or run `{accept_command(slug, window)}` to go on without them",
            "BisonRowsRefused",
        ) from None
    except BisonError as exc:
        if exc.status != 404:
            raise
        raise run_errors.stated(
            f"{slug}: the ledger records Bison list {list_id} for {list_name}, but the workspace's "
            "list of lead lists does not hold it (deleted by hand?). Nothing was uploaded again; run "
            f"`homeowner windows forget-list --client {slug} --window {window.key}` to upload it anew",
            "BisonListGone",
        ) from None


def campaign_patterns(dsn: str, client: registry.Client) -> list[str]:
    """Titles the client's Evergreen campaign may start with, in order of preference.

    The client file's `campaign_name`; else `HNW Evergreen` then `Evergreen` for a high-net-worth
    routing destination (its campaign may share a workspace with the ordinary one), else
    `Evergreen`.
    """
    if client.campaign_name:
        return [client.campaign_name]
    if store.is_hnw_destination(dsn, client.slug):
        return [HNW_CAMPAIGN, DEFAULT_CAMPAIGN]
    return [DEFAULT_CAMPAIGN]


# Campaign statuses that are no campaign to upload to (vendor facts, section 6's status enum).
GONE_STATUSES = frozenset({"archived", "deleted", "pending deletion"})


def _matches(campaign: dict[str, Any], pattern: str) -> bool:
    """The title starts with the pattern (any case) and the campaign is not archived or deleted."""
    title = str(campaign.get("name", "")).strip().casefold()
    return (
        title.startswith(pattern.strip().casefold())
        and str(campaign.get("status", "")).strip().casefold() not in GONE_STATUSES
    )


def evergreen_campaign_of(
    dsn: str,
    workspace: BisonWorkspace,
    client: registry.Client,
    slack: HomeownerSlackResource | None = None,
) -> dict[str, Any]:
    """The client's Evergreen campaign: by the id stored after the first match, else by pattern.

    The stored campaign is checked again each time: renamed away from the pattern, archived or
    gone, it is let go (with a Slack notice) and the pattern is searched again. A campaign another
    client of the same workspace already uses is refused: two clients keep their campaigns apart.
    """
    patterns = campaign_patterns(dsn, client)
    stored = store.stored_campaign(dsn, client.slug)
    if stored is not None and stored["pattern"] in patterns:
        campaign = workspace.campaign_or_none(stored["campaign_id"])
        if campaign is not None and _matches(campaign, stored["pattern"]):
            return campaign
        why = (
            "is gone"
            if campaign is None
            else (
                f"is {campaign.get('status')}"
                if _matches({**campaign, "status": ""}, stored["pattern"]) is not False
                and str(campaign.get("status", "")).casefold() in GONE_STATUSES
                else f"is now titled {campaign.get('name')!r}"
            )
        )
        store.forget_campaign(dsn, client.slug)
        if slack is not None:
            slack.post(
                channel_for(client),
                messages.campaign_let_go(
                    client.name, stored["campaign_name"], stored["campaign_id"], why
                ),
            )
    for pattern in patterns:
        found = [c for c in workspace.find_campaigns(pattern) if _matches(c, pattern)]
        if len(found) > 1:
            listed = "; ".join(f"{c.get('name')!r} (id {c.get('id')})" for c in found)
            raise run_errors.stated(
                f"{client.slug}: {len(found)} campaigns start with {pattern!r}: {listed}. Rename all but "
                "one, or set a more precise campaign_name in the client file and run "
                "`homeowner clients import`",
                "CampaignAmbiguous",
            )
        if found:
            campaign = found[0]
            other = store.campaign_user(dsn, str(campaign["id"]), client)
            if other is not None:
                raise run_errors.stated(
                    f"{client.slug}: campaign {campaign.get('name')!r} (id {campaign['id']}) is already "
                    f"the Evergreen campaign of {other} in workspace {client.workspace_name}; give each "
                    "client its own campaign and its title pattern (campaign_name in the client file), "
                    "then `homeowner clients import`",
                    "CampaignShared",
                )
            store.store_campaign(
                dsn, client.slug, pattern, str(campaign["id"]), str(campaign.get("name"))
            )
            return campaign
    raise run_errors.stated(
        f"{client.slug}: no campaign whose title starts with {' or '.join(map(repr, patterns))} in "
        f"workspace {client.workspace_name}; create it, or set campaign_name in the client file and "
        "run `homeowner clients import`",
        "CampaignMissing",
    )


@asset(
    group_name=GROUP,
    partitions_def=client_window_partitions,
    deps=[bison_lead_lists],
    retry_policy=BISON_RETRY,
    kinds={"postgres", "slack"},
    description="PT5: the window's list attached to the client's Evergreen campaign (waiting out Bison's "
    "sync of up to 5 minutes), then the title moved on to 'Evergreen, Last Upload: February 1–7' "
    "(never back; one PT5 per campaign at a time); window state -> attached -> done.",
)
def evergreen_campaign(
    context: AssetExecutionContext,
    database: PostgresResource,
    bison: BisonResource,
    slack: HomeownerSlackResource,
) -> MaterializeResult:
    slug, window = split_client_window(context.partition_key)
    dsn = database.dsn()
    client = run_errors.client_for_run(slug, dsn)
    registry.ensure_bison_destination_allowed(
        client
    )  # a row edited since its import is refused too
    if held := upload_hold(context, dsn, client, window):  # hold_below_minimum: nothing to attach
        return held
    watch = Stopwatch()
    meta: dict[str, Any] = {}
    with (
        bison_workspace(bison, client) as workspace,
        store.upload_lock(dsn, slug, window) as lock,
        store.campaign_lock(dsn, workspace_key(client), say=context.log.info) as campaign_guard,
    ):
        # Read under the locks: a run that waited must see what the run before it recorded.
        row = store.ledger_row(dsn, slug, window)
        if row is None or not state_at_least(row["status"], "list_verified"):
            raise run_errors.stated(
                f"{slug}: {window.list_name} is not verified in Bison yet; materialize bison_lead_lists first",
                "ListNotVerified",
            )
        state_found = str(row["status"])
        leads = int(row["lead_count"])
        list_name = str(row.get("list_name") or window.list_name)
        if state_found != "done":
            for held_lock in (lock, campaign_guard):
                held_lock.ensure_held()  # a lost lock stops the run before any further Bison call
            with watch.stage("api"):
                campaign = evergreen_campaign_of(dsn, workspace, client, slack)
            campaign_id = str(campaign["id"])
            if state_found == "list_verified":
                campaign = _attach(
                    dsn, slug, window, workspace, campaign, row, meta, watch, (lock, campaign_guard)
                )
            title = str(campaign["name"])
            try:
                known = store.campaign_titled_windows(dsn, campaign_id)
                current = parse_evergreen_title(title).window(today(), known)
            except ValueError:
                context.log.warning(f"{slug}: campaign title {title!r} not understood; not renamed")
                slack.post(
                    channel_for(client),
                    messages.unreadable_campaign_title(client.name, title, list_name),
                )
                return MaterializeResult(
                    metadata={
                        **meta,
                        "window_state": "attached",
                        "window_state_found": state_found,
                        "campaign_id": campaign_id,
                        "title_before": title,
                        "title_unreadable": True,
                        **watch.metadata(),
                    }
                )
            title_after = title if current >= window else retitle(title, window)
            if title_after == title:  # a later window, or this one's text a year on
                context.log.info(f"{slug}: campaign already says {title!r}; title left as it is")
            else:
                for held_lock in (lock, campaign_guard):
                    held_lock.ensure_held()  # a lost lock stops the run before any further Bison call
                with watch.stage("api"):
                    workspace.rename_campaign(campaign_id, title_after, before=campaign)
            store.record_done(dsn, slug, window, title_after)
            meta.update(campaign_id=campaign_id, title_before=title, title_after=title_after)
        row = store.ledger_row(dsn, slug, window) or row
        returning = int(row.get("leads_returning") or 0)
        if row.get("evergreen_announced_at") is None:
            now_title = str(row.get("campaign_title_after") or window.evergreen_title)
            slack.post(
                channel_for(client),
                messages.evergreen_uploads_completed(client.name, now_title, leads, returning),
            )
            store.mark_announced(dsn, slug, window, "evergreen_announced_at")
    return MaterializeResult(
        metadata={
            **meta,
            "window_state": str(row["status"]),
            "window_state_found": state_found,
            "attached": state_found in ("list_verified",),
            "leads": leads,
            "leads_new_to_campaign": int(row.get("leads_new") or 0),
            "leads_already_in_campaign": int(row.get("leads_in_campaign") or 0),
            "returning_homeowners": returning,
            **watch.metadata(),
        }
    )


def workspace_key(client: registry.Client) -> str:
    """The Bison workspace a client's campaign lives in (instance and name): the campaign lock."""
    instance = client.bison_instance_url or os.environ.get("BISON_INSTANCE_URL") or ""
    return f"{instance.rstrip('/')}|{client.workspace_name}"


def _attach(
    dsn: str,
    slug: str,
    window: RenewalWindow,
    workspace: BisonWorkspace,
    campaign: dict[str, Any],
    row: dict[str, Any],
    meta: dict[str, Any],
    watch: Stopwatch,
    locks: tuple[store.UploadLock, ...],
) -> dict[str, Any]:
    """Attach the window's list and wait until `total_leads` shows it; the campaign as then read.

    Bison adds only leads the campaign does not hold yet (B-UNIQUE) and counts them up to 5
    minutes later (B-SYNC): the growth waited for is the window's leads never attached to this
    campaign before (the ledger knows them by email). A list that still did not land fails the
    step (the run-failure alert says so at once) and leaves the window `list_verified`.
    """
    campaign_id, title = str(campaign["id"]), str(campaign["name"])
    leads = int(row["lead_count"])
    before = row.get("campaign_leads_before")
    if before is None or str(row.get("campaign_id")) != campaign_id:
        before = total_leads(campaign)  # read under the campaign lock, before this attach
    holds = store.campaign_holds(dsn, slug, window, campaign_id)
    new = expected_growth(leads, holds.in_campaign)  # `leads`: Bison's verified count
    store.record_campaign_before_attach(
        dsn, slug, window, campaign_id, title, int(before), holds, new
    )
    for held_lock in locks:
        held_lock.ensure_held()  # a lost lock stops the run before any further Bison call
    with watch.stage("api"):
        workspace.attach_lead_list(campaign_id, str(row["bison_list_id"]))
        try:
            campaign = workspace.wait_for_total_leads(campaign_id, int(before) + new)
        except BisonAttachNotSynced as exc:
            raise run_errors.stated(
                f"{slug}: after attaching {row.get('list_name') or window.list_name} ({new} lead(s) new to the "
                f"campaign, {holds.in_campaign} already in it) campaign {campaign_id} holds {exc.seen} leads "
                f"({int(before)} before) after waiting {exc.waited:.0f} s: the list is not in it. The window "
                f"stays list_verified; run `{force_command(slug, window)}` to attach it again",
                "AttachNotSynced",
            ) from None
    after = total_leads(campaign)
    store.record_attached(dsn, slug, window, after)
    meta.update(campaign_leads_before=int(before), campaign_leads_after=after)
    return campaign
