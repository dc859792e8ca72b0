"""The operator's day through the Dagster UI only, as the README walks it: `homeowner demo` in a
new shell, then `homeowner dev --sandbox` (its webserver and daemon) in the same shell, and
headless Chromium on it: open the lineage, re-materialize a gap report partition, import next
month-but-one's ZIPs with the CLI, backfill that month for every client from the UI (the
high-net-worth destination's month runs before its source: its numbers in the UI still end equal
to the database's), read the one-line error of a month with no ZIPs, and see a client's renewal
windows labelled done, not pulled and pending on the weekly side.

The demo's month is this month (`--today` two months back, no outcome weeks), so every month the
test names moves with the real date: M done by the demo, M+1 never pulled, M+2 backfilled here,
M-1 without ZIPs.

The screenshots docs/runbook.md uses are taken only when asked:
`HOMEOWNER_UI_SCREENSHOTS=1 .venv/bin/python -m pytest homeowner_dagster_tests/test_operator_day_in_ui.py`
writes them to docs/ui/; otherwise the run leaves the working tree as it found it."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import psycopg
import pytest
from dagster import AssetRecordsFilter, DagsterInstance, DagsterRunStatus, RunsFilter
from playwright.sync_api import Page, sync_playwright
from slack_sdk import WebClient

from homeowner_dagster import db, settings
from homeowner_dagster.assets.monthly_pull import REFRESH_TAG
from homeowner_dagster.assets.renewal_window import RENEWAL_WINDOW
from homeowner_dagster.leads.calendar import add_months, month_key, windows_of_month
from homeowner_dagster.partitions import TIMEZONE, client_month_key, client_window_key
from homeowner_dagster.resources.cole.login_lock import cole_login_lock
from homeowner_dagster_tests import pipeline_fixtures
from homeowner_dagster_tests.ui_fixtures import DagsterUI, dev_sandbox, homeowner, new_shell

DOCS = settings.project_root() / "docs" / "ui"
SCREENSHOTS_ENV = "HOMEOWNER_UI_SCREENSHOTS"  # set: refresh docs/ui/*.png (the runbook's pictures)
# The demo's clients: Lone Star's Texas homes above $900,000 go to Agency High Net Worth.
TERRITORY = {**pipeline_fixtures.TERRITORY, "lone-star": ["75201", "75205"]}
SOURCE, DESTINATION = "lone-star", "agency-hnw"
CLIENTS = [*TERRITORY, DESTINATION]
STATES_CLIENT = "sunshine"  # the client whose windows section 6 reads
GROUP_PATH = "/locations/__repository__@homeowner_dagster.definitions/asset-groups/monthly_pull"


def this_month() -> date:
    return datetime.now(ZoneInfo(TIMEZONE)).date().replace(day=1)


def demo_day() -> date:
    """`homeowner demo --today`: two months back, so the demo's renewal month is this month."""
    return add_months(this_month(), -2)


@pytest.fixture
def ui(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[DagsterUI, str]]:
    """The README's two commands in a new shell: `homeowner demo`, then `homeowner dev --sandbox`."""
    shell = new_shell(tmp_path / "home")
    shell[settings.GAP_COLE_COUNTS_ENV] = "0"  # a deployment setting: the same for every run
    began = time.monotonic()
    demo = homeowner(shell, "demo", "--today", demo_day().isoformat(), "--weeks", "0", timeout=900)
    assert demo.returncode == 0, demo.stdout[-2000:] + demo.stderr[-3000:]
    print(f"homeowner demo: {demo.stdout.splitlines()[0]} ({time.monotonic() - began:.0f} s wall)")
    began = time.monotonic()
    with dev_sandbox(shell) as running:
        print(f"homeowner dev --sandbox: UI loaded in {time.monotonic() - began:.0f} s")
        # This process reads the same instance (its dagster.yaml names the storage by variable).
        storage = settings.DAGSTER_STORAGE_URL_ENV
        monkeypatch.setenv(storage, running.env[storage])
        yield running, demo.stdout


def _database(running: DagsterUI) -> str:
    """The embedded PostgreSQL `homeowner dev` runs (started by the demo, again by dev)."""
    return db.embedded_url(Path(running.env[settings.HOME_ENV]))


