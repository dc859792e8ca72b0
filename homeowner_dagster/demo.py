"""`homeowner demo`: three demo clients and a high-net-worth client through the whole pipeline
on the sandbox (Lone Star's Texas homes above $900,000 are routed to the high-net-worth client).

Runs through Dagster itself (jobs executed against the project's instance on the embedded
PostgreSQL), so `homeowner dev --sandbox` shows the runs afterwards. The sandbox's Email Bison
state is kept in `.homeowner/sandbox/` between invocations, so a second demo finds its lists and
uploads nothing new. `--today D` sets Dagster's clock (its partitions reach M+2 of D) and moves
the sandbox's clock on to D: a demo a year after another in the same folder is the agency's
second year (homeowners already in the Evergreen campaign, new lists, titles moved on).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime
from datetime import time as dtime
from pathlib import Path
from zoneinfo import ZoneInfo

import pandas as pd

from homeowner_dagster import db, migrate, registry, settings, store
from homeowner_dagster.leads.calendar import add_months, month_key, windows_of_month
from homeowner_dagster.leads.territories import parse_clients, parse_hnw_rules, parse_zip_sheet

DEMO_CLIENTS_YAML = """
clients:
  - slug: garden-state
    name: Garden State Insurance
    workspace: Garden State Insurance
    bison_token_env: BISON_TOKEN_GARDEN_STATE_INSURANCE
    package_tier: 100
    licensed_states: [NJ]
    slack_channel: "#garden-state"
  - slug: lone-star
    name: Lone Star Agency
    workspace: Lone Star Agency
    bison_token_env: BISON_TOKEN_LONE_STAR_AGENCY
    package_tier: 200
    licensed_states: [TX]
    slack_channel: "#lone-star"
  - slug: sunshine
    name: Sunshine Coverage
    workspace: Sunshine Coverage
    bison_token_env: BISON_TOKEN_SUNSHINE_COVERAGE
    package_tier: 100
    licensed_states: [FL]
    slack_channel: "#sunshine"
  - slug: agency-hnw
    name: Agency High Net Worth
    workspace: Agency HNW
    bison_token_env: BISON_TOKEN_AGENCY_HNW
    package_tier: 100
    licensed_states: [TX]
    slack_channel: "#hnw"
    campaign_name: HNW Evergreen
hnw_routing:
  - name: texas-hnw
    destination: agency-hnw
    source_states: [TX]
    source_clients: [lone-star]
    threshold: 900000
"""
# The high-net-worth client's Evergreen campaign is titled after its `campaign_name`.
DEMO_CAMPAIGN_NAMES: dict[str, str] = {"agency-hnw": "HNW Evergreen"}

# ZIPs per demo client: (state, how many ordinary ZIPs). Small enough for a few minutes' run.
DEMO_TERRITORIES: dict[str, tuple[str, int]] = {
    "garden-state": ("NJ", 10),
    "lone-star": ("TX", 10),
    "sunshine": ("FL", 8),
}


# Runs log to the instance (the UI shows every line); the terminal gets warnings only.
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


# Run config of the demo's monthly runs: logging only. Settings that change results (the gap
# report's Cole count queries, radius, candidates) come from the environment, as for every run.
MONTHLY_RUN_CONFIG = QUIET


@dataclass
class StageClock:
    """Wall time per stage, for the demo's closing table and the benchmark."""

    seconds: dict[str, float] = field(default_factory=dict)

    def add(self, stage: str, took: float) -> None:
        self.seconds[stage] = self.seconds.get(stage, 0.0) + took


def demo_month(today: date) -> date:
    """The renewal month the 15th of this month pulls (M+2)."""
    return add_months(today.replace(day=1), 2)


def sources_first(clients: list[str]) -> list[str]:
    """The demo's clients with each high-net-worth destination after its sources: a destination's
    month then counts the leads routed to it when its totals and gap report are made (run first,
    its printed gap report would still say 0 cleaned)."""
    destinations = set(parse_hnw_rules(DEMO_CLIENTS_YAML, "demo.yaml")["destination_client"])
    return sorted(clients, key=lambda slug: slug in destinations)


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def demo_slack_channels(existing: str | None = None) -> str:
    """HOMEOWNER_SLACK_CHANNELS with the demo clients' channels added (the sandbox's Slack)."""
    channels = parse_clients(DEMO_CLIENTS_YAML, "demo.yaml")["slack_channel"].dropna()
    listed = [c.strip() for c in (existing or "").split(",") if c.strip()]
    return ",".join(dict.fromkeys([*listed, *channels]))


