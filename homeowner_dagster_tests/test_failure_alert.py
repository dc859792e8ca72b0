"""The failure alert reaches Slack during a database outage; a Slack outage still leaves the mirror.

The pipeline's database here is a PostgreSQL server of its own (not the session's), so the test
can really stop it; Dagster's own storage is an ephemeral instance, as when it lives elsewhere.
"""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest
from dagster import (
    DagsterEventType,
    DagsterInstance,
    Failure,
    build_run_status_sensor_context,
    job,
    op,
)

from homeowner_dagster.resources.database import PostgresResource
from homeowner_dagster.resources.slack import HomeownerSlackResource
from homeowner_dagster.sandbox import Sandbox
from homeowner_dagster.sensors import run_failure_alert_sensor


@op
def pull_from_cole() -> None:
    raise Failure(
        description="captcha shown", metadata={"error_type": "CaptchaBlocked"}, allow_retries=False
    )


@job(tags={"client": "garden-state"})
def monthly_pull() -> None:
    pull_from_cole()


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    with Sandbox(seed=3) as running:
        yield running


def _alert(server, sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: ANN001
    monkeypatch.setenv("HOMEOWNER_DATABASE_URL", server.get_uri())
    monkeypatch.setenv("HOMEOWNER_SLACK_CHANNEL", "#homeowner-ops")
    for key, value in sandbox.env().items():
        monkeypatch.setenv(key, value)  # SLACK_API_URL: where the resource posts
    # Both entered, so the instance and the sensor's resources are closed when the alert is out.
    with DagsterInstance.ephemeral() as instance:
        result = monthly_pull.execute_in_process(instance=instance, raise_on_error=False)
        failure = next(e for e in result.all_events if e.event_type == DagsterEventType.RUN_FAILURE)
        slack = HomeownerSlackResource(token=sandbox.slack.token, max_retries=0)
        with build_run_status_sensor_context(
            sensor_name=run_failure_alert_sensor.name,
            dagster_instance=instance,
            dagster_run=result.dagster_run,
            dagster_event=failure,
            resources={"database": PostgresResource(), "slack": slack},
        ).for_run_failure() as context:
            run_failure_alert_sensor(context)


def test_the_alert_is_posted_while_the_database_is_stopped(
    own_server,
    sandbox: Sandbox,
    monkeypatch: pytest.MonkeyPatch,  # noqa: ANN001
) -> None:
    sandbox.slack.messages.clear()
    own_server.stop()
    try:
        with pytest.raises(psycopg.OperationalError):
            psycopg.connect(own_server.get_uri(), connect_timeout=2)
        _alert(own_server, sandbox, monkeypatch)  # does not raise: the alert went out
    finally:
        own_server.start()
    texts = [m.get("text", "") for m in sandbox.slack.messages]
    assert any(
        "monthly_pull failed" in t and "CaptchaBlocked" in t and "captcha shown" in t for t in texts
    ), texts
    with psycopg.connect(own_server.get_uri()) as conn:
        assert conn.execute("select count(*) from agent_runs").fetchone()[0] == 0


def test_the_mirror_is_written_while_slack_is_down(
    own_server,
    sandbox: Sandbox,
    monkeypatch: pytest.MonkeyPatch,  # noqa: ANN001
) -> None:
    sandbox.slack.messages.clear()
    sandbox.faults.on("slack", "http_500")
    try:
        with pytest.raises(Exception):  # noqa: B017, PT011 - the tick fails, so Dagster tries again
            _alert(own_server, sandbox, monkeypatch)
    finally:
        sandbox.faults.off()
    assert sandbox.slack.messages == []
    with psycopg.connect(own_server.get_uri()) as conn:
        rows = conn.execute("select status from agent_runs").fetchall()
        errors = conn.execute("select error_type from agent_errors").fetchall()
    assert rows == [("failure",)] and errors == [("CaptchaBlocked",)]
