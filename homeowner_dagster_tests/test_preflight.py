"""`homeowner preflight` against the sandbox: everything passes as configured, and each variant
that breaks one thing is reported on its own line with what to do, exits 1, leaves every other
line as it was, and writes nothing to any service (the sandbox's state is compared before and
after: no list, no campaign change, no custom variable, no Slack post, no DeBounce credit, no
Clay row, no Cole export).

One sandbox and one Chromium serve every case (module fixtures); each case switches its fault
on and off again.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import psycopg
import pytest

from homeowner_dagster import registry
from homeowner_dagster.cli import build_parser, main
from homeowner_dagster.leads.calendar import month_key
from homeowner_dagster.leads.territories import parse_clients, parse_zip_sheet
from homeowner_dagster.preflight.bison import CUSTOM_VARIABLES
from homeowner_dagster.preflight.cole import next_pull_month
from homeowner_dagster.preflight.runner import today_in_chicago
from homeowner_dagster.sandbox import Sandbox
from homeowner_dagster_tests import cole_fixtures
from homeowner_dagster_tests.pipeline_fixtures import (
    CLIENTS_YAML,
    TERRITORY,
    reset_outside_world,
    use_sandbox,
)

browser = cole_fixtures.chromium  # one Chromium for the module (the command can be lent one)
pytestmark = pytest.mark.slow(seconds=150)  # a preflight run per test: start the file early
FL_TOTP = "KRSXG5CTMVRXEZLUJBSWY3DPEHPK3PXP"
WORKSPACES = {"garden-state": "Garden State Insurance", "sunshine": "Sunshine Coverage"}


@pytest.fixture(scope="module")
def world() -> Iterator[Sandbox]:
    sandbox = Sandbox(seed=13)
    # FL logs in with a TOTP code, so the `mfa` fault asks only NJ (no secret) for one.
    username, password, _ = sandbox.cole.credentials["FL"]
    sandbox.cole.credentials["FL"] = (username, password, FL_TOTP)
    reset_outside_world(sandbox)
    for workspace in WORKSPACES.values():  # a prepared workspace has the upload's variables
        for number, name in enumerate(CUSTOM_VARIABLES, start=1):
            sandbox.bison.workspaces[workspace].custom_variables[name] = 1000 + number
    with sandbox:
        yield sandbox


def load_registry(dsn: str) -> None:
    """The two clients, and their territory from the month the next pull fetches."""
    registry.upsert_clients(parse_clients(CLIENTS_YAML, "clients.yaml"), dsn)
    lines = ["Zipcode,Territory,Color"] + [
        f"{z},{c}," for c, zips in TERRITORY.items() for z in zips
    ]
    month = month_key(next_pull_month(today_in_chicago()))
    registry.import_zips(parse_zip_sheet("\n".join(lines) + "\n"), month, dsn)


@pytest.fixture
def ready(
    world: Sandbox, database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Sandbox]:
    use_sandbox(world, monkeypatch, tmp_path / "artifacts", database_url)
    load_registry(database_url)
    world.faults.off()
    yield world
    world.faults.off()


def outside_world(sandbox: Sandbox, dsn: str) -> dict[str, Any]:
    """Everything a write to a service would change."""
    bison = {
        name: {
            "lists": sorted(ws.lead_lists),
            "leads": len(ws.leads),
            "custom_variables": sorted(ws.custom_variables),
            "campaigns": json.dumps(ws.campaigns, sort_keys=True, default=str),
        }
        for name, ws in sandbox.bison.workspaces.items()
    }
    debounce = sandbox.debounce
    with psycopg.connect(dsn) as conn:
        usage = conn.execute("select * from clay_webhook_usage").fetchall()
        verified = conn.execute("select count(*) from email_verifications").fetchone()
    return {
        "bison": bison,
        "slack": len(sandbox.slack.messages),
        "debounce": (
            debounce.balance,
            debounce.credits_used,
            debounce.single_calls,
            debounce.uploads,
        ),
        "clay": [(h.submissions, h.refused) for h in sandbox.clay.webhooks.values()]
        + [len(t["rows"]) for t in sandbox.clay.tables.values()],
        "cole_exports": (len(sandbox.cole.exports), sandbox.cole.downloads_started),
        "storage": sorted(sandbox.storage.objects),
        "database": (usage, verified),
    }


def run_preflight(
    browser: object, capsys: pytest.CaptureFixture[str], *argv: str
) -> tuple[int, dict]:
    """`homeowner preflight --json ...` through the command's own handler, on the shared browser."""
    args = build_parser().parse_args(["preflight", "--json", *argv])
    code = args.handler(args, browser=browser)
    out = capsys.readouterr().out
    return code, json.loads(out)


