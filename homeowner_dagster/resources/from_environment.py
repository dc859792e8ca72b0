"""The connectors this deployment uses, chosen in one place from the environment.

Secrets go through `EnvVar` (read when a run starts, never stored). Endpoints are no resource's
config: each resource reads its `*_URL` variable when it sends, checked by
`homeowner_dagster.addresses` (documented vendor hosts by default; Cole's has none).
`homeowner dev --sandbox`, `homeowner demo` and the tests set those variables to the sandbox.
Used by the Definitions, the preflight job and `homeowner preflight`.
"""

from __future__ import annotations

import os

from dagster import EnvVar

from homeowner_dagster.addresses import artifacts_backend, email_backend
from homeowner_dagster.resources.artifacts import ArtifactStoreResource
from homeowner_dagster.resources.bison import BisonResource
from homeowner_dagster.resources.clay import ClayResource
from homeowner_dagster.resources.cole import ColeResource
from homeowner_dagster.resources.database import PostgresResource
from homeowner_dagster.resources.email_verification import EmailVerificationResource
from homeowner_dagster.resources.slack import HomeownerSlackResource


def _env(name: str, default: str | None = None) -> str | None:
    return os.environ.get(name) or default


def clay_resource(slack: HomeownerSlackResource) -> ClayResource:
    """Clay's tables (their webhooks and addresses come from CLAY_* variables when used)."""
    return ClayResource(
        api_key=EnvVar("CLAY_API_KEY"),
        table_id=_env("CLAY_TABLE_ID"),
        table_name=_env("CLAY_TABLE_NAME"),
        slack=slack,
    )


def build_resources() -> dict[str, object]:
    """Connectors for this deployment (production, `dev --sandbox`, tests), from the environment.

    Secrets are `EnvVar`s; the addresses they go to are read and checked by each resource when
    it sends (`homeowner_dagster.addresses`), so no run config can redirect them.
    """
    backend = artifacts_backend()
    artifacts = ArtifactStoreResource(
        backend=backend,
        local_dir=_env("HOMEOWNER_ARTIFACTS_DIR"),
        supabase_key=EnvVar("SUPABASE_SERVICE_ROLE_KEY") if backend == "supabase" else None,
    )
    bulk_artifacts = (
        ArtifactStoreResource(backend="supabase", supabase_key=EnvVar("SUPABASE_SERVICE_ROLE_KEY"))
        if _env("SUPABASE_URL")
        else None
    )
    slack = HomeownerSlackResource(token=EnvVar("SLACK_BOT_TOKEN"))
    verification = email_backend()
    clay = clay_resource(slack) if verification == "clay" else None
    return {
        "database": PostgresResource(),
        "artifacts": artifacts,
        "cole": ColeResource(headless=_env("HOMEOWNER_HEADED") is None, artifacts=artifacts),
        "email_verification": EmailVerificationResource(
            backend=verification,
            api_key=EnvVar("DEBOUNCE_API_KEY") if verification == "debounce" else None,
            clay=clay,
            artifacts=bulk_artifacts,
        ),
        "bison": BisonResource(),
        "slack": slack,
    }
