"""BisonResource against the sandbox: outcomes in the workspace, faults recovered, no duplicates.

Tests named `test_fact_*` each hold the connector to one firm fact of
shared/vendor-facts/email-bison.md (the section is named in the docstring).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
import pytest

from homeowner_dagster.resources import bison as bison_module
from homeowner_dagster.resources.bison import (
    BisonAttachNotSynced,
    BisonError,
    BisonFieldMissing,
    BisonImportFailed,
    BisonImportTimeout,
    BisonResource,
    BisonSettingsChanged,
    BisonSettingUnknown,
    BisonWorkspace,
)
from homeowner_dagster.sandbox import Sandbox
from homeowner_dagster.sandbox.bison import IMPORT_SECONDS, SYNC_SECONDS

WORKSPACE = "Acme Insurance"
TOKEN_ENV = "BISON_TOKEN_ACME_INSURANCE"


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    yield from Sandbox(seed=5)


@pytest.fixture
def workspace(sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> Iterator[BisonWorkspace]:
    for name, value in sandbox.env().items():
        monkeypatch.setenv(name, value)
    # Waits for an import or an attach's sync move the sandbox clock instead of sleeping.
    monkeypatch.setattr(bison_module, "pause", sandbox.bison.advance)
    sandbox.bison.reset_rate_limit()
    resource = BisonResource(
        retry_base_seconds=0.01
    )  # paced 0.1 s a call: 10 a second (B-RATE-LIMIT)
    with resource.workspace(sandbox.urls["bison"], TOKEN_ENV) as ws:
        yield ws
    sandbox.faults.off()
    bison = sandbox.bison
    bison.import_seconds, bison.sync_seconds = IMPORT_SECONDS, SYNC_SECONDS
    bison.campaign_omits = {"reputation_building", "include_auto_replies_in_stats"}
    bison.list_omits, bison.update_drops = set(), set()


CUSTOM_VARIABLES = [
    "date_of_birth",
    "street_address",
    "city",
    "state",
    "zip",
    "renewal_date",
    "cellphone",
    "home_value",
]


def evergreen(workspace: BisonWorkspace) -> dict[str, Any]:
    """The workspace's one Evergreen campaign, looked up by title as the weekly upload does."""
    (campaign,) = workspace.find_campaigns("Evergreen")
    return campaign


def leads(n: int, start: int = 0) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "first_name": [f"Ann{i}" for i in range(start, start + n)],
            "last_name": ['=HYPERLINK("x")'] + ["Lee"] * (n - 1),
            "email": [f"owner{i}@example.com" for i in range(start, start + n)],
            "date_of_birth": ["1970-01-01"] * n,
            "address": ["1 Main St"] * n,
            "city": ["Newark"] * n,
            "state": ["NJ"] * n,
            "zip": ["07001"] * n,
            "renewal_date": ["2027-03-04"] * n,
            "phone": ["+1 555 0100"] * n,
            "home_value": [350000] * n,
        }
    )


def test_upload_creates_one_list_with_custom_variables_and_neutralised_formulas(
    sandbox: Sandbox, workspace: BisonWorkspace
) -> None:
    list_id, created = workspace.upload_lead_list("(March 1st - 7th renewals)", leads(3))
    assert created and workspace.lead_list_count(list_id) == 3
    assert sandbox.bison.list_names(WORKSPACE).count("(March 1st - 7th renewals)") == 1
    lead = sandbox.bison.list_leads(WORKSPACE, "(March 1st - 7th renewals)")[0]
    assert lead["last_name"] == '\'=HYPERLINK("x")'
    assert lead["custom_variables"]["cellphone"] == "'+1 555 0100"
    assert lead["custom_variables"]["street_address"] == "1 Main St"
    assert {"cellphone", "home_value", "renewal_date"} <= workspace.custom_variables()


