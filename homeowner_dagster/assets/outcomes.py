"""Group `outcomes`: what Email Bison reports for the uploaded leads, and the yield per ZIP.

`campaign_outcomes` (per client, Mondays after the uploads) reads each campaign the client's
windows were attached to once: only the replies newer than the stored cursor (inbox and bounced,
newest-first cursor pages) and the campaign's stats. Each reply goes to its lead through the
ledger (Bison's `lead_id` once known, else the address) and to the window attached last before
it; one outcome row per uploaded lead, no reply text. Requests per campaign and week: the pages
of the new replies + at most 3 (one boundary page per folder and the stats call).

`zip_yield` (client x renewal month) estimates interested replies per 1,000 leads per ZIP from
every client's measured leads of the last six renewal months (`leads.yield_model`), stores the
client's ZIPs with 90 % intervals, the bounce rate per verification result, and a chart.
"""

from datetime import UTC, datetime, timedelta

import pandas as pd
from dagster import (
    AssetDep,
    AssetExecutionContext,
    Config,
    MaterializeResult,
    MetadataValue,
    asset,
)

from homeowner_dagster import charts, registry, store
from homeowner_dagster.assets import metadata as md
from homeowner_dagster.assets.monthly_pull import channel_for
from homeowner_dagster.assets.weekly_upload import BISON_RETRY, bison_workspace, evergreen_campaign
from homeowner_dagster.leads import outcomes as rules
from homeowner_dagster.leads import yield_model
from homeowner_dagster.leads.calendar import month_key
from homeowner_dagster.partitions import (
    client_dimension,
    client_month_partitions,
    client_partitions,
    split_client_month,
)
from homeowner_dagster.resources.artifacts import ArtifactStoreResource
from homeowner_dagster.resources.bison import BisonResource
from homeowner_dagster.resources.bison_outcomes import read_campaign
from homeowner_dagster.resources.database import PostgresResource
from homeowner_dagster.resources.slack import HomeownerSlackResource
from homeowner_dagster.run_errors import needs_fix

GROUP = "outcomes"
STATS_DAYS = 90  # the stats call covers the last 90 days of the campaign

by_client = client_dimension()


class CampaignOutcomesConfig(Config):
    """`from_scratch`: forget the cursor and read every reply again (outcomes rebuilt)."""

    from_scratch: bool = False


def _summaries(
    outcomes: pd.DataFrame, campaign_id: str, as_of: datetime, counts: dict
) -> pd.DataFrame:
    """One window_outcomes row per window: our own counts (Bison's stats are per campaign)."""
    grouped = outcomes.groupby(["window_start", "month"], as_index=False).agg(
        leads=("dedupe_key", "size"),
        replied=("replied", "sum"),
        interested=("interested", "sum"),
        bounced=("bounced", "sum"),
        unsubscribed=("unsubscribed", "sum"),
        automated_replies=("automated_reply", "sum"),
    )
    return grouped.assign(
        campaign_id=campaign_id,
        unmatched_replies=counts["unmatched"],
        api_requests=counts["requests"],
        as_of=as_of,
    )


