"""BisonResource against the sandbox: outcomes in the workspace, faults recovered, no duplicates."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pandas as pd
import pytest

from homeowner_dagster.resources.bison import BisonError, BisonResource, BisonWorkspace
from homeowner_dagster.sandbox import Sandbox

WORKSPACE = "Acme Insurance"
TOKEN_ENV = "BISON_TOKEN_ACME_INSURANCE"


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    yield from Sandbox(seed=5)


@pytest.fixture
def workspace(sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> Iterator[BisonWorkspace]:
    for name, value in sandbox.env().items():
        monkeypatch.setenv(name, value)
    resource = BisonResource(min_interval_seconds=0.0, retry_base_seconds=0.01)
    with resource.workspace(sandbox.urls["bison"], TOKEN_ENV) as ws:
        yield ws
    sandbox.faults.off()


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
    again_id, again_created = workspace.upload_lead_list("(March 1st - 7th renewals)", leads(3))
    assert (again_id, again_created) == (list_id, False)
    assert sandbox.bison.list_names(WORKSPACE).count("(March 1st - 7th renewals)") == 1
    lead = sandbox.bison.list_leads(WORKSPACE, "(March 1st - 7th renewals)")[0]
    assert lead["last_name"] == '\'=HYPERLINK("x")'
    assert lead["custom_variables"]["cellphone"] == "'+1 555 0100"
    assert lead["custom_variables"]["street_address"] == "1 Main St"
    assert {"cellphone", "home_value", "renewal_date"} <= workspace.custom_variables()


@pytest.mark.parametrize("fault", ["http_500", "http_429"])
def test_upload_survives_faults_without_duplicating(
    sandbox: Sandbox, workspace: BisonWorkspace, fault: str
) -> None:
    name = f"(March 8th - 14th renewals) {fault}"
    workspace.ensure_custom_variables(
        [
            "date_of_birth",
            "street_address",
            "city",
            "state",
            "zip",
            "renewal_date",
            "cellphone",
            "home_value",
        ]
    )
    sandbox.faults.on("bison", fault, times=1, retry_after=0)
    list_id, created = workspace.upload_lead_list(name, leads(4))
    assert created and ("bison", fault) in sandbox.faults.fired
    assert sandbox.bison.list_names(WORKSPACE).count(name) == 1
    assert workspace.lead_list_count(list_id) == 4


def test_lost_upload_answer_is_found_by_name_not_sent_again(
    sandbox: Sandbox, workspace: BisonWorkspace
) -> None:
    name = "(March 15th - 21st renewals)"
    workspace.ensure_custom_variables(
        [
            "date_of_birth",
            "street_address",
            "city",
            "state",
            "zip",
            "renewal_date",
            "cellphone",
            "home_value",
        ]
    )
    # Make the look-up clean, then drop the POST's answer after Bison created the list.
    assert workspace.find_lead_list(name) is None
    sandbox.faults.on("bison", "dropped_connection", times=1)
    list_id, created = workspace.upload_lead_list(name, leads(2))
    assert created and sandbox.bison.list_names(WORKSPACE).count(name) == 1
    assert workspace.lead_list_count(list_id) == 2


def test_find_lead_list_walks_every_page(sandbox: Sandbox, workspace: BisonWorkspace) -> None:
    ws = sandbox.bison.workspaces[WORKSPACE]
    for i in range(40):
        ws.lead_lists[10_000 + i] = {
            "id": 10_000 + i,
            "name": f"old list {i}",
            "created_at": "",
            "updated_at": "",
            "lead_emails": [],
        }
    assert workspace.find_lead_list("old list 39")["id"] == 10_039
    assert workspace.find_lead_list("never uploaded") is None


def test_evergreen_rename_keeps_other_settings_and_attach(
    sandbox: Sandbox, workspace: BisonWorkspace
) -> None:
    campaign = workspace.find_evergreen_campaign()
    stored = sandbox.bison.workspaces[WORKSPACE].campaigns[campaign["id"]]
    stored.update(
        plain_text=True,
        open_tracking=False,
        max_emails_per_day=333,
        sequence_prioritization="new_leads",
    )
    list_id, _ = workspace.upload_lead_list("(March 22nd - 31st renewals)", leads(2, start=50))
    workspace.attach_lead_list(campaign["id"], list_id)
    workspace.attach_lead_list(campaign["id"], list_id)
    workspace.rename_campaign(campaign["id"], "Evergreen, Last Upload: March 22nd-31st")
    after = sandbox.bison.campaign(WORKSPACE, "Evergreen, Last Upload: March 22nd-31st")
    assert after["plain_text"] is True and after["open_tracking"] is False
    assert after["reputation_building"] is True and after["can_unsubscribe"] is True
    assert after["max_emails_per_day"] == 333 and after["sequence_prioritization"] == "new_leads"
    assert sandbox.bison.attached_lists(WORKSPACE, campaign["id"]) == [
        "(March 22nd - 31st renewals)"
    ]


def test_evergreen_lookup_errors_are_clear(
    sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    sandbox.bison.add_workspace("No Evergreen", "tok-none")
    sandbox.bison.add_workspace("Two Evergreens", "tok-two")
    sandbox.bison.add_campaign("Two Evergreens", "Evergreen A")
    sandbox.bison.add_campaign("Two Evergreens", "Evergreen B")
    monkeypatch.setenv("TOK_NONE", "tok-none")
    monkeypatch.setenv("TOK_TWO", "tok-two")
    resource = BisonResource(min_interval_seconds=0.0)
    with pytest.raises(BisonError, match="no campaign"):
        resource.workspace(sandbox.urls["bison"], "TOK_NONE").find_evergreen_campaign()
    with pytest.raises(BisonError, match="several campaigns"):
        resource.workspace(sandbox.urls["bison"], "TOK_TWO").find_evergreen_campaign()


def test_other_workspace_is_forbidden_and_missing_token_is_named(
    sandbox: Sandbox, workspace: BisonWorkspace
) -> None:
    theirs = sandbox.bison.campaign("Lone Star Agency", "Evergreen, Last Upload: January 22nd-31st")
    with pytest.raises(BisonError, match="unauthorized") as denied:
        workspace.rename_campaign(theirs["id"], "hijacked")
    assert denied.value.status == 403
    with pytest.raises(BisonError, match="BISON_TOKEN_NOBODY"):
        BisonResource().workspace(sandbox.urls["bison"], "BISON_TOKEN_NOBODY")


def test_429_waits_retry_after_and_500_recovers(
    sandbox: Sandbox, workspace: BisonWorkspace
) -> None:
    sandbox.faults.on("bison", "http_429", times=1, retry_after=1)
    began = time.perf_counter()
    assert workspace.find_evergreen_campaign()["name"].startswith("Evergreen")
    assert time.perf_counter() - began >= 1.0
    sandbox.faults.on("bison", "http_500", times=2)
    assert workspace.find_evergreen_campaign()["name"].startswith("Evergreen")
    assert sandbox.faults.fired.count(("bison", "http_500")) >= 2
