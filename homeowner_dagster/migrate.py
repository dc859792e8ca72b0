"""Apply `migrations/*.sql` in order, recorded the way the Supabase CLI records them.

`supabase_migrations.schema_migrations(version, name, statements)` holds one row per applied
file, so production can also use `supabase db push`. A file edited after it was applied is an
error: its recorded statements no longer match the file.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import psycopg

from homeowner_dagster import db, settings

_NAME = re.compile(r"^(\d{14})_([a-z0-9_]+)\.sql$")


class MigrationError(RuntimeError):
    """A migration file is malformed, was edited after being applied, or failed."""


@dataclass(frozen=True)
class Migration:
    version: str
    name: str
    path: Path

    @property
    def text(self) -> str:
        return self.path.read_text(encoding="utf-8")


def discover(folder: Path | None = None) -> list[Migration]:
    folder = folder or settings.migrations_dir()
    found = []
    for path in sorted(folder.glob("*.sql")):
        m = _NAME.match(path.name)
        if not m:
            raise MigrationError(f"{path.name}: name must be YYYYMMDDHHMMSS_name.sql")
        found.append(Migration(m.group(1), m.group(2), path))
    return found


def _ensure_history(conn: psycopg.Connection) -> None:
    conn.execute("create schema if not exists supabase_migrations")
    conn.execute(
        "create table if not exists supabase_migrations.schema_migrations "
        "(version text primary key, statements text[], name text)"
    )


def applied(conn: psycopg.Connection) -> dict[str, list[str]]:
    _ensure_history(conn)
    rows = conn.execute("select version, statements from supabase_migrations.schema_migrations")
    return {version: list(statements or []) for version, statements in rows}


def migrate(url: str | None = None, folder: Path | None = None) -> list[str]:
    """Apply pending migrations, each in its own transaction; returns the files applied."""
    done: list[str] = []
    with db.connect(url, autocommit=True) as conn:
        conn.execute("select pg_advisory_lock(hashtext('homeowner_migrate'))")
        try:
            with conn.transaction():
                history = applied(conn)
            for migration in discover(folder):
                text = migration.text
                if migration.version in history:
                    if history[migration.version] != [text]:
                        raise MigrationError(
                            f"{migration.path.name} was edited after it was applied; "
                            "add a new migration instead"
                        )
                    continue
                try:
                    with conn.transaction():
                        conn.execute(text)  # type: ignore[arg-type]
                        conn.execute(
                            "insert into supabase_migrations.schema_migrations "
                            "(version, statements, name) values (%s, %s, %s)",
                            (migration.version, [text], migration.name),
                        )
                except psycopg.Error as exc:
                    raise MigrationError(f"{migration.path.name} failed: {exc}".strip()) from exc
                done.append(migration.path.name)
        finally:
            conn.execute("select pg_advisory_unlock(hashtext('homeowner_migrate'))")
    return done


def pending(url: str | None = None, folder: Path | None = None) -> list[str]:
    with db.connect(url) as conn:
        history = applied(conn)
        conn.commit()
    return [m.path.name for m in discover(folder) if m.version not in history]


# Schemas the Supabase Data API serves by default; HOMEOWNER_API_SCHEMAS adds the ones a project
# exposes besides (Settings > API > Exposed schemas).
API_SCHEMAS: tuple[str, ...] = ("public", "graphql_public")
API_SCHEMAS_ENV = "HOMEOWNER_API_SCHEMAS"


def api_schemas() -> list[str]:
    extra = [s.strip() for s in (os.environ.get(API_SCHEMAS_ENV) or "").split(",") if s.strip()]
    return list(dict.fromkeys([*API_SCHEMAS, *extra]))


def tables_without_rls(url: str | None = None) -> list[str]:
    """`schema.table` of every table in a schema the API serves that has row-level security off
    (a table a later migration created and forgot). Empty is the only safe answer."""
    with db.connect(url) as conn:
        rows = conn.execute(
            "select n.nspname || '.' || c.relname from pg_class c "
            "join pg_namespace n on n.oid = c.relnamespace "
            "where c.relkind in ('r', 'p') and not c.relrowsecurity and n.nspname = any(%s) "
            "order by 1",
            [api_schemas()],
        ).fetchall()
    return [r[0] for r in rows]
