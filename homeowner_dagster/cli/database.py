"""`homeowner migrate | clients import | zips import|assign|move|show | dev | check`."""

from __future__ import annotations

import argparse
import getpass
import json
import os
import shlex
import shutil
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime
from pathlib import Path

from homeowner_dagster import db, migrate, registry, settings
from homeowner_dagster.cli import CommandError, second_shell
from homeowner_dagster.cli.stopping import install_stop_handlers, start_group, stop_group
from homeowner_dagster.leads.calendar import month_key, parse_month
from homeowner_dagster.leads.territories import (
    TerritoryError,
    parse_clients,
    parse_hnw_rules,
    parse_zip_sheet,
    unknown_hnw_clients,
)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("migrate", help="apply pending SQL migrations")
    p.set_defaults(handler=run_migrate)

    clients = subparsers.add_parser("clients", help="the client registry")
    csub = clients.add_subparsers(dest="action", required=True)
    p = csub.add_parser("import", help="upsert clients from a YAML or CSV file")
    p.add_argument("file", type=Path)
    p.set_defaults(handler=run_clients_import)
    p = csub.add_parser("list", help="list clients")
    p.set_defaults(handler=run_clients_list)

    zips = subparsers.add_parser("zips", help="ZIP territories per client and month")
    zsub = zips.add_subparsers(dest="action", required=True)
    p = zsub.add_parser("import", help="load the team's Zipcode,Territory,Color sheet")
    p.add_argument("file", type=Path)
    p.add_argument("--month", required=True, help="renewal month YYYY-MM")
    p.set_defaults(handler=run_zips_import)
    p = zsub.add_parser("assign", help="give free ZIPs to a client (an approved gap suggestion)")
    p.add_argument("--client", required=True)
    p.add_argument("--month", required=True)
    p.add_argument("zips", nargs="+")
    p.set_defaults(handler=run_zips_assign)
    p = zsub.add_parser("move", help="move ZIPs from one client to another for a month")
    p.add_argument("--from", dest="from_slug", required=True)
    p.add_argument("--to", dest="to_slug", required=True)
    p.add_argument("--month", required=True)
    p.add_argument("zips", nargs="+")
    p.set_defaults(handler=run_zips_move)
    p = zsub.add_parser(
        "show", help="a client's ZIPs for a month (latest sheet plus changes since)"
    )
    p.add_argument("--client", required=True)
    p.add_argument("--month", required=True)
    p.set_defaults(handler=run_zips_show)

    p = subparsers.add_parser("dev", help="run the Dagster UI on this project's database")
    p.add_argument("--sandbox", action="store_true", help="wire every connector to the sandbox")
    p.add_argument("--port", type=int, default=3000)
    add_database_host_flag(p)
    p.set_defaults(handler=run_dev)

    p = subparsers.add_parser(
        "env",
        help="print the exports that let plain `dagster` commands use this project's instance",
    )
    p.set_defaults(handler=run_env)


def add_database_host_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--database-host",
        action="append",
        default=[],
        metavar="HOST",
        help="with the sandbox: use the configured database (HOMEOWNER_DATABASE_URL / "
        "HOMEOWNER_DAGSTER_STORAGE_URL) on this host anyway; refused without it",
    )


def refuse_configured_database(command: str, named_hosts: list[str]) -> None:
    """The sandbox's demo clients, sandbox endpoints and sandbox email verdicts (cached 90 days)
    go into the embedded database only: a configured database or Dagster storage is refused
    unless `--database-host` names its host. One line, naming the variable and the host."""
    for variable in (settings.DATABASE_URL_ENV, settings.DAGSTER_STORAGE_URL_ENV):
        url = os.environ.get(variable)
        if not url:
            continue
        host = db.url_host(url)
        if host not in named_hosts:
            raise CommandError(
                f"refused: {variable} is set (host {host}) and {command} would write demo clients, "
                "sandbox addresses and sandbox verdicts into it; unset it to use the embedded "
                f"database, or pass --database-host {host} to use that database anyway"
            )


def _month(text: str) -> str:
    try:
        return month_key(parse_month(text))
    except ValueError as exc:
        raise CommandError(str(exc)) from None


def _ready_database() -> str:
    """The configured or embedded database, migrated."""
    try:
        url = db.database_url()
        migrate.migrate(url)
    except migrate.MigrationError as exc:
        raise CommandError(str(exc)) from None
    except Exception as exc:  # connection failures: one line, no secret in it
        raise _unreachable(exc) from None
    return url


def _unreachable(exc: Exception) -> CommandError:
    """db.connect's own sanitised line (it names a bad `%`), else the error's class only."""
    if isinstance(exc, db.DatabaseUnreachable):
        return CommandError(str(exc))
    return CommandError(f"database not reachable ({exc.__class__.__name__})")


def run_migrate(args: argparse.Namespace) -> int:
    try:
        url = db.database_url()
        applied = migrate.migrate(url)
    except migrate.MigrationError as exc:
        raise CommandError(str(exc)) from None
    except Exception as exc:
        raise _unreachable(exc) from None
    if applied:
        for name in applied:
            print(f"applied {name}")
    else:
        print("database is up to date")
    return 0