def load_demo_registry(dsn: str, month: date) -> None:
    """Demo clients and their ZIP territories (idempotent)."""
    from homeowner_dagster.sandbox.generator import demo_zips

    registry.upsert_clients(parse_clients(DEMO_CLIENTS_YAML, "demo.yaml"), dsn)
    registry.upsert_hnw_rules(parse_hnw_rules(DEMO_CLIENTS_YAML, "demo.yaml"), dsn)
    lines = ["Zipcode,Territory,Color"]
    for slug, (state, count) in DEMO_TERRITORIES.items():
        lines += [f"{z},{slug}," for z in demo_zips(state, count)]
    sheet = parse_zip_sheet("\n".join(lines) + "\n")
    registry.import_zips(sheet, month_key(month), dsn)


def bison_snapshot(bison: object) -> dict[str, object]:
    """The sandbox Bison's workspaces, lists and campaigns as JSON (kept between demos)."""
    bison.settle_all()  # type: ignore[attr-defined]  # imports and syncs due by its clock
    return {
        "workspaces": [
            {
                "workspace_id": ws.workspace_id,
                "name": ws.name,
                "token": ws.token,
                "custom_variables": ws.custom_variables,
                "leads": ws.leads,
                "lead_lists": list(ws.lead_lists.values()),
                "campaigns": list(ws.campaigns.values()),
            }
            for ws in bison.workspaces.values()  # type: ignore[attr-defined]
        ],
        "outcomes": bison.outcomes.snapshot(),  # type: ignore[attr-defined]
    }


def bison_restore(bison: object, data: dict[str, object]) -> None:
    """Put a snapshot back, so lists uploaded by an earlier demo are found by name."""
    import itertools

    from homeowner_dagster.sandbox.bison import Workspace

    highest = 0
    for item in data.get("workspaces", []):  # type: ignore[union-attr]
        ws = Workspace(item["workspace_id"], item["name"], item["token"])
        ws.custom_variables = dict(item["custom_variables"])
        ws.leads = dict(item["leads"])
        ws.lead_lists = {int(lst["id"]): lst for lst in item["lead_lists"]}
        ws.campaigns = {int(c["id"]): c for c in item["campaigns"]}
        for c in ws.campaigns.values():  # a snapshot from before the campaign kept its leads
            attached = (
                e
                for i in c.get("lead_list_ids", [])
                for e in ws.lead_lists.get(int(i), {}).get("lead_emails", [])
            )
            c.setdefault("lead_emails", list(dict.fromkeys(attached)))
            c.setdefault("syncing", [])
        bison.workspaces[ws.name] = ws  # type: ignore[attr-defined]
        ids = [
            ws.workspace_id,
            *ws.lead_lists,
            *ws.campaigns,
            *(int(lead["id"]) for lead in ws.leads.values()),
        ]
        highest = max([highest, *ids])
    bison._ids = itertools.count(highest + 1)  # type: ignore[attr-defined]
    bison.outcomes.restore(data.get("outcomes") or {})  # type: ignore[attr-defined, union-attr]


def prepare_bison(
    sandbox: object, state_file: Path, month: date, today: date | None = None
) -> None:
    """Workspaces and Evergreen campaigns of the demo clients, restored from the last demo."""
    from homeowner_dagster.sandbox.bison import DEMO_IMPORT_SECONDS

    bison = sandbox.bison  # type: ignore[attr-defined]
    bison.import_seconds = DEMO_IMPORT_SECONDS  # Bison's queued import takes a moment
    if state_file.exists():
        bison_restore(bison, json.loads(state_file.read_text()))
    if today is not None:
        _move_sandbox_clock_to(bison, today)
    previous = windows_of_month(add_months(month, -1))[-1]
    for client in parse_clients(DEMO_CLIENTS_YAML, "demo.yaml").itertuples():
        if client.workspace_name not in bison.workspaces:
            token = f"sandbox-bison-{client.slug}-demo"
            bison.add_workspace(client.workspace_name, token)
            name = DEMO_CAMPAIGN_NAMES.get(client.slug, "Evergreen")
            bison.add_campaign(
                client.workspace_name, previous.evergreen_title.replace("Evergreen", name, 1)
            )


