"""ClayResource against the sandbox: chunked webhook pushes, the 50,000 limit, paged reads."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from homeowner_dagster.resources.clay import ClayResource, ClayWebhookExhausted
from homeowner_dagster.sandbox import Sandbox


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    yield from Sandbox(seed=17)


def clay_for(
    sandbox: Sandbox, table_id: str, webhook_id: str, token: str, **extra: object
) -> ClayResource:
    return ClayResource(
        webhook_url=f"{sandbox.urls['clay']}/v3/sources/webhook/{webhook_id}",
        webhook_token=token,
        api_key=sandbox.clay.api_key,
        api_url=sandbox.urls["clay"],
        table_id=table_id,
        retry_base_seconds=0.01,
        **extra,
    )


def test_push_in_chunks_and_read_back_all_pages(sandbox: Sandbox) -> None:
    table_id, hook = sandbox.clay.add_table("March", token="tok")
    clay = clay_for(sandbox, table_id, hook, "tok")
    sandbox.faults.on("clay", "http_500", times=1)
    sandbox.faults.on("clay", "http_429", times=1, retry_after=0)
    assert (
        clay.push_rows([{"email": f"p{i}@example.com", "zip": "07001"} for i in range(250)]) == 250
    )
    assert sandbox.clay.webhooks[hook].submissions == 250
    rows = clay.read_rows()
    assert len(rows) == 250 and rows[0]["fields"]["zip"] == "07001"
    sandbox.faults.off()


def test_limit_is_checked_before_sending_and_refusal_is_clear(sandbox: Sandbox) -> None:
    table_id, hook = sandbox.clay.add_table("April", token="tok2")
    clay = clay_for(sandbox, table_id, hook, "tok2")
    with pytest.raises(ClayWebhookExhausted, match="new webhook"):
        clay.push_rows([{"email": "a@example.com"}] * 10, submitted_before=49_995)
    assert sandbox.clay.webhooks[hook].submissions == 0
    sandbox.clay.webhook_limit = 150
    try:
        with pytest.raises(ClayWebhookExhausted, match="new webhook"):
            clay.push_rows([{"email": f"b{i}@example.com"} for i in range(200)])
    finally:
        sandbox.clay.webhook_limit = 50_000
    assert sandbox.clay.webhooks[hook].submissions == 100