def _dismiss_welcome(page: Page) -> None:
    """Dagster 1.13 may greet a new browser with a community dialog: skip it."""
    page.wait_for_timeout(1000)
    skip = page.get_by_role("button", name="Skip")
    if skip.count():
        skip.click()


def _launch_dialog(page: Page):  # noqa: ANN202 - playwright Locator
    return page.get_by_role("dialog").filter(has_text="Launch runs to materialize").last


def _choose_partitions(page: Page, client: str | None, month: str) -> None:
    """In the launch dialog: a client from the dropdown (or All), a month typed in its box."""
    dialog = _launch_dialog(page)
    dialog.wait_for()
    if client is None:
        dialog.get_by_role("button", name="All").first.click()
    else:
        dialog.get_by_text("Select a partition or create one").first.click()
        page.get_by_text(client, exact=True).first.click()
    box = dialog.get_by_placeholder("ex: ", exact=False).first
    box.fill(month)
    box.press("Tab")


def _open_materialize(page: Page, url: str) -> None:
    page.goto(url)
    button = page.get_by_role("button", name="Materialize…").first
    button.wait_for(timeout=60_000)
    _dismiss_welcome(page)
    button.click()
    confirm = page.get_by_role("button", name="Confirm")  # "upstream not materialized yet"
    page.get_by_role("dialog").first.wait_for()
    if confirm.count():
        confirm.click()


def _run_page_when_finished(
    page: Page, ui: DagsterUI, run_id: str, instance: DagsterInstance
) -> str:
    deadline = time.monotonic() + 420
    while not instance.get_run_by_id(run_id).is_finished:
        assert time.monotonic() < deadline, f"run {run_id} did not finish"
        time.sleep(2)
    page.goto(f"{ui.url}/runs/{run_id}")
    page.get_by_text(run_id[:8]).first.wait_for(timeout=60_000)
    page.wait_for_timeout(2500)
    return instance.get_run_by_id(run_id).status


def _launched_run_id(page: Page) -> str:
    toast = page.get_by_text("Launched run ")
    toast.wait_for(timeout=60_000)
    return toast.inner_text().split("Launched run ")[1].split()[0]


def _run_timeline(instance: DagsterInstance, run_id: str) -> str:
    """Seconds from the run's creation to each of its lifecycle events (where the time goes)."""
    records = instance.all_logs(run_id)
    start = min(r.timestamp for r in records)
    kinds = (
        "RUN_ENQUEUED",
        "RUN_DEQUEUED",
        "RUN_STARTING",
        "RUN_START",
        "STEP_START",
        "STEP_FAILURE",
        "RUN_FAILURE",
    )
    seen = {
        r.dagster_event.event_type.name: r.timestamp - start for r in records if r.dagster_event
    }
    return ", ".join(f"{k} {seen[k]:.1f}" for k in kinds if k in seen)


def _full_run_id(instance: DagsterInstance, prefix: str) -> str:
    return next(r.run_id for r in instance.get_runs() if r.run_id.startswith(prefix))


def _failures(instance: DagsterInstance, runs: list) -> dict[str, str]:
    """Each failed run's partition and the first line of its step failure (for a failed assert)."""
    failed = {}
    for run in runs:
        if run.status != DagsterRunStatus.SUCCESS:
            errors = [
                r.dagster_event.step_failure_data.error.message.splitlines()[0]
                for r in instance.all_logs(run.run_id)
                if r.dagster_event and r.dagster_event.is_step_failure
            ]
            failed[run.tags.get("dagster/partition", run.run_id)] = f"{run.status.value}: {errors}"
    return failed


def _shot(page: Page, name: str) -> None:
    """A runbook picture, refreshed only when asked (the suite leaves docs/ui/ untouched)."""
    if os.environ.get(SCREENSHOTS_ENV):
        DOCS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(DOCS / name))


def _wait_for(what: str, ready, seconds: float = 600):  # noqa: ANN001, ANN202
    deadline = time.monotonic() + seconds
    while not (found := ready()):
        assert time.monotonic() < deadline, f"{what}: not within {seconds:.0f} s"
        time.sleep(2)
    return found


