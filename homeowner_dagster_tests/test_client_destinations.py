"""A client file cannot send a secret anywhere: token variables of the BISON_TOKEN_ family only,
to an https Bison instance the operator allowed. Refused at import (one line, nothing written)
and again at run time, for a row changed in the table behind the importer's back."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from homeowner_dagster import registry
from homeowner_dagster.cli import main
from homeowner_dagster.leads.calendar import windows_of_month
from homeowner_dagster.leads.territories import TerritoryError, parse_clients
from homeowner_dagster_tests import pipeline_fixtures
from homeowner_dagster_tests.pipeline_fixtures import MONTH, Pipeline

pipeline_sandbox = pipeline_fixtures.pipeline_sandbox
pipeline = pipeline_fixtures.pipeline


def _client(token_env: str | None = "BISON_TOKEN_ACME", instance: str | None = None) -> str:
    lines = ["clients:", "  - slug: acme", "    name: Acme", "    package_tier: 100",
             "    licensed_states: [NJ]"]  # fmt: skip
    if token_env:
        lines.append(f"    bison_token_env: {token_env}")
    if instance:
        lines.append(f"    bison_instance_url: {instance}")
    return "\n".join(lines) + "\n"


@pytest.fixture
def operator_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in ("BISON_ALLOWED_HOSTS", registry.SANDBOX_ORIGINS_ENV):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("BISON_INSTANCE_URL", "https://agency.bison.example")
    return monkeypatch


REFUSED = [
    ("SUPABASE_SERVICE_ROLE_KEY", None, "must be named BISON_TOKEN_<SUFFIX>"),
    ("HOMEOWNER_DATABASE_URL", None, "must be named BISON_TOKEN_<SUFFIX>"),
    ("BISON_TOKEN_", None, "must be named BISON_TOKEN_<SUFFIX>"),
    ("BISON_TOKEN_ACME", "http://agency.bison.example", "must be an https:// URL"),
    (
        "BISON_TOKEN_ACME",
        "https://anywhere.example",
        "'anywhere.example' is not in BISON_ALLOWED_HOSTS",
    ),
    (
        "BISON_TOKEN_ACME",
        "https://agency.bison.example.evil.example",
        "is not in BISON_ALLOWED_HOSTS",
    ),
    (
        "BISON_TOKEN_ACME",
        "http://127.0.0.1:8080",
        "must be an https:// URL",
    ),  # sandbox did not set it
    ("BISON_TOKEN_ACME", "ftp://agency.bison.example", "must be an https:// URL"),
]


@pytest.mark.parametrize(("token_env", "instance", "reason"), REFUSED)
def test_client_import_refuses_foreign_variables_and_hosts(
    database_url: str, operator_env: pytest.MonkeyPatch, tmp_path: Path,
    capsys: pytest.CaptureFixture[str], token_env: str, instance: str | None, reason: str,
) -> None:  # fmt: skip
    path = tmp_path / "clients.yaml"
    path.write_text(_client(token_env, instance))
    assert main(["clients", "import", str(path)]) != 0
    err = capsys.readouterr().err
    problem = [line.strip() for line in err.splitlines() if line.startswith("  client 1 (acme)")]
    assert len(problem) == 1 and reason in problem[0], err
    with psycopg.connect(database_url) as conn:
        assert conn.execute("select count(*) from clients").fetchone()[0] == 0


def test_allowed_hosts_come_from_the_operator(
    database_url: str, operator_env: pytest.MonkeyPatch
) -> None:
    # Default: the host of BISON_INSTANCE_URL.
    registry.upsert_clients(
        parse_clients(_client(instance="https://agency.bison.example/")), database_url
    )
    registry.upsert_clients(parse_clients(_client(instance=None)), database_url)
    with pytest.raises(TerritoryError, match="not in BISON_ALLOWED_HOSTS"):
        registry.upsert_clients(
            parse_clients(_client(instance="https://second.bison.example")), database_url
        )
    # The list replaces the default.
    operator_env.setenv("BISON_ALLOWED_HOSTS", " second.bison.example , third.bison.example")
    registry.upsert_clients(
        parse_clients(_client(instance="https://Second.Bison.Example")), database_url
    )
    with pytest.raises(TerritoryError, match="not in BISON_ALLOWED_HOSTS"):
        registry.upsert_clients(
            parse_clients(_client(instance="https://agency.bison.example")), database_url
        )


def test_loopback_only_when_the_sandbox_set_it(operator_env: pytest.MonkeyPatch) -> None:
    env = {"BISON_INSTANCE_URL": "https://agency.bison.example"}
    sandbox = {**env, registry.SANDBOX_ORIGINS_ENV: "http://127.0.0.1:8123"}
    assert registry.bison_destination_problem("http://127.0.0.1:8123", "BISON_TOKEN_A", env)
    assert (
        registry.bison_destination_problem("http://127.0.0.1:8123", "BISON_TOKEN_A", sandbox)
        is None
    )
    # Another port, another loopback address, a path trick: refused.
    assert registry.bison_destination_problem("http://127.0.0.1:9999", "BISON_TOKEN_A", sandbox)
    assert registry.bison_destination_problem("http://127.0.0.2:8123", "BISON_TOKEN_A", sandbox)
    assert registry.bison_destination_problem(
        "http://evil.example/http://127.0.0.1:8123", "BISON_TOKEN_A", sandbox
    )
    # The variable cannot open a route off the machine: non-loopback origins in it are ignored.
    abused = {**env, registry.SANDBOX_ORIGINS_ENV: "http://evil.example:80,http://10.0.0.5:8080"}
    assert registry.bison_destination_problem("http://evil.example:80", "BISON_TOKEN_A", abused)
    assert registry.bison_destination_problem("http://10.0.0.5:8080", "BISON_TOKEN_A", abused)
    # Still the token-name rule for the sandbox.
    assert registry.bison_destination_problem("http://127.0.0.1:8123", "SLACK_BOT_TOKEN", sandbox)


@pytest.mark.parametrize(
    ("column", "value", "reason"),
    [
        ("bison_token_env", "SUPABASE_SERVICE_ROLE_KEY", "must be named BISON_TOKEN_<SUFFIX>"),
        ("bison_instance_url", "http://anywhere.example", "must be an https:// URL"),
        ("bison_instance_url", "https://anywhere.example", "is not in BISON_ALLOWED_HOSTS"),
    ],
)
def test_a_row_changed_in_the_table_is_refused_at_run_time(
    pipeline: Pipeline, column: str, value: str, reason: str
) -> None:
    """The importer was bypassed: the weekly run fails before any Bison call, retries none."""
    with psycopg.connect(pipeline.dsn) as conn:
        conn.execute(f"update clients set {column} = %s where slug = 'garden-state'", [value])  # noqa: S608
    before = pipeline.sandbox.bison.requests
    result = pipeline.weekly("garden-state", windows_of_month(MONTH)[0].start, raise_on_error=False)
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    error = failure.step_failure_data.error
    assert reason in error.message and "homeowner clients import" in error.message
    assert failure.step_failure_data.user_failure_data is not None  # a Failure, not a crash
    assert not any(e.event_type_value == "STEP_UP_FOR_RETRY" for e in result.all_events)
    assert pipeline.sandbox.bison.requests == before