def run_demo(
    today: date | None = None, progress: Callable[[str], None] = _say, weeks: int = 6
) -> dict[str, object]:
    """The whole pipeline for the demo clients; returns the closing summary.

    With `weeks` > 0 the four windows go out one Monday at a time; every Monday each client's
    campaigns are read (new replies only) and the sandbox's clock then moves a week, for `weeks`
    weeks in all; then each client's ZIP yield and its gap report, ranked by expected interested
    replies, are redone.
    """
    clock = StageClock()
    today = today or date.today()
    month = demo_month(today)
    with demo_clock(today):
        return _run_demo(today, month, clock, progress, weeks)


@contextmanager
def demo_clock(today: date) -> Iterator[None]:
    """Dagster's clock at 09:00 Chicago on `today` for the demo's runs (the partitions exist up
    to M+2 of it, and PT5 reads a title's year from it), as the tests move it."""
    from dagster._core.test_utils import freeze_time

    from homeowner_dagster.partitions import TIMEZONE

    with freeze_time(datetime.combine(today, dtime(9), ZoneInfo(TIMEZONE))):
        yield


def _run_demo(
    today: date, month: date, clock: StageClock, progress: Callable[[str], None], weeks: int
) -> dict[str, object]:
    from dagster import DagsterInstance

    from homeowner_dagster.partitions import client_month_key, client_partitions, client_window_key
    from homeowner_dagster.sandbox import Sandbox

    home = settings.home_dir()
    sandbox_dir = home / "sandbox"
    sandbox_dir.mkdir(parents=True, exist_ok=True)

    started = time.perf_counter()
    dsn = db.database_url()
    migrate.migrate(dsn)
    clock.add("database setup", time.perf_counter() - started)

    with Sandbox() as sandbox, _bison_waits_on(sandbox, today):
        state_file = sandbox_dir / "bison.json"
        prepare_bison(sandbox, state_file, month, today)
        os.environ.update(sandbox.env())
        os.environ[registry.SLACK_CHANNELS_ENV] = demo_slack_channels(
            os.environ.get(registry.SLACK_CHANNELS_ENV)
        )
        os.environ.setdefault("HOMEOWNER_ARTIFACTS_DIR", str(home / "artifacts"))
        load_demo_registry(dsn, month)
        clients = sources_first([c.slug for c in registry.load_clients(dsn)])
        dagster_home = home / "dagster"
        dagster_home.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(settings.project_root() / "dagster.yaml", dagster_home / "dagster.yaml")
        os.environ[settings.DAGSTER_STORAGE_URL_ENV] = db.dagster_storage_url(dsn)
        os.environ["DAGSTER_HOME"] = str(dagster_home)

        from homeowner_dagster.definitions import build_definitions

        defs = build_definitions()  # resources read this sandbox's URLs from the environment

        instance = DagsterInstance.get()
        try:
            existing = set(instance.get_dynamic_partitions(client_partitions.name))
            missing = [c for c in clients if c not in existing]
            if missing:
                instance.add_dynamic_partitions(client_partitions.name, missing)
            monthly = defs.resolve_job_def("monthly_pull")
            weekly = defs.resolve_job_def("weekly_upload")
            new_uploads = {c: 0 for c in clients}
            same_owner = {
                c: 0 for c in clients
            }  # cleaned, not uploaded: the owner's email is in the list
            for slug in clients:
                progress(
                    f"[monthly] {slug} {month_key(month)}: Cole pull, cleaning, totals, gap report"
                )
                began = time.perf_counter()
                result = monthly.execute_in_process(
                    instance=instance,
                    partition_key=client_month_key(slug, month),
                    run_config=MONTHLY_RUN_CONFIG,
                    raise_on_error=True,
                )
                clock.add("monthly runs (wall)", time.perf_counter() - began)
                _record(dsn, result)
                _add_stages(clock, result)
            windows = windows_of_month(month)
            # One Monday a week: that week's window goes out for every client, then (with
            # outcomes) each client's campaigns are read; the sandbox clock then moves a week.
            mondays = max(len(windows), weeks + 1) if weeks > 0 else 1
            for monday in range(mondays):
                due = windows[monday : monday + 1] if weeks > 0 else windows
                if weeks > 0 and monday == weeks and monday < len(windows):
                    due = windows[monday:]  # fewer weeks than windows: the rest go out now
                for window in due:
                    for slug in clients:
                        progress(
                            f"[weekly] {slug} {window.list_name}: Bison list, Evergreen campaign"
                        )
                        began = time.perf_counter()
                        result = weekly.execute_in_process(
                            instance=instance,
                            partition_key=client_window_key(slug, window),
                            run_config=QUIET,
                            raise_on_error=True,
                        )
                        clock.add("weekly runs (wall)", time.perf_counter() - began)
                        _record(dsn, result)
                        _add_stages(clock, result)
                        for event in result.get_asset_materialization_events():
                            mat = event.event_specific_data.materialization
                            value = mat.metadata.get("uploaded_now")
                            if value is not None:
                                new_uploads[slug] += int(value.value)
                            shared = mat.metadata.get("same_owner_other_home")
                            if shared is not None:
                                same_owner[slug] += int(shared.value)
                if weeks > 0:
                    _read_outcomes(defs, instance, clients, clock, progress, monday)
                    if monday < weeks:
                        sandbox.bison.outcomes.advance(weeks=1)
                        progress(
                            f"[sandbox] Email Bison's clock moves a week on (week {monday + 1} of {weeks})"
                        )
                if weeks > 0 and monday >= weeks and monday >= len(windows) - 1:
                    break
            if weeks > 0:
                _yield_and_gap(defs, instance, clients, month, clock, progress)
        finally:
            instance.dispose()
            state_file.write_text(json.dumps(bison_snapshot(sandbox.bison)))
    summary = _summary(dsn, month, clients, new_uploads, same_owner)
    runs = clock.seconds.get("monthly runs (wall)", 0.0) + clock.seconds.get(
        "weekly runs (wall)", 0.0
    )
    measured = sum(clock.seconds.get(k, 0.0) for k in ("browser", "cleaning", "database", "api"))
    clock.seconds["dagster overhead"] = max(0.0, runs - measured)
    summary["stage_seconds"] = {k: round(v, 2) for k, v in clock.seconds.items()}
    return summary


