"""Slack messages: the builders' wording, and posting through dagster-slack to the sandbox."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from slack_sdk.errors import SlackApiError

from homeowner_dagster.resources import slack as messages
from homeowner_dagster.resources.slack import HomeownerSlackResource
from homeowner_dagster.sandbox import Sandbox


@pytest.fixture(scope="module")
def running() -> Iterator[Sandbox]:
    yield from Sandbox(seed=19)


@pytest.fixture
def sandbox(running: Sandbox, monkeypatch: pytest.MonkeyPatch) -> Sandbox:
    """The sandbox, its addresses in the environment (where the resource reads SLACK_API_URL)."""
    for key, value in running.env().items():
        monkeypatch.setenv(key, value)
    return running


def test_post_lands_in_the_channel_and_survives_429_and_500(sandbox: Sandbox) -> None:
    """Fact S-POST, S-RATE-LIMIT."""
    env = sandbox.env()
    slack = HomeownerSlackResource(token=env["SLACK_BOT_TOKEN"])
    sandbox.faults.on("slack", "http_429", times=1, retry_after=0)
    sandbox.faults.on("slack", "http_500", times=1)
    text = messages.evergreen_uploads_completed(
        "Acme Insurance", "Evergreen, Last Upload: March 1st-7th", 3120
    )
    ts = slack.post("#acme-fulfilment", text)
    assert ts and sandbox.slack.messages_in("acme-fulfilment") == [text]
    assert slack.get_client().auth_test()["ok"]


@pytest.mark.parametrize("retry_after", [3600, "date"], ids=["an-hour-in-seconds", "http-date"])
def test_a_long_retry_after_delays_the_message_at_most_the_cap(
    sandbox: Sandbox, retry_after: int | str
) -> None:
    """Fact S-RATE-LIMIT. Sandbox mode: Slack answers 429 `ratelimited` with Retry-After. slack_sdk's own handler
    (the old resource) slept the hour, and crashed on a date with a bare ValueError."""
    env = sandbox.env()
    slack = HomeownerSlackResource(token=env["SLACK_BOT_TOKEN"], max_retry_after_seconds=0.2)
    params = (
        {"retry_after": 3600, "form": "date"} if retry_after == "date" else {"retry_after": 3600}
    )
    sandbox.faults.fired.clear()
    sandbox.faults.on("slack", "http_429", times=2, **params)
    ts = slack.post("#rate-limited", f"Evergreen uploads completed ({retry_after})")
    assert ts and sandbox.faults.fired.count(("slack", "http_429")) == 2
    assert sandbox.slack.messages_in("rate-limited")[-1].endswith(f"({retry_after})")


def test_a_rate_limit_that_never_lifts_ends_after_the_bounded_retries(sandbox: Sandbox) -> None:
    env = sandbox.env()
    slack = HomeownerSlackResource(token=env["SLACK_BOT_TOKEN"], max_retry_after_seconds=0.05)
    sandbox.faults.on("slack", "http_429", retry_after=1)
    fired = sandbox.faults.fired.count(("slack", "http_429"))
    try:
        with pytest.raises(SlackApiError) as refused:
            slack.post("#never", "hello")
    finally:
        sandbox.faults.off()
    assert refused.value.response["error"] == "ratelimited"
    assert sandbox.faults.fired.count(("slack", "http_429")) - fired == 1 + slack.max_retries
    assert sandbox.slack.messages_in("never") == []


def test_builders_keep_the_teams_wording_and_no_lead_data() -> None:
    texts = [
        messages.raw_pull_complete("Acme Insurance", "2027-03", 18_400, 3, zips=42),
        messages.data_refinement_complete(
            "Acme Insurance",
            "2027-03",
            15_200,
            {"not_head_of_household": 2100, "invalid_email": 900, "duplicate": 0},
        ),
        messages.refined_data_uploaded(
            "Acme Insurance",
            [("(March 1st - 7th renewals)", 3800), ("(March 8th - 14th renewals)", 3700)],
            7500,
        ),
        messages.evergreen_uploads_completed(
            "Acme Insurance", "Evergreen, Last Upload: March 8th-14th", 3700
        ),
        messages.gap_analysis(
            "Acme Insurance",
            "2027-03",
            12_000,
            15_000,
            -3000,
            "under",
            "move 4 ZIPs from Lone Star Agency",
        ),
        messages.failure_alert(
            "monthly_pull",
            "Acme Insurance",
            "acme|2027-03",
            "CaptchaBlocked",
            "http://dagster/runs/1",
            "http://s/shot.png",
            "http://s/trace.zip",
        ),
    ]
    assert texts[0].startswith("✅ Raw Pull Complete") and "18,400" in texts[0]
    assert (
        texts[1].startswith("✅ Data Refinement Complete")
        and "not head of household: 2,100" in texts[1]
    )
    assert "duplicate" not in texts[1]
    assert texts[2].startswith("✅ Refined Data Uploaded") and "Total: 7,500" in texts[2]
    assert texts[3].startswith("Evergreen uploads completed")
    assert texts[4].startswith("📊 Gap Analysis") and "Gap: -3,000" in texts[4]
    assert "CaptchaBlocked" in texts[5] and "trace.zip" in texts[5]
    assert not any("@" in t for t in texts)