def test_new_list_costs_two_requests_once_custom_variables_are_known(
    sandbox: Sandbox, workspace: BisonWorkspace
) -> None:
    """Facts B-CUSTOM-VARS, B-NO-STATUS-ROUTE: CSV POST and one poll of the listing (from where
    the list should be): 2 requests seen by the sandbox once the variables are known to exist;
    3 with a look-up of the variables. A refusal for a missing variable creates it and sends again.

    Fails against the old connector: it looked the variables up every time (3 requests).
    """
    workspace.ensure_custom_variables(CUSTOM_VARIABLES)
    before = sandbox.bison.requests
    list_id, _ = workspace.upload_lead_list(
        "(April 1st - 7th renewals)", leads(5, start=300), CUSTOM_VARIABLES
    )
    assert (
        workspace.lead_list_count(
            list_id, near=len(sandbox.bison.workspaces[WORKSPACE].lead_lists) - 1
        )
        == 5
    )
    assert sandbox.bison.requests - before == 2
    del sandbox.bison.workspaces[WORKSPACE].custom_variables["cellphone"]  # deleted by a person
    list_id, _ = workspace.upload_lead_list(
        "(April 2nd renewals)", leads(2, start=305), CUSTOM_VARIABLES
    )
    assert workspace.lead_list_count(list_id) == 2
    assert "cellphone" in sandbox.bison.workspaces[WORKSPACE].custom_variables


def test_fact_import_is_queued_and_counted_when_processed(
    sandbox: Sandbox, workspace: BisonWorkspace
) -> None:
    """Fact B-QUEUED (section 5): the CSV import is queued; the list is `Unprocessed` with counts 0 at
    first and reports `leads_succeeded` once `Processed`; there is no `leads_count`.

    Fails against the old connector: it read `leads_count` (absent) and returned 0 at once.
    """
    sandbox.bison.import_seconds = 1.0
    list_id, _ = workspace.upload_lead_list("(April 8th - 14th renewals)", leads(4, start=310))
    assert sandbox.bison.workspaces[WORKSPACE].lead_lists[list_id]["status"] == "Unprocessed"
    assert workspace.lead_list_count(list_id) == 4
    assert sandbox.bison.workspaces[WORKSPACE].lead_lists[list_id]["status"] == "Processed"


def test_fact_refused_rows_are_a_typed_error_quoting_error_messages(
    sandbox: Sandbox, workspace: BisonWorkspace
) -> None:
    """Fact B-REFUSED-ROWS (section 5): a processed list reports `leads_failed` and `error_messages`.

    Fails against the old connector: it returned a count and never looked at `leads_failed`.
    """
    frame = leads(3, start=320)
    frame.loc[1, "email"] = "not-an-address"
    list_id, _ = workspace.upload_lead_list("(April 15th - 21st renewals)", frame)
    with pytest.raises(BisonImportFailed) as failed:
        workspace.lead_list_count(list_id)
    assert (failed.value.succeeded, failed.value.failed) == (2, 1)
    assert "Row 3: The email field must be a valid email address." in str(failed.value)
    assert "owner3" not in str(failed.value)  # no homeowner's address in the error


def test_missing_list_field_is_an_error_naming_it(
    sandbox: Sandbox, workspace: BisonWorkspace
) -> None:
    """Fails against the old connector: a missing count was read as 0."""
    list_id, _ = workspace.upload_lead_list("(April 22nd - 30th renewals)", leads(2, start=330))
    sandbox.bison.list_omits = {"leads_succeeded"}
    with pytest.raises(BisonFieldMissing, match="'leads_succeeded'"):
        workspace.lead_list_count(list_id)
    sandbox.bison.list_omits = {"status"}
    with pytest.raises(BisonFieldMissing, match="'status'"):
        workspace.lead_list_count(list_id)


