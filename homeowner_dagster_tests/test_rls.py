"""The Supabase Data API roles reach nothing: not the pipeline's tables, not Dagster's.

The database is prepared the way a Supabase project is before our migrations run: the API roles
(`anon`, `authenticated`) get usage of `public` and every right on every table created there
later (Supabase's default privileges), plus default rights on tables of any schema, stricter than
Supabase. Then the migrations, then a demo-like run of the real pipeline on the sandbox (a
month's pull for one client, a window's upload, the run mirrored for the dashboard), so every
table exists and holds rows, Dagster's included. Every table of every schema is then probed as
each API role and as a login that holds only the anon role.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
import pytest
from dagster import DagsterRunStatus
from psycopg import sql

from homeowner_dagster import migrate, settings
from homeowner_dagster.leads.calendar import windows_of_month
from homeowner_dagster.sensors import mirror_run
from homeowner_dagster_tests import pipeline_fixtures
from homeowner_dagster_tests.conftest import _with_database
from homeowner_dagster_tests.pipeline_fixtures import MONTH, Pipeline

pipeline_sandbox = pipeline_fixtures.pipeline_sandbox
pipeline = pipeline_fixtures.pipeline

API_ROLES = ("anon", "authenticated")
SYSTEM_SCHEMAS = ("pg_catalog", "information_schema", "pg_toast")

# One row per table the run may leave empty, inserted as the owner (order respects foreign keys).
ROWS: dict[str, str] = {
    "clients": "insert into clients (slug, name, workspace_name, package_tier, licensed_states) "
    "values ('acme', 'Acme', 'Acme', 100, '{NJ}')",
    "client_zipcodes": "insert into client_zipcodes (client_slug, client_name, workspace_name, "
    "month, zip, state) values ('acme', 'Acme', 'Acme', '2027-01', '07031', 'NJ')",
    "raw_leads": "insert into raw_leads (client_slug, month, source_export, source_row, record) "
    "values ('acme', '2027-01', 'nj.csv', 1, '{\"Email\": \"jane@example.com\"}')",
    "cleaned_leads": "insert into cleaned_leads (client_slug, month, dedupe_key, email, zip, "
    "renewal_date, renewal_window) values ('acme', '2027-01', 'k1', 'jane@example.com', '07031', "
    "'2027-01-03', '2027-01-01')",
    "rejected_leads": "insert into rejected_leads (client_slug, month, source_export, source_row, "
    "reason, record) values ('acme', '2027-01', 'nj.csv', 2, 'no_email', '{}')",
    "email_verifications": "insert into email_verifications (email, code, result, safe_to_send, "
    "provider) values ('jane@example.com', 5, 'Safe to Send', true, 'debounce')",
    "debounce_bulk_jobs": "insert into debounce_bulk_jobs (listing_key, address_count, status) "
    "values ('0123abcd', 1500, 'uploading')",
    "monthly_cleaned_leads": "insert into monthly_cleaned_leads (client_slug, client_name, "
    "workspace_name, month, target_count, gap) values ('acme', 'Acme', 'Acme', '2027-01', 15000, 10)",
    "client_lead_batches": "insert into client_lead_batches (client_slug, window_start, "
    "window_end, month, list_name) values ('acme', '2027-01-01', '2027-01-07', '2027-01', "
    "'(January 1st - 7th renewals)')",
    "client_lead_batch_leads": "insert into client_lead_batch_leads (client_slug, window_start, "
    "month, dedupe_key) values ('acme', '2027-01-01', '2027-01', 'k1')",
    "agent_errors": "insert into agent_errors (run_id, error_type, message) "
    "values ('r1', 'CaptchaShown', 'captcha')",
    "hnw_routing_rules": "insert into hnw_routing_rules (name, destination_client, source_states, "
    "source_clients) values ('tx-hnw', 'acme', '{TX}', '{acme}')",
    "lead_outcomes": "insert into lead_outcomes (client_slug, window_start, month, dedupe_key, zip) "
    "values ('acme', '2027-01-01', '2027-01', 'k1', '07030')",
    "window_outcomes": "insert into window_outcomes (client_slug, window_start, month, campaign_id, "
    "stats_start, stats_end) values ('acme', '2027-01-01', '2027-01', '5', '2026-12-01', '2027-03-01')",
    "campaign_reads": "insert into campaign_reads (client_slug, campaign_id, as_of, requests, new_replies, "
    "pages_of_new_replies) values ('acme', '5', '2027-01-11', 3, 0, 0)",
    "zip_yields": "insert into zip_yields (client_slug, month, zip, leads, replies, interested, bounces, "
    "interested_per_1000, shrunk_per_1000, lower_per_1000, upper_per_1000) "
    "values ('acme', '2027-01', '07030', 10, 1, 1, 0, 100, 20, 5, 60)",
    "verification_bounce_rates": "insert into verification_bounce_rates (client_slug, month, "
    "verification_result, leads, bounces, bounce_rate, lower, upper) "
    "values ('acme', '2027-01', 'Safe to Send', 10, 0, 0, 0, 0.3)",
    "territory_changes": "insert into territory_changes (kind, month, zip, state, client_slug) "
    "values ('sheet', '2027-01', '07030', 'NJ', 'acme')",
    "upload_approvals": "insert into upload_approvals (client_slug, month, approved_by) "
    "values ('acme', '2027-01', 'dana')",
    "clay_webhook_usage": "insert into clay_webhook_usage (webhook_id, table_name, submissions) "
    "values ('pull-in-data-from-a-webhook-1', 'Homeowner leads', 10)",
}


@pytest.fixture
def database_url(postgres_server_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A database set up like a Supabase project (API roles, their default grants), then migrated."""
    name = f"homeowner_rls_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(postgres_server_url, autocommit=True) as conn:
        conn.execute(f'create database "{name}"')
    url = _with_database(postgres_server_url, name)
    with psycopg.connect(url, autocommit=True) as conn:
        for role in API_ROLES:
            if not conn.execute("select 1 from pg_roles where rolname = %s", [role]).fetchone():
                conn.execute(sql.SQL("create role {} nologin").format(sql.Identifier(role)))
        roles = sql.SQL(", ").join(map(sql.Identifier, API_ROLES))
        conn.execute(sql.SQL("grant usage on schema public to {}").format(roles))
        for kind in ("tables", "sequences", "functions"):
            conn.execute(
                sql.SQL(
                    f"alter default privileges in schema public grant all on {kind} to {{}}"
                ).format(roles)
            )
        conn.execute(sql.SQL("alter default privileges grant all on tables to {}").format(roles))
    migrate.migrate(url)
    monkeypatch.setenv(settings.DATABASE_URL_ENV, url)
    yield url
    with psycopg.connect(postgres_server_url, autocommit=True) as conn:
        conn.execute(f'drop database if exists "{name}" with (force)')