@contextmanager
def _bison_waits_on(sandbox: object, today: date) -> Iterator[None]:
    """The sandbox clock moved on to `today` (never back), and the connector's waits for Bison
    (the attach's 5-minute sync) moving it instead of sleeping, for the demo's runs."""
    from homeowner_dagster.resources import bison as bison_resource

    bison = sandbox.bison  # type: ignore[attr-defined]
    waiting = bison_resource.pause
    bison_resource.pause = bison.advance
    try:
        yield
    finally:
        bison_resource.pause = waiting


def _move_sandbox_clock_to(bison: object, today: date) -> None:
    """After the last demo's state is back: its clock on to `today` 09:00 Chicago, never back."""
    from homeowner_dagster.partitions import TIMEZONE

    ahead = datetime.combine(today, dtime(9), ZoneInfo(TIMEZONE)) - bison.now()  # type: ignore[attr-defined]
    if ahead.total_seconds() > 0:
        bison.advance(ahead.total_seconds())  # type: ignore[attr-defined]


def _read_outcomes(
    defs: object,
    instance: object,
    clients: list[str],
    clock: StageClock,
    progress: Callable[[str], None],
    monday: int,
) -> None:
    """The Monday read: each client's campaigns, new replies only (from the stored cursor)."""
    dsn = db.database_url()
    began = time.perf_counter()
    for slug in clients:
        if not store.attached_campaigns(dsn, slug):
            continue
        result = defs.resolve_job_def("outcomes_weekly").execute_in_process(  # type: ignore[attr-defined]
            instance=instance, partition_key=slug, run_config=QUIET
        )
        _record(dsn, result)
        meta = result.get_asset_materialization_events()[
            0
        ].event_specific_data.materialization.metadata
        progress(
            f"[outcomes] week {monday}: {slug}: {meta['new_replies'].value} new replies, "
            f"{meta['api_requests'].value} requests"
        )
    clock.add("outcome runs (wall)", time.perf_counter() - began)


