"""Group `monthly_pull` (PT1-PT3), partitioned by client x renewal month."""

import tempfile
from dataclasses import replace
from datetime import date
from pathlib import Path
from typing import NamedTuple

import pandas as pd
from dagster import (
    AssetCheckResult,
    AssetDep,
    AssetExecutionContext,
    AssetKey,
    AssetMaterialization,
    AssetSelection,
    AutomationCondition,
    Backoff,
    Failure,
    Jitter,
    MaterializeResult,
    MetadataValue,
    RetryPolicy,
    TimeWindowPartitionMapping,
    asset,
)

from homeowner_dagster import registry, settings, store
from homeowner_dagster.assets import checks
from homeowner_dagster.assets import metadata as md
from homeowner_dagster.assets.stopwatch import Stopwatch
from homeowner_dagster.leads import gap_solver
from homeowner_dagster.leads.calendar import month_key
from homeowner_dagster.leads.cleaning import clean_leads
from homeowner_dagster.leads.cole_csv import read_cole_csv
from homeowner_dagster.leads.columns import CLEANED_COLUMNS, SOURCE_COLUMNS
from homeowner_dagster.leads.gap import GapStatus, gap_status, rejected_facts, suggestion_zip_lines
from homeowner_dagster.leads.outcomes import yield_book
from homeowner_dagster.leads.routing import RoutingRule
from homeowner_dagster.leads.schemas import CleanedLeadFrame
from homeowner_dagster.partitions import (
    client_month_key,
    client_month_partitions,
    same_client,
    split_client_month,
)
from homeowner_dagster.resources import slack as messages
from homeowner_dagster.resources.clay import ClayTableFull, ClayWebhookExhausted
from homeowner_dagster.resources.cole import ColeError, ColeResource
from homeowner_dagster.resources.database import PostgresResource
from homeowner_dagster.resources.email_verification import (
    DEBOUNCE_POOL,
    EmailVerificationError,
    EmailVerificationResource,
)
from homeowner_dagster.resources.slack import HomeownerSlackResource
from homeowner_dagster.run_errors import (
    as_stated,
    client_for_run,
    failure_for,
    needs_fix,
    no_zips,
    unlicensed,
)
from homeowner_dagster.store import outcomes as outcomes_store
from homeowner_dagster.store.outcomes import OUTCOME_MONTHS_BACK

GROUP = "monthly_pull"
DATE_COLUMNS = ("purchase_date", "renewal_date", "renewal_window")
# Transient failures (timeouts, 429s, dropped downloads) are retried inside the resources; a
# step-level retry covers what is left, with backoff so a struggling site gets a rest.
EXTERNAL_RETRY = RetryPolicy(
    max_retries=2,
    delay=settings.step_retry_delay_seconds(),  # 30 s unless HOMEOWNER_STEP_RETRY_DELAY_SECONDS
    backoff=Backoff.EXPONENTIAL,
    jitter=Jitter.PLUS_MINUS,
)


class ClientMonth(NamedTuple):
    slug: str
    month: date
    dsn: str
    client: registry.Client


def client_month(context: AssetExecutionContext, database: PostgresResource) -> ClientMonth:
    """Every monthly step starts here: its partition's client (a failure no retry can fix when the
    client is unknown or its channel no longer allowed), its month, and the database."""
    slug, month = split_client_month(context.partition_key)
    dsn = database.dsn()
    return ClientMonth(slug, month, dsn, client_for_run(slug, dsn))


def channel_for(client: registry.Client) -> str:
    """The client's Slack channel, or the team's operations channel."""
    return client.slack_channel or registry.ops_channel()


def _no_leads() -> pd.DataFrame:
    return pd.DataFrame(
        {
            c: pd.Series(dtype="datetime64[ns]" if c in DATE_COLUMNS else object)
            for c in CLEANED_COLUMNS + SOURCE_COLUMNS
        }
    ).astype({"purchase_day": "int64", "source_row": "int64", "home_value": "float64"})


def _no_zips(dsn: str, slug: str, month: date) -> Failure:
    """Which command fixes an empty territory: a first sheet, or an assignment for this client."""
    m = month_key(month)
    if store.derived_territory(dsn, month).sheet_month is None:
        return no_zips(slug, m)  # no sheet at or before the month
    return needs_fix(
        f"{slug} holds no ZIPs in {m} (the latest sheet and the changes since give it none)",
        f"`homeowner zips assign --client {slug} --month {m} ZIP...` "
        f"(see `homeowner zips show --client {slug} --month {m}`), then re-run this partition",
        "NoZipsForMonth",
    )