@asset(
    group_name=GROUP,
    partitions_def=client_partitions,
    deps=[AssetDep(evergreen_campaign, partition_mapping=by_client)],
    retry_policy=BISON_RETRY,
    kinds={"postgres"},
    description="New replies of each campaign the client's windows were attached to (from a stored "
    "cursor), matched to the uploaded leads through the ledger (lead_outcomes: replied, interested, "
    "bounced, unsubscribed; no reply text).",
)
def campaign_outcomes(
    context: AssetExecutionContext,
    config: CampaignOutcomesConfig,
    database: PostgresResource,
    bison: BisonResource,
) -> MaterializeResult:
    slug = context.partition_key
    dsn = database.dsn()
    client = registry.get_client(slug, dsn)
    campaigns = store.attached_campaigns(dsn, slug)
    if not campaigns:
        raise needs_fix(
            f"{slug}: no window was attached to a campaign by us yet; nothing to measure",
            f"run the weekly upload first (`homeowner windows --client {slug}` shows each window's state)",
            "NothingAttached",
        )
    totals = {"requests": 0, "new_replies": 0, "pages_of_new_replies": 0, "windows_written": 0}
    match: dict[str, int] = {}
    with bison_workspace(bison, client) as workspace:
        for campaign_id in campaigns:
            previous = None if config.from_scratch else store.last_read(dsn, slug, campaign_id)
            cursor = previous["cursor_after"] if previous else None
            cursor = pd.Timestamp(cursor).to_pydatetime() if cursor is not None else None
            leads = store.campaign_leads(dsn, slug, campaign_id)
            if config.from_scratch:
                kept = leads["attached_at"]  # Bison's clock at the first read stays
                leads = rules.new_outcome_rows(
                    leads.drop(
                        columns=[*rules.FLAGS, "first_reply_at", "bison_lead_id", "matched_by"]
                    )
                ).assign(attached_at=kept)
            began = datetime.now(UTC)
            read = read_campaign(
                workspace, campaign_id, cursor, began.date() - timedelta(days=STATS_DAYS)
            )
            # A window first seen now gets its attach on Bison's clock: ours + (Bison's - ours).
            offset = pd.Timestamp(read.as_of) - pd.Timestamp(began)
            fresh = leads["attached_at"].isna()
            leads["attached_at"] = pd.to_datetime(leads["attached_at"], utc=True)
            leads.loc[fresh, "attached_at"] = (
                pd.to_datetime(leads.loc[fresh, "ledger_attached_at"], utc=True) + offset
            )
            facts = rules.reply_facts(read.replies)
            read.replies.clear()  # bodies are not kept anywhere
            before = leads.copy()
            outcomes, counts = rules.apply_replies(leads, facts)
            changed = _changed_windows(before, outcomes, fresh)
            counted = {**counts.as_dict(), "requests": read.requests}
            store.write_campaign_read(
                dsn,
                slug,
                campaign_id,
                outcomes,
                changed,
                {
                    "read_at": began,
                    "as_of": read.as_of,
                    "cursor_before": cursor,
                    "cursor_after": read.newest,
                    "requests": read.requests,
                    "new_replies": sum(read.new_by_folder.values()),
                    "pages_of_new_replies": read.pages_of_new_replies,
                    "matched_by_lead_id": counts.by_lead_id,
                    "matched_by_address": counts.by_address,
                    "unmatched": counts.unmatched,
                    "before_attach": counts.before_attach,
                    "second_replies": counts.second_replies,
                    "stats_start": began.date() - timedelta(days=STATS_DAYS),
                    "emails_sent": read.stats["emails_sent"],
                    "leads_contacted": read.stats["total_leads_contacted"],
                    "stats_replied": read.stats["unique_replies_per_contact"],
                    "stats_interested": read.stats["interested"],
                    "stats_bounced": read.stats["bounced"],
                    "stats_unsubscribed": read.stats["unsubscribed"],
                },
                _summaries(outcomes, campaign_id, read.as_of, counted),
            )
            totals["requests"] += read.requests
            totals["new_replies"] += sum(read.new_by_folder.values())
            totals["pages_of_new_replies"] += read.pages_of_new_replies
            totals["windows_written"] += len(changed)
            for key, value in counts.as_dict().items():
                match[key] = match.get(key, 0) + value
            context.log.info(
                f"{slug}: campaign {campaign_id}: {sum(read.new_by_folder.values())} new replies, "
                f"{read.requests} requests, {len(changed)} window(s) written"
            )
    return MaterializeResult(
        metadata={
            "campaigns": len(campaigns),
            "api_requests": totals["requests"],
            "new_replies": totals["new_replies"],
            "pages_of_new_replies": totals["pages_of_new_replies"],
            "api_request_bound": totals["pages_of_new_replies"] + 3 * len(campaigns),
            "windows_written": totals["windows_written"],
            "matched_by_lead_id": match.get("by_lead_id", 0),
            "matched_by_address": match.get("by_address", 0),
            "unmatched_replies": match.get("unmatched", 0),
            "replies_before_attach": match.get("before_attach", 0),
            "second_replies": match.get("second_replies", 0),
        }
    )


def _changed_windows(before: pd.DataFrame, after: pd.DataFrame, fresh: pd.Series) -> list:
    """Windows whose outcomes differ from the stored ones (or were never stored)."""
    columns = [*rules.FLAGS, "first_reply_at", "bison_lead_id", "matched_by"]
    differs = fresh.to_numpy().copy()
    for column in columns:
        a, b = before[column].astype(object), after[column].astype(object)
        same = (a == b) | (a.isna() & b.isna())
        differs |= ~same.to_numpy()
    return sorted(set(after.loc[differs, "window_start"]))