def _all_tables(conn: psycopg.Connection) -> list[tuple[str, str]]:
    """(schema, table) of every table, view and sequence outside the system schemas."""
    return conn.execute(
        "select n.nspname, c.relname from pg_class c join pg_namespace n on n.oid = c.relnamespace "
        "where c.relkind in ('r', 'p', 'v', 'm', 'f', 'S') and n.nspname <> all(%s) "
        "and n.nspname not like 'pg_temp%%' order by 1, 2",
        [list(SYSTEM_SCHEMAS)],
    ).fetchall()


def _qualified(statement: str) -> str:
    """`insert into public.<table>`: without USAGE on `public` an unqualified name is not even
    found (UndefinedTable), which would hide whether the write itself is refused."""
    return statement.replace("insert into ", "insert into public.", 1)


def _rows(conn: psycopg.Connection, schema: str, table: str) -> int:
    query = sql.SQL("select count(*) from {}.{}").format(
        sql.Identifier(schema), sql.Identifier(table)
    )
    return conn.execute(query).fetchone()[0]


@pytest.fixture
def after_a_run(pipeline: Pipeline) -> str:
    """The pipeline ran (Dagster's tables exist and hold its runs); every table holds a row."""
    pipeline.monthly("garden-state")
    result = pipeline.weekly("garden-state", windows_of_month(MONTH)[0].start)
    mirror_run(pipeline.dsn, result.dagster_run, "success")
    assert result.dagster_run.status == DagsterRunStatus.SUCCESS
    with psycopg.connect(pipeline.dsn) as conn:
        conn.execute(ROWS["clients"])  # `acme`, which the rows below refer to
        for table, statement in ROWS.items():
            if _rows(conn, "public", table) == 0:
                conn.execute(statement)
    return pipeline.dsn


