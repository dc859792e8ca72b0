"""`homeowner check`: names what is missing, never prints a value, exits 1 when anything is missing."""

from __future__ import annotations

import os

import pytest

from homeowner_dagster import db, registry
from homeowner_dagster.cli import main
from homeowner_dagster.leads.territories import parse_clients

CLIENTS_YAML = """
clients:
  - slug: acme-nj
    name: Acme Insurance NJ
    bison_token_env: BISON_TOKEN_ACME_NJ
    package_tier: 100
    licensed_states: [NJ, TX]
  - slug: sunny
    name: Sunny Coverage
    bison_token_env: BISON_TOKEN_SUNNY
    bison_instance_url: https://sunny.bison.example
    package_tier: 100
    licensed_states: [FL]
  - slug: gone
    name: Former Client
    bison_token_env: BISON_TOKEN_GONE
    package_tier: 100
    licensed_states: [OK]
    active: false
"""

# Every variable the active clients above need, each set to a distinctive secret.
SECRETS = {
    "COLE_NJ_USERNAME": "user-nj-5d1c9e",
    "COLE_NJ_PASSWORD": "S3cret-Cole-NJ-7f3a",
    "COLE_TX_USERNAME": "user-tx-8b2e41",
    "COLE_TX_PASSWORD": "S3cret-Cole-TX-91bd",
    "COLE_FL_USERNAME": "user-fl-c0ffee",
    "COLE_FL_PASSWORD": "S3cret-Cole-FL-2a77",
    "BISON_TOKEN_ACME_NJ": "S3cret-Bison-acme-e4f1",
    "BISON_TOKEN_SUNNY": "S3cret-Bison-sunny-6c0d",
    "BISON_INSTANCE_URL": "https://agency.bison.example/S3cret-path-33aa",
    "DEBOUNCE_API_KEY": "S3cret-Debounce-0b9a",
    "SLACK_BOT_TOKEN": "xoxb-S3cret-Slack-4e2c",
    "SUPABASE_URL": "https://S3cret-project-ref.supabase.co",
    "SUPABASE_SERVICE_ROLE_KEY": "S3cret-Supabase-service-71f0",
    "CLAY_WEBHOOK_URL": "https://api.clay.com/v3/sources/webhook/S3cret-hook-5e5e",
    "CLAY_API_KEY": "S3cret-Clay-api-9090",
    "CLAY_TABLE_ID": "t_S3cret-table-1212",
}
OPTIONAL = ("HOMEOWNER_EMAIL_BACKEND", "HOMEOWNER_ARTIFACTS_BACKEND", "COLE_OK_USERNAME",
            "COLE_OK_PASSWORD", "BISON_TOKEN_GONE", "SLACK_API_URL", "DEBOUNCE_API_URL",
            "DEBOUNCE_BULK_URL", "CLAY_API_URL", "HOMEOWNER_SANDBOX_ORIGINS")  # fmt: skip


