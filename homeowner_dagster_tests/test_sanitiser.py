"""The one sanitiser: each shape of leak seen in driver and client errors, removed wherever it
goes next (exception messages and their causes, log records, the failure text)."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import psycopg
import pytest
from dagster import Failure

from homeowner_dagster import db
from homeowner_dagster.resources.bison import RetriesExhausted
from homeowner_dagster.resources.clay import ClayResource
from homeowner_dagster.resources.database import PostgresResource
from homeowner_dagster.run_errors import failure_for
from homeowner_dagster.sandbox import Sandbox
from homeowner_dagster.sanitiser import sanitise, scrub_exception

PASSWORD = "S3cret%zz-Db-Pct-9c1e"  # a `%` not followed by two hex digits: psycopg quotes it
URL = f"postgresql://owner:{PASSWORD}@127.0.0.1:1/pipeline"
HOOK = "pull-in-data-from-a-webhook-5f1e2d3c-0000-4abc-9def-123456789abc"
SIGNED = "http://127.0.0.1:9/storage/v1/object/sign/homeowner-artifacts/debounce/k.csv?token=eyJhbGciOi.eyJzdWIi.c2lnbmF0dXJl"


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        (f'invalid percent-encoded token: "{PASSWORD}"', PASSWORD),
        (f"connection to {URL} failed", PASSWORD),
        (f"POST https://api.clay.com/v3/sources/webhook/{HOOK} failed 5 times", HOOK),
        (f"GET http://127.0.0.1:9/v1/upload/?url={SIGNED}&api=deb-key-0001", "eyJhbGciOi"),
        ("host=db.example port=5432 password=hunter2-xyz dbname=x", "hunter2-xyz"),
        ("Authorization: Bearer bison-token-7788", "bison-token-7788"),
        ("slack said xoxb-1234-abcd-efgh", "xoxb-1234-abcd-efgh"),
        ("GET https://api.debounce.io/v1/?api=deb-key-0001&email=jane%40example.com", "jane"),
    ],
    ids=[
        "psycopg-percent",
        "url-password",
        "clay-webhook",
        "signed-link",
        "conninfo",
        "bearer",
        "slack",
        "query",
    ],
)
def test_each_shape_of_leak_is_removed(text: str, secret: str) -> None:
    cleaned = sanitise(text, environ={})
    assert secret not in cleaned and "***" in cleaned, cleaned


def test_a_secret_variables_value_is_removed_wherever_it_stands(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("BISON_TOKEN_ACME", "plain-token-0a0b0c")
    monkeypatch.setenv("HOMEOWNER_DATABASE_URL", URL)
    assert sanitise("error near plain-token-0a0b0c: S3cret%zz-Db-Pct-9c1e") == "error near ***: ***"
    assert (
        sanitise("nothing secret here, 2027-01, garden-state")
        == "nothing secret here, 2027-01, garden-state"
    )


def test_a_percent_password_fails_in_one_line_naming_the_fix_and_not_the_password(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with pytest.raises(psycopg.ProgrammingError, match="S3cret"):  # what psycopg says by itself
        psycopg.connect(URL)
    monkeypatch.setenv("HOMEOWNER_DATABASE_URL", URL)
    with pytest.raises(db.DatabaseUnreachable) as refused:
        db.connect()
    error = refused.value
    assert "percent-encode the password" in str(error) and "%25" in str(error)
    assert PASSWORD not in str(error) and error.__cause__ is None and error.__context__ is None
    with pytest.raises(Failure) as failed:  # what a run's first step meets: no retry can fix it
        PostgresResource().dsn()
    assert failed.value.allow_retries is False and PASSWORD not in str(failed.value)
    assert failed.value.description.endswith("then run `homeowner check`")


def test_every_log_record_is_sanitised_when_it_is_made(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLAY_WEBHOOK_URL", f"https://api.clay.com/v3/sources/webhook/{HOOK}")
    seen: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record.getMessage() + repr(record.exc_info[1] if record.exc_info else ""))

    logger = logging.getLogger("httpx")
    handler, level = Keep(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        logger.info(
            'HTTP Request: %s %s "%s"',
            "POST",
            f"https://api.clay.com/v3/sources/webhook/{HOOK}",
            "HTTP/1.1 200 OK",
        )
        logger.info(
            "HTTP Request: GET %s", f"http://127.0.0.1:9/v1/upload/?url={SIGNED}&api=deb-key-0001"
        )
        try:
            raise RuntimeError(f"refused {URL}")
        except RuntimeError:
            logger.exception("failed")
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    assert len(seen) == 3
    for line in seen:
        assert HOOK not in line and "eyJhbGciOi" not in line and PASSWORD not in line, line


def test_an_exception_and_its_causes_are_scrubbed_before_dagster_records_them() -> None:
    try:
        try:
            psycopg.connect(URL)
        except psycopg.Error as exc:
            raise RuntimeError(f"while opening {URL}") from exc
    except RuntimeError as outer:
        failure = failure_for(outer, "Cole pull NJ")
        assert PASSWORD not in failure.description
        assert PASSWORD not in str(outer) and PASSWORD not in str(outer.__cause__)
        assert scrub_exception(outer) is outer


@pytest.fixture
def sandbox(monkeypatch: pytest.MonkeyPatch) -> Iterator[Sandbox]:
    with Sandbox(seed=23) as running:
        for key, value in running.env().items():
            monkeypatch.setenv(key, value)
        yield running


def test_a_clay_webhook_failing_every_time_names_no_webhook_path(
    sandbox: Sandbox, database_url: str
) -> None:
    secret = sandbox.clay_webhook_id
    sandbox.faults.on("clay", "http_500")
    try:
        with pytest.raises(RetriesExhausted) as failed:
            ClayResource(
                api_key="k", table_id=sandbox.clay_table_id, max_attempts=2, retry_base_seconds=0.01
            ).push_rows([{"email": "a@example.com"}])
    finally:
        sandbox.faults.off()
    message = str(failed.value)
    assert message.startswith("POST /v3/sources/webhook/*** failed 2 times"), message
    assert (
        secret not in message
        and secret not in failure_for(failed.value, "Email verification").description
    )
    assert secret not in repr(ClayResource(api_key="k").webhooks())