@asset(
    group_name=GROUP,
    partitions_def=client_month_partitions,
    retry_policy=EXTERNAL_RETRY,
    kinds={"playwright", "postgres"},
    check_specs=checks.specs("raw_leads", "raw_schema"),
    description="PT1: the client's approved ZIPs pulled from Cole X Dates, one login per licensed state.",
)
def raw_leads(
    context: AssetExecutionContext,
    database: PostgresResource,
    cole: ColeResource,
    slack: HomeownerSlackResource,
) -> MaterializeResult:
    slug, month, dsn, client = client_month(context, database)
    watch = Stopwatch()
    territory = store.territory(dsn, slug, month)  # carried forward from the latest sheet
    if territory.empty and not store.is_hnw_destination(dsn, slug):
        raise _no_zips(dsn, slug, month)
    unlicensed_states = sorted(set(territory["state"]) - set(client.licensed_states))
    if unlicensed_states:
        raise unlicensed(slug, unlicensed_states)

    frames: list[pd.DataFrame] = []
    zip_counts: dict[str, int] = {}
    exports_used = lower_bound = 0
    with tempfile.TemporaryDirectory(prefix="cole-") as folder:
        for state, zips in territory.groupby("state"):
            known = {
                z: int(c)
                for z, c in zip(zips["zip"], zips["last_count"], strict=True)
                if pd.notna(c)
            }
            context.log.info(
                f"{slug}: pulling {len(zips)} ZIP(s) in {state} for {month_key(month)}"
            )
            try:
                with watch.stage("browser"):
                    pull = cole.pull(
                        state,
                        list(zips["zip"]),
                        month,
                        known_counts=known or None,
                        download_dir=Path(folder) / state,
                        progress=context.log.info,
                    )
            except ColeError as exc:
                raise failure_for(exc, f"Cole pull {state}") from exc
            with watch.stage("cleaning"):
                for export in pull.exports:
                    frames.append(read_cole_csv(Path(export.path), source_export=export.name))
            zip_counts.update(pull.zip_counts)
            exports_used += pull.exports_used
            lower_bound += pull.lower_bound
        raw = (
            pd.concat(frames, ignore_index=True)
            if frames
            else pd.DataFrame(columns=["source_export", "source_row"])
        )
        check_results = checks.enforce([checks.raw_schema(raw)])
        with watch.stage("database"):
            rows = store.write_raw_leads(dsn, slug, month, raw, zip_counts)

    per_zip = pd.DataFrame(sorted(zip_counts.items()), columns=["zip", "records"])
    slack.post(
        channel_for(client),
        messages.raw_pull_complete(
            client.name, month_key(month), rows, exports_used, len(territory)
        ),
    )
    return MaterializeResult(
        check_results=check_results,
        metadata={
            "summary": md.summary(
                f"{client.name}, renewal month {month_key(month)}: Cole pull",
                {
                    "raw records": rows,
                    "ZIPs": len(territory),
                    "Cole exports": exports_used,
                    "fewest exports the 10,000 cap allows": lower_bound,
                },
            ),
            **md.counts(
                {
                    "rows": rows,
                    "zips": len(territory),
                    "exports_used": exports_used,
                    "exports_lower_bound": lower_bound,
                }
            ),
            "per_zip": md.table(per_zip, md.PER_ZIP),
            **md.seconds(watch.metadata()),
        },
    )


def _refresh_destination(
    context: AssetExecutionContext, dsn: str, source: str, destination: str, month: date
) -> tuple[int, GapStatus]:
    """A destination's month after a source's cleaning wrote its routed leads.

    When the destination's month already ran, its totals and gap report rows are brought up to
    date and the new totals are reported as a materialization of its `monthly_cleaned_leads`
    partition, so the UI shows them; the gap report's automation condition then redoes its
    report. When it has not run yet, its own run counts these leads.
    """
    receiver = registry.get_client(destination, dsn)
    row, counts, status = _month_totals(dsn, receiver, month)
    if store.refresh_routed_totals(dsn, row, status.status, status.meets_minimum):
        context.log_event(
            AssetMaterialization(
                asset_key=AssetKey("monthly_cleaned_leads"),
                partition=client_month_key(destination, month),
                description=f"high-net-worth leads routed in by {source}'s cleaning",
                metadata={
                    **_totals_metadata(receiver, month, counts, status),
                    "routed_in_by": MetadataValue.text(source),
                },
            )
        )
    return counts["routed_in"], status