def _metadata_in_ui(
    page: Page, ui: DagsterUI, asset: str, partition: str, labels: tuple[str, ...]
) -> dict[str, str]:
    """The values the partition's page shows for these metadata labels (latest materialization)."""
    page.goto(f"{ui.url}/assets/{asset}?view=partitions&partition={partition.replace('|', '%7C')}")
    values = {}
    for label in labels:
        name = page.get_by_text(label, exact=True).first
        name.wait_for()
        values[label] = name.locator("xpath=ancestor::tr[1]/td[2]").inner_text().strip()
    return values


def _window_states() -> dict[str, str]:
    """One client's windows in three states: partition key -> the state the UI must label. Its
    month M was uploaded by the demo, M+1 never pulled (its pull was due on the 15th of M-1),
    M+2 pulled by this test's backfill and not uploaded yet."""
    month = this_month()
    return {
        str(client_window_key(STATES_CLIENT, windows_of_month(month)[1])): "done",
        str(
            client_window_key(STATES_CLIENT, windows_of_month(add_months(month, 1))[1])
        ): "not pulled",
        str(client_window_key(STATES_CLIENT, windows_of_month(add_months(month, 2))[1])): "pending",
    }


TOTALS = (
    "select routed_in_count, gap from monthly_cleaned_leads where client_slug = %s and month = %s"
)
GAP_REPORT = "select routed_in_count, gap from gap_reports where client_slug = %s and month = %s"


def _destination_numbers(dsn: str, query: str, month: str) -> tuple[int, int]:
    """The high-net-worth destination's routed-in count and gap for `month`, as a table holds them."""
    with psycopg.connect(dsn) as conn:
        return conn.execute(query, [DESTINATION, month]).fetchone()


def _alerts(running: DagsterUI, channel: str) -> list[dict]:
    """The messages in the sandbox Slack's `channel`, newest first, read as Slack's API serves them."""
    slack = WebClient(token=running.env["SLACK_BOT_TOKEN"], base_url=running.env["SLACK_API_URL"])
    ids = {c["name"]: c["id"] for c in slack.conversations_list()["channels"]}
    if channel.lstrip("#") not in ids:
        return []
    return slack.conversations_history(channel=ids[channel.lstrip("#")])["messages"]


def _recorded_state(instance: DagsterInstance, key: str) -> str | None:
    """The state the latest materialization of renewal_window's partition carries."""
    records = instance.fetch_materializations(
        AssetRecordsFilter(asset_key=RENEWAL_WINDOW, asset_partitions=[key]), limit=1
    ).records
    return records[0].asset_materialization.metadata["state"].value if records else None


