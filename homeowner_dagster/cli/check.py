"""`homeowner check`: is this machine ready to run the pipeline for the active clients?

It reports which environment variables are missing (by name only: no value is ever printed),
whether every service address a secret goes to is set and allowed (`addresses`), whether the
database is reachable and migrated, and whether Chromium starts. `homeowner preflight` reuses the
database part. Exit status 0
when everything is in place, 1 when anything is missing.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from homeowner_dagster import addresses, registry, settings
from homeowner_dagster.sanitiser import first_line

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
    slack_channel: str | None = None


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
            client.bison_instance_url or environ.get("BISON_INSTANCE_URL"),
            client.bison_token_env,
            environ,
        )
        if refused:
            problems.append(CheckItem(f"{client.slug}: Bison destination", False, refused))
        channel = registry.slack_channel_problem(client.slack_channel, environ)
        if channel:
            problems.append(CheckItem(f"{client.slug}: Slack channel", False, channel))
    if environ.get(registry.SANDBOX_ORIGINS_ENV):
        problems.append(
            CheckItem(
                registry.SANDBOX_ORIGINS_ENV,
                False,
                "set: the sandbox's, never in production; unset it",
            )
        )
    if addresses.email_backend(environ) == "clay":
        for name in ("CLAY_API_KEY", "CLAY_TABLE_ID"):
            _needed_by(needs, name, "email verification (clay)")
    else:
        _needed_by(needs, "DEBOUNCE_API_KEY", "email verification")
    _needed_by(needs, "SLACK_BOT_TOKEN", "Slack alerts and reports")
    if addresses.artifacts_backend(environ) == "supabase":
        _needed_by(needs, "SUPABASE_SERVICE_ROLE_KEY", "artifacts (supabase)")
    items = [
        CheckItem(name, _present(environ, name), "for " + ", ".join(users))
        for name, users in needs.items()
    ]
    return items + address_items(environ) + problems


def address_items(environ: Mapping[str, str] | None = None) -> list[CheckItem]:
    """One item per service address a secret is sent to: set (no default where the vendor
    documents none, as Cole's), https, and on the vendor's host."""
    return [
        CheckItem(c.variable, c.ok, f"{c.service} address" if c.ok else c.problem or "")
        for c in addresses.check_addresses(environ)
    ]


def database_items() -> tuple[list[CheckItem], list[ActiveClient] | None]:
    """Reachable? Migrated? And the active clients, when the registry can be read."""
    from homeowner_dagster import db, migrate, registry

    configured = bool(os.environ.get(settings.DATABASE_URL_ENV))
    label = "database" if configured else "database (embedded, HOMEOWNER_DATABASE_URL not set)"
    try:
        url = db.database_url()
        pending = migrate.pending(url)
    except Exception as exc:  # sanitised: the driver's message may quote the URL or password
        return [
            CheckItem(f"{label} reachable", False, first_line(str(exc)) or exc.__class__.__name__)
        ], None
    items = [CheckItem(f"{label} reachable", True)]
    if pending:
        items.append(CheckItem("database migrated", False, f"{len(pending)} pending migration(s)"))
        return items, None
    items.append(CheckItem("database migrated", True))
    items += database_security_items(url)
    try:
        loaded = registry.load_clients(url, active_only=True)
    except Exception as exc:
        items.append(CheckItem("client registry readable", False, exc.__class__.__name__))
        return items, None
    clients = [
        ActiveClient(
            c.slug,
            tuple(c.licensed_states),
            c.bison_token_env,
            c.bison_instance_url,
            c.slack_channel,
        )
        for c in loaded
    ]
    items.append(CheckItem("active clients", True, f"{len(clients)} active"))
    return items, clients


def database_security_items(url: str) -> list[CheckItem]:
    """Row-level security on every table the Supabase API serves, and Dagster's storage in its
    own schema (the API does not serve it)."""
    from homeowner_dagster import db, migrate

    try:
        open_tables = migrate.tables_without_rls(url)
    except Exception as exc:  # noqa: BLE001 - reported, sanitised
        open_tables = [f"unreadable: {first_line(str(exc)) or type(exc).__name__}"]
    rls = CheckItem(
        "row-level security",
        not open_tables,
        f"on every table of {', '.join(migrate.api_schemas())}"
        if not open_tables
        else f"off for {', '.join(open_tables)}: `alter table ... enable row level security` in a new migration",
    )
    storage = db.dagster_storage_problem()
    return [
        rls,
        CheckItem(
            "Dagster storage schema", storage is None, storage or f"schema {db.DAGSTER_SCHEMA}"
        ),
    ]


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
