"""`homeowner check`: is this machine ready to run the pipeline for the active clients?

It reports which environment variables are missing (by name only: no value is ever printed),
whether the database is reachable and migrated, whether row-level security is on for every table
of `public` and Dagster's tables are in their own schema, and whether Chromium starts.
`homeowner preflight` reuses the database part. Exit status 0
when everything is in place, 1 when anything is missing.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from homeowner_dagster import registry, settings

CHROMIUM_ARGS = settings.CHROMIUM_ARGS
DEFAULT_CHROMIUM = "/usr/bin/chromium"


@dataclass(frozen=True)
class CheckItem:
    """One line of the report. `detail` says why or for whom; it never holds a secret's value."""

    item: str
    ok: bool
    detail: str = ""


@dataclass(frozen=True)
class ActiveClient:
    """What `check` needs to know of a client (a subset of `registry.Client`)."""

    slug: str
    licensed_states: tuple[str, ...]
    bison_token_env: str | None
    bison_instance_url: str | None


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "check",
        help="report missing environment variables, database state and whether Chromium starts",
        description="Prints one line per item (ok or missing) without printing any value; "
        "exits 1 when anything is missing.",
    )
    p.add_argument(
        "--chromium-timeout", type=float, default=30.0, help="seconds to wait for Chromium"
    )
    p.set_defaults(handler=run)


def _present(environ: Mapping[str, str], name: str) -> bool:
    return bool((environ.get(name) or "").strip())


def _needed_by(needs: dict[str, list[str]], name: str, who: str) -> None:
    users = needs.setdefault(name, [])
    if who not in users:
        users.append(who)


def environment_items(
    clients: Iterable[ActiveClient], environ: Mapping[str, str] | None = None
) -> list[CheckItem]:
    """One item per environment variable the active clients and the deployment need."""
    environ = os.environ if environ is None else environ
    needs: dict[str, list[str]] = {}
    problems: list[CheckItem] = []
    for client in clients:
        for state in client.licensed_states:
            for part in ("USERNAME", "PASSWORD"):
                _needed_by(needs, f"COLE_{state.upper()}_{part}", client.slug)
        if client.bison_token_env:
            _needed_by(needs, client.bison_token_env, client.slug)
        else:
            problems.append(
                CheckItem(f"{client.slug}: Bison token variable", False, "not set in the registry")
            )
        if not client.bison_instance_url:
            _needed_by(needs, "BISON_INSTANCE_URL", client.slug)
        refused = registry.bison_destination_problem(
            client.bison_instance_url or environ.get("BISON_INSTANCE_URL"), client.bison_token_env, environ
        )
        if refused:
            problems.append(CheckItem(f"{client.slug}: Bison destination", False, refused))
    if environ.get(registry.SANDBOX_ORIGINS_ENV):
        problems.append(
            CheckItem(registry.SANDBOX_ORIGINS_ENV, False, "set: the sandbox's, never in production; unset it")
        )
    backend = (environ.get("HOMEOWNER_EMAIL_BACKEND") or "debounce").strip().lower()
    if backend == "clay":
        for name in ("CLAY_WEBHOOK_URL", "CLAY_API_KEY", "CLAY_TABLE_ID"):
            _needed_by(needs, name, "email verification (clay)")
    else:
        _needed_by(needs, "DEBOUNCE_API_KEY", "email verification")
    _needed_by(needs, "SLACK_BOT_TOKEN", "Slack alerts and reports")
    if (environ.get("HOMEOWNER_ARTIFACTS_BACKEND") or "").strip().lower() == "supabase":
        for name in ("SUPABASE_URL", "SUPABASE_SERVICE_ROLE_KEY"):
            _needed_by(needs, name, "artifacts (supabase)")
    items = [
        CheckItem(name, _present(environ, name), "for " + ", ".join(users))
        for name, users in needs.items()
    ]
    return items + problems


def database_items() -> tuple[list[CheckItem], list[ActiveClient] | None]:
    """Reachable? Migrated? And the active clients, when the registry can be read."""
    from homeowner_dagster import db, migrate, registry

    configured = bool(os.environ.get(settings.DATABASE_URL_ENV))
    label = "database" if configured else "database (embedded, HOMEOWNER_DATABASE_URL not set)"
    try:
        url = db.database_url()
        pending = migrate.pending(url)
    except Exception as exc:  # the message may hold the URL and its password: class name only
        return [CheckItem(f"{label} reachable", False, exc.__class__.__name__)], None
    items = [CheckItem(f"{label} reachable", True)]
    if pending:
        items.append(CheckItem("database migrated", False, f"{len(pending)} pending migration(s)"))
        return items, None
    items.append(CheckItem("database migrated", True))
    try:
        items += protection_items(url)
    except Exception as exc:
        items.append(CheckItem("database protection readable", False, exc.__class__.__name__))
    try:
        loaded = registry.load_clients(url, active_only=True)
    except Exception as exc:
        items.append(CheckItem("client registry readable", False, exc.__class__.__name__))
        return items, None
    clients = [
        ActiveClient(c.slug, tuple(c.licensed_states), c.bison_token_env, c.bison_instance_url)
        for c in loaded
    ]
    items.append(CheckItem("active clients", True, f"{len(clients)} active"))
    return items, clients


