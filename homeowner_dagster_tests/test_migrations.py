"""`homeowner migrate` on a real PostgreSQL: idempotent, Supabase-style history, RLS everywhere."""

from __future__ import annotations

import shutil
from pathlib import Path

import psycopg
import pytest

from homeowner_dagster import migrate, settings
from homeowner_dagster.cli import main

TABLES = {
    "clients",
    "client_zipcodes",
    "raw_leads",
    "cleaned_leads",
    "rejected_leads",
    "email_verifications",
    "monthly_cleaned_leads",
    "gap_reports",
    "client_lead_batches",
    "agent_runs",
    "agent_errors",
}


def test_migrate_twice_on_a_fresh_database(
    empty_database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["migrate"]) == 0
    first = capsys.readouterr().out
    assert "applied 20261201090000_core_tables.sql" in first
    assert main(["migrate"]) == 0
    assert "up to date" in capsys.readouterr().out
    with psycopg.connect(empty_database_url) as conn:
        tables = {
            r[0]
            for r in conn.execute(
                "select tablename from pg_tables where schemaname = 'public'"
            ).fetchall()
        }
        assert TABLES <= tables
        rls = dict(
            conn.execute(
                "select relname, relrowsecurity from pg_class c join pg_namespace n on n.oid = c.relnamespace "
                "where n.nspname = 'public' and c.relkind = 'r'"
            ).fetchall()
        )
        assert all(rls[t] for t in tables), rls
        history = conn.execute(
            "select version, name, array_length(statements, 1) from supabase_migrations.schema_migrations order by version"
        ).fetchall()
    files = sorted(p.name for p in settings.migrations_dir().glob("*.sql"))
    assert [f"{v}_{n}.sql" for v, n, _ in history] == files


def test_an_edited_migration_is_an_error_not_skipped(
    empty_database_url: str, tmp_path: Path
) -> None:
    folder = tmp_path / "migrations"
    shutil.copytree(settings.migrations_dir(), folder)
    migrate.migrate(empty_database_url, folder)
    first = sorted(folder.glob("*.sql"))[0]
    first.write_text(first.read_text() + "\n-- edited later\n")
    with pytest.raises(migrate.MigrationError, match="edited after it was applied"):
        migrate.migrate(empty_database_url, folder)


def test_a_failing_migration_leaves_nothing_behind(empty_database_url: str, tmp_path: Path) -> None:
    folder = tmp_path / "migrations"
    shutil.copytree(settings.migrations_dir(), folder)
    (folder / "29990101000000_broken.sql").write_text(
        "create table half_done (id int);\nselect * from no_such_table;\n"
    )
    with pytest.raises(migrate.MigrationError, match="29990101000000_broken.sql failed"):
        migrate.migrate(empty_database_url, folder)
    with psycopg.connect(empty_database_url) as conn:
        assert conn.execute("select to_regclass('public.half_done')").fetchone()[0] is None
        assert conn.execute("select to_regclass('public.clients')").fetchone()[0] is not None
