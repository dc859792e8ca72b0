"""The sandbox Email Bison's simulated sending, through plain HTTP: replies, cursor pages, stats."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import httpx
import pytest

from homeowner_dagster.sandbox import Sandbox


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    yield from Sandbox(seed=5)


def _upload_and_attach(
    sandbox: Sandbox,
    token: str,
    campaign_id: int,
    leads: int,
    first: int = 0,
    zips: tuple[str, ...] = ("07302", "07030"),
) -> None:
    rows = ["email,first_name,last_name,zip"] + [
        f"owner{i}@example.com,Pat,Owner{i},{zips[i % len(zips)]}"
        for i in range(first, first + leads)
    ]
    client = httpx.Client(
        base_url=sandbox.urls["bison"], headers={"Authorization": f"Bearer {token}"}
    )
    if "zip" not in {v["name"] for v in client.get("/api/custom-variables").json()["data"]}:
        client.post("/api/custom-variables", json={"name": "zip"}).raise_for_status()
    created = client.post(
        "/api/leads/bulk/csv",
        data={
            "name": "(January 1st - 7th renewals) 2027",
            "columnsToMap[email][]": "email",
            "columnsToMap[first_name][]": "first_name",
            "columnsToMap[last_name][]": "last_name",
            "columnsToMap[zip][]": "zip",
        },
        files={"csv": ("list.csv", "\n".join(rows).encode(), "text/csv")},
    )
    created.raise_for_status()
    list_id = created.json()["data"]["id"]
    sandbox.bison.advance(
        sandbox.bison.import_seconds
    )  # the import is queued, as on the real Bison
    client.post(
        f"/api/campaigns/{campaign_id}/leads/attach-lead-list", json={"lead_list_id": list_id}
    ).raise_for_status()


def test_campaign_sends_on_the_simulated_clock_and_replies_page_by_cursor(sandbox: Sandbox) -> None:
    """Fact B-REPLIES, B-STATS."""
    sandbox.bison.rate_limit_per_second = 1_000  # this walk through pages is not about B-RATE-LIMIT
    ws = sandbox.bison.add_workspace("Outcome Test", "token-outcome-test")
    campaign = sandbox.bison.add_campaign(
        "Outcome Test", "Evergreen, Last Upload: December 22nd-31st"
    )
    sandbox.bison.outcomes.plant("07030", reply=0.30, interested=0.10)
    sandbox.bison.outcomes.plant("07302", reply=0.05, interested=0.0)
    _upload_and_attach(sandbox, ws.token, campaign["id"], 400)
    client = httpx.Client(
        base_url=sandbox.urls["bison"], headers={"Authorization": f"Bearer {ws.token}"}
    )
    path = f"/api/campaigns/{campaign['id']}/replies"

    # Nothing happened yet: the clock has not moved past any send.
    assert (
        client.get(path, params={"folder": "inbox", "pagination_type": "cursor"}).json()["data"]
        == []
    )

    moved = httpx.post(f"{sandbox.urls['bison']}/sandbox/clock", json={"weeks": 3}).json()
    assert moved["offset_days"] == pytest.approx(21)

    replies, cursor, pages = [], None, 0
    while True:
        params = {
            "folder": "inbox",
            "pagination_type": "cursor",
            **({"cursor": cursor} if cursor else {}),
        }
        body = client.get(path, params=params).json()
        pages += 1
        assert len(body["data"]) <= 15
        replies += body["data"]
        cursor = body["meta"]["next_cursor"]
        if not cursor:
            break
    assert pages == -(-len(replies) // 15)
    assert len({r["id"] for r in replies}) == len(replies)
    by_zip = {"07030": 0, "07302": 0}
    for reply in replies:
        number = int(reply["from_email_address"].removeprefix("owner").split("@")[0])
        by_zip["07030" if number % 2 else "07302"] += not reply["automated_reply"]
    # planted 30 % vs 5 % of 200 leads each
    assert 40 <= by_zip["07030"] <= 80 and by_zip["07302"] <= 20
    interested = [r for r in replies if r["interested"]]
    assert interested and all(r["from_email_address"] for r in interested)
    assert {r["folder"] for r in replies} == {"inbox"}

    bounced = client.get(path, params={"folder": "bounced", "per_page": 100}).json()
    assert bounced["meta"]["per_page"] == 15 and "last_page" in bounced["meta"]  # Laravel pages
    assert all(r["folder"] == "bounced" for r in bounced["data"])

    # /api/replies mixes in the outgoing emails (campaign_id null), as probed on the real one.
    mixed = client.get("/api/replies", params={"folder": "all"}).json()
    assert mixed["meta"]["total"] > len(replies) + bounced["meta"]["total"]
    sent = client.get("/api/replies", params={"folder": "sent"}).json()
    assert sent["meta"]["total"] == 400
    assert all(r["type"] == "Outgoing Email" and r["campaign_id"] is None for r in sent["data"])

    today = sandbox.bison.outcomes.now().date()
    stats = client.post(
        f"/api/campaigns/{campaign['id']}/stats",
        json={
            "start_date": (today - timedelta(days=30)).isoformat(),
            "end_date": today.isoformat(),
        },
    ).json()["data"]
    assert all(
        isinstance(stats[k], str) for k in ("emails_sent", "bounced", "interested", "unsubscribed")
    )
    assert int(stats["emails_sent"]) == 400
    assert int(stats["interested"]) == len({r["lead_id"] for r in interested})  # leads, not replies
    assert isinstance(stats["sequence_step_stats"][0]["sent"], int)
    # Another workspace's token cannot read these replies.
    other = next(w for w in sandbox.bison.workspaces.values() if w.name != "Outcome Test")
    denied = httpx.get(
        f"{sandbox.urls['bison']}{path}", headers={"Authorization": f"Bearer {other.token}"}
    )
    assert denied.status_code == 403


def test_outcomes_are_seeded_and_bounces_follow_the_verification_result() -> None:
    from homeowner_dagster.sandbox.bison_outcomes import OutcomeSimulator

    def run() -> list[tuple]:
        sim = OutcomeSimulator(seed=3, verification_code=lambda e: 5 if e.startswith("s") else 6)
        sim.on_attach(
            "w",
            1,
            [
                {
                    "id": i,
                    "email": f"{'s' if i % 2 else 'x'}{i}@e.com",
                    "custom_variables": {"zip": "07030"},
                }
                for i in range(4000)
            ],
        )
        return [(f.email, f.bounced, f.reply) for f in sim.fates("w", 1)]

    first = run()
    assert first == run()
    safe = [b for e, b, _ in first if e.startswith("s")]
    invalid = [b for e, b, _ in first if e.startswith("x")]
    assert 0.01 < sum(safe) / len(safe) < 0.03
    assert sum(invalid) / len(invalid) > 0.5


def test_connector_reads_cursor_pages_and_stops_at_replies_older_than_the_attach(
    sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fact B-REPLIES, B-STATS."""
    from homeowner_dagster.resources.bison import BisonResource
    from homeowner_dagster.resources.bison_outcomes import campaign_replies, campaign_stats

    ws = sandbox.bison.add_workspace("Connector Test", "token-connector-test")
    campaign = sandbox.bison.add_campaign(
        "Connector Test", "Evergreen, Last Upload: December 22nd-31st"
    )
    sandbox.bison.outcomes.plant("07030", reply=0.30, interested=0.10)
    _upload_and_attach(sandbox, ws.token, campaign["id"], 300)
    sandbox.bison.outcomes.advance(weeks=3)
    monkeypatch.setenv("BISON_TOKEN_CONNECTOR_TEST", ws.token)
    workspace = BisonResource(min_interval_seconds=0).workspace(
        sandbox.urls["bison"], "BISON_TOKEN_CONNECTOR_TEST"
    )

    everything = list(campaign_replies(workspace, campaign["id"], "inbox"))
    assert workspace.requests == -(-len(everything) // 15) and len(everything) > 30
    before = workspace.requests
    later = sandbox.bison.outcomes.now() + timedelta(days=1)
    assert len(list(campaign_replies(workspace, campaign["id"], "inbox", since=later))) == 15
    assert workspace.requests == before + 1  # a newest-first page older than `since` is the last
    today = sandbox.bison.outcomes.now().date()
    stats = campaign_stats(workspace, campaign["id"], today - timedelta(days=40), today)
    assert stats["emails_sent"] == 300 and isinstance(stats["interested"], int)


def test_a_quarter_of_weekly_reads_costs_the_new_replies_pages_plus_three(
    sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    """13 Mondays: a window of 1,200 leads attached, then the campaign read from the cursor.

    Each read makes at most (pages of its new replies) + 3 requests, and together the reads see
    every reply and bounce the campaign got, each once as new.
    """
    from homeowner_dagster.resources.bison import BisonResource
    from homeowner_dagster.resources.bison_outcomes import read_campaign

    ws = sandbox.bison.add_workspace("Quarter Test", "token-quarter-test")
    campaign = sandbox.bison.add_campaign(
        "Quarter Test", "Evergreen, Last Upload: December 22nd-31st"
    )
    monkeypatch.setenv("BISON_TOKEN_QUARTER_TEST", ws.token)
    workspace = BisonResource(min_interval_seconds=0).workspace(
        sandbox.urls["bison"], "BISON_TOKEN_QUARTER_TEST"
    )
    zips = tuple(f"{8000 + i:05d}" for i in range(40))
    cursor, new_total, weekly = None, 0, []
    for week in range(13):
        _upload_and_attach(sandbox, ws.token, campaign["id"], 1200, first=week * 1200, zips=zips)
        if week == 6:  # Bison's rate limit answers once: the read waits its Retry-After (a date)
            sandbox.faults.on("bison", "http_429", times=1, retry_after=0, form="date")
        read = read_campaign(workspace, campaign["id"], cursor, sandbox.bison.outcomes.now().date())
        assert (
            read.as_of == sandbox.bison.outcomes.now().replace(microsecond=0)
            or abs((read.as_of - sandbox.bison.outcomes.now()).total_seconds()) < 5
        )  # Bison's clock, from its Date header
        assert read.requests <= read.pages_of_new_replies + 3, (
            week,
            read.requests,
            read.new_by_folder,
        )
        weekly.append((read.requests, read.pages_of_new_replies, sum(read.new_by_folder.values())))
        new_total += sum(read.new_by_folder.values())
        cursor = read.newest
        sandbox.bison.outcomes.advance(weeks=1)
    everything = sandbox.bison.outcomes.replies(ws.name, campaign["id"], with_outgoing=False)
    seen_at_last_read = [
        r for r in everything if r["date_received"] <= cursor.strftime("%Y-%m-%dT%H:%M:%S.000000Z")
    ]
    assert new_total == len(seen_at_last_read) > 13 * 15
    requests = sum(w[0] for w in weekly)
    print(
        f"quarter: 13 reads, {new_total} new replies and bounces, {requests} requests, "
        f"{sum(w[1] for w in weekly)} pages of new replies; per week (requests, pages, new): {weekly}"
    )
