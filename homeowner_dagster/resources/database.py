"""The project's Postgres (Supabase in production, the embedded server by default) as a resource."""

from __future__ import annotations

import os

from dagster import ConfigurableResource
from pydantic import Field

from homeowner_dagster import db, settings


class PostgresResource(ConfigurableResource):
    """Names the environment variable holding the URL (a secret), read when a run needs it.

    Unset means the embedded server in `.homeowner/`, so a fresh clone works with no setup.
    """

    url_env: str = Field(default=settings.DATABASE_URL_ENV)

    def dsn(self) -> str:
        url = os.environ.get(self.url_env)
        return db.libpq_url(url) if url else db.database_url()
