"""`homeowner windows`: every renewal window of a client with its state; `force` uploads one now.

States come from the Bison ledger (pending -> list_created -> list_verified -> attached -> done),
and `not pulled`, `held` or `missed` where that is what stops a window (`leads.window_states`).
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
from homeowner_dagster.leads.calendar import RenewalWindow
from homeowner_dagster.windows_ledger import client_window_states


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "windows",
        help="list a client's renewal windows with their state, or force one (`windows force`)",
        description="Without an action: one line per renewal window of the client (pulled months, "
        "months not pulled since its first, every window in the ledger) with its state.",
    )
    p.add_argument("--client", help="client slug (required)")
    p.set_defaults(handler=run_list)
    actions = p.add_subparsers(dest="action", metavar="ACTION")
    _window_action(
        actions,
        "force",
        run_force,
        "run the weekly upload (PT4-PT5) of one window now, e.g. a missed one",
    )
    accept = _window_action(
        actions,
        "accept",
        run_accept,
        "go on without the rows Bison refused in a window's list (the next run verifies it)",
    )
    accept.add_argument(
        "--by", default=os.environ.get("USER", "operator"), help="who accepts (recorded)"
    )
    _window_action(
        actions,
        "forget-list",
        run_forget,
        "forget a window's Bison list that was refused or deleted in Bison (the next run uploads anew)",
    )


def _window_action(
    actions: argparse._SubParsersAction, name: str, handler: object, help_text: str
) -> argparse.ArgumentParser:
    """An action on one window of one client (`--client`, `--window`)."""
    action = actions.add_parser(name, help=help_text)
    action.add_argument("--client", default=argparse.SUPPRESS, help="client slug")
    action.add_argument("--window", required=True, help="first day of the window, YYYY-MM-DD")
    action.set_defaults(handler=handler)
    return action


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
    """The client's windows with their whole state (`leads.window_states`: the UI shows the same)."""
    from homeowner_dagster.partitions import today

    return client_window_states(url, slug, today()).to_dict("records")


def run_list(args: argparse.Namespace) -> int:
    url = _database()
    _client(args.client, url)
    table = window_table(url, args.client)
    if not table:
        print(f"{args.client}: no renewal month pulled yet, no window in the ledger")
        return 0
    print(f"{'window':<11} {'state':<14} {'leads':>6}  {'list id':<8} list / missed / way forward")
    for r in table:
        leads, list_id = _value(r.get("lead_count")), _value(r.get("bison_list_id"))
        note = (
            " (reported missed)"
            if _value(r.get("missed_reported_at")) is not None and r["state"] != "done"
            else ""
        )
        print(
            f"{r['window_start'].isoformat():<11} {r['state']:<14} "
            f"{'' if leads is None else int(leads):>6}  "
            f"{'' if list_id is None else list_id:<8} {r['list_name']}{note}"
        )
        if (step := way_forward(args.client, r)) is not None:
            print(f"{'':<11} -> {step}")
    return 0


def _value(value: object) -> object:
    """A ledger value, None when unset (NaN, NaT)."""
    return None if value is None or str(value) in ("nan", "NaT", "None") else value


def way_forward(slug: str, row: dict[str, object]) -> str | None:
    """What a person does for a window stopped where no run can go on by itself."""
    refused = _value(row.get("refused_rows"))
    if (
        row.get("ledger_state") == "list_created"
        and refused
        and _value(row.get("refused_accepted_at")) is None
    ):
        window = f"--client {slug} --window {row['window_start'].isoformat()}"  # type: ignore[union-attr]
        return (
            f"Bison refused {int(refused)} row(s): `homeowner windows accept {window}` goes on without "  # type: ignore[call-overload]
            f"them, or fix them and `homeowner windows forget-list {window}` to upload the list anew"
        )
    return None


def run_accept(args: argparse.Namespace) -> int:
    window = _window(args.window)
    url = _database()
    client = _client(args.client, url)
    accepted = store.accept_refused(url, client.slug, window, args.by)
    if accepted is None:
        raise CommandError(
            f"{client.slug} {window.key}: Bison refused no row of this window's list"
        )
    print(
        f"{client.slug} {window.list_name}: going on without the {accepted['refused_rows']} refused row(s) "
        f"(accepted by {args.by}); the next run verifies the list. Now: homeowner windows force "
        f"--client {client.slug} --window {window.key}"
    )
    return 0


def run_forget(args: argparse.Namespace) -> int:
    window = _window(args.window)
    url = _database()
    client = _client(args.client, url)
    forgotten = store.forget_list(url, client.slug, window)
    if forgotten is None:
        raise CommandError(
            f"{client.slug} {window.key}: only a window in state list_created (a list not verified) "
            "can forget its list"
        )
    print(
        f"{client.slug} {window.list_name}: Bison list {forgotten} forgotten (delete it in Bison if it is "
        f"still there); the next run uploads the window anew. Now: homeowner windows force "
        f"--client {client.slug} --window {window.key}"
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
        [
            "SLACK_BOT_TOKEN",
            client.bison_token_env,
            None if client.bison_instance_url else "BISON_INSTANCE_URL",
        ]
    )
    if not os.environ.get("DAGSTER_HOME"):
        from homeowner_dagster.cli.database import dagster_environment

        os.environ.update(
            {
                k: v
                for k, v in dagster_environment(url).items()
                if k not in os.environ or k == "DAGSTER_HOME"
            }
        )
    os.environ.setdefault(settings.DAGSTER_STORAGE_URL_ENV, db.dagster_storage_url(url))
    with DagsterInstance.get() as instance:
        if not instance.has_dynamic_partition(client_partitions.name, client.slug):
            instance.add_dynamic_partitions(client_partitions.name, [client.slug])
        result = (
            build_definitions()
            .resolve_job_def("weekly_upload")
            .execute_in_process(
                instance=instance,
                partition_key=client_window_key(client.slug, window),
                tags={"client": client.slug, "forced": "true", "late": "true"},
                # The run's own log (and any stack trace) is in the instance: the UI shows it.
                run_config={"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}},
                raise_on_error=False,
            )
        )
        skipped = instance.get_run_by_id(result.run_id).tags.get("homeowner/skipped")
    row = store.ledger_row(url, client.slug, window)
    state = row["status"] if row else "pending"
    print(
        f"{client.slug} {window.list_name}: run {result.run_id} {'succeeded' if result.success else 'failed'}; state {state}"
    )
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
