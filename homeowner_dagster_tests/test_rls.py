"""Row-level security: a role without the service key reads nothing and writes nothing.

Supabase grants its API roles (`anon`, `authenticated`) every privilege on the tables of
`public`; only row-level security stands between them and the data. The test grants the same
here, fills every table as the owner (the pipeline's role), then connects as such a role.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
import pytest
from psycopg import sql

# One row per table, inserted as the owner (order respects foreign keys).
ROWS: dict[str, str] = {
    "clients": "insert into clients (slug, name, workspace_name, package_tier, licensed_states) "
    "values ('acme', 'Acme', 'Acme', 100, '{NJ}')",
    "client_zipcodes": "insert into client_zipcodes (client_slug, client_name, workspace_name, "
    "month, zip, state) values ('acme', 'Acme', 'Acme', '2027-01', '07030', 'NJ')",
    "raw_leads": "insert into raw_leads (client_slug, month, source_export, source_row, record) "
    "values ('acme', '2027-01', 'nj.csv', 1, '{\"Email\": \"jane@example.com\"}')",
    "cleaned_leads": "insert into cleaned_leads (client_slug, month, dedupe_key, email, zip, "
    "renewal_date, renewal_window) values ('acme', '2027-01', 'k1', 'jane@example.com', '07030', "
    "'2027-01-03', '2027-01-01')",
    "rejected_leads": "insert into rejected_leads (client_slug, month, source_export, source_row, "
    "reason, record) values ('acme', '2027-01', 'nj.csv', 2, 'no_email', '{}')",
    "email_verifications": "insert into email_verifications (email, code, result, safe_to_send, "
    "provider) values ('jane@example.com', 5, 'Safe to Send', true, 'debounce')",
    "monthly_cleaned_leads": "insert into monthly_cleaned_leads (client_slug, client_name, "
    "workspace_name, month, target_count, gap) values ('acme', 'Acme', 'Acme', '2027-01', 15000, 10)",
    "gap_reports": "insert into gap_reports (client_slug, month, status, cleaned_count, "
    "target_count, gap, minimum_to_proceed, meets_minimum) "
    "values ('acme', '2027-01', 'under', 1, 15000, 14999, 11500, false)",
    "client_lead_batches": "insert into client_lead_batches (client_slug, window_start, "
    "window_end, month, list_name) values ('acme', '2027-01-01', '2027-01-07', '2027-01', "
    "'(January 1st - 7th renewals)')",
    "client_lead_batch_leads": "insert into client_lead_batch_leads (client_slug, window_start, "
    "month, dedupe_key) values ('acme', '2027-01-01', '2027-01', 'k1')",
    "agent_runs": "insert into agent_runs (run_id, job_name, status) values ('r1', 'monthly_pull', "
    "'SUCCESS')",
    "agent_errors": "insert into agent_errors (run_id, error_type, message) "
    "values ('r1', 'CaptchaShown', 'captcha')",
    "hnw_routing_rules": "insert into hnw_routing_rules (name, destination_client, source_states, "
    "source_clients) values ('tx-hnw', 'acme', '{TX}', '{acme}')",
    "lead_outcomes": "insert into lead_outcomes (client_slug, window_start, month, dedupe_key, zip) "
    "values ('acme', '2027-01-01', '2027-01', 'k1', '07030')",
    "window_outcomes": "insert into window_outcomes (client_slug, window_start, month, campaign_id, "
    "stats_start, stats_end) values ('acme', '2027-01-01', '2027-01', '5', '2026-12-01', '2027-03-01')",
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
API_ROLES = ("anon", "authenticated")


def _public_tables(conn: psycopg.Connection) -> list[str]:
    return [
        r[0]
        for r in conn.execute(
            "select c.relname from pg_class c join pg_namespace n on n.oid = c.relnamespace "
            "where n.nspname = 'public' and c.relkind in ('r', 'p') order by c.relname"
        ).fetchall()
    ]


@pytest.fixture
def filled(database_url: str) -> str:
    """Every table holds a row; the API roles have Supabase's default grants."""
    with psycopg.connect(database_url) as conn:
        for statement in ROWS.values():
            conn.execute(statement)
        roles = sql.SQL(", ").join(map(sql.Identifier, API_ROLES))
        conn.execute(sql.SQL("grant all on all tables in schema public to {}").format(roles))
        conn.execute(sql.SQL("grant all on all sequences in schema public to {}").format(roles))
    return database_url