@asset(
    group_name=GROUP,
    partitions_def=client_month_partitions,
    deps=[raw_leads],
    retry_policy=EXTERNAL_RETRY,
    # DeBounce allows 5 calls in flight per key: the `debounce` pool (limit 1, dagster.yaml) lets
    # one step at a time verify, and the resource keeps that step to 5 requests in flight.
    pool=DEBOUNCE_POOL,
    kinds={"pandas", "postgres"},
    check_specs=checks.specs("cleaned_leads", "cleaned_schema", "rows_conserved"),
    metadata=md.column_schema(CleanedLeadFrame),  # the Columns panel in the UI
    description="PT2: cleaning rules, safe-to-send email verification, duplicates across clients.",
)
def cleaned_leads(
    context: AssetExecutionContext,
    database: PostgresResource,
    email_verification: EmailVerificationResource,
    slack: HomeownerSlackResource,
) -> MaterializeResult:
    slug, month, dsn, client = client_month(context, database)
    watch = Stopwatch()
    with watch.stage("database"):
        raw = store.read_raw_leads(dsn, slug, month)
    if raw.empty:  # a high-net-worth client with no ZIPs of its own: only routed leads
        store.write_cleaned_leads(dsn, slug, month, _no_leads(), raw.assign(reason=""))
        context.log.info(
            f"{slug}: nothing pulled for {month_key(month)}; only routed leads, if any"
        )
        return MaterializeResult(
            check_results=[
                AssetCheckResult(check_name="cleaned_schema", passed=True, metadata={"rows": 0}),
                checks.rows_conserved(0, 0, 0, 0),
            ],
            metadata={
                "summary": md.summary(
                    f"{client.name}, {month_key(month)}: nothing pulled", {"raw": 0, "cleaned": 0}
                ),
                **md.counts({"raw": 0, "cleaned": 0, "rejected": 0, "routed": 0}),
            },
        )
    rules = [RoutingRule.from_record(r) for r in store.hnw_rules_for(dsn, slug)]
    with watch.stage("database"):
        held_elsewhere = store.dedupe_keys_held_elsewhere(dsn, slug, month)
        pulled_on = store.raw_pulled_on(dsn, slug, month)
    with watch.stage("cleaning"):
        result = clean_leads(
            raw,
            month,
            max_home_value=client.max_home_value,
            routing_rules=rules,
            head_of_household_required=client.head_of_household_required,
            held_by_others=held_elsewhere,
            pulled_on=pulled_on,
        )
    emails = pd.concat([result.cleaned["email"], result.hnw["email"]]).drop_duplicates().tolist()
    context.log.info(f"{slug}: verifying {len(emails)} email address(es)")
    with watch.stage("api"):
        try:
            verdicts, stats = email_verification.verify_cached(dsn, emails)
        except (ClayTableFull, ClayWebhookExhausted) as exc:  # a person must add a table or webhook
            raise as_stated(exc) from exc
        except EmailVerificationError as exc:  # a failed bulk job or lost upload: no retry
            raise failure_for(exc, "Email verification") from exc
    safe = set(verdicts.loc[verdicts["safe_to_send"].astype(bool), "email"])
    result = result.reject(~result.cleaned["email"].isin(safe), "email_not_safe_to_send")
    hnw_safe = result.hnw["email"].isin(safe).to_numpy()
    unsafe_hnw = result.raw.loc[result.hnw.index[~hnw_safe]].assign(reason="email_not_safe_to_send")
    # An empty frame is left out of the concat: pandas warns that it may change the dtypes.
    parts = [f for f in (result.rejected, unsafe_hnw) if not f.empty] or [result.rejected]
    rejected = pd.concat(parts).sort_index(kind="stable")
    result = replace(result, hnw=result.hnw[hnw_safe], destinations=result.destinations[hnw_safe])
    routed = result.routed()
    rejected = rejected.join(rejected_facts(rejected).add_prefix("reason_"))
    routed_rows = sum(len(f) for f in routed.values())
    check_results = checks.enforce(
        [
            checks.cleaned_schema(result.cleaned, rejected),
            checks.rows_conserved(len(raw), len(result.cleaned), len(rejected), routed_rows),
        ]
    )
    with watch.stage("database"):
        routed_before = store.routed_destinations(dsn, slug, month)
        store.write_cleaned_leads(dsn, slug, month, result.cleaned, rejected, routed)
        destination_totals = {}
        for destination in sorted(set(routed) | routed_before):  # a rule dropped: totals shrink
            destination_totals[destination] = _refresh_destination(
                context, dsn, slug, destination, month
            )

    by_reason = rejected["reason"].value_counts().sort_index()
    routed_counts = {d: len(f) for d, f in routed.items()}
    slack.post(
        channel_for(client),
        messages.data_refinement_complete(
            client.name,
            month_key(month),
            len(result.cleaned),
            {str(k): int(v) for k, v in by_reason.items()},
            routed=routed_counts,
        ),
    )
    # The destination hears of its routed leads whichever month runs first: its cleaned leads
    # are written here, by the source (see store.write_cleaned_leads).
    for destination, count in routed_counts.items():
        receiver = registry.get_client(destination, dsn)
        routed_in, status = destination_totals[destination]
        slack.post(
            channel_for(receiver),
            messages.routed_leads_received(
                receiver.name,
                client.name,
                month_key(month),
                count,
                routed_in,
                status.cleaned,
                status.target,
            ),
        )
    return MaterializeResult(
        check_results=check_results,
        metadata={
            "summary": md.summary(
                f"{client.name}, renewal month {month_key(month)}: cleaning",
                {
                    "raw": len(raw),
                    "cleaned": len(result.cleaned),
                    "rejected": len(rejected),
                    "routed to another client": routed_rows,
                    "held by another client": int(by_reason.get("held_by_other_client", 0)),
                },
            ),
            **md.counts(
                {
                    "raw": len(raw),
                    "cleaned": len(result.cleaned),
                    "rejected": len(rejected),
                    "routed": routed_rows,
                    "held_by_other_client": int(by_reason.get("held_by_other_client", 0)),
                }
            ),
            "routed_to": MetadataValue.json(routed_counts),
            "by_reason": md.table(
                by_reason.rename_axis("reason").reset_index(name="rows"), md.REJECTION_REASONS
            ),
            **md.counts(
                {
                    "emails_verified": stats.verified,
                    "emails_from_cache": stats.cached,
                    "verification_credits_used": stats.credits_used,
                }
            ),
            **md.seconds(watch.metadata()),
        },
    )


