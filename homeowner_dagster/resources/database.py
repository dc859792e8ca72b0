"""The project's Postgres (Supabase in production, the embedded server by default) as a resource."""

from __future__ import annotations

import os

from dagster import ConfigurableResource

from homeowner_dagster import db, settings


class PostgresResource(ConfigurableResource):
    """The URL (a secret) is HOMEOWNER_DATABASE_URL, read when a run needs it; no run config can
    name another variable or server.

    Unset means the embedded server in `.homeowner/`, so a fresh clone works with no setup.
    """

    def dsn(self) -> str:
        url = os.environ.get(settings.DATABASE_URL_ENV)
        return db.libpq_url(url) if url else db.database_url()
