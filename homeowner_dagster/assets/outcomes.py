"""Group `outcomes`: what Email Bison reports for the uploaded leads, and the yield per ZIP.

`campaign_outcomes` (client x renewal window) reads the replies of the client's campaign (folders
inbox and bounced, cursor pages) and its stats for the window's active dates, matches each reply to
our lead through the ledger by email and stores one row per uploaded lead (no reply text).
Requests per window: 1 stats + the reply pages, at most 3 + ceil(replies / 15).

`zip_yield` (client x renewal month) turns those rows into interested replies per 1,000 leads per
ZIP with an interval, the bounce rate per verification result, and a chart.
"""


import math
from datetime import timedelta

import pandas as pd
from dagster import (
    AssetDep,
    AssetExecutionContext,
    Config,
    MaterializeResult,
    MetadataValue,
    TimeWindowPartitionMapping,
    asset,
)

from homeowner_dagster import charts, outcomes_store, registry, store
from homeowner_dagster.assets import metadata as md
from homeowner_dagster.assets.monthly_pull import channel_for
from homeowner_dagster.assets.weekly_upload import (
    BISON_RETRY,
    bison_workspace,
    evergreen_campaign,
    force_command,
)
from homeowner_dagster.leads import outcomes as rules
from homeowner_dagster.leads.calendar import month_key
from homeowner_dagster.partitions import (
    client_month_partitions,
    client_window_partitions,
    same_client,
    split_client_month,
    split_client_window,
)
from homeowner_dagster.resources.artifacts import ArtifactStoreResource
from homeowner_dagster.resources.bison import BisonResource
from homeowner_dagster.resources.bison_outcomes import (
    REPLY_PAGE_SIZE,
    campaign_replies,
    campaign_stats,
)
from homeowner_dagster.resources.database import PostgresResource
from homeowner_dagster.resources.slack import HomeownerSlackResource
from homeowner_dagster.run_errors import needs_fix

GROUP = "outcomes"
ACTIVE_DAYS = 90  # a window's leads are measured for 90 days after the attach

# A renewal month reads the outcomes of its four windows.
month_to_windows = same_client("window", "month", TimeWindowPartitionMapping())


@asset(
    group_name=GROUP,
    partitions_def=client_window_partitions,
    deps=[evergreen_campaign],
    retry_policy=BISON_RETRY,
    kinds={"postgres"},
    description="Replies and stats of the client's campaign for one renewal window, matched to the "
    "uploaded leads (lead_outcomes: replied, interested, bounced, unsubscribed; no reply text).",
)
def campaign_outcomes(
    context: AssetExecutionContext, database: PostgresResource, bison: BisonResource
) -> MaterializeResult:
    slug, window = split_client_window(context.partition_key)
    dsn = database.dsn()
    client = registry.get_client(slug, dsn)
    ledger = store.ledger_row(dsn, slug, window)
    if ledger is None or not ledger.get("campaign_id") or pd.isna(ledger.get("attached_at")):
        # A skipped window (campaign moved on by hand) has a campaign but none of its leads:
        # measuring it would count every lead as silent.
        raise needs_fix(
            f"{slug}: {window.list_name} was never attached to a campaign by us; nothing to measure",
            f"run the weekly upload for this window first (`{force_command(slug, window)}`; "
            f"`homeowner windows --client {slug}` shows its state)",
            "WindowNotAttached",
        )
    start = pd.Timestamp(ledger["attached_at"]).date()
    end = start + timedelta(days=ACTIVE_DAYS)
    leads = outcomes_store.uploaded_leads(dsn, slug, window)
    campaign_id = str(ledger["campaign_id"])
    with bison_workspace(bison, client) as workspace:
        stats = campaign_stats(workspace, campaign_id, start, end)
        attached = pd.Timestamp(ledger["attached_at"])
        since = (attached.tz_localize("UTC") if attached.tzinfo is None else attached.tz_convert("UTC")).to_pydatetime()
        replies = [
            *campaign_replies(workspace, campaign_id, "inbox", since),
            *campaign_replies(workspace, campaign_id, "bounced", since),
        ]
        requests = workspace.requests
    facts = rules.reply_facts(replies)
    del replies  # bodies are not kept anywhere
    outcomes, unmatched = rules.lead_outcomes(leads, facts, pd.Timestamp(since))
    # Replies of the campaign's other windows are expected: only this window's leads match.
    summary = {
        "client_slug": slug,
        "window_start": window.start,
        "campaign_id": campaign_id,
        "stats_start": start,
        "stats_end": end,
        "emails_sent": stats["emails_sent"],
        "leads_contacted": stats["total_leads_contacted"],
        "stats_replied": stats["unique_replies_per_contact"],
        "stats_interested": stats["interested"],
        "stats_bounced": stats["bounced"],
        "stats_unsubscribed": stats["unsubscribed"],
        "leads": len(outcomes),
        "replied": int(outcomes["replied"].sum()),
        "interested": int(outcomes["interested"].sum()),
        "bounced": int(outcomes["bounced"].sum()),
        "unsubscribed": int(outcomes["unsubscribed"].sum()),
        "automated_replies": int(outcomes["automated_reply"].sum()),
        "unmatched_replies": unmatched,
        "api_requests": requests,
    }
    outcomes_store.write_window_outcomes(dsn, slug, window, outcomes, summary)
    fetched = len(facts)
    return MaterializeResult(
        metadata={
            "leads": len(outcomes),
            "replied": summary["replied"],
            "interested": summary["interested"],
            "bounced": summary["bounced"],
            "unsubscribed": summary["unsubscribed"],
            "automated_replies": summary["automated_replies"],
            "replies_fetched": fetched,
            "replies_of_other_windows": unmatched,
            "api_requests": requests,
            "api_request_bound": 3 + math.ceil(fetched / REPLY_PAGE_SIZE),
            "stats_dates": f"{start.isoformat()} to {end.isoformat()}",
            "campaign_emails_sent": stats["emails_sent"],
        }
    )