def _month_totals(
    dsn: str, client: registry.Client, month: date
) -> tuple[dict, dict[str, int], GapStatus]:
    """The month's totals row (monthly_cleaned_leads), its counts and its gap status."""
    counts = store.month_counts(dsn, client.slug, month)
    status = gap_status(counts["cleaned"], client.package_tier, client.target_override)
    row = {
        "client_slug": client.slug,
        "month": month_key(month),
        "client_name": client.name,
        "workspace_name": client.workspace_name,
        "raw_count": counts["raw"],
        "cleaned_count": counts["cleaned"],
        "rejected_count": counts["rejected"],
        "routed_count": counts["routed_out"],
        "routed_in_count": counts["routed_in"],
        "held_by_other_client_count": counts["held_by_other_client"],
        "target_count": status.target,
        "gap": status.gap,
    }
    return row, counts, status


def _totals_metadata(
    client: registry.Client, month: date, counts: dict[str, int], status: GapStatus
) -> dict:
    return {
        "summary": md.summary(
            f"{client.name}, renewal month {month_key(month)}: totals",
            {
                "raw": counts["raw"],
                "cleaned": counts["cleaned"],
                "routed in": counts["routed_in"],
                "target": status.target,
                "gap": status.gap,
                "status": status.status,
            },
        ),
        **md.counts({k: v for k, v in counts.items() if isinstance(v, int)}),
        **md.counts({"target": status.target, "gap": status.gap}),
    }


@asset(
    group_name=GROUP,
    partitions_def=client_month_partitions,
    deps=[cleaned_leads],
    kinds={"postgres"},
    description="PT3 totals: raw, cleaned, rejected and routed counts against the package target. "
    "A high-net-worth destination's month is also materialized by each source's cleaning run that "
    "routes leads to it (after the destination's own run), so its totals follow its leads.",
)
def monthly_cleaned_leads(
    context: AssetExecutionContext, database: PostgresResource
) -> MaterializeResult:
    slug, month, dsn, client = client_month(context, database)
    row, counts, status = _month_totals(dsn, client, month)
    store.write_monthly_totals(dsn, row)
    return MaterializeResult(metadata=_totals_metadata(client, month, counts, status))