def _yield_and_gap(
    defs: object,
    instance: object,
    clients: list[str],
    month: date,
    clock: StageClock,
    progress: Callable[[str], None],
) -> None:
    """Each client's ZIP yield, then the gap report again, ranked by expected interested replies."""
    from dagster import AssetKey

    from homeowner_dagster.partitions import client_month_key

    dsn = db.database_url()
    began = time.perf_counter()
    for slug in clients:
        progress(
            f"[outcomes] {slug} {month_key(month)}: yield per ZIP, gap report ranked by interest"
        )
        for job, config in (("outcomes_monthly", QUIET), ("monthly_pull", MONTHLY_RUN_CONFIG)):
            result = defs.resolve_job_def(job).execute_in_process(  # type: ignore[attr-defined]
                instance=instance,
                partition_key=client_month_key(slug, month),
                run_config=config,
                asset_selection=[AssetKey("gap_report")] if job == "monthly_pull" else None,
            )
            _record(dsn, result)
    clock.add("outcome runs (wall)", time.perf_counter() - began)


def _add_stages(clock: StageClock, result: object) -> None:
    """Add each step's browser / cleaning / database / API seconds (from its metadata)."""
    for event in result.get_asset_materialization_events():  # type: ignore[attr-defined]
        for key, value in event.event_specific_data.materialization.metadata.items():
            if key.startswith("seconds_"):
                clock.add(key.removeprefix("seconds_"), float(value.value))


def _record(dsn: str, result: object) -> None:
    from homeowner_dagster.sensors import mirror_run

    run = result.dagster_run  # type: ignore[attr-defined]
    mirror_run(dsn, run, "success" if result.success else "failure")  # type: ignore[attr-defined]


def _summary(
    dsn: str,
    month: date,
    clients: list[str],
    new_uploads: dict[str, int],
    same_owner: dict[str, int],
) -> dict[str, object]:
    m = month_key(month)
    with db.connect(dsn) as conn:
        totals = db.read_frame(
            conn,
            "select c.slug, coalesce(t.raw_count, 0) as raw, coalesce(t.cleaned_count, 0) as cleaned, "
            "coalesce(t.target_count, 0) as target, coalesce(t.gap, 0) as gap, "
            "coalesce((select sum(lead_count) from client_lead_batches b where b.client_slug = c.slug and b.month = %s), 0) as uploaded, "
            "coalesce((select sum(leads_returning) from client_lead_batches b where b.client_slug = c.slug and b.month = %s), 0) as returning, "
            "(select count(*) filter (where o.replied) from lead_outcomes o where o.client_slug = c.slug and o.month = %s) as replies, "
            "(select count(*) filter (where o.interested) from lead_outcomes o where o.client_slug = c.slug and o.month = %s) as interested, "
            "(select count(*) from cleaned_leads r where r.client_slug = c.slug and r.month = %s "
            " and r.routed_from is not null) as routed_in, "
            "(select g.report_markdown from gap_reports g where g.client_slug = c.slug and g.month = %s) as gap_report "
            "from clients c left join monthly_cleaned_leads t on t.client_slug = c.slug and t.month = %s "
            "where c.slug = any(%s) order by c.slug",
            [m, m, m, m, m, m, m, clients],
        )
    rows = [
        {
            "client": r.slug,
            "raw": int(r.raw),
            "cleaned": int(r.cleaned),
            "uploaded": int(r.uploaded),
            "new_uploads": int(new_uploads.get(r.slug, 0)),
            "same_owner": int(same_owner.get(r.slug, 0)),
            "returning": int(r.returning),  # already in the campaign from an earlier year
            "replies": int(r.replies),
            "interested": int(r.interested),
            "routed_in": int(r.routed_in),
        }
        for r in totals.itertuples()
    ]
    table = pd.DataFrame(rows).assign(target=list(totals["target"]), gap=list(totals["gap"]))
    reports = {r.slug: r.gap_report or "" for r in totals.itertuples()}
    return {"month": m, "clients": rows, "table": table, "gap_reports": reports}
