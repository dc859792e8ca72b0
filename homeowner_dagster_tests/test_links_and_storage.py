"""Signed links expire after HOMEOWNER_SIGNED_URL_TTL (24 h by default) and can be re-issued per
run; the address list handed to DeBounce bulk leaves storage once done, and on failure."""

from __future__ import annotations

import time
from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import httpx
import psycopg
import pytest

from homeowner_dagster.cli import main
from homeowner_dagster.resources.artifacts import ArtifactStoreResource, signed_url_ttl
from homeowner_dagster.resources.email_verification import (
    EmailVerificationError,
    EmailVerificationResource,
)
from homeowner_dagster.sandbox import Sandbox


@pytest.fixture(scope="module")
def running() -> Iterator[Sandbox]:
    yield from Sandbox(seed=17)


@pytest.fixture
def sandbox(running: Sandbox, monkeypatch: pytest.MonkeyPatch) -> Sandbox:
    """The sandbox, its addresses in the environment (where the resources read them)."""
    for key, value in running.env().items():
        monkeypatch.setenv(key, value)
    return running


def _store(sandbox: Sandbox) -> ArtifactStoreResource:
    env = sandbox.env()
    return ArtifactStoreResource(backend="supabase", supabase_key=env["SUPABASE_SERVICE_ROLE_KEY"])


def _expires_in(sandbox: Sandbox, link: str) -> float:
    token = parse_qs(urlsplit(link).query)["token"][0]
    _, expires_at = sandbox.storage.verify(token)
    return expires_at - time.time()


def test_ttl_setting() -> None:
    assert signed_url_ttl("") == 24 * 3600
    assert (signed_url_ttl("3600"), signed_url_ttl("2h"), signed_url_ttl("90m"), signed_url_ttl("1d")) == (
        3600, 7200, 5400, 86400,
    )  # fmt: skip
    for bad in ("0", "-5", "forever", "7 weeks"):
        with pytest.raises(ValueError, match="HOMEOWNER_SIGNED_URL_TTL"):
            signed_url_ttl(bad)


def test_links_live_a_day_by_default(sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HOMEOWNER_SIGNED_URL_TTL", raising=False)
    link = _store(sandbox).put_bytes(b"png", "cole/NJ/shot.png", "image/png")
    assert 23 * 3600 < _expires_in(sandbox, link) <= 24 * 3600
    monkeypatch.setenv("HOMEOWNER_SIGNED_URL_TTL", "2h")
    link = _store(sandbox).put_bytes(b"png", "cole/NJ/shot.png", "image/png")
    assert 3600 < _expires_in(sandbox, link) <= 7200


def test_an_expired_alert_link_is_reissued_by_run_id(
    sandbox: Sandbox,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for key, value in sandbox.env().items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("HOMEOWNER_ARTIFACTS_BACKEND", "supabase")
    monkeypatch.setenv("HOMEOWNER_SIGNED_URL_TTL", "1")
    store = _store(sandbox)
    shot = store.put_bytes(b"the screenshot", "cole/NJ/2027-01/x-screenshot.png", "image/png")
    trace = store.put_bytes(b"the trace", "cole/NJ/2027-01/x-trace.zip", "application/zip")
    with psycopg.connect(database_url) as conn:
        conn.execute(
            "insert into agent_runs (run_id, job_name, status, trace_url) values ('run-1', 'monthly_pull', 'failure', %s)",
            [trace],
        )
        conn.execute(
            "insert into agent_errors (run_id, step, error_type, message, screenshot_url, trace_url) "
            "values ('run-1', 'raw_leads', 'CaptchaBlocked', 'captcha', %s, %s)",
            [shot, trace],
        )
    while _expires_in(sandbox, shot) >= 0 or _expires_in(sandbox, trace) >= 0:
        time.sleep(0.2)
    assert httpx.get(shot).status_code == 400 and httpx.get(trace).status_code == 400  # expired

    monkeypatch.delenv("HOMEOWNER_SIGNED_URL_TTL")
    assert main(["artifacts", "link", "run-1"]) == 0
    out = capsys.readouterr().out
    links = {
        line.split(": ", 1)[0].split()[-1]: line.split(": ", 1)[1]
        for line in out.splitlines()
        if ": http" in line
    }
    assert httpx.get(links["screenshot"]).content == b"the screenshot"
    assert httpx.get(links["trace"]).content == b"the trace"
    assert "links valid for 24 h" in out
    with psycopg.connect(database_url) as conn:
        stored = conn.execute(
            "select screenshot_url, trace_url from agent_errors where run_id = 'run-1'"
        ).fetchone()
        run_trace = conn.execute(
            "select trace_url from agent_runs where run_id = 'run-1'"
        ).fetchone()[0]
    assert stored == (links["screenshot"], links["trace"]) and run_trace == links["trace"]

    assert main(["artifacts", "link", "no-such-run"]) == 2
    assert "no failure with links recorded for run no-such-run" in capsys.readouterr().err


def _bulk(sandbox: Sandbox) -> EmailVerificationResource:
    env = sandbox.env()
    return EmailVerificationResource(
        api_key=env["DEBOUNCE_API_KEY"],
        retry_base_seconds=0.01, poll_seconds=0.05, bulk_threshold=10, artifacts=_store(sandbox),
    )  # fmt: skip


def _lists_in_storage(sandbox: Sandbox) -> list[str]:
    return [k for k in sandbox.storage.keys("homeowner-artifacts") if k.startswith("debounce/")]


def test_the_bulk_list_is_deleted_once_results_are_in(sandbox: Sandbox) -> None:
    """Fact ST-DELETE."""
    downloads = sandbox.storage.downloads
    frame = _bulk(sandbox).verify([f"owner{i}@example.com" for i in range(40)])
    assert len(frame) == 40
    assert sandbox.storage.downloads > downloads  # DeBounce fetched it by its signed link
    assert _lists_in_storage(sandbox) == []


def test_the_bulk_list_is_deleted_when_verification_fails(sandbox: Sandbox) -> None:
    uploads = sandbox.storage.uploads
    sandbox.faults.on("debounce", "http_500")  # every call: retries run out
    try:
        with pytest.raises(EmailVerificationError):
            _bulk(sandbox).verify([f"failing{i}@example.com" for i in range(40)])
    finally:
        sandbox.faults.off()
    assert sandbox.storage.uploads == uploads + 1  # the list was stored...
    assert _lists_in_storage(sandbox) == []  # ...and is gone