@pytest.fixture
def login_role(filled: str) -> Iterator[tuple[str, str]]:
    """A login role that is a member of `anon`, as a client holding only the anon key is."""
    name, password = f"rls_probe_{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    with psycopg.connect(filled, autocommit=True) as conn:
        conn.execute(
            sql.SQL("create role {} login password {} in role anon").format(
                sql.Identifier(name), sql.Literal(password)
            )
        )
    yield name, password
    with psycopg.connect(filled, autocommit=True) as conn:
        conn.execute(sql.SQL("drop owned by {}").format(sql.Identifier(name)))
        conn.execute(sql.SQL("drop role {}").format(sql.Identifier(name)))


def test_every_table_has_row_level_security_and_a_row_for_the_owner(filled: str) -> None:
    with psycopg.connect(filled) as conn:
        tables = _public_tables(conn)
        assert set(tables) == set(ROWS), "a new table needs a row in ROWS to be covered here"
        off = conn.execute(
            "select c.relname from pg_class c join pg_namespace n on n.oid = c.relnamespace "
            "where n.nspname = 'public' and c.relkind in ('r', 'p') and not c.relrowsecurity"
        ).fetchall()
        assert off == []
        policies = conn.execute(
            "select tablename, policyname from pg_policies where schemaname = 'public'"
        )
        assert policies.fetchall() == []  # no policy opens anything to the API roles
        for table in tables:
            count = conn.execute(sql.SQL("select count(*) from {}").format(sql.Identifier(table)))
            assert count.fetchone()[0] >= 1, table


@pytest.mark.parametrize("role", API_ROLES)
def test_api_roles_read_nothing_and_cannot_write(filled: str, role: str) -> None:
    with psycopg.connect(filled) as conn:
        tables = _public_tables(conn)
        conn.execute(sql.SQL("set role {}").format(sql.Identifier(role)))
        assert conn.execute("select current_user").fetchone()[0] == role
        for table in tables:
            query = sql.SQL("select count(*) from {}").format(sql.Identifier(table))
            assert conn.execute(query).fetchone()[0] == 0, f"{role} reads rows of {table}"
        for table, statement in ROWS.items():
            with pytest.raises(psycopg.errors.InsufficientPrivilege, match="row-level security"):
                with conn.transaction():
                    conn.execute(statement.replace("'acme'", "'other'"))
            # updates and deletes see no row to change
            for change in ("update {} set {} = {}", "delete from {}"):
                if change.startswith("update"):
                    column = conn.execute(
                        "select column_name from information_schema.columns where table_schema = "
                        "'public' and table_name = %s order by ordinal_position limit 1",
                        [table],
                    ).fetchone()[0]
                    stmt = sql.SQL(change).format(
                        sql.Identifier(table), sql.Identifier(column), sql.Identifier(column)
                    )
                else:
                    stmt = sql.SQL(change).format(sql.Identifier(table))
                assert conn.execute(stmt).rowcount == 0, f"{role} changed {table}"
        conn.execute("reset role")
        for table in tables:  # the owner still has every row
            count = conn.execute(sql.SQL("select count(*) from {}").format(sql.Identifier(table)))
            assert count.fetchone()[0] >= 1, table


def test_a_login_with_only_the_anon_role_reads_nothing(
    filled: str, login_role: tuple[str, str]
) -> None:
    name, password = login_role
    with psycopg.connect(filled) as owner:
        tables = _public_tables(owner)
    with psycopg.connect(filled, user=name, password=password) as conn:
        assert conn.execute("select current_user").fetchone()[0] == name
        for table in tables:
            query = sql.SQL("select count(*) from {}").format(sql.Identifier(table))
            assert conn.execute(query).fetchone()[0] == 0, table
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(ROWS["clients"].replace("'acme'", "'intruder'"))