def test_import_poll_gives_up_with_a_typed_error(
    sandbox: Sandbox, workspace: BisonWorkspace
) -> None:
    """Bounded poll: a list never `Processed` within the limit ends in `BisonImportTimeout`.

    Fails against the old connector: it did not wait at all and answered 0.
    """
    sandbox.bison.import_seconds = 30
    impatient = BisonResource(min_interval_seconds=0.0, import_timeout_seconds=0.5)
    with impatient.workspace(sandbox.urls["bison"], TOKEN_ENV) as ws:
        list_id, _ = ws.upload_lead_list("(May 1st - 7th renewals)", leads(2, start=340))
        with pytest.raises(BisonImportTimeout, match="'Unprocessed'") as timed_out:
            ws.lead_list_count(list_id)
    assert timed_out.value.transient


def test_fact_import_is_polled_through_the_paged_list_with_no_by_id_route(
    sandbox: Sandbox, workspace: BisonWorkspace
) -> None:
    """Fact B-NO-STATUS-ROUTE: no `GET /api/lead-lists/{id}` (the sandbox has none): the poll
    reads the paged list. From where the list should be, one request; without a hint, page 1
    then the last page (the listing's order is not documented); a list not listed is a 404."""
    ws = sandbox.bison.workspaces[WORKSPACE]
    for i in range(35):
        ws.lead_lists[30_000 + i] = {"id": 30_000 + i, "name": f"filler {i}", "created_at": "",
                                     "updated_at": "", "lead_emails": []}  # fmt: skip
    list_id, _ = workspace.upload_lead_list("(May 8th - 14th renewals)", leads(3, start=350))
    position = len(ws.lead_lists) - 1
    before = sandbox.bison.requests
    assert workspace.lead_list_count(list_id, near=position) == 3
    assert sandbox.bison.requests - before == 1
    workspace.list_positions.clear()
    before = sandbox.bison.requests
    assert workspace.lead_list(list_id)["status"] == "Processed"
    assert sandbox.bison.requests - before == 2
    with pytest.raises(BisonError, match="not found"):
        workspace.lead_list_count(999_999)


@pytest.mark.parametrize("fault", ["http_500", "http_429"])
def test_upload_survives_faults_without_duplicating(
    sandbox: Sandbox, workspace: BisonWorkspace, fault: str
) -> None:
    name = f"(March 8th - 14th renewals) {fault}"
    workspace.ensure_custom_variables(CUSTOM_VARIABLES)
    sandbox.faults.on("bison", fault, times=1, retry_after=0)
    list_id, created = workspace.upload_lead_list(name, leads(4))
    assert created and ("bison", fault) in sandbox.faults.fired
    assert sandbox.bison.list_names(WORKSPACE).count(name) == 1
    assert workspace.lead_list_count(list_id) == 4


def test_lost_upload_answer_finds_this_upload_not_last_years_list(
    sandbox: Sandbox, workspace: BisonWorkspace
) -> None:
    """The answer is dropped after Bison created the list: the list is found, not sent again,
    and last year's list of the same name is not taken for it.

    Fails against the old connector: it took any list with the name (last year's, here).
    """
    name = "(March 15th - 21st renewals)"
    workspace.ensure_custom_variables(CUSTOM_VARIABLES)
    a_year_ago = (datetime.now(UTC) - timedelta(days=364)).strftime("%Y-%m-%dT%H:%M:%S.000000Z")
    ws = sandbox.bison.workspaces[WORKSPACE]
    ws.lead_lists[20_000] = {
        "id": 20_000, "name": name, "created_at": a_year_ago, "updated_at": a_year_ago,
        "lead_emails": [],
    }  # fmt: skip
    sandbox.faults.on("bison", "dropped_connection", times=1)
    list_id, created = workspace.upload_lead_list(name, leads(2))
    assert created and list_id != 20_000 and ("bison", "dropped_connection") in sandbox.faults.fired
    assert sandbox.bison.list_names(WORKSPACE).count(name) == 2  # last year's and this one
    assert workspace.lead_list_count(list_id) == 2