def _read(path: Path) -> str:
    try:
        return path.read_bytes().decode("utf-8-sig")
    except FileNotFoundError:
        raise CommandError(f"{path}: no such file") from None
    except UnicodeDecodeError:
        raise CommandError(f"{path}: not UTF-8 text") from None
    except OSError as exc:
        raise CommandError(f"{path}: cannot read ({exc.strerror})") from None


def login_name() -> str | None:
    """Who runs the command, recorded with territory changes and approvals."""
    name = os.environ.get("HOMEOWNER_USER", "").strip()
    if name:
        return name
    try:
        return getpass.getuser() or None
    except (KeyError, OSError):
        return None


@contextmanager
def refused_as(what: str) -> Iterator[None]:
    """A TerritoryError inside becomes the command's one line, its problems listed above it."""
    try:
        yield
    except TerritoryError as exc:
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        raise CommandError(
            f"{what} refused ({len(exc.problems)} problem(s) above); nothing written"
        ) from None


def run_clients_import(args: argparse.Namespace) -> int:
    text = _read(args.file)
    with refused_as("client import"):
        clients = parse_clients(text, args.file.name)
        rules = parse_hnw_rules(text, args.file.name)
    url = _ready_database()
    known = set(clients["slug"]) | {c.slug for c in registry.load_clients(url, active_only=False)}
    with refused_as("client import"):
        if unknown := unknown_hnw_clients(rules, known):  # checked before anything is written
            raise TerritoryError(unknown)
        registry.upsert_clients(clients, url)
    routed = registry.upsert_hnw_rules(rules, url)
    print(f"{len(clients)} client(s) imported: {', '.join(clients['slug'])}")
    if routed:
        print(f"{routed} high-net-worth routing rule(s) imported")
    return 0


def run_clients_list(args: argparse.Namespace) -> int:
    for c in registry.load_clients(_ready_database(), active_only=False):
        states = ",".join(c.licensed_states)
        print(
            f"{c.slug:20} tier {c.package_tier}  {states:10} {'active' if c.active else 'inactive'}"
        )
    return 0


def run_zips_import(args: argparse.Namespace) -> int:
    month = _month(args.month)
    text = _read(args.file)
    with refused_as("ZIP import"):
        sheet = parse_zip_sheet(text)
        written = registry.import_zips(sheet, month, _ready_database(), login_name())
    print(f"{written} ZIP(s) assigned for {month} ({len(sheet.rows) - written} already held)")
    return 0


def run_zips_assign(args: argparse.Namespace) -> int:
    month = _month(args.month)
    with refused_as("assignment"):
        written = registry.assign_zips(
            args.client, month, args.zips, _ready_database(), login_name()
        )
    print(f"{written} ZIP(s) assigned to {args.client} for {month}")
    return 0


def run_zips_move(args: argparse.Namespace) -> int:
    month = _month(args.month)
    with refused_as("move"):
        moved = registry.move_zips(
            args.from_slug, args.to_slug, month, args.zips, _ready_database(), login_name()
        )
    print(f"{moved} ZIP(s) moved from {args.from_slug} to {args.to_slug} for {month}")
    return 0


def run_zips_show(args: argparse.Namespace) -> int:
    month = _month(args.month)
    with refused_as("zips show"):
        zips, sheet_month = registry.territory_of(args.client, month, _ready_database())
    if sheet_month is None and zips.empty:
        print(
            f"{args.client} holds no ZIPs in {month}: no sheet imported for {month} or earlier "
            f"(run `homeowner zips import SHEET.csv --month {month}`)"
        )
        return 0
    basis = (
        f"the sheet of {sheet_month} plus changes since"
        if sheet_month
        else "assignments only, no sheet"
    )
    print(f"{args.client} {month}: {len(zips)} ZIP(s), from {basis}")
    for z in zips.itertuples():
        pulled = (
            z.pulled_at.date().isoformat() if isinstance(z.pulled_at, datetime) else "not pulled"
        )
        print(f"  {z.zip}  {z.state}  {z.source:<32} {pulled}")
    return 0


def dagster_environment(url: str) -> dict[str, str]:
    """Environment for a Dagster process on this database: instance in .homeowner/dagster."""
    home = settings.home_dir() / "dagster"
    home.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(settings.project_root() / "dagster.yaml", home / "dagster.yaml")
    env = dict(os.environ)
    env[settings.DATABASE_URL_ENV] = url
    env.setdefault(settings.DAGSTER_STORAGE_URL_ENV, db.dagster_storage_url(url))
    env["DAGSTER_HOME"] = str(home)
    return env