@pytest.mark.slow(seconds=300)
def test_operator_day_in_the_dagster_ui(ui: tuple[DagsterUI, str], tmp_path: Path) -> None:
    running, demo_printed = ui
    month = this_month()
    demo_month = month_key(month)
    ahead, no_zips = month_key(add_months(month, 2)), month_key(add_months(month, -1))
    database_url = _database(running)
    # The demo made its sources' months before their destination's: the destination's printed
    # gap report counts the leads routed to it (made first, it said "Cleaned 0 of 15,000" under
    # a table showing them).
    cleaned = re.search(rf"^\s*{DESTINATION}\s+\d+\s+(\d+)\s", demo_printed, re.M)
    reported = re.search(
        rf"^gap report {DESTINATION}:\n\s+\*\*Cleaned ([\d,]+) of", demo_printed, re.M
    )
    assert cleaned and reported, demo_printed
    assert int(cleaned[1]) > 0 and reported[1].replace(",", "") == cleaned[1], demo_printed
    totals = _destination_numbers(database_url, TOTALS, demo_month)
    assert (
        totals[0] == int(cleaned[1])
        and _destination_numbers(database_url, GAP_REPORT, demo_month) == totals
    )
    instance = DagsterInstance.from_config(str(running.home))
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path="/usr/bin/chromium", args=list(settings.CHROMIUM_ARGS)
            )
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.set_default_timeout(60_000)

            # 1. The lineage of the monthly pull.
            page.goto(f"{running.url}{GROUP_PATH}")
            page.get_by_text("gap_report").first.wait_for()
            _dismiss_welcome(page)
            page.wait_for_timeout(2000)
            _shot(page, "1-lineage.png")

            # 2. Re-materialize one gap report partition and see its run succeed.
            _open_materialize(page, f"{running.url}/assets/gap_report")
            _choose_partitions(page, "garden-state", demo_month)
            _shot(page, "2-materialize-partition.png")
            _launch_dialog(page).get_by_role("button", name="Launch 1 run").click()
            run_id = _full_run_id(instance, _launched_run_id(page))
            assert (
                _run_page_when_finished(page, running, run_id, instance) == DagsterRunStatus.SUCCESS
            )
            assert page.get_by_text("Success").first.is_visible()
            _shot(page, "3-run-succeeded.png")

            # 3. The ZIP sheet of the month the next pull brings (M+2), with the CLI in a second shell.
            sheet = tmp_path / f"territory-{ahead}.csv"
            sheet.write_text(
                "Zipcode,Territory,Color\n"
                + "".join(
                    f"{z},{c},\n"
                    for c, zips in TERRITORY.items()
                    for z in (zips if c == SOURCE else zips[:1])
                )
            )
            imported = homeowner(running.env, "zips", "import", str(sheet), "--month", ahead)
            assert imported.returncode == 0, imported.stderr

            began = time.monotonic()
            # 4. Backfill that month for every client from the UI; every partition succeeds. The
            # high-net-worth destination's month runs before its source's: the test holds the
            # source's Cole login (as another run's session would) until the destination is done.
            page.goto(f"{running.url}{GROUP_PATH}")
            page.get_by_role("button", name="Materialize all").click()
            confirm = page.get_by_role("button", name="Confirm")
            page.get_by_role("dialog").first.wait_for()
            if confirm.count():
                confirm.click()
            _choose_partitions(page, None, ahead)
            _shot(page, "4-backfill-month.png")

            def backfill_runs() -> list:
                backfills = instance.get_backfills()
                return (
                    instance.get_runs(
                        RunsFilter(tags={"dagster/backfill": backfills[0].backfill_id})
                    )
                    if backfills
                    else []
                )

            def run_of(client: str):  # noqa: ANN202
                return next(
                    (
                        r
                        for r in backfill_runs()
                        if r.tags["dagster/partition"] == f"{client}|{ahead}"
                    ),
                    None,
                )

            with cole_login_lock(running.env["COLE_TX_USERNAME"], "TX", database_url):
                _launch_dialog(page).get_by_role("button", name="Launch backfill").click()
                destination = _wait_for(
                    "the destination's month",
                    lambda: (r := run_of(DESTINATION)) and r.is_finished and r,
                )
                assert destination.status == DagsterRunStatus.SUCCESS
                assert (
                    not run_of(SOURCE) or not run_of(SOURCE).is_finished
                )  # waits for the Cole TX login
            backfill = _wait_for(
                "the backfill",
                lambda: (
                    (b := instance.get_backfills()[0]).status.value.startswith("COMPLETED")
                    and all(r.is_finished for r in backfill_runs())
                    and b
                ),
                900,
            )
            runs = backfill_runs()
            assert {r.tags["dagster/partition"] for r in runs} == {f"{c}|{ahead}" for c in CLIENTS}
            assert {r.status for r in runs} == {DagsterRunStatus.SUCCESS}, _failures(instance, runs)
            ended = {
                c: instance.get_run_record_by_id(run_of(c).run_id).end_time
                for c in (SOURCE, DESTINATION)
            }
            assert ended[SOURCE] > ended[DESTINATION]
            page.goto(f"{running.url}/runs/b/{backfill.backfill_id}")
            page.get_by_text("Completed").first.wait_for()
            page.wait_for_timeout(2000)
            _shot(page, "5-backfill-succeeded.png")

            # The destination's month follows its routed leads without a run by hand: the source's
            # run reported its totals, the gap report's automation condition made its report again.
            key = client_month_key(DESTINATION, ahead)
            totals = _destination_numbers(database_url, TOTALS, ahead)
            assert totals[0] > 0
            shown = _metadata_in_ui(
                page, running, "monthly_cleaned_leads", key, ("routed_in", "gap")
            )
            assert shown == {"routed_in": str(totals[0]), "gap": str(totals[1])}, shown
            print(f"backfill with the destination first: {time.monotonic() - began:.0f} s")
            refresh = _wait_for(
                "the destination's gap report made again",
                lambda: next(
                    (
                        r
                        for r in instance.get_runs(RunsFilter(tags={REFRESH_TAG: "true"}))
                        if r.tags.get("dagster/partition") == key and r.is_finished
                    ),
                    None,
                ),
            )
            assert refresh.status == DagsterRunStatus.SUCCESS
            refreshed_at = instance.get_run_record_by_id(refresh.run_id).end_time
            print(
                f"destination's gap report made again {refreshed_at - ended[SOURCE]:.0f} s after its source's run ended"
            )
            assert _destination_numbers(database_url, GAP_REPORT, ahead) == totals
            shown = _metadata_in_ui(page, running, "gap_report", key, ("routed_in", "gap"))
            assert shown == {"routed_in": str(totals[0]), "gap": str(totals[1])}, shown
            _shot(page, "7-destination-gap-report.png")

            # 5. A month with no ZIPs: the run fails with one line naming the command to run.
            began = time.monotonic()
            _open_materialize(page, f"{running.url}/assets/raw_leads")
            _choose_partitions(page, "sunshine", no_zips)
            _launch_dialog(page).get_by_role("button", name="Launch 1 run").click()
            run_id = _full_run_id(instance, _launched_run_id(page))
            assert (
                _run_page_when_finished(page, running, run_id, instance) == DagsterRunStatus.FAILURE
            )
            command = f"homeowner zips import FILE --month {no_zips}"
            sentence = f"sunshine has no ZIPs assigned for {no_zips}. Fix: `{command}`"
            # The failure's first line is that sentence, named by its type only; the stack below.
            error = page.locator("span", has_text=sentence).first
            error.wait_for()
            assert error.inner_text().splitlines()[0].startswith(f"NoZipsForMonth: {sentence}"), (
                error.inner_text()
            )
            assert "Stack Trace:" in page.locator("body").inner_text()
            assert (
                "dagster._core.definitions.events.Failure" not in page.locator("body").inner_text()
            )
            _shot(page, "6-no-zips-error.png")

            print(f"no-ZIPs run: launched to failure shown in {time.monotonic() - began:.1f} s")
            print(f"no-ZIPs run, from its own events: {_run_timeline(instance, run_id)}")

            # 6. The weekly side: one client's windows labelled done (the demo's month), not
            # pulled (the month after) and pending (the month the backfill pulled) on
            # renewal_window's partition view, as the daemon's sensor recorded them.
            began = time.monotonic()
            states = _window_states()
            for key, state in states.items():
                _wait_for(
                    f"{key} recorded as {state}",
                    lambda k=key, s=state: _recorded_state(instance, k) == s,
                    180,
                )
            print(
                f"window states: every state recorded {time.monotonic() - began:.0f} s after the failed run"
            )
            for key, state in states.items():
                shown = _metadata_in_ui(page, running, "renewal_window", key, ("state",))
                assert shown == {"state": state}, (key, shown)
            page.wait_for_timeout(
                1500
            )  # the last one read: the pending window, beside its client's others
            _shot(page, "8-window-states.png")
            browser.close()

        # The same line reaches Slack (the daemon's run-failure sensor).
        posted = _wait_for(
            "the alert in #homeowner-ops",
            lambda: next(
                (m for m in _alerts(running, "#homeowner-ops") if command in m["text"]), None
            ),
            180,
        )
        failed_at = instance.get_run_record_by_id(run_id).end_time
        posted_at = int(
            posted["ts"].split(".")[0]
        )  # the sandbox's ts: whole seconds, then a counter
        print(
            f"no-ZIPs run: Slack alert posted {posted_at - failed_at:.0f} s (whole seconds) after the run failed"
        )
        alert = posted["text"]
        assert alert.startswith(
            f"🚨 raw_leads failed: sunshine\nsunshine has no ZIPs assigned for {no_zips}. Fix: `{command}`"
        ), alert
        assert "\nError: NoZipsForMonth\n" in alert
    finally:
        instance.dispose()