def test_fact_pagination_find_lead_list_walks_every_page(
    sandbox: Sandbox, workspace: BisonWorkspace
) -> None:
    """Fact B-PAGES (section 2): pages of 15 with `?page=N` and `meta.last_page`."""
    ws = sandbox.bison.workspaces[WORKSPACE]
    for i in range(40):
        ws.lead_lists[10_000 + i] = {
            "id": 10_000 + i,
            "name": f"old list {i}",
            "created_at": "",
            "updated_at": "",
            "lead_emails": [],
        }
    before = sandbox.bison.requests
    assert workspace.find_lead_list("old list 39")["id"] == 10_039
    assert sandbox.bison.requests - before >= 3  # 40+ lists take at least 3 pages of 15
    assert workspace.find_lead_list("never uploaded") is None


def test_fact_rename_resends_every_boolean_and_total_leads_counts_the_list(
    sandbox: Sandbox, workspace: BisonWorkspace
) -> None:
    """Facts B-UPDATE-RESETS, B-GET-OMITS, B-TOTAL-LEADS, B-SYNC, B-UNIQUE (section 6): `PATCH
    .../update` resets booleans left out to false; the campaign GET does not return
    `reputation_building`; the campaign's lead count is `total_leads`, which shows an attach only
    after the sync (waited out, on the sandbox clock); attaching a list twice adds its leads once.

    Fails against the old connector: it resent only what the GET returned, so reputation
    building was switched off.
    """
    campaign = evergreen(workspace)
    assert "reputation_building" not in campaign
    stored = sandbox.bison.workspaces[WORKSPACE].campaigns[campaign["id"]]
    stored.update(
        plain_text=True,
        open_tracking=False,
        reputation_building=True,
        max_emails_per_day=333,
        sequence_prioritization="new_leads",
    )
    leads_before = workspace.campaign(campaign["id"])["total_leads"]
    list_id, _ = workspace.upload_lead_list("(March 22nd - 31st renewals)", leads(2, start=50))
    assert workspace.lead_list_count(list_id) == 2
    workspace.attach_lead_list(campaign["id"], list_id)
    workspace.attach_lead_list(campaign["id"], list_id)
    assert workspace.campaign(campaign["id"])["total_leads"] == leads_before  # not synced yet
    synced = workspace.wait_for_total_leads(campaign["id"], leads_before + 2)
    assert synced["total_leads"] == leads_before + 2
    workspace.rename_campaign(campaign["id"], "Evergreen, Last Upload: March 22nd-31st")
    after = sandbox.bison.campaign(WORKSPACE, "Evergreen, Last Upload: March 22nd-31st")
    assert after["plain_text"] is True and after["open_tracking"] is False
    assert after["reputation_building"] is True and after["can_unsubscribe"] is True
    assert after["max_emails_per_day"] == 333 and after["sequence_prioritization"] == "new_leads"
    assert "(March 22nd - 31st renewals)" in sandbox.bison.attached_lists(WORKSPACE, campaign["id"])