def _expected_yields(
    context: AssetExecutionContext,
    config: settings.GapSettings,
    cole: ColeResource,
    dsn: str,
    client: registry.Client,
    month: date,
    assignments: pd.DataFrame,
    counts: dict[str, int],
) -> tuple[dict[str, float], str]:
    """Expected cleaned leads per nearby free ZIP: history when any, else a Cole count query
    times this month's cleaned/raw ratio of the client."""
    candidates = gap_solver.adjacent_candidates(
        client.slug, client.licensed_states, assignments, config.radius_miles, config.max_candidates
    )
    zips = list(candidates["zip"])
    history = store.zip_history(dsn, zips, month)
    if history or not config.cole_count_queries or not zips:
        return history, "ZIP history (cleaned leads in the latest earlier month)"
    ratio = counts["own_cleaned"] / counts["raw"] if counts["raw"] else 0.0
    yields: dict[str, float] = {}
    for state, group in candidates.groupby("state"):
        context.log.info(
            f"{client.slug}: Cole count query for {len(group)} nearby free ZIP(s) in {state}"
        )
        try:
            found = cole.count_each(state, list(group["zip"]), month, progress=context.log.info)
        except ColeError as exc:
            context.log.warning(
                f"{client.slug}: count queries in {state} failed ({type(exc).__name__}); skipped"
            )
            continue
        yields.update({z: n * ratio for z, n in found.items()})
    return yields, f"Cole count query x this month's cleaned/raw ratio ({ratio:.1%})"


# The gap report ranks its proposals by the client's measured yield per ZIP (lead outcomes of
# the renewal months up to its own, six back: outcomes_store.outcomes_until).
yields_to_gap_report = same_client(
    "month", "month", TimeWindowPartitionMapping(start_offset=-OUTCOME_MONTHS_BACK)
)


def _updated(asset: str) -> AutomationCondition:
    """`asset`'s partition the gap report reads was updated (by any run, including another
    client's: a source's cleaning reports its destination's totals)."""
    return AutomationCondition.any_deps_match(AutomationCondition.newly_updated()).allow(
        AssetSelection.assets(asset)
    )


# Numbers that follow the data, without a run by hand: a gap report already made is made again
# when its month's totals change after it (a high-net-worth destination's month whose source
# routed leads to it after the destination's own run), and, for the month being pulled, when the
# ZIP yields it ranks by change. Never for a month not yet reported, never twice at once, never
# again after an automated run failed (the failure alert went out; a run by hand resets it).
# Each `since` resets on the report's own update and compares timestamps, so the report's own
# run (totals, then report) asks for nothing. The two differ in shape: Dagster keys a `since`'s
# cursor by its shape, not by the dependency it allows.
GAP_REPORT_REFRESH = (
    (
        _updated("monthly_cleaned_leads").since(AutomationCondition.newly_updated())
        | (_updated("zip_yield") & AutomationCondition.in_latest_time_window()).since(
            AutomationCondition.newly_updated()
        )
    )
    & ~AutomationCondition.missing()
    & ~AutomationCondition.execution_failed()
    & ~AutomationCondition.any_deps_in_progress()
    & ~AutomationCondition.in_progress()
).with_label("totals or yields changed since the report")
REFRESH_TAG = "homeowner/refresh"  # on the runs the automation condition sensor launches