@pytest.fixture
def ready(database_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("BISON_ALLOWED_HOSTS", "agency.bison.example,sunny.bison.example")
    registry.upsert_clients(parse_clients(CLIENTS_YAML, "clients.yaml"), database_url)
    for name in OPTIONAL:
        monkeypatch.delenv(name, raising=False)
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("COLE_URL", "https://cole.agency.example")  # the deployment's, no default
    monkeypatch.setenv("HOMEOWNER_DAGSTER_STORAGE_URL", db.dagster_storage_url(database_url))
    return database_url


def _check(capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(["check"])
    captured = capsys.readouterr()
    output = captured.out + captured.err
    for name, value in SECRETS.items():
        assert value not in output, f"the value of {name} was printed"
    assert os.environ["HOMEOWNER_DATABASE_URL"] not in output
    return code, output


def _status(output: str, item: str) -> str:
    for line in output.splitlines():
        if line.startswith(item + " "):
            return line[len(item) :].split()[0]
    raise AssertionError(f"{item} not in the report:\n{output}")


def test_everything_set_exits_zero_and_prints_no_value(
    ready: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, output = _check(capsys)
    assert code == 0, output
    for name in ("COLE_NJ_PASSWORD", "COLE_TX_USERNAME", "COLE_FL_PASSWORD", "BISON_TOKEN_ACME_NJ",
                 "BISON_TOKEN_SUNNY", "BISON_INSTANCE_URL", "DEBOUNCE_API_KEY", "SLACK_BOT_TOKEN"):  # fmt: skip
        assert _status(output, name) == "ok"
    assert _status(output, "database reachable") == "ok"
    assert _status(output, "database migrated") == "ok"
    assert _status(output, "chromium starts") == "ok"
    # An inactive client's state and token are not asked for; Supabase/Clay only when chosen.
    for name in (
        "COLE_OK_PASSWORD",
        "BISON_TOKEN_GONE",
        "SUPABASE_SERVICE_ROLE_KEY",
        "CLAY_API_KEY",
    ):
        assert name not in output


def test_missing_variables_are_named_and_exit_one(
    ready: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("COLE_TX_PASSWORD")
    monkeypatch.setenv("BISON_TOKEN_SUNNY", "  ")  # blank counts as missing
    monkeypatch.delenv("SLACK_BOT_TOKEN")
    code, output = _check(capsys)
    assert code == 1
    assert _status(output, "COLE_TX_PASSWORD") == "missing"
    assert _status(output, "BISON_TOKEN_SUNNY") == "missing"
    assert _status(output, "SLACK_BOT_TOKEN") == "missing"
    assert _status(output, "COLE_TX_USERNAME") == "ok"
    assert "3 item(s) missing" in output


def test_an_undocumented_address_unset_or_an_address_off_its_vendor_is_named(
    ready: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from homeowner_dagster import addresses

    monkeypatch.delenv("COLE_URL")
    monkeypatch.setenv("SLACK_API_URL", "https://slack.evil.example/api/")
    code, output = _check(capsys)
    assert code == 1
    cole = next(line for line in output.splitlines() if line.startswith("COLE_URL "))
    assert cole.split()[1] == "missing" and "no default" in cole and "coleinformation" not in cole
    slack = next(line for line in output.splitlines() if line.startswith("SLACK_API_URL "))
    assert (
        slack.split()[1] == "missing"
        and "'slack.evil.example' is not a Slack Web API host" in slack
    )
    assert "2 item(s) missing" in output
    # The same list, for other commands (preflight): every needed address, checked.
    checks = {c.variable: c for c in addresses.check_addresses()}
    assert not checks["COLE_URL"].ok and not checks["SLACK_API_URL"].ok
    assert checks["DEBOUNCE_API_URL"].ok and checks["DEBOUNCE_BULK_URL"].ok


def test_dagster_storage_outside_its_schema_or_unset_is_named(
    ready: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, output = _check(capsys)
    assert code == 0 and _status(output, "Dagster storage schema") == "ok"
    assert _status(output, "row-level security") == "ok"
    monkeypatch.setenv("HOMEOWNER_DAGSTER_STORAGE_URL", db.libpq_url(ready))  # no search_path
    code, output = _check(capsys)
    line = next(x for x in output.splitlines() if x.startswith("Dagster storage schema "))
    assert code == 1 and "missing" in line and "in schema 'public', not 'dagster'" in line, line
    monkeypatch.delenv("HOMEOWNER_DAGSTER_STORAGE_URL")
    code, output = _check(capsys)
    assert code == 1 and "HOMEOWNER_DAGSTER_STORAGE_URL is not set" in output


def test_agency_bison_url_needed_only_by_clients_without_their_own(
    ready: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("BISON_INSTANCE_URL")
    code, output = _check(capsys)
    assert code == 1
    line = next(x for x in output.splitlines() if x.startswith("BISON_INSTANCE_URL "))
    assert "missing" in line and "acme-nj" in line and "sunny" not in line


def test_backends_add_their_variables(
    ready: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOMEOWNER_EMAIL_BACKEND", "clay")
    monkeypatch.setenv("HOMEOWNER_ARTIFACTS_BACKEND", "supabase")
    monkeypatch.delenv("DEBOUNCE_API_KEY")
    monkeypatch.delenv("CLAY_API_KEY")
    monkeypatch.delenv("SUPABASE_SERVICE_ROLE_KEY")
    code, output = _check(capsys)
    assert code == 1
    assert "DEBOUNCE_API_KEY" not in output
    assert _status(output, "CLAY_API_KEY") == "missing"
    assert _status(output, "CLAY_WEBHOOK_URL") == "ok"
    assert _status(output, "SUPABASE_SERVICE_ROLE_KEY") == "missing"
    assert _status(output, "SUPABASE_URL") == "ok"


def test_client_without_token_variable_is_reported(
    ready: str, capsys: pytest.CaptureFixture[str]
) -> None:
    registry.upsert_clients(
        parse_clients(
            "- slug: bare\n  name: Bare\n  package_tier: 100\n  licensed_states: NJ\n", "c.yaml"
        ),
        ready,
    )
    code, output = _check(capsys)
    assert code == 1
    assert _status(output, "bare: Bison token variable") == "missing"


def test_unmigrated_database_is_missing(
    empty_database_url: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("HOMEOWNER_CHROMIUM", "/nonexistent/chromium")
    code, output = _check(capsys)
    assert code == 1
    assert _status(output, "database reachable") == "ok"
    assert _status(output, "database migrated") == "missing"
    assert _status(output, "per-client variables") == "missing"
    assert _status(output, "chromium starts") == "missing"
    assert _status(output, "SLACK_BOT_TOKEN") == "ok"


def test_unreachable_database_prints_no_url_or_password(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    password = "S3cret-Db-Password-a1b2"
    url = f"postgresql://owner:{password}@127.0.0.1:1/nowhere?connect_timeout=2"
    monkeypatch.setenv("HOMEOWNER_DATABASE_URL", url)
    monkeypatch.setenv("HOMEOWNER_CHROMIUM", "/nonexistent/chromium")
    code = main(["check"])
    captured = capsys.readouterr()
    assert code == 1
    assert password not in captured.out + captured.err
    assert _status(captured.out, "database reachable") == "missing"


def test_a_refused_bison_destination_and_the_sandbox_variable_are_reported(
    ready: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import psycopg

    with psycopg.connect(ready) as conn:  # edited in the table, past the importer
        conn.execute(
            "update clients set bison_instance_url = 'https://elsewhere.example' where slug = 'sunny'"
        )
    monkeypatch.setenv("HOMEOWNER_SANDBOX_ORIGINS", "http://127.0.0.1:8123")
    code, output = _check(capsys)
    assert code == 1
    assert _status(output, "sunny: Bison destination") == "missing"
    assert "'elsewhere.example' is not in BISON_ALLOWED_HOSTS" in output
    assert _status(output, "HOMEOWNER_SANDBOX_ORIGINS") == "missing"
    assert "acme-nj: Bison destination" not in output