def test_rename_refuses_when_a_reset_boolean_is_unknown(
    sandbox: Sandbox, workspace: BisonWorkspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The campaign GET leaves `can_unsubscribe` out and nothing configures it: no PATCH.

    Fails against the old connector: it renamed and Bison switched the unsubscribe link off.
    """
    sandbox.bison.campaign_omits = {"reputation_building", "can_unsubscribe"}
    campaign = evergreen(workspace)
    monkeypatch.delenv("BISON_CAN_UNSUBSCRIBE", raising=False)
    with pytest.raises(BisonSettingUnknown, match="BISON_CAN_UNSUBSCRIBE"):
        workspace.rename_campaign(campaign["id"], "Evergreen, Last Upload: April 1st-7th")
    stored = sandbox.bison.workspaces[WORKSPACE].campaigns[campaign["id"]]
    assert stored["name"] == campaign["name"] and stored["can_unsubscribe"] is True


def test_rename_sends_the_configured_value_of_a_setting_bison_never_returns(
    sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`reputation_building` comes from BISON_REPUTATION_BUILDING (the operator's choice)."""
    campaign = sandbox.bison.add_campaign(WORKSPACE, "Reminders", reputation_building=True)
    monkeypatch.setenv(TOKEN_ENV, sandbox.bison.workspaces[WORKSPACE].token)
    monkeypatch.setenv("BISON_REPUTATION_BUILDING", "false")
    monkeypatch.setenv("BISON_INCLUDE_AUTO_REPLIES_IN_STATS", "true")
    resource = BisonResource(min_interval_seconds=0.0)
    with resource.workspace(sandbox.urls["bison"], TOKEN_ENV) as ws:
        ws.rename_campaign(campaign["id"], "Reminders, renamed")
    assert campaign["name"] == "Reminders, renamed" and campaign["reputation_building"] is False
    monkeypatch.setenv("BISON_REPUTATION_BUILDING", "maybe")
    with pytest.raises(BisonError, match="BISON_REPUTATION_BUILDING must be true or false"):
        resource.workspace(sandbox.urls["bison"], TOKEN_ENV)


def test_rename_reads_settings_back_and_fails_if_one_changed(
    sandbox: Sandbox, workspace: BisonWorkspace
) -> None:
    """The update does not take `open_tracking` (so Bison resets it): the read-back sees it.

    Fails against the old connector: it checked only the new title.
    """
    campaign = evergreen(workspace)
    sandbox.bison.workspaces[WORKSPACE].campaigns[campaign["id"]]["open_tracking"] = True
    sandbox.bison.update_drops = {"open_tracking"}
    with pytest.raises(BisonSettingsChanged, match="open_tracking: True -> False"):
        workspace.rename_campaign(campaign["id"], "Evergreen, Last Upload: April 8th-14th")


def test_campaign_lookup_by_pattern_finds_none_or_every_match(
    sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    sandbox.bison.add_workspace("No Evergreen", "tok-none")
    sandbox.bison.add_workspace("Two Evergreens", "tok-two")
    sandbox.bison.add_campaign("Two Evergreens", "Evergreen A")
    sandbox.bison.add_campaign("Two Evergreens", "Evergreen B")
    monkeypatch.setenv("TOK_NONE", "tok-none")
    monkeypatch.setenv("TOK_TWO", "tok-two")
    resource = BisonResource(min_interval_seconds=0.0)
    assert resource.workspace(sandbox.urls["bison"], "TOK_NONE").find_campaigns("Evergreen") == []
    found = resource.workspace(sandbox.urls["bison"], "TOK_TWO").find_campaigns(" evergreen ")
    assert [c["name"] for c in found] == ["Evergreen A", "Evergreen B"]  # the asset refuses two


def test_fact_error_shape_other_workspace_is_forbidden_and_missing_token_is_named(
    sandbox: Sandbox, workspace: BisonWorkspace
) -> None:
    """Fact B-ERRORS (section 7): errors are `{"data": {"success": false, "message": ...}}`; the
    connector's error quotes that message and keeps the status; a 200 with `success: false` is
    an error too."""
    theirs = sandbox.bison.campaign("Lone Star Agency", "Evergreen, Last Upload: January 22nd-31st")
    with pytest.raises(BisonError, match="api key does not match the workspace") as denied:
        workspace.rename_campaign(theirs["id"], "hijacked")
    assert denied.value.status == 403
    with pytest.raises(BisonError, match="BISON_TOKEN_NOBODY"):
        BisonResource().workspace(sandbox.urls["bison"], "BISON_TOKEN_NOBODY")


def test_429_waits_retry_after_and_500_recovers(
    sandbox: Sandbox, workspace: BisonWorkspace
) -> None:
    sandbox.faults.on("bison", "http_429", times=1, retry_after=1)
    began = time.perf_counter()
    assert evergreen(workspace)["name"].startswith("Evergreen")
    assert time.perf_counter() - began >= 1.0
    sandbox.faults.on("bison", "http_500", times=2)
    assert evergreen(workspace)["name"].startswith("Evergreen")
    assert sandbox.faults.fired.count(("bison", "http_500")) >= 2


def test_fact_an_attach_counts_after_the_sync_and_one_that_never_lands_is_typed(
    sandbox: Sandbox, workspace: BisonWorkspace
) -> None:
    """Facts B-SYNC, B-UNIQUE, B-ERRORS: `wait_for_total_leads` reads `total_leads` once the
    documented 5 minutes have passed (one read on the strict sandbox) and returns the campaign;
    an attach accepted but never counted ends in `BisonAttachNotSynced` after the bounded wait.
    Attaching a list whose import is not done is refused as a 200 with `success: false`.

    Fails against the old connector: it read `total_leads` at once (before the sync) and its
    error parser took a 200 for a success."""
    campaign = sandbox.bison.add_campaign(WORKSPACE, "Sync test")
    sandbox.bison.import_seconds = 60  # still queued when the attach comes
    list_id, _ = workspace.upload_lead_list("(June 1st - 7th renewals)", leads(3, start=600))
    with pytest.raises(BisonError, match="not been processed") as early:
        workspace.attach_lead_list(campaign["id"], list_id)
    assert early.value.status == 200
    assert workspace.lead_list_count(list_id) == 3
    workspace.attach_lead_list(campaign["id"], list_id)
    before = sandbox.bison.requests
    assert workspace.wait_for_total_leads(campaign["id"], 3)["total_leads"] == 3
    assert sandbox.bison.requests - before == 1
    again, _ = workspace.upload_lead_list(
        "(June 8th - 14th renewals)", leads(3, start=601)
    )  # 2 known
    assert workspace.lead_list_count(again) == 3
    sandbox.faults.on("bison", "attach_not_counted", times=1)
    workspace.attach_lead_list(campaign["id"], again)
    with pytest.raises(
        BisonAttachNotSynced, match="holds 3 leads after 900 s, at least 4 expected"
    ):
        workspace.wait_for_total_leads(campaign["id"], 4)
    workspace.attach_lead_list(campaign["id"], again)  # attached again: only the new lead counts
    assert workspace.wait_for_total_leads(campaign["id"], 4)["total_leads"] == 4


def test_fact_rate_limit_is_waited_out_in_both_retry_after_forms(
    sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fact B-RATE-LIMIT: unpaced, the connector meets Bison's 429s (Retry-After as seconds and
    as an HTTP date by turns), waits them out and every call ends well.

    Fails against the old connector: it read only seconds, so a dated Retry-After fell back to
    the default backoff."""
    for name, value in sandbox.env().items():
        monkeypatch.setenv(name, value)
    sandbox.bison.reset_rate_limit()
    limited = sandbox.bison.rate_limited
    waits: list[float] = []
    policy_wait = bison_module.RetryPolicy.retry_after

    def recorded(self: bison_module.RetryPolicy, response: Any, attempt: int) -> float:
        waits.append(policy_wait(self, response, attempt))
        return waits[-1]

    monkeypatch.setattr(bison_module.RetryPolicy, "retry_after", recorded)
    unpaced = BisonResource(min_interval_seconds=0.0, retry_base_seconds=5.0)
    with unpaced.workspace(sandbox.urls["bison"], TOKEN_ENV) as ws:
        names = [evergreen(ws)["name"] for _ in range(25)]  # 10 a second at most
    assert len(names) == 25 and sandbox.bison.rate_limited - limited >= 2
    assert waits and all(0 < w <= 1.0 for w in waits)  # the header's wait, not the 5 s backoff


def test_fact_a_list_over_50000_leads_is_refused_before_anything_is_sent(
    sandbox: Sandbox, workspace: BisonWorkspace
) -> None:
    """Fact B-CSV-LIMIT: at most 50,000 leads per CSV; a bigger list is refused here, unsent."""
    before = sandbox.bison.requests
    with pytest.raises(BisonError, match="at most 50000 per CSV"):
        workspace.upload_lead_list(
            "(too big)", pd.DataFrame({"email": [f"x{i}@example.com" for i in range(50_001)]})
        )
    assert sandbox.bison.requests == before