@asset(
    group_name=GROUP,
    partitions_def=client_month_partitions,
    deps=[
        monthly_cleaned_leads,
        AssetDep(AssetKey("zip_yield"), partition_mapping=yields_to_gap_report),
    ],
    automation_condition=GAP_REPORT_REFRESH,
    kinds={"postgres", "slack"},
    description="PT3 gap report: met / under / below_minimum / over against target and minimum to proceed, and counted "
    "suggestions (ZIP moves, adjacent ZIPs, filter relaxation, surplus); never applied by itself.",
)
def gap_report(
    context: AssetExecutionContext,
    database: PostgresResource,
    cole: ColeResource,
    slack: HomeownerSlackResource,
) -> MaterializeResult:
    slug, month, dsn, client = client_month(context, database)
    try:
        config = settings.gap_settings()
    except ValueError as exc:
        raise needs_fix(
            str(exc), "correct the environment variable, then run `homeowner check`"
        ) from None
    counts = store.month_counts(dsn, slug, month)
    status = gap_status(counts["cleaned"], client.package_tier, client.target_override)
    assignments = store.month_assignments(dsn, month)
    yields: dict[str, float] = {}
    basis = None
    watch = Stopwatch()
    if status.gap > 0:  # under or below_minimum: look for nearby free ZIPs
        with watch.stage("browser"):
            yields, basis = _expected_yields(
                context, config, cole, dsn, client, month, assignments, counts
            )
    rejected = store.rejected_counts(dsn, slug, month)
    month_totals = store.month_totals(dsn, month)
    suggestions = gap_solver.suggest(
        slug,
        status,
        client.licensed_states,
        assignments,
        month_totals,
        rejected,
        yields,
        client.max_home_value,
        client.head_of_household_required,
        config.radius_miles,
        max_candidates=config.max_candidates,
        yield_basis=basis,
        sample_surplus=client.sample_surplus,
        outcomes=(book := yield_book(slug, outcomes_store.outcomes_until(dsn, month))),
    )
    surplus_held = 0
    if status.status == "over" and client.sample_surplus:
        cleaned = store.cleaned_for_sampling(dsn, slug, month)
        surplus = gap_solver.surplus_sample(cleaned, status.target)
        keys = cleaned.loc[surplus.to_numpy(), "dedupe_key"].tolist()
        store.mark_surplus(dsn, slug, month, keys)
        surplus_held = len(keys)
    reasons = gap_solver.missing_reasons(
        slug,
        status,
        client.licensed_states,
        assignments,
        month_totals,
        rejected,
        suggestions,
        config.radius_miles,
    )
    markdown = gap_solver.markdown_report(
        status, suggestions, gap_solver.outcome_note(book), book=book, reasons=reasons
    )
    store.write_gap_report(
        dsn,
        {
            "client_slug": slug,
            "month": month_key(month),
            "status": status.status,
            "cleaned_count": status.cleaned,
            "target_count": status.target,
            "gap": status.gap,
            "minimum_to_proceed": status.minimum_to_proceed,
            "meets_minimum": status.meets_minimum,
            "suggestions": [sg.as_dict() for sg in suggestions],
            "report_markdown": markdown,
            "routed_in_count": counts["routed_in"],
            "held_by_other_client_count": counts["held_by_other_client"],
        },
    )
    held = store.upload_held(dsn, slug, month)
    if context.run.tags.get(REFRESH_TAG):  # the team heard of the change (routed leads) already
        context.log.info(
            f"{slug}: gap report made again after its totals or yields changed; not posted to Slack"
        )
    else:
        _post_gap_analysis(slack, client, month, status, suggestions, held)
    return MaterializeResult(
        metadata={
            "summary": md.summary(
                f"{client.name}, renewal month {month_key(month)}: gap report",
                {
                    "cleaned": status.cleaned,
                    "target": status.target,
                    "gap": status.gap,
                    "status": status.status,
                    "minimum to proceed": status.minimum_to_proceed,
                },
            ),
            "status": MetadataValue.text(status.status),
            **md.counts(
                {
                    "cleaned": status.cleaned,
                    "target": status.target,
                    "gap": status.gap,
                    "suggestions": len(suggestions),
                    "surplus_held_back": surplus_held,
                    "routed_in": counts["routed_in"],
                    "held_by_other_client": counts["held_by_other_client"],
                }
            ),
            "meets_minimum": MetadataValue.bool(bool(status.meets_minimum)),
            "uploads_held": MetadataValue.bool(bool(held)),
            "proposals": md.table(
                md.proposals_frame([sg.as_dict() for sg in suggestions]), md.GAP_PROPOSALS
            ),
            "settings": MetadataValue.text(
                f"Cole count queries {'on' if config.cole_count_queries else 'off'}, radius "
                f"{config.radius_miles:g} mi, {config.max_candidates} candidates (deployment settings)"
            ),
            "ranked_by": MetadataValue.text(
                "expected interested replies" if book is not None else "leads (no outcome data yet)"
            ),
            "report": MetadataValue.md(markdown),
            **md.seconds(watch.metadata()),
        }
    )


def _post_gap_analysis(
    slack: HomeownerSlackResource,
    client: registry.Client,
    month: date,
    status: GapStatus,
    suggestions: list,
    held: str | None,
) -> None:
    slack.post(
        channel_for(client),
        messages.gap_analysis(
            client.name,
            month_key(month),
            status.cleaned,
            status.target,
            status.gap,
            status.status,
            gap_solver.slack_summary(suggestions),
            minimum=status.minimum_to_proceed,
            suggestion_zips=suggestion_zip_lines(suggestions),
            held_until_approved=held,
        ),
    )
