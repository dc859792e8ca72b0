"""Where the project finds its database and files: environment first, embedded default second."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
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


# Settings that change a result live here (per deployment) or in the clients table (per client),
# never only in a run's config: a partition materialized from the UI, the schedule, a backfill
# or the demo must give the same gap report.
GAP_COLE_COUNTS_ENV = "HOMEOWNER_GAP_COLE_COUNT_QUERIES"
GAP_RADIUS_ENV = "HOMEOWNER_GAP_RADIUS_MILES"
GAP_MAX_CANDIDATES_ENV = "HOMEOWNER_GAP_MAX_CANDIDATES"


@dataclass(frozen=True)
class GapSettings:
    """How far the gap report looks for adjacent ZIPs, and whether it may ask Cole for counts."""

    cole_count_queries: bool = True
    radius_miles: float = 25.0
    max_candidates: int = 10


def gap_settings(environ: Mapping[str, str] | None = None) -> GapSettings:
    """The deployment's gap settings; an unreadable value is an error, never a silent default."""
    env = os.environ if environ is None else environ
    default = GapSettings()
    counts = env.get(GAP_COLE_COUNTS_ENV, "").strip().lower()
    if counts not in ("", "1", "0", "true", "false", "yes", "no", "on", "off"):
        raise ValueError(f"{GAP_COLE_COUNTS_ENV}={counts!r}: use 1 or 0")
    try:
        radius = float(env.get(GAP_RADIUS_ENV) or default.radius_miles)
        candidates = int(env.get(GAP_MAX_CANDIDATES_ENV) or default.max_candidates)
    except ValueError as exc:
        raise ValueError(f"{GAP_RADIUS_ENV} / {GAP_MAX_CANDIDATES_ENV}: {exc}") from None
    return GapSettings(
        cole_count_queries=default.cole_count_queries
        if not counts
        else counts in ("1", "true", "yes", "on"),
        radius_miles=radius,
        max_candidates=candidates,
    )