def _markdown_table(frame: pd.DataFrame) -> str:
    return frame.to_markdown(index=False) if not frame.empty else "(none)"


class ZipYieldConfig(Config):
    """`post_to_slack`: the monthly outcome message (the monthly schedule sets it)."""

    post_to_slack: bool = False
    prior_leads: float = rules.PRIOR_LEADS


def outcomes_message(client: str, month: str, outcomes: pd.DataFrame, table: pd.DataFrame, chart_link: str) -> str:
    """The monthly Slack message: totals and best / worst ZIPs, no homeowner data."""
    best, worst = rules.best_and_worst(table)
    rate = {z: r for z, r in zip(table["zip"], table["shrunk_per_1000"], strict=True)}
    leads = len(outcomes)
    lines = [
        f"📬 Outcomes: {client}, {month} renewals",
        f"Leads {leads:,} · replies {int(outcomes['replied'].sum()):,} · interested "
        f"{int(outcomes['interested'].sum()):,} · bounces {int(outcomes['bounced'].sum()):,}",
        "Best ZIPs: " + ", ".join(f"{z} ({rate[z]:.1f}/1k)" for z in best),
        "Worst ZIPs: " + ", ".join(f"{z} ({rate[z]:.1f}/1k)" for z in worst),
        f"Chart: {chart_link}",
    ]
    return "\n".join(lines)


@asset(
    group_name=GROUP,
    partitions_def=client_month_partitions,
    deps=[AssetDep(campaign_outcomes, partition_mapping=month_to_windows)],
    kinds={"postgres", "slack"},
    description="Per ZIP: leads, replies, interested, bounces and interested per 1,000 with a 95% "
    "interval, shrunk toward the client's average; bounce rate per verification result; a chart.",
)
def zip_yield(
    context: AssetExecutionContext,
    config: ZipYieldConfig,
    database: PostgresResource,
    artifacts: ArtifactStoreResource,
    slack: HomeownerSlackResource,
) -> MaterializeResult:
    slug, month = split_client_month(context.partition_key)
    dsn = database.dsn()
    client = registry.get_client(slug, dsn)
    outcomes = outcomes_store.month_outcomes(dsn, slug, month)
    table, average = rules.zip_yield(outcomes, config.prior_leads)
    bounces = rules.bounce_by_verification(outcomes)
    trend = rules.weekly_trend(outcomes) if not outcomes.empty else pd.DataFrame(columns=["week", "replies", "interested"])
    outcomes_store.write_zip_yield(dsn, slug, month, table, bounces)
    svg = charts.yield_chart_svg(client.name, month_key(month), table, average, trend)
    link = artifacts.put_bytes(svg.encode(), f"charts/{slug}/{month_key(month)}-zip-yield.svg", "image/svg+xml")
    if config.post_to_slack and not outcomes.empty:
        slack.post(channel_for(client), outcomes_message(client.name, month_key(month), outcomes, table, link))
    shown = table.head(15)[["zip", "leads", "interested", "shrunk_per_1000", "lower_per_1000", "upper_per_1000", "low_yield"]]
    return MaterializeResult(
        metadata={
            "chart": MetadataValue.md(charts.markdown_image(svg, f"{slug} {month_key(month)} ZIP yield")),
            **({"chart_link": md.link(link)} if link.startswith("http") else {}),  # shown inline above
            "leads_measured": len(outcomes),
            "interested": int(outcomes["interested"].sum()) if not outcomes.empty else 0,
            "client_interested_per_1000": round(average * 1000, 2),
            "low_yield_zips": int(table["low_yield"].sum()) if not table.empty else 0,
            "zip_yield": MetadataValue.md(_markdown_table(shown)),
            "bounce_rate_by_verification": MetadataValue.md(_markdown_table(bounces)),
        }
    )