def _markdown_table(frame: pd.DataFrame) -> str:
    return frame.to_markdown(index=False) if not frame.empty else "(none)"


class ZipYieldConfig(Config):
    """`post_to_slack`: the monthly outcome message (the monthly schedule sets it)."""

    post_to_slack: bool = False


def outcomes_message(
    client: str, month: str, outcomes: pd.DataFrame, book: rules.YieldBook, chart_link: str
) -> str:
    """The monthly Slack message: totals and best / worst ZIPs with intervals, no homeowner data."""
    table = book.client_zips
    best, worst = rules.best_and_worst(table)
    row = table.set_index("zip")

    def shown(z: str) -> str:
        r = row.loc[z]
        return f"{z} ({r['shrunk_per_1000']:.1f}, 90% {r['lower_per_1000']:.1f}-{r['upper_per_1000']:.1f}/1k)"

    lines = [
        f"📬 Outcomes: {client}, {month} renewals",
        f"Leads {len(outcomes):,} ({book.mature_leads:,} old enough to count) · replies "
        f"{int(outcomes['replied'].sum()):,} · interested {int(outcomes['interested'].sum()):,} · "
        f"bounces {int(outcomes['bounced'].sum()):,}",
        "Best ZIPs: " + ", ".join(shown(z) for z in best),
        "Worst ZIPs: " + ", ".join(shown(z) for z in worst),
    ]
    if not book.separable:
        lines.append("No ZIP differs from the client's average with 90% confidence yet.")
    lines.append(f"Chart: {chart_link}")
    return "\n".join(lines)


@asset(
    group_name=GROUP,
    partitions_def=client_month_partitions,
    deps=[AssetDep(campaign_outcomes, partition_mapping=by_client)],
    kinds={"postgres", "slack"},
    description="Per ZIP: interested replies per 1,000 leads with a 90% interval (hierarchical "
    "estimate over every client's ZIPs, only leads that had time to answer); bounce rate per "
    "verification result; a chart.",
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
    outcomes = store.month_outcomes(dsn, slug, month)
    book = rules.yield_book(slug, store.outcomes_until(dsn, month))
    table = book.client_zips if book is not None else pd.DataFrame(columns=rules.YIELD_COLUMNS)
    average = book.client_rate if book is not None else 0.0
    bounces = rules.bounce_by_verification(outcomes)
    trend = rules.weekly_trend(outcomes)
    store.write_zip_yield(dsn, slug, month, table, bounces)
    svg = charts.yield_chart_svg(client.name, month_key(month), table, average, trend, book)
    link = artifacts.put_bytes(
        svg.encode(), f"charts/{slug}/{month_key(month)}-zip-yield.svg", "image/svg+xml"
    )
    if config.post_to_slack and book is not None and not outcomes.empty:
        slack.post(
            channel_for(client),
            outcomes_message(client.name, month_key(month), outcomes, book, link),
        )
    shown = table[
        [
            "zip",
            "leads",
            "mature_leads",
            "interested",
            "shrunk_per_1000",
            "lower_per_1000",
            "upper_per_1000",
            "p_below_average",
            "low_yield",
        ]
    ]
    return MaterializeResult(
        metadata={
            "chart": MetadataValue.md(
                charts.markdown_image(svg, f"{slug} {month_key(month)} ZIP yield")
            ),
            **(
                {"chart_link": md.link(link)} if link.startswith("http") else {}
            ),  # shown inline above
            "leads_measured": book.leads_measured if book else 0,
            "mature_leads": book.mature_leads if book else 0,
            "days_until_a_lead_counts": book.days_to_mature if book else 0.0,
            "interested": int(outcomes["interested"].sum()) if not outcomes.empty else 0,
            "client_interested_per_1000": round(average * 1000, 2),
            "low_yield_zips": int(table["low_yield"].sum()) if not table.empty else 0,
            "zips_told_apart": MetadataValue.bool(bool(book and book.separable)),
            "zip_yield": MetadataValue.md(_markdown_table(shown)),
            "bounce_rate_by_verification": MetadataValue.md(_markdown_table(bounces)),
            "interval": MetadataValue.text(f"{yield_model.INTERVAL:.0%} posterior interval"),
        }
    )