# Dagster's own tables (dagster-postgres run, event-log and schedule storage). In `public` the
# Supabase Data API would serve them (their event logs hold error texts and links).
DAGSTER_TABLES: tuple[str, ...] = (
    "runs", "run_tags", "event_logs", "secondary_indexes", "asset_keys", "asset_event_tags",
    "dynamic_partitions", "concurrency_limits", "concurrency_slots", "pending_steps",
    "asset_check_executions", "jobs", "job_ticks", "instigators", "daemon_heartbeats",
    "bulk_actions", "snapshots", "instance_info", "kvs", "alembic_version", "backfill_tags",
    "run_cancellation_tags",
)  # fmt: skip


def protection_items(url: str) -> list[CheckItem]:
    """Row-level security on every table of `public` (the schema the Data API serves), and
    Dagster's tables in their own schema (issue 13; DESIGN section 8)."""
    from urllib.parse import unquote

    from homeowner_dagster import db

    with db.connect(url) as conn:
        rows = conn.execute(
            "select c.relname, c.relrowsecurity from pg_class c join pg_namespace n on n.oid = c.relnamespace "
            "where n.nspname = 'public' and c.relkind in ('r', 'p') order by c.relname"
        ).fetchall()
    no_rls = [name for name, secured in rows if not secured and name not in DAGSTER_TABLES]
    in_public = [name for name, _ in rows if name in DAGSTER_TABLES]
    items = [
        CheckItem(
            "row-level security",
            not no_rls,
            f"on for all {len(rows) - len(in_public)} tables in public"
            if not no_rls
            else f"off on {', '.join(no_rls)}: add a migration enabling it",
        )
    ]
    storage = unquote(os.environ.get(settings.DAGSTER_STORAGE_URL_ENV) or "")
    wrong_path = bool(storage) and f"search_path={db.DAGSTER_SCHEMA}" not in storage
    detail = f"schema {db.DAGSTER_SCHEMA}"
    if in_public:
        detail = f"{', '.join(in_public)} in public: move Dagster's storage to schema {db.DAGSTER_SCHEMA} (docs/deploy.md)"
    elif wrong_path:
        detail = (
            f"{settings.DAGSTER_STORAGE_URL_ENV} does not select schema {db.DAGSTER_SCHEMA} "
            f"(options=-csearch_path%3D{db.DAGSTER_SCHEMA}, docs/deploy.md)"
        )
    items.append(CheckItem("dagster tables in their own schema", not in_public and not wrong_path, detail))
    return items


def chromium_executable(environ: Mapping[str, str] | None = None) -> str:
    environ = os.environ if environ is None else environ
    return (environ.get(settings.CHROMIUM_ENV) or "").strip() or DEFAULT_CHROMIUM


def chromium_item(timeout_seconds: float = 30.0) -> CheckItem:
    """Launch headless Chromium as the Cole connector does, open about:blank, close it."""
    executable = chromium_executable()
    label = "chromium starts"
    if not Path(executable).exists():
        source = settings.CHROMIUM_ENV if os.environ.get(settings.CHROMIUM_ENV) else "default"
        return CheckItem(label, False, f"no executable at {executable} ({source})")
    try:
        from playwright.sync_api import sync_playwright

        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=executable,
                headless=True,
                args=list(CHROMIUM_ARGS),
                timeout=timeout_seconds * 1000,
            )
            try:
                page = browser.new_page()
                page.goto("about:blank", timeout=timeout_seconds * 1000)
            finally:
                browser.close()
    except Exception as exc:
        return CheckItem(label, False, f"{exc.__class__.__name__} launching {executable}")
    return CheckItem(label, True, executable)


def format_report(items: list[CheckItem]) -> str:
    width = max(len(i.item) for i in items)
    lines = [f"{'item':<{width}}  status   detail"]
    for i in items:
        lines.append(f"{i.item:<{width}}  {'ok' if i.ok else 'missing':<7}  {i.detail}".rstrip())
    return "\n".join(lines)


def run_checks(chromium_timeout: float = 30.0) -> list[CheckItem]:
    db_items, clients = database_items()
    items = db_items + environment_items(clients or [])
    if clients is None:
        items.append(
            CheckItem(
                "per-client variables", False, "unknown until the client registry is readable"
            )
        )
    items.append(chromium_item(chromium_timeout))
    return items


def run(args: argparse.Namespace) -> int:
    items = run_checks(args.chromium_timeout)
    print(format_report(items))
    missing = [i for i in items if not i.ok]
    if missing:
        print(f"\n{len(missing)} item(s) missing")
        return 1
    print("\neverything is in place")
    return 0
