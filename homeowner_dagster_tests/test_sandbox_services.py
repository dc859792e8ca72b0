"""Every sandbox service through plain clients (httpx, slack_sdk, supabase), every fault included."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from storage3.exceptions import StorageApiError
from supabase import create_client

from homeowner_dagster.sandbox import Sandbox
from homeowner_dagster.sandbox.faults import KNOWN_FAULTS


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    yield from Sandbox(seed=11)


@pytest.fixture(autouse=True)
def _faults_off(sandbox: Sandbox) -> Iterator[None]:
    yield
    sandbox.faults.off()


def test_whole_sandbox_starts_and_names_its_environment() -> None:
    # Start-up time is measured in bench/bench_api_requests.py, not asserted here.
    with Sandbox(seed=3) as fresh:
        assert {"debounce", "bison", "clay", "slack", "storage"} <= fresh.urls.keys()
        env = fresh.env()
    assert env["DEBOUNCE_API_KEY"] and env["SUPABASE_SERVICE_ROLE_KEY"] and env["SLACK_BOT_TOKEN"]
    assert "BISON_TOKEN_ACME_INSURANCE" in env and "CLAY_WEBHOOK_URL" in env


# -- DeBounce ------------------------------------------------------------------------------------


def _debounce(sandbox: Sandbox, email: str, key: str | None = None) -> httpx.Response:
    return httpx.get(
        f"{sandbox.urls['debounce']}/v1/",
        params={"api": key or sandbox.debounce.api_key, "email": email},
    )


def test_debounce_single_answers_string_values_deterministically(sandbox: Sandbox) -> None:
    """Fact D-CODES."""
    before = sandbox.debounce.balance
    first = _debounce(sandbox, "Pat.Owner@example.com").json()
    again = _debounce(sandbox, "pat.owner@example.com").json()
    assert first["success"] == "1" and isinstance(first["debounce"]["code"], str)
    assert first["debounce"]["code"] == again["debounce"]["code"]
    assert _debounce(sandbox, "not-an-email").json()["debounce"]["code"] == "1"
    assert _debounce(sandbox, "info@agency.com").json()["debounce"]["result"] == "Risky"
    assert sandbox.debounce.balance == before - 4
    assert _debounce(sandbox, "x@example.com", key="wrong").status_code == 401
    codes = [sandbox.debounce.code_for(f"owner{i}@example.com") for i in range(2000)]
    assert 0.65 < codes.count(5) / len(codes) < 0.85
    assert {2, 3, 4, 6, 7, 8} <= set(codes)


def test_debounce_refuses_a_sixth_concurrent_call(sandbox: Sandbox) -> None:
    """Fact D-CONCURRENCY."""
    sandbox.debounce.latency = 1.0  # long enough for all ten calls to meet on a loaded machine
    try:
        with ThreadPoolExecutor(max_workers=10) as pool:
            statuses = list(
                pool.map(lambda i: _debounce(sandbox, f"c{i}@example.com").status_code, range(10))
            )
    finally:
        sandbox.debounce.latency = 0.005
    assert statuses.count(200) >= 5 and statuses.count(429) >= 1
    assert sandbox.debounce.max_in_flight_seen > 5  # refused calls are counted too


def test_debounce_bulk_fetches_the_list_from_a_signed_storage_url(sandbox: Sandbox) -> None:
    """Fact D-BULK, ST-SIGNED-URL."""
    env = sandbox.env()
    bucket = create_client(env["SUPABASE_URL"], env["SUPABASE_SERVICE_ROLE_KEY"]).storage.from_(
        "homeowner-artifacts"
    )
    bucket.upload(
        "lists/bulk.csv", b"email\na@example.com\nb@example.com\n", {"content-type": "text/csv"}
    )
    signed = bucket.create_signed_url("lists/bulk.csv", 600)["signedURL"]
    base, key = sandbox.urls["debounce"], sandbox.debounce.api_key
    list_id = httpx.get(f"{base}/v1/upload/", params={"url": signed, "api": key}).json()[
        "debounce"
    ]["list_id"]
    first = httpx.get(f"{base}/v1/status/", params={"list_id": list_id, "api": key}).json()[
        "debounce"
    ]
    second = httpx.get(f"{base}/v1/status/", params={"list_id": list_id, "api": key}).json()[
        "debounce"
    ]
    assert first["status"] == "processing" and second["status"] == "completed"
    result = httpx.get(second["download_link"]).text.splitlines()
    assert result[0].startswith("Email,Debounce Code") and len(result) == 3


@pytest.mark.parametrize("fault", KNOWN_FAULTS["debounce"])
def test_debounce_faults(sandbox: Sandbox, fault: str) -> None:
    sandbox.faults.on("debounce", fault, times=1, retry_after=2, delay=0.3)
    if fault == "dropped_download":
        from homeowner_dagster.sandbox.debounce import BulkList

        sandbox.debounce.lists["77"] = BulkList("77", [f"d{i}@example.com" for i in range(200)])
        url = f"{sandbox.urls['debounce']}/v1/download/77/"
        with pytest.raises(httpx.TransportError):
            httpx.get(url, params={"api": sandbox.debounce.api_key})
        assert (
            len(httpx.get(url, params={"api": sandbox.debounce.api_key}).text.splitlines()) == 201
        )
        return
    began = time.perf_counter()
    response = _debounce(sandbox, "fault@example.com")
    if fault == "http_429":
        assert response.status_code == 429 and response.headers["Retry-After"] == "2"
    elif fault == "http_500":
        assert response.status_code == 500 and response.json()["success"] == "0"
    else:
        assert response.status_code == 200 and time.perf_counter() - began >= 0.3
    assert _debounce(sandbox, "fault@example.com").status_code == 200


# -- Email Bison ---------------------------------------------------------------------------------


def _bison(sandbox: Sandbox, workspace: str) -> httpx.Client:
    token = sandbox.bison.workspaces[workspace].token
    return httpx.Client(
        base_url=sandbox.urls["bison"], headers={"Authorization": f"Bearer {token}"}
    )


def _listed(client: httpx.Client, list_id: int) -> dict:
    """The list as the paged list of lead lists shows it (there is no by-id route)."""
    page = 1
    while True:
        body = client.get("/api/lead-lists", params={"page": page}).json()
        for item in body["data"]:
            if item["id"] == list_id:
                return item
        if page >= body["meta"]["last_page"]:
            raise AssertionError(f"lead list {list_id} not listed")
        page += 1


def _processed(sandbox: Sandbox, client: httpx.Client, list_id: int) -> dict:
    """The list once its queued import is done: the sandbox clock moves past `import_seconds`."""
    assert _listed(client, list_id)["status"] == "Unprocessed"
    sandbox.bison.advance(sandbox.bison.import_seconds)
    return _listed(client, list_id)


@pytest.fixture
def bison_defaults(sandbox: Sandbox) -> Iterator[None]:
    """Put back the knobs a test turned (the documented behaviour is the default)."""
    yield
    from homeowner_dagster.sandbox.bison import RATE_LIMIT_PER_SECOND, SYNC_SECONDS

    sandbox.bison.rate_limit_per_second, sandbox.bison.sync_seconds = (
        RATE_LIMIT_PER_SECOND,
        SYNC_SECONDS,
    )
    sandbox.bison.reset_rate_limit()


def test_bison_bulk_csv_lists_campaigns_and_update(sandbox: Sandbox, bison_defaults: None) -> None:
    """Facts B-QUEUED, B-CUSTOM-VARS, B-PAGES, B-SYNC, B-TOTAL-LEADS, B-UPDATE-RESETS,
    B-UPDATE-ANSWER, B-GET-OMITS: the import is queued (201, `Unprocessed`, counts 0, no
    `leads_count`); a custom variable must exist first; pages of 15 with `?page=`; an attach
    counts in `total_leads` 5 minutes later; `PATCH .../update` resets the booleans left out to
    false and answers the campaign; the GET never shows `reputation_building`."""
    sandbox.bison.rate_limit_per_second = 1000  # this test's burst is not about the rate limit
    sandbox.bison.add_workspace("Bulk Test", "tok-bulk")
    campaign = sandbox.bison.add_campaign(
        "Bulk Test", "Evergreen, Last Upload: March 1st-7th", max_emails_per_day=250
    )
    with _bison(sandbox, "Bulk Test") as client:
        csv_body = (
            b"first,last,mail,zip\nAnn,Lee,ann@example.com,07001\nBo,Ray,bo@example.com,07002\n"
        )
        form = {
            "name": "(March 1st - 7th renewals)",
            "existing_lead_behavior": "put",
            "columnsToMap[first_name][]": "first",
            "columnsToMap[last_name][]": "last",
            "columnsToMap[email][]": "mail",
            "columnsToMap[zip][]": "zip",
        }
        refused = client.post(
            "/api/leads/bulk/csv", data=form, files={"csv": ("l.csv", csv_body, "text/csv")}
        )
        assert refused.status_code == 422 and refused.json()["data"]["success"] is False
        assert "zip" in refused.json()["data"]["message"]
        assert client.post("/api/custom-variables", json={"name": "zip"}).status_code == 200
        created = client.post(
            "/api/leads/bulk/csv", data=form, files={"csv": ("l.csv", csv_body, "text/csv")}
        )
        queued = created.json()["data"]
        assert created.status_code == 201 and queued["status"] == "Unprocessed"
        assert (queued["leads_processed"], queued["leads_succeeded"], queued["leads_failed"]) == (
            0,
            0,
            0,
        )
        assert "leads_count" not in queued
        list_id = queued["id"]
        done = _processed(sandbox, client, list_id)
        assert (done["leads_processed"], done["leads_succeeded"], done["leads_failed"]) == (2, 2, 0)
        assert done["error_messages"] == [] and "leads_count" not in done
        for i in range(16):
            client.post(
                "/api/leads/bulk/csv",
                data={**form, "name": f"extra {i}"},
                files={"csv": ("l.csv", csv_body, "text/csv")},
            )
        page1 = client.get("/api/lead-lists").json()
        page2 = client.get("/api/lead-lists", params={"page": 2}).json()
        assert (
            len(page1["data"]) == 15 and page1["meta"]["last_page"] == 2 and page1["links"]["next"]
        )
        assert len(page2["data"]) == 2 and page2["links"]["next"] is None
        assert all("leads_count" not in item for item in page1["data"] + page2["data"])
        found = client.get("/api/campaigns", params={"search": "evergreen"}).json()["data"]
        assert [c["id"] for c in found] == [campaign["id"]]
        assert found[0]["total_leads"] == 0 and "reputation_building" not in found[0]
        attach = client.post(
            f"/api/campaigns/{campaign['id']}/leads/attach-lead-list",
            json={"lead_list_id": list_id},
        )
        assert attach.status_code == 200
        assert client.get(f"/api/campaigns/{campaign['id']}").json()["data"]["total_leads"] == 0
        sandbox.bison.advance(299)
        assert client.get(f"/api/campaigns/{campaign['id']}").json()["data"]["total_leads"] == 0
        sandbox.bison.advance(1)  # B-SYNC: counted 5 minutes after the attach
        assert client.get(f"/api/campaigns/{campaign['id']}").json()["data"]["total_leads"] == 2
        updated = client.patch(
            f"/api/campaigns/{campaign['id']}/update", json={"name": "Renamed"}
        ).json()["data"]
    assert updated["name"] == "Renamed" and updated["max_emails_per_day"] == 250
    assert "reputation_building" not in updated
    stored = sandbox.bison.workspaces["Bulk Test"].campaigns[campaign["id"]]
    for reset in ("plain_text", "open_tracking", "reputation_building", "can_unsubscribe"):
        assert stored[reset] is False, reset  # left out of the update: false
    assert sandbox.bison.attached_lists("Bulk Test", campaign["id"]) == [
        "(March 1st - 7th renewals)"
    ]
    assert sandbox.bison.list_leads("Bulk Test", "(March 1st - 7th renewals)")[0][
        "custom_variables"
    ] == {"zip": "07001"}


def test_bison_import_refuses_an_invalid_email_row(sandbox: Sandbox) -> None:
    """Fact B-REFUSED-ROWS (vendor facts section 5): `leads_failed` and `error_messages` report
    refused rows.

    Fails against the old sandbox (and so the connector never met it): every row was imported
    at once and nothing was ever refused."""
    sandbox.bison.add_workspace("Refusals", "tok-refusals")
    with _bison(sandbox, "Refusals") as client:
        created = client.post(
            "/api/leads/bulk/csv",
            data={
                "name": "mixed",
                "columnsToMap[first_name][]": "first",
                "columnsToMap[last_name][]": "last",
                "columnsToMap[email][]": "mail",
            },
            files={"csv": ("l.csv", b"first,last,mail\nAnn,Lee,ann@example.com\nBo,Ray,bo@@\n")},
        )
        done = _processed(sandbox, client, created.json()["data"]["id"])
    assert (done["leads_processed"], done["leads_succeeded"], done["leads_failed"]) == (2, 1, 1)
    assert done["error_messages"] == ["Row 3: The email field must be a valid email address."]
    assert [lead["email"] for lead in sandbox.bison.list_leads("Refusals", "mixed")] == [
        "ann@example.com"
    ]


def test_bison_refuses_another_workspaces_token(sandbox: Sandbox) -> None:
    """Facts B-ERRORS, B-BEARER (vendor facts section 7): errors are
    `{"data": {"success": false, "message": ...}}`; another workspace's object is a 403 "api key
    does not match the workspace"; an unknown route is a 404 naming it; a refused action can
    come as a 200 with `data.success: false`."""
    theirs = sandbox.bison.campaign("Lone Star Agency", "Evergreen, Last Upload: January 22nd-31st")
    with _bison(sandbox, "Acme Insurance") as client:
        denied = client.get(f"/api/campaigns/{theirs['id']}")
        assert denied.status_code == 403
        assert denied.json() == {
            "data": {"success": False, "message": "api key does not match the workspace"}
        }
        unknown = client.get("/api/no-such-thing")
        assert unknown.status_code == 404
        assert (
            unknown.json()["data"]["message"] == "The route api/no-such-thing could not be found."
        )
    assert (
        httpx.get(
            f"{sandbox.urls['bison']}/api/campaigns", headers={"Authorization": "Bearer nope"}
        ).status_code
        == 401
    )


def _upload(client: httpx.Client, name: str, rows: bytes) -> int:
    form = {
        "name": name,
        "columnsToMap[first_name][]": "first",
        "columnsToMap[last_name][]": "last",
        "columnsToMap[email][]": "mail",
    }
    created = client.post(
        "/api/leads/bulk/csv", data=form, files={"csv": ("l.csv", b"first,last,mail\n" + rows)}
    )
    assert created.status_code == 201, created.text
    return created.json()["data"]["id"]


def test_bison_keeps_one_lead_per_email_and_attach_adds_only_new_leads(
    sandbox: Sandbox, bison_defaults: None
) -> None:
    """Facts B-UNIQUE, B-SYNC, B-WORKSPACES (vendor facts sections 5, 8): a CSV with an email the
    workspace has updates that lead in place (no second lead); attaching a list adds to the
    campaign only leads not in it yet, counted in `total_leads` 5 minutes later; the same
    address in another workspace is another lead with its own id. Attaching a list whose import
    is not done answers 200 with `data.success: false` (a guess, B-ERRORS)."""
    bison = sandbox.bison
    bison.add_workspace("Unique Test", "tok-unique")
    bison.add_workspace("Other Test", "tok-other")
    campaign = bison.add_campaign("Unique Test", "Evergreen, Last Upload: March 1st-7th")
    with _bison(sandbox, "Unique Test") as client:
        first = _upload(client, "year one", b"Ann,Lee,ann@example.com\nBo,Ray,bo@example.com\n")
        early = client.post(
            f"/api/campaigns/{campaign['id']}/leads/attach-lead-list", json={"lead_list_id": first}
        )
        assert early.status_code == 200 and early.json()["data"]["success"] is False
        bison.advance(bison.import_seconds)
        client.post(
            f"/api/campaigns/{campaign['id']}/leads/attach-lead-list", json={"lead_list_id": first}
        )
        bison.advance(300)
        assert client.get(f"/api/campaigns/{campaign['id']}").json()["data"]["total_leads"] == 2
        second = _upload(
            client, "year two", b"Ann,Lee-Smith,ANN@example.com\nCy,Day,cy@example.com\n"
        )
        bison.advance(bison.import_seconds)
        client.post(
            f"/api/campaigns/{campaign['id']}/leads/attach-lead-list", json={"lead_list_id": second}
        )
        bison.advance(300)
        assert (
            client.get(f"/api/campaigns/{campaign['id']}").json()["data"]["total_leads"] == 3
        )  # Cy only
    ws = bison.workspaces["Unique Test"]
    assert sorted(ws.leads) == ["ann@example.com", "bo@example.com", "cy@example.com"]
    assert ws.leads["ann@example.com"]["last_name"] == "Lee-Smith"  # updated in place (put)
    assert bison.campaign_emails("Unique Test", campaign["id"]).count("ann@example.com") == 1
    with _bison(sandbox, "Other Test") as client:
        _upload(client, "elsewhere", b"Ann,Lee,ann@example.com\n")
        bison.advance(bison.import_seconds)
        client.get("/api/lead-lists")
    other = bison.workspaces["Other Test"].leads["ann@example.com"]
    assert other["id"] != ws.leads["ann@example.com"]["id"]


def test_bison_has_no_route_for_one_lead_list(sandbox: Sandbox) -> None:
    """Fact B-NO-STATUS-ROUTE (vendor facts sections 5, 8): no `GET /api/lead-lists/{id}` is
    documented, so the sandbox has none: the paged list is the only way to read a list."""
    with _bison(sandbox, "Acme Insurance") as client:
        list_id = _upload(client, "by id", b"Ann,Lee,ann@example.com\n")
        answer = client.get(f"/api/lead-lists/{list_id}")
    assert answer.status_code == 404
    assert (
        answer.json()["data"]["message"]
        == f"The route api/lead-lists/{list_id} could not be found."
    )


def test_bison_rate_limit_answers_429_with_retry_after_in_both_forms(
    sandbox: Sandbox, bison_defaults: None
) -> None:
    """Fact B-RATE-LIMIT (vendor facts section 7): past 10 requests a second on one token the
    answer is 429 with `Retry-After`, as seconds and as an HTTP date by turns."""
    from email.utils import parsedate_to_datetime

    sandbox.bison.reset_rate_limit()  # a clean second for this token
    with _bison(sandbox, "Acme Insurance") as client:
        answers = [client.get("/api/campaigns") for _ in range(20)]
    statuses = [a.status_code for a in answers]
    limited = [a for a in answers if a.status_code == 429]
    assert statuses[:10] == [200] * 10 and len(limited) >= 2
    waits = [a.headers["Retry-After"] for a in limited]
    assert any(w.isdigit() and 0 < int(w) <= 1 for w in waits)
    assert any(parsedate_to_datetime(w) for w in waits if not w.isdigit())
    assert limited[0].json() == {"data": {"success": False, "message": "Too Many Attempts."}}


def test_bison_campaign_get_shows_the_documented_fields(sandbox: Sandbox) -> None:
    """Facts B-CAMPAIGN-FIELDS, B-GET-OMITS (vendor facts section 6): the campaign object's
    documented fields, `status` written like "Active"; never `reputation_building` (write-only)
    nor `include_auto_replies_in_stats` (typed by one client only: absent, the safe side)."""
    theirs = sandbox.bison.campaign("Acme Insurance", "Evergreen, Last Upload: January 1st-7th")
    with _bison(sandbox, "Acme Insurance") as client:
        shown = client.get(f"/api/campaigns/{theirs['id']}").json()["data"]
    documented = {
        "id", "uuid", "name", "type", "status", "completion_percentage", "emails_sent", "opened",
        "unique_opens", "replied", "unique_replies", "bounced", "unsubscribed", "interested",
        "total_leads_contacted", "total_leads", "max_emails_per_day", "max_new_leads_per_day",
        "plain_text", "open_tracking", "can_unsubscribe", "unsubscribe_text",
        "sequence_prioritization", "tags", "created_at", "updated_at",
    }  # fmt: skip
    assert set(shown) == documented and shown["status"] == "Active"


@pytest.mark.parametrize("fault", KNOWN_FAULTS["bison"])
def test_bison_faults(sandbox: Sandbox, fault: str) -> None:
    sandbox.faults.on("bison", fault, times=1, retry_after=1, delay=0.3)
    with _bison(sandbox, "Acme Insurance") as client:
        began = time.perf_counter()
        if fault == "dropped_connection":
            with pytest.raises(httpx.TransportError):
                client.post("/api/custom-variables", json={"name": "dropped_var"})
            assert (
                "dropped_var" in sandbox.bison.workspaces["Acme Insurance"].custom_variables
            )  # done, answer lost
            return
        response = client.get("/api/campaigns")
        if fault == "http_429":
            assert response.status_code == 429 and response.headers["Retry-After"] == "1"
            assert response.json()["data"]["success"] is False
        elif fault == "http_500":
            assert response.status_code == 500
        else:
            assert response.status_code == 200 and time.perf_counter() - began >= 0.3
        assert client.get("/api/campaigns").status_code == 200


# -- Clay ----------------------------------------------------------------------------------------


def test_clay_webhook_read_api_and_enrichment(sandbox: Sandbox) -> None:
    table_id, hook = sandbox.clay.add_table("t", token="hook-token")
    url = f"{sandbox.urls['clay']}/v3/sources/webhook/{hook}"
    assert httpx.post(url, json={"email": "a@example.com"}).status_code == 401
    rows = [{"email": f"p{i}@example.com"} for i in range(250)]
    for start in range(0, 250, 100):
        assert (
            httpx.post(
                url, json=rows[start : start + 100], headers={"x-clay-webhook-auth": "hook-token"}
            ).status_code
            == 200
        )
    read = f"{sandbox.urls['clay']}/api/v1/tables/{table_id}/rows"
    assert httpx.get(read).status_code == 401
    seen, cursor, pages = [], None, 0
    while True:
        body = httpx.get(
            read,
            params={"limit": 500, **({"cursor": cursor} if cursor else {})},
            headers={"clay-api-key": sandbox.clay.api_key},
        ).json()
        pages += 1
        assert len(body["data"]) <= 100
        seen += body["data"]
        cursor = body["next_cursor"]
        if not cursor:
            break
    assert pages == 3 and len(seen) == 250
    time.sleep(sandbox.clay.enrich_delay)
    fields = sandbox.clay.rows(table_id)[0]["fields"]
    assert fields["debounce_code"] == str(sandbox.debounce.code_for("p0@example.com"))


def test_clay_webhook_refuses_past_its_limit(sandbox: Sandbox) -> None:
    _, hook = sandbox.clay.add_table("small", token="t2")
    sandbox.clay.webhook_limit = 5
    try:
        url = f"{sandbox.urls['clay']}/v3/sources/webhook/{hook}"
        ok = httpx.post(url, json=[{"email": "a@x.com"}] * 5, headers={"x-clay-webhook-auth": "t2"})
        refused = httpx.post(url, json={"email": "b@x.com"}, headers={"x-clay-webhook-auth": "t2"})
    finally:
        sandbox.clay.webhook_limit = 50_000
    assert ok.status_code == 200 and refused.status_code == 403 and "limit" in refused.text


@pytest.mark.parametrize("fault", KNOWN_FAULTS["clay"])
def test_clay_faults(sandbox: Sandbox, fault: str) -> None:
    sandbox.faults.on("clay", fault, times=1, retry_after=1, delay=0.3)
    read = f"{sandbox.urls['clay']}/api/v1/tables/{sandbox.clay_table_id}/rows"
    headers = {"clay-api-key": sandbox.clay.api_key}
    began = time.perf_counter()
    response = httpx.get(read, headers=headers)
    expected = {"http_429": 429, "http_500": 500, "slow_page": 200}[fault]
    assert response.status_code == expected
    if fault == "slow_page":
        assert time.perf_counter() - began >= 0.3
    assert httpx.get(read, headers=headers).status_code == 200


# -- Slack ---------------------------------------------------------------------------------------


def _slack(sandbox: Sandbox, token: str | None = None) -> WebClient:
    return WebClient(token=token or sandbox.slack.token, base_url=f"{sandbox.urls['slack']}/api/")


def test_slack_auth_test_and_post_message(sandbox: Sandbox) -> None:
    """Fact S-POST."""
    client = _slack(sandbox)
    assert client.auth_test()["bot_id"] == "B0SANDBOX"
    ts = client.chat_postMessage(channel="#homeowner-ops", text="✅ Raw Pull Complete")["ts"]
    assert ts and sandbox.slack.messages_in("homeowner-ops")[-1] == "✅ Raw Pull Complete"
    with pytest.raises(SlackApiError) as refused:
        _slack(sandbox, "xoxb-wrong").auth_test()
    assert refused.value.response["error"] == "invalid_auth"


def test_slack_history_reads_a_channels_posts_newest_first_by_its_id(sandbox: Sandbox) -> None:
    """How a test beside `homeowner dev --sandbox` reads that process's Slack: by HTTP, as Slack's."""
    client = _slack(sandbox)
    for text in ("first", "second"):
        client.chat_postMessage(channel="#history-read", text=text)
    channel = next(
        c["id"] for c in client.conversations_list()["channels"] if c["name"] == "history-read"
    )
    history = client.conversations_history(channel=channel)
    assert [m["text"] for m in history["messages"]] == ["second", "first"]
    assert history["has_more"] is False
    assert [
        m["text"] for m in client.conversations_history(channel=channel, limit=1)["messages"]
    ] == ["second"]
    for ref, error in (("#history-read", "channel_not_found"), ("C99999999", "channel_not_found")):
        with pytest.raises(SlackApiError) as refused:
            client.conversations_history(channel=ref)
        assert refused.value.response["error"] == error
    sandbox.slack.add_channel("history-read", member=False)  # the bot left it
    with pytest.raises(SlackApiError) as refused:
        client.conversations_history(channel=channel)
    assert refused.value.response["error"] == "not_in_channel"


@pytest.mark.parametrize("fault", KNOWN_FAULTS["slack"])
def test_slack_faults(sandbox: Sandbox, fault: str) -> None:
    sandbox.faults.on("slack", fault, times=1, retry_after=1)
    with pytest.raises(SlackApiError) as failed:
        _slack(sandbox).chat_postMessage(channel="#x", text="hello")
    assert failed.value.response.status_code == (429 if fault == "http_429" else 500)
    if fault == "http_429":
        assert failed.value.response.headers["Retry-After"] in ("1", ["1"])
    assert _slack(sandbox).chat_postMessage(channel="#x", text="hello")["ok"]


# -- Supabase Storage ----------------------------------------------------------------------------


def test_storage_upload_sign_and_download_with_the_supabase_client(sandbox: Sandbox) -> None:
    """Fact ST-SIGNED-URL."""
    env = sandbox.env()
    storage = create_client(env["SUPABASE_URL"], env["SUPABASE_SERVICE_ROLE_KEY"]).storage
    bucket = storage.from_("homeowner-artifacts")
    bucket.upload("runs/r1/screenshot.png", b"\x89PNG...", {"content-type": "image/png"})
    with pytest.raises(StorageApiError):  # no upsert: the object exists
        bucket.upload("runs/r1/screenshot.png", b"again", {"content-type": "image/png"})
    signed = bucket.create_signed_url("runs/r1/screenshot.png", 60)["signedURL"]
    assert httpx.get(signed).content == b"\x89PNG..."
    assert httpx.get(signed.replace("token=", "token=x")).status_code == 400
    assert bucket.download("runs/r1/screenshot.png") == b"\x89PNG..."
    assert storage.get_bucket("homeowner-artifacts").public is False
    with pytest.raises(StorageApiError):
        create_client(env["SUPABASE_URL"], "wrong-key").storage.from_(
            "homeowner-artifacts"
        ).download("runs/r1/screenshot.png")
    assert "runs/r1/screenshot.png" in sandbox.storage.keys("homeowner-artifacts")


def test_storage_fault_http_500(sandbox: Sandbox) -> None:
    env = sandbox.env()
    bucket = create_client(env["SUPABASE_URL"], env["SUPABASE_SERVICE_ROLE_KEY"]).storage.from_(
        "homeowner-artifacts"
    )
    sandbox.faults.on("storage", "http_500", times=1)
    with pytest.raises(StorageApiError):
        bucket.upload("f.txt", b"x", {"content-type": "text/plain"})
    bucket.upload("f.txt", b"x", {"content-type": "text/plain"})
    assert sandbox.storage.read("homeowner-artifacts", "f.txt") == b"x"