def failures(report: dict) -> list[dict]:
    return [f for f in report["findings"] if f["status"] == "failed"]


def line(report: dict, service: str, client: str, check: str) -> dict:
    found = [
        f
        for f in report["findings"]
        if (f["service"], f["client"], f["check"]) == (service, client, check)
    ]
    assert len(found) == 1, (service, client, check, [f["check"] for f in report["findings"]])
    return found[0]


def test_everything_configured_passes_and_writes_nothing(
    ready: Sandbox, database_url: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """Through `main` (its own Chromium): the table, exit 0, every service probed."""
    before = outside_world(ready, database_url)
    searches, logins = ready.cole.searches_run, ready.cole.logins
    code = main(["preflight"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "0 failed" in out
    rows = [r.split() for r in out.splitlines()]
    services = {r[0] for r in rows[1:] if r}
    assert {"database", "cole", "bison", "debounce", "clay", "slack", "settings"} <= services
    assert outside_world(ready, database_url) == before
    # One count query per state login (NJ, FL), each logged out again.
    assert ready.cole.searches_run - searches == 2 and ready.cole.logins - logins == 2
    assert all(ready.cole.open_sessions(u) == 0 for u, _, _ in ready.cole.credentials.values())
    shots = sorted((tmp_path / "artifacts").rglob("*.png"))
    names = [p.name for p in shots]
    for state in ("NJ", "FL"):
        for page in ("login", "search", "results", "logout"):
            assert any(f"cole-{state}-" in n and n.endswith(f"-{page}.png") for n in names), names
    assert any(n.endswith("-mfa.png") and "cole-FL-" in n for n in names)  # FL's TOTP page
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in shots)


def test_json_names_every_selector_and_what_each_check_saw(
    ready: Sandbox, browser: object, capsys: pytest.CaptureFixture[str]
) -> None:
    code, report = run_preflight(browser, capsys)
    assert code == 0 and report["counts"]["failed"] == 0, failures(report)
    for key in ("login_form", "username", "password", "login_button", "search_form", "zip_codes",
                "purchase_day_from", "record_count", "export_button"):  # fmt: skip
        found = line(report, "cole", "NJ login", f"selector {key}")
        assert found["status"] == "ok" and "page: #" in found["detail"], found
    assert line(report, "cole", "NJ login", "selector download_link")["status"] == "skipped"
    count = line(report, "cole", "NJ login", "count query")["detail"]
    assert "ZIP 07001 (garden-state)" in count and "nothing exported" in count
    assert line(report, "cole", "FL login", "login")["detail"] == "logged in with a TOTP code"
    assert (
        "'Evergreen, Last Upload: December"
        in line(report, "bison", "garden-state", "evergreen campaign")["detail"]
    )
    assert (
        line(report, "bison", "sunshine", "token is for the workspace")["detail"]
        == "workspace 'Sunshine Coverage'"
    )
    assert "documented shape" in line(report, "bison", "sunshine", "lead-list listing")["detail"]
    assert "about 30,000 needed" in line(report, "debounce", "", "credits for next month")["detail"]
    assert (
        "nothing posted" in line(report, "slack", "garden-state", "channel #garden-state")["detail"]
    )
    assert line(report, "slack", "ops", "channel #homeowner-ops")["status"] == "ok"
    assert "50,000 of 50,000 submissions left" in line(report, "clay", "", "row budget 1")["detail"]
    for check in ("row-level security", "Dagster storage schema"):
        assert line(report, "database", "", check)["status"] == "ok"


def _revoked_token(world: Sandbox) -> Callable[[], None]:
    workspace = world.bison.workspaces["Garden State Insurance"]
    token, workspace.token = workspace.token, "revoked-in-bison"
    return lambda: setattr(workspace, "token", token)


def _field_renamed(world: Sandbox) -> Callable[[], None]:
    world.bison.campaign_renames["total_leads"] = "leads_total"
    return world.bison.campaign_renames.clear


def _two_evergreens(world: Sandbox) -> Callable[[], None]:
    extra = world.bison.add_campaign(
        "Garden State Insurance", "Evergreen, Last Upload: March 1st-7th"
    )
    return lambda: world.bison.workspaces["Garden State Insurance"].campaigns.pop(extra["id"])


def _mfa_without_secret(world: Sandbox) -> Callable[[], None]:
    world.faults.on("cole", "mfa")
    return lambda: world.faults.off("cole", "mfa")


def _fallback_matches(world: Sandbox) -> Callable[[], None]:
    world.faults.on("cole", "missing_selector", keep_name=True)
    return lambda: world.faults.off("cole", "missing_selector")


def _no_fallback(world: Sandbox) -> Callable[[], None]:
    world.faults.on("cole", "missing_selector")
    return lambda: world.faults.off("cole", "missing_selector")


def _credits_low(world: Sandbox) -> Callable[[], None]:
    balance, world.debounce.balance = world.debounce.balance, 12_000
    return lambda: setattr(world.debounce, "balance", balance)


def _bot_not_in_channel(world: Sandbox) -> Callable[[], None]:
    world.slack.add_channel("#garden-state", member=False)
    return lambda: world.slack.add_channel("#garden-state")


GARDEN = ("--client", "garden-state")  # NJ only: enough where the break concerns one client
# (id, how to break it, the clients probed, the failed lines (service, client, check), what to do)
VARIANTS: list[tuple[str, Callable[[Sandbox], Callable[[], None]], tuple[str, ...], set[tuple[str, str, str]], str]] = [
    ("revoked-bison-token", _revoked_token, GARDEN, {("bison", "garden-state", "token")},
     "Bison refused BISON_TOKEN_GARDEN_STATE_INSURANCE: revoked or wrong"),
    ("campaign-field-renamed", _field_renamed, (),
     {("bison", c, "campaign field total_leads") for c in WORKSPACES}, "has no field 'total_leads'"),
    ("two-evergreen-campaigns", _two_evergreens, GARDEN, {("bison", "garden-state", "evergreen campaign")},
     "2 campaigns start with 'Evergreen': rename all but one"),
    # Both logins probed: FL, whose login has a TOTP secret, still passes.
    ("mfa-without-totp-secret", _mfa_without_secret, (), {("cole", "NJ login", "login")},
     "set COLE_NJ_TOTP_SECRET"),
    ("missing-selector-fallback-matches", _fallback_matches, GARDEN, {("cole", "NJ login", "selector zip_codes")},
     "works through fallback 2 of 3: put `input[name='zip_codes']` first"),
    ("missing-selector-no-fallback", _no_fallback, GARDEN, {("cole", "NJ login", "selector zip_codes")},
     "has none of this key's selectors: add the page's own selector first under `zip_codes`"),
    ("debounce-credits-below-next-month", _credits_low, GARDEN, {("debounce", "", "credits for next month")},
     "buy at least 3,000 credits"),
    ("slack-bot-not-in-channel", _bot_not_in_channel, GARDEN,
     {("slack", "garden-state", "channel #garden-state")}, "invite the bot: `/invite @homeowner-bot`"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("break_it", "argv", "expected", "todo"),
    [v[1:] for v in VARIANTS],
    ids=[v[0] for v in VARIANTS],
)
def test_each_broken_thing_is_its_own_line_with_what_to_do(
    ready: Sandbox,
    database_url: str,
    browser: object,
    capsys: pytest.CaptureFixture[str],
    break_it: Callable[[Sandbox], Callable[[], None]],
    argv: tuple[str, ...],
    expected: set[tuple[str, str, str]],
    todo: str,
) -> None:
    before = outside_world(ready, database_url)
    undo = break_it(ready)
    try:
        code, report = run_preflight(browser, capsys, *argv)
    finally:
        undo()
    assert code == 1
    found = failures(report)
    assert {(f["service"], f["client"], f["check"]) for f in found} == expected, found
    for f in found:
        assert todo in f["todo"], f
        if f["service"] == "cole":  # the page's screenshot goes with the line
            shots = [Path(unquote(urlparse(link).path)) for link in f["links"]]
            assert shots and all(s.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for s in shots), f
    # Nothing else disturbed: the configured sandbox gives no failed line (the tests above), so
    # every other line is ok, or skipped because the failure stops it (or as it always is).
    for f in report["findings"]:
        if f["status"] == "skipped":
            assert f["todo"].startswith(("not run:", "not checked:")), f
    services = {f["service"] for f in report["findings"]}
    assert {"database", "cole", "bison", "debounce", "clay", "slack"} <= services  # all probed
    assert outside_world(ready, database_url) == before  # no write to any service


def test_without_cole_url_no_login_goes_anywhere(
    ready: Sandbox,
    browser: object,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Cole's address is not documented: unset, it is a failed line and no credential is sent."""
    monkeypatch.delenv("COLE_URL")
    logins, refused = ready.cole.logins, ready.cole.failed_logins
    code, report = run_preflight(browser, capsys, "--client", "garden-state")
    assert code == 1
    assert [(f["service"], f["check"]) for f in failures(report)] == [("settings", "COLE_URL")]
    assert "COLE_URL is not set" in failures(report)[0]["todo"]
    assert (
        line(report, "cole", "", "logins")["todo"]
        == "not probed: COLE_URL is refused (see settings)"
    )
    assert (ready.cole.logins, ready.cole.failed_logins) == (logins, refused)


def test_missing_secrets_are_lines_naming_their_variables_not_a_crash(
    ready: Sandbox,
    browser: object,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in (
        "SLACK_BOT_TOKEN",
        "DEBOUNCE_API_KEY",
        "BISON_TOKEN_GARDEN_STATE_INSURANCE",
        "COLE_NJ_PASSWORD",
    ):
        monkeypatch.delenv(name)
    code, report = run_preflight(browser, capsys, "--client", "garden-state")
    assert code == 1
    todos = {(f["service"], f["check"]): f["todo"] for f in failures(report)}
    assert set(todos) == {
        ("slack", "auth.test"),
        ("debounce", "key"),
        ("bison", "token"),
        ("cole", "credentials"),
    }
    assert "SLACK_BOT_TOKEN" in todos[("slack", "auth.test")]
    assert "DEBOUNCE_API_KEY" in todos[("debounce", "key")]
    assert "BISON_TOKEN_GARDEN_STATE_INSURANCE" in todos[("bison", "token")]
    assert "COLE_NJ_PASSWORD" in todos[("cole", "credentials")]


def test_post_sends_one_test_message_per_channel_and_names_a_channel_without_the_bot(
    ready: Sandbox, browser: object, capsys: pytest.CaptureFixture[str]
) -> None:
    ready.slack.add_channel("#sunshine", member=False)
    before = {c: len(ready.slack.messages_in(c)) for c in ("#sunshine", "#homeowner-ops")}
    try:
        code, report = run_preflight(browser, capsys, "--post", "--client", "sunshine")
    finally:
        ready.slack.add_channel("#sunshine")
    assert code == 1
    assert [(f["client"], f["check"]) for f in failures(report)] == [
        ("sunshine", "channel #sunshine")
    ]
    assert (
        "invite the bot" in failures(report)[0]["todo"]
        and failures(report)[0]["detail"] == "not_in_channel"
    )
    assert line(report, "slack", "ops", "channel #homeowner-ops")["detail"] == "test message posted"
    assert len(ready.slack.messages_in("#homeowner-ops")) == before["#homeowner-ops"] + 1
    assert len(ready.slack.messages_in("#sunshine")) == before["#sunshine"]


def test_database_drift_names_the_table_and_the_storage_setting(
    ready: Sandbox,
    database_url: str,
    browser: object,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Tables without row-level security (one of them Dagster's, in public), a storage URL that
    does not reach the dagster schema: each named (the storage URL's password is not printed)."""
    with psycopg.connect(database_url) as conn:
        conn.execute("create table public.scratch_export (id int)")
        conn.execute("create table public.event_logs (id int)")
    monkeypatch.setenv(
        "HOMEOWNER_DAGSTER_STORAGE_URL",
        "postgresql+psycopg2://owner:S3cret-pw-77@db.example/postgres",
    )
    args = build_parser().parse_args(["preflight", "--client", "garden-state"])
    code = args.handler(args, browser=browser)
    out = capsys.readouterr().out
    assert code == 1 and "S3cret-pw-77" not in out
    rls = next(x for x in out.splitlines() if "row-level security" in x)
    assert " failed " in rls and "public.scratch_export" in rls and "public.event_logs" in rls
    schema = next(x for x in out.splitlines() if "Dagster storage schema" in x)
    assert " failed " in schema


def test_the_sister_products_login_is_drift_the_automation_survives(
    ready: Sandbox, browser: object, capsys: pytest.CaptureFixture[str]
) -> None:
    """Cole on its sister product's platform: logged in through the fallbacks, each one named."""
    ready.cole.login_style = "sister"
    try:
        code, report = run_preflight(browser, capsys, "--client", "garden-state")
    finally:
        ready.cole.login_style = "xdates"
    assert code == 1
    assert line(report, "cole", "NJ login", "login")["status"] == "ok"
    assert line(report, "cole", "NJ login", "count query")["status"] == "ok"
    drift = {f["check"]: f["todo"] for f in failures(report)}
    assert set(drift) == {
        "selector login_form",
        "selector username",
        "selector password",
        "selector login_button",
    }
    assert "put `form#aspnetForm` first under `login_form`" in drift["selector login_form"]


def test_a_rate_limited_bison_is_waited_out(
    ready: Sandbox, browser: object, capsys: pytest.CaptureFixture[str]
) -> None:
    """Bison's 429 (Retry-After as an HTTP date) is honoured and retried: no line fails."""
    fired = ready.faults.fired.count(("bison", "http_429"))
    ready.faults.on("bison", "http_429", times=2, retry_after=1, form="date")
    code, report = run_preflight(browser, capsys, "--client", "garden-state")
    assert code == 0, failures(report)
    assert ready.faults.fired.count(("bison", "http_429")) - fired == 2
    assert line(report, "bison", "garden-state", "lead-list listing")["status"] == "ok"


def test_a_login_in_use_by_a_pull_is_skipped_not_taken(
    ready: Sandbox, database_url: str, browser: object, capsys: pytest.CaptureFixture[str]
) -> None:
    """Cole allows one session per login: preflight does not wait for a pull, nor log it out."""
    from homeowner_dagster.resources.cole.login_lock import cole_login_lock

    username = ready.cole.credentials["NJ"][0]
    logins = ready.cole.logins
    with cole_login_lock(username, "NJ", database_url):  # a pull's session holds the NJ login
        code, report = run_preflight(browser, capsys, "--client", "garden-state")
    assert code == 0, failures(report)
    assert (
        "a pull has a session open on this login"
        in line(report, "cole", "NJ login", "login")["todo"]
    )
    assert ready.cole.logins == logins


def test_a_refused_address_is_its_own_line_and_its_service_is_not_probed(
    ready: Sandbox,
    browser: object,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Slack's address set to another host: the settings line names SLACK_API_URL, the bot token
    goes nowhere (no Slack line but the skipped probe), everything else is probed as usual."""
    monkeypatch.setenv("SLACK_API_URL", "https://hooks.example.com/api/")
    code, report = run_preflight(browser, capsys, "--client", "garden-state")
    assert code == 1
    assert [(f["service"], f["check"]) for f in failures(report)] == [("settings", "SLACK_API_URL")]
    assert "not a Slack Web API host" in failures(report)[0]["todo"]
    slack = [f for f in report["findings"] if f["service"] == "slack"]
    assert [(f["check"], f["status"]) for f in slack] == [("probe", "skipped")]
    assert line(report, "bison", "garden-state", "evergreen campaign")["status"] == "ok"


def test_a_client_channel_the_deployment_does_not_list_is_a_line_and_gets_no_post(
    ready: Sandbox,
    browser: object,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The pipeline refuses a channel missing from HOMEOWNER_SLACK_CHANNELS; so does preflight,
    even with --post: one line naming the setting, no test message there, the ops channel's one."""
    monkeypatch.setenv("HOMEOWNER_SLACK_CHANNELS", "#sunshine")
    before = {c: len(ready.slack.messages_in(c)) for c in ("#garden-state", "#homeowner-ops")}
    code, report = run_preflight(browser, capsys, "--post", "--client", "garden-state")
    assert code == 1
    assert [(f["service"], f["client"], f["check"]) for f in failures(report)] == [
        ("slack", "garden-state", "channel #garden-state")
    ]
    assert "is not in HOMEOWNER_SLACK_CHANNELS" in failures(report)[0]["todo"]
    assert len(ready.slack.messages_in("#garden-state")) == before["#garden-state"]
    assert len(ready.slack.messages_in("#homeowner-ops")) == before["#homeowner-ops"] + 1
