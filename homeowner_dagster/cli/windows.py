"""`homeowner windows`: every renewal window of a client with its state; `force` uploads one now.

States come from the Bison ledger (pending -> list_created -> list_verified -> attached -> done).
`force` runs the weekly upload for one window through Dagster, recorded in the project's
instance (so the UI shows the run), whatever the schedule thinks: the way to finish a window the
schedule reported as missed.
"""

from __future__ import annotations

import argparse
import os
from datetime import date

from homeowner_dagster import db, registry, settings, store
from homeowner_dagster.cli import CommandError
from homeowner_dagster.leads.calendar import RenewalWindow, parse_month, windows_of_month


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "windows",
        help="list a client's renewal windows with their state, or force one (`windows force`)",
        description="Without an action: one line per renewal window of the client (pulled months "
        "and every window in the ledger) with its state.",
    )
    p.add_argument("--client", help="client slug (required)")
    p.set_defaults(handler=run_list)
    actions = p.add_subparsers(dest="action", metavar="ACTION")
    force = actions.add_parser(
        "force", help="run the weekly upload (PT4-PT5) of one window now, e.g. a missed one"
    )
    force.add_argument("--client", default=argparse.SUPPRESS, help="client slug")
    force.add_argument("--window", required=True, help="first day of the window, YYYY-MM-DD")
    force.set_defaults(handler=run_force)


def _database() -> str:
    from homeowner_dagster.cli.database import _ready_database

    return _ready_database()


def _client(slug: str | None, url: str) -> registry.Client:
    if not slug:
        raise CommandError("--client is required (a client slug; see `homeowner clients list`)")
    try:
        return registry.get_client(slug, url)
    except LookupError:
        raise CommandError(f"no client {slug!r}; see `homeowner clients list`") from None


def window_table(url: str, slug: str) -> list[dict[str, object]]:
    """Ledger rows, plus `pending` for windows of pulled months that have none yet."""
    rows = {r["window_start"]: r for r in store.client_windows(url, slug).to_dict("records")}
    for month in store.months_with_cleaned_leads(url, slug):
        for window in windows_of_month(parse_month(month)):
            rows.setdefault(window.start, {"window_start": window.start, "status": "pending", "list_name": window.list_name})
    return [rows[k] for k in sorted(rows)]


def run_list(args: argparse.Namespace) -> int:
    url = _database()
    _client(args.client, url)
    table = window_table(url, args.client)
    if not table:
        print(f"{args.client}: no renewal month pulled yet, no window in the ledger")
        return 0
    print(f"{'window':<11} {'state':<14} {'leads':>6}  {'list id':<8} list / missed")
    for r in table:
        leads = r.get("lead_count")
        missed = r.get("missed_reported_at")
        note = " (reported missed)" if missed is not None and str(missed) != "NaT" and r["status"] != "done" else ""
        list_id = r.get("bison_list_id")
        print(
            f"{r['window_start'].isoformat():<11} {r['status']:<14} "
            f"{'' if leads is None or str(leads) == 'nan' else int(leads):>6}  "
            f"{'' if list_id is None or str(list_id) == 'nan' else list_id:<8} {r['list_name']}{note}"
        )
    return 0


def _window(text: str) -> RenewalWindow:
    try:
        return RenewalWindow.starting(date.fromisoformat(text))
    except ValueError as exc:
        raise CommandError(f"--window: {exc}") from None


def run_force(args: argparse.Namespace) -> int:
    from dagster import DagsterInstance

    from homeowner_dagster.cli import second_shell
    from homeowner_dagster.definitions import build_definitions
    from homeowner_dagster.partitions import client_partitions, client_window_key

    window = _window(args.window)
    if not args.client:
        raise CommandError("--client is required (a client slug; see `homeowner clients list`)")
    url = _database()
    client = _client(args.client, url)
    second_shell.use_running_sandbox()  # beside `homeowner dev --sandbox`: its services
    second_shell.require(
        ["SLACK_BOT_TOKEN", client.bison_token_env, None if client.bison_instance_url else "BISON_INSTANCE_URL"]
    )
    if not os.environ.get("DAGSTER_HOME"):
        from homeowner_dagster.cli.database import dagster_environment

        os.environ.update({k: v for k, v in dagster_environment(url).items() if k not in os.environ or k == "DAGSTER_HOME"})
    os.environ.setdefault(settings.DAGSTER_STORAGE_URL_ENV, db.dagster_storage_url(url))
    with DagsterInstance.get() as instance:
        if not instance.has_dynamic_partition(client_partitions.name, client.slug):
            instance.add_dynamic_partitions(client_partitions.name, [client.slug])
        result = build_definitions().resolve_job_def("weekly_upload").execute_in_process(
            instance=instance,
            partition_key=client_window_key(client.slug, window),
            tags={"client": client.slug, "forced": "true", "late": "true"},
            # The run's own log (and any stack trace) is in the instance: the UI shows it.
            run_config={"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}},
            raise_on_error=False,
        )
        skipped = instance.get_run_by_id(result.run_id).tags.get("homeowner/skipped")
    row = store.ledger_row(url, client.slug, window)
    state = row["status"] if row else "pending"
    print(f"{client.slug} {window.list_name}: run {result.run_id} {'succeeded' if result.success else 'failed'}; state {state}")
    if skipped:
        print(f"skipped: {skipped}")
    if not result.success:
        for event in result.all_events:
            data = event.step_failure_data if event.is_step_failure else None
            if data and data.user_failure_data and data.user_failure_data.description:
                raise CommandError(data.user_failure_data.description.splitlines()[0])
            if data and data.error:
                raise CommandError(data.error.message.strip().splitlines()[0])
        raise CommandError(f"run {result.run_id} failed; see it in the Dagster UI")
    return 0