def run_env(args: argparse.Namespace) -> int:
    """`eval "$(homeowner env)"`: DAGSTER_HOME (and, for the embedded database, the storage URL)
    for `dagster ...` run from the repository root, as `homeowner dev` sets them; beside a
    running `homeowner dev --sandbox`, its sandbox's settings too."""
    configured = os.environ.get(settings.DATABASE_URL_ENV)
    if not configured and not db.embedded_running():
        raise CommandError("the embedded PostgreSQL is not running: start `homeowner dev` first")
    env = dagster_environment(configured or db.database_url())
    print(f"export DAGSTER_HOME={env['DAGSTER_HOME']}")
    if not os.environ.get(settings.DAGSTER_STORAGE_URL_ENV):
        if configured:  # never print a configured server's password
            print(
                f"# set {settings.DAGSTER_STORAGE_URL_ENV}: your database URL with the postgresql+psycopg2:// driver "
                "and ?options=-csearch_path%3Ddagster (docs/deploy.md section 1)"
            )
        else:
            print(
                f"export {settings.DAGSTER_STORAGE_URL_ENV}='{env[settings.DAGSTER_STORAGE_URL_ENV]}'"
            )
    sandbox = second_shell.running()
    if sandbox is not None:
        pid, values = sandbox
        print(
            f"# the sandbox of `homeowner dev --sandbox` (pid {pid}): its URLs and demo credentials"
        )
        for key, value in sorted(values.items()):
            if key not in os.environ:  # the shell's own settings win
                print(f"export {key}={shlex.quote(value)}")
    return 0


def run_dev(args: argparse.Namespace) -> int:
    """`dagster dev` on this project's database (and the sandbox), until Ctrl-C or SIGTERM.

    Stops everything it started within 10 s: webserver, daemon, code servers and run workers
    (one process group), the sandbox, and the embedded PostgreSQL when this command started it.
    """
    if args.sandbox:  # before anything starts or is written
        refuse_configured_database("`homeowner dev --sandbox`", args.database_host)
    stop = install_stop_handlers()  # before anything starts: a signal now still stops cleanly
    started_database = not os.environ.get(settings.DATABASE_URL_ENV) and not db.embedded_running()
    url = _ready_database()
    env = dagster_environment(url)
    sandbox = None
    dagster = None
    try:
        if args.sandbox:
            from homeowner_dagster.demo import (
                bison_snapshot,
                demo_month,
                demo_slack_channels,
                prepare_bison,
            )
            from homeowner_dagster.sandbox import Sandbox

            sandbox = Sandbox()
            state_file = settings.home_dir() / "sandbox" / "bison.json"
            state_file.parent.mkdir(parents=True, exist_ok=True)
            prepare_bison(sandbox, state_file, demo_month(date.today()))  # the demo's workspaces
            sandbox.start()
            env.update(sandbox.env())
            env[registry.SLACK_CHANNELS_ENV] = demo_slack_channels(
                env.get(registry.SLACK_CHANNELS_ENV)
            )
            # `homeowner env` / `windows force` in another shell (the demo's channel list too)
            second_shell.write(
                {**sandbox.env(), registry.SLACK_CHANNELS_ENV: env[registry.SLACK_CHANNELS_ENV]}
            )
            print("sandbox services:")
            for name, service_url in sandbox.urls.items():
                print(f"  {name:10} {service_url}")
            print(
                "another shell: `homeowner windows force ...` uses this sandbox; "
                '`eval "$(homeowner env)"` sets it for plain `dagster` commands'
            )
        workspace = settings.project_root() / "workspace.yaml"
        read_end, write_end = os.pipe()
        cmd = [
            sys.executable,
            "-m",
            "homeowner_dagster.cli.dagster_dev",
            "-w",
            str(workspace),
            "-p",
            str(args.port),
            "--shutdown-pipe",
            str(read_end),
        ]
        print(
            f"Dagster UI on http://127.0.0.1:{args.port} (instance {env['DAGSTER_HOME']})",
            flush=True,
        )
        if not stop.is_set():
            # Run from the instance folder: Dagster warns about a dagster.yaml in the current
            # folder that is not DAGSTER_HOME's (the repository's is the template copied there).
            dagster = start_group(cmd, env=env, cwd=env["DAGSTER_HOME"], pass_fds=[read_end])
        os.close(read_end)
        while dagster is not None and dagster.poll() is None and not stop.wait(0.5):
            pass
        if dagster is not None and dagster.poll() is None:
            print("stopping Dagster (webserver, daemon, code servers)...", flush=True)
        if dagster is not None:
            began = time.monotonic()
            stop_group(dagster, shutdown_pipe=write_end)
            print(f"Dagster stopped in {time.monotonic() - began:.1f} s", flush=True)
        os.close(write_end)
        return 0 if stop.is_set() else (dagster.returncode if dagster is not None else 0)
    finally:
        if sandbox is not None:
            second_shell.remove()
            state_file.write_text(json.dumps(bison_snapshot(sandbox.bison)))
            sandbox.stop()
        if started_database:
            began = time.monotonic()
            db.stop_embedded()
            print(f"embedded PostgreSQL stopped in {time.monotonic() - began:.1f} s", flush=True)
        print("homeowner dev stopped", flush=True)
