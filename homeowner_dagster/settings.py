"""Where the project finds its database and files: environment first, embedded default second."""

from __future__ import annotations

import os
from pathlib import Path

DATABASE_URL_ENV = "HOMEOWNER_DATABASE_URL"
TEST_DATABASE_URL_ENV = "HOMEOWNER_TEST_DATABASE_URL"
HOME_ENV = "HOMEOWNER_HOME"
DAGSTER_STORAGE_URL_ENV = "HOMEOWNER_DAGSTER_STORAGE_URL"
CHROMIUM_ENV = "HOMEOWNER_CHROMIUM"
STEP_RETRY_DELAY_ENV = "HOMEOWNER_STEP_RETRY_DELAY_SECONDS"


def step_retry_delay_seconds(default: float = 30.0) -> float:
    """First wait of a monthly step's RetryPolicy (read when the assets load; tests shorten it)."""
    return float(os.environ.get(STEP_RETRY_DELAY_ENV) or default)


# Headless Chromium on a closed network: without the background-networking flags it keeps
# trying to reach Google's hosts.
CHROMIUM_ARGS: tuple[str, ...] = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
)


def project_root() -> Path:
    """The repository folder (holds `migrations/`, `dagster.yaml`)."""
    return Path(__file__).resolve().parent.parent


def migrations_dir() -> Path:
    packaged = Path(__file__).resolve().parent / "migrations"
    return packaged if packaged.is_dir() else project_root() / "migrations"


def home_dir() -> Path:
    """`.homeowner/` in the current folder: the embedded database, Dagster home, artifacts."""
    return Path(os.environ.get(HOME_ENV) or Path.cwd() / ".homeowner").resolve()
