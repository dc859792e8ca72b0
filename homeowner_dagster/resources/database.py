"""The project's Postgres (Supabase in production, the embedded server by default) as a resource."""

from __future__ import annotations

import os

from dagster import ConfigurableResource, Failure

from homeowner_dagster import db, settings


class PostgresResource(ConfigurableResource):
    """The URL (a secret) is HOMEOWNER_DATABASE_URL, read when a run needs it; no run config can
    name another variable or server.

    Unset means the embedded server in `.homeowner/`, so a fresh clone works with no setup.
    """

    def dsn(self) -> str:
        """The URL; an unusable one (a `%` psycopg cannot read) fails at once, without retries,
        in one line that names the fix and not the password."""
        url = os.environ.get(settings.DATABASE_URL_ENV)
        if not url:
            return db.database_url()
        problem = db.url_problem(url)
        if problem:
            raise Failure(
                description=f"{problem}; then run `homeowner check`",
                metadata={"error_type": "DatabaseUrlInvalid"},
                allow_retries=False,
            )
        return db.libpq_url(url)
