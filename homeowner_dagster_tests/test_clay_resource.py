"""ClayResource against the sandbox: chunked webhook pushes, paged reads, and Clay's two limits
(rows per table, submissions per webhook) counted in Postgres across runs and clients."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from homeowner_dagster.resources.clay import ClayResource, ClayTableFull, ClayWebhookExhausted
from homeowner_dagster.resources.slack import HomeownerSlackResource
from homeowner_dagster.sandbox import Sandbox


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    yield from Sandbox(seed=17)


@pytest.fixture(autouse=True)
def _sandbox_environment(sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    """The sandbox's addresses in the environment, restored after each test (clay_for sets the
    first webhook there, as a deployment does)."""
    for key, value in sandbox.env().items():
        monkeypatch.setenv(key, value)


def clay_for(
    sandbox: Sandbox, table_id: str, webhook_id: str, token: str, **extra: object
) -> ClayResource:
    os.environ["CLAY_WEBHOOK_URL"] = f"{sandbox.urls['clay']}/v3/sources/webhook/{webhook_id}"
    os.environ["CLAY_WEBHOOK_TOKEN"] = token
    os.environ["CLAY_TABLE_NAME"] = sandbox.clay.tables[table_id]["name"]
    return ClayResource(
        api_key=sandbox.clay.api_key,
        table_id=table_id,
        retry_base_seconds=0.01,
        slack=HomeownerSlackResource(token=sandbox.slack.token),
        slack_channel="#homeowner-ops",
        **extra,
    )


def people(prefix: str, n: int) -> list[dict[str, str]]:
    return [{"email": f"{prefix}{i}@example.com", "zip": "07001"} for i in range(n)]


def warnings(sandbox: Sandbox) -> list[str]:
    return [t for t in sandbox.slack.messages_in("#homeowner-ops") if t.startswith("⚠️ Clay")]


def test_push_in_chunks_and_read_back_all_pages(sandbox: Sandbox, database_url: str) -> None:
    """Fact CL-READ-API."""
    table_id, hook = sandbox.clay.add_table("March", token="tok")
    clay = clay_for(sandbox, table_id, hook, "tok")
    sandbox.faults.on("clay", "http_500", times=1)
    sandbox.faults.on("clay", "http_429", times=1, retry_after=0)
    assert clay.push_rows(people("p", 250)) == 250
    assert sandbox.clay.webhooks[hook].submissions == 250
    rows = clay.read_rows()
    assert len(rows) == 250 and rows[0]["fields"]["zip"] == "07001"
    assert clay.usage() == ({hook: 250}, {"March": 250})
    sandbox.faults.off()


def test_table_rows_warn_at_90_percent_and_refuse_past_the_limit_across_runs(
    sandbox: Sandbox, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    sandbox.slack.messages.clear()
    table_id, hook = sandbox.clay.add_table("April", token="tok2")
    limits = {"table_row_limit": 100, "webhook_limit": 1_000}
    assert clay_for(sandbox, table_id, hook, "tok2", **limits).push_rows(people("a", 85)) == 85
    assert warnings(sandbox) == []
    # Another run (another client, another process): the count comes from the database.
    assert clay_for(sandbox, table_id, hook, "tok2", **limits).push_rows(people("b", 10)) == 10
    [warning] = warnings(sandbox)
    assert "'April' holds 95 of 100 rows" in warning and "CLAY_WEBHOOK_URL_2" in warning
    with pytest.raises(
        ClayTableFull, match=r"'April' holds 95 of 100 rows .* nothing was sent.*CLAY_TABLE_NAME_2"
    ):
        clay_for(sandbox, table_id, hook, "tok2", **limits).push_rows(people("c", 10))
    assert len(sandbox.clay.tables[table_id]["rows"]) == 95  # nothing sent past the limit
    assert len(warnings(sandbox)) == 1  # warned once, when crossing 90%
    # The team makes the next table in Clay and sets its webhook: pushes go there, in order.
    next_table, next_hook = sandbox.clay.add_table("April 2", token="tok3")
    monkeypatch.setenv(
        "CLAY_WEBHOOK_URL_2", f"{sandbox.urls['clay']}/v3/sources/webhook/{next_hook}"
    )
    monkeypatch.setenv("CLAY_WEBHOOK_TOKEN_2", "tok3")
    monkeypatch.setenv("CLAY_TABLE_NAME_2", "April 2")
    assert clay_for(sandbox, table_id, hook, "tok2", **limits).push_rows(people("c", 10)) == 10
    assert len(sandbox.clay.tables[next_table]["rows"]) == 10
    assert len(sandbox.clay.tables[table_id]["rows"]) == 95


def test_webhook_submissions_warn_at_90_percent_and_refuse_past_the_limit(
    sandbox: Sandbox, database_url: str
) -> None:
    """Fact CL-WEBHOOK-LIMIT."""
    sandbox.slack.messages.clear()
    table_id, hook = sandbox.clay.add_table("May", token="tok4")
    limits = {"table_row_limit": 1_000, "webhook_limit": 100}
    assert clay_for(sandbox, table_id, hook, "tok4", **limits).push_rows(people("d", 92)) == 92
    [warning] = warnings(sandbox)
    assert "webhook 1 of table 'May' has taken 92 of 100 submissions" in warning
    with pytest.raises(
        ClayWebhookExhausted, match=r"taken 92 of 100 submissions .* nothing was sent.*new webhook"
    ):
        clay_for(sandbox, table_id, hook, "tok4", **limits).push_rows(people("e", 9))
    assert sandbox.clay.webhooks[hook].submissions == 92  # nothing sent past the limit
    assert sandbox.clay.webhooks[hook].refused == 0  # refused here, not by Clay
    assert (
        clay_for(sandbox, table_id, hook, "tok4", **limits).push_rows(people("e", 8)) == 8
    )  # exactly 100


def test_clay_refusing_first_marks_the_webhook_used_up(sandbox: Sandbox, database_url: str) -> None:
    """A webhook used outside this project: Clay's own refusal is believed and remembered."""
    table_id, hook = sandbox.clay.add_table("June", token="tok5")
    sandbox.clay.webhook_limit = 150
    try:
        with pytest.raises(ClayWebhookExhausted, match="new webhook"):
            clay_for(sandbox, table_id, hook, "tok5").push_rows(people("f", 200))
    finally:
        sandbox.clay.webhook_limit = 50_000
    assert sandbox.clay.webhooks[hook].submissions == 100
    with pytest.raises(ClayWebhookExhausted, match="nothing was sent"):
        clay_for(sandbox, table_id, hook, "tok5").push_rows(people("g", 1))


def test_a_caller_keeping_its_own_count_is_refused_before_sending(sandbox: Sandbox) -> None:
    table_id, hook = sandbox.clay.add_table("July", token="tok6")
    clay = clay_for(sandbox, table_id, hook, "tok6")
    with pytest.raises(ClayWebhookExhausted, match="new webhook"):
        clay.push_rows([{"email": "a@example.com"}] * 10, submitted_before=49_995)
    assert sandbox.clay.webhooks[hook].submissions == 0