@pytest.mark.slow
def test_no_table_of_any_schema_is_reachable_by_the_api_roles(after_a_run: str) -> None:
    dsn = after_a_run
    with psycopg.connect(dsn) as conn:
        tables = _all_tables(conn)
        schemas = {schema for schema, _ in tables}
        assert {"public", "dagster", "supabase_migrations"} <= schemas, schemas
        # Dagster's storage is in its own schema, with this run's records; none of it in public.
        dagster = {t for s, t in tables if s == "dagster"}
        assert {"runs", "event_logs", "asset_keys"} <= dagster
        assert _rows(conn, "dagster", "runs") >= 2 and _rows(conn, "dagster", "event_logs") > 50
        assert not dagster & {t for s, t in tables if s == "public"}
        # Every pipeline table has RLS, no policy, and a row the API roles must not see.
        relkinds = dict(conn.execute(
            "select relname, relrowsecurity from pg_class c join pg_namespace n on n.oid = c.relnamespace "
            "where n.nspname = 'public' and c.relkind in ('r', 'p')"
        ).fetchall())  # fmt: skip
        assert [t for t, rls in relkinds.items() if not rls] == []
        assert conn.execute("select count(*) from pg_policies").fetchone()[0] == 0
        # The run's tables and those ROWS fills hold rows; a table added since is still probed.
        filled = [t for t in relkinds if _rows(conn, "public", t) >= 1]
        assert set(ROWS) <= set(filled), set(ROWS) - set(filled)
        # No right on any table, sequence or function of any schema, now or by default.
        for role in API_ROLES:
            granted = conn.execute(
                "select n.nspname, c.relname, p.privilege_type from pg_class c "
                "join pg_namespace n on n.oid = c.relnamespace, "
                "unnest(array['SELECT','INSERT','UPDATE','DELETE','TRUNCATE','REFERENCES','TRIGGER']) "
                "as p(privilege_type) where n.nspname <> all(%s) and c.relkind in ('r','p','v','m','f') "
                "and has_table_privilege(%s, c.oid, p.privilege_type)",
                [list(SYSTEM_SCHEMAS), role],
            ).fetchall()
            assert granted == [], f"{role} holds {granted[:5]}"
            usable = {
                r[0]
                for r in conn.execute(
                    "select nspname from pg_namespace where has_schema_privilege(%s, oid, 'USAGE') "
                    "and nspname <> all(%s)",
                    [role, list(SYSTEM_SCHEMAS)],
                ).fetchall()
            }
            assert not usable & {"public", "dagster", "supabase_migrations"}, usable
            defaults = conn.execute(
                "select defaclnamespace::regnamespace::text, defaclobjtype from pg_default_acl, "
                "aclexplode(defaclacl) a where a.grantee = %s::regrole",
                [role],
            ).fetchall()
            assert defaults == [], f"{role} keeps default privileges {defaults}"

        # Probing as each role: every relation of every schema is refused or empty to it.
        for role in API_ROLES:
            conn.execute(sql.SQL("set role {}").format(sql.Identifier(role)))
            for schema, table in tables:
                with conn.transaction(force_rollback=True):
                    try:
                        seen = _rows(conn, schema, table)
                    except psycopg.errors.InsufficientPrivilege:
                        continue
                assert seen == 0, f"{role} reads rows of {schema}.{table}"
            for (
                statement
            ) in ROWS.values():  # schema-qualified: the role cannot even look `public` up
                with pytest.raises(psycopg.errors.InsufficientPrivilege):
                    with conn.transaction():
                        conn.execute(_qualified(statement).replace("'acme'", "'other'"))
            conn.execute("reset role")
        for table in filled:  # the owner still has every row
            assert _rows(conn, "public", table) >= 1, table
    _a_login_with_only_the_anon_role_reads_nothing(dsn)


def _a_login_with_only_the_anon_role_reads_nothing(dsn: str) -> None:
    """As a client holding only the anon key connects (one pipeline run serves both checks)."""
    name, password = f"rls_probe_{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    with psycopg.connect(dsn, autocommit=True) as conn:
        tables = _all_tables(conn)
        conn.execute(
            sql.SQL("create role {} login password {} in role anon").format(
                sql.Identifier(name), sql.Literal(password)
            )
        )
    try:
        with psycopg.connect(dsn, user=name, password=password, autocommit=True) as conn:
            assert conn.execute("select current_user").fetchone()[0] == name
            readable = []
            for schema, table in tables:
                try:
                    if _rows(conn, schema, table):
                        readable.append(f"{schema}.{table}")
                except psycopg.errors.InsufficientPrivilege:
                    pass
            assert readable == []
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(_qualified(ROWS["clients"]).replace("'acme'", "'intruder'"))
    finally:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("drop owned by {}").format(sql.Identifier(name)))
            conn.execute(sql.SQL("drop role {}").format(sql.Identifier(name)))


def test_public_keeps_no_right_for_the_api_roles_now_or_later_and_a_table_without_rls_fails_check(
    database_url: str,
    tmp_path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],  # noqa: ANN001
) -> None:
    from homeowner_dagster import db
    from homeowner_dagster.cli import main

    def rights(conn: psycopg.Connection, role: str) -> tuple[bool, bool, bool]:
        return conn.execute(
            "select has_schema_privilege(%s, 'public', 'USAGE'), "
            "has_function_privilege(%s, 'public.later_function()', 'EXECUTE'), "
            "has_table_privilege(%s, 'public.later_table', 'SELECT')",
            [role, role, role],
        ).fetchone()

    with psycopg.connect(database_url, autocommit=True) as conn:
        # Created after every migration, by the role that runs them (a later migration's work).
        conn.execute(
            "create function public.later_function() returns int language sql as 'select 1'"
        )
        conn.execute("create table public.later_table (id int)")
        for role in API_ROLES:
            assert rights(conn, role) == (False, False, False), role
    assert migrate.tables_without_rls(database_url) == ["public.later_table"]
    monkeypatch.setenv(settings.DAGSTER_STORAGE_URL_ENV, db.dagster_storage_url(database_url))
    monkeypatch.setenv("HOMEOWNER_CHROMIUM", "/nonexistent/chromium")
    assert main(["check"]) == 1
    line = next(
        x for x in capsys.readouterr().out.splitlines() if x.startswith("row-level security ")
    )
    assert line.split()[2] == "missing" and "off for public.later_table" in line, line
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("alter table public.later_table enable row level security")
    assert migrate.tables_without_rls(database_url) == []


def test_without_the_latest_migration_public_was_open_to_the_api_roles(
    postgres_server_url: str,
    tmp_path,  # noqa: ANN001
) -> None:
    """The hole the migration closes: PUBLIC's USAGE on `public` and EXECUTE on its functions."""
    import shutil

    earlier = tmp_path / "migrations"
    earlier.mkdir()
    for path in sorted(settings.migrations_dir().glob("*.sql")):
        if path.name < "20261204130000":
            shutil.copy(path, earlier / path.name)
    name = f"homeowner_rls_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(postgres_server_url, autocommit=True) as conn:
        conn.execute(f'create database "{name}"')
    url = _with_database(postgres_server_url, name)
    try:
        migrate.migrate(url, earlier)
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(
                "create function public.later_function() returns int language sql as 'select 1'"
            )
            before = conn.execute(
                "select has_schema_privilege('anon', 'public', 'USAGE'), "
                "has_function_privilege('anon', 'public.later_function()', 'EXECUTE')"
            ).fetchone()
        migrate.migrate(url)
        with psycopg.connect(url, autocommit=True) as conn:
            after = conn.execute(
                "select has_schema_privilege('anon', 'public', 'USAGE'), "
                "has_function_privilege('anon', 'public.later_function()', 'EXECUTE')"
            ).fetchone()
    finally:
        with psycopg.connect(postgres_server_url, autocommit=True) as conn:
            conn.execute(f'drop database if exists "{name}" with (force)')
    assert before == (True, True) and after == (False, False)
