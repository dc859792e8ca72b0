"""Issue 11, monthly part: territories that carry forward, and the minimum to proceed.

A sheet applies from its month on; `zips move/assign --month M` apply from M on; the monthly pull
uses the carried-forward ZIPs without a same-month import. The gap report says met / under /
below_minimum / over, its Slack message names the minimum and each suggestion's ZIPs, and a
client set to `hold_below_minimum` gets no weekly upload until `homeowner approve`.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pandas as pd
import psycopg
import pytest
from dagster import AssetKey, DagsterEventType

from homeowner_dagster import migrate
from homeowner_dagster.cli import main
from homeowner_dagster.leads.calendar import windows_of_month
from homeowner_dagster.leads.gap import gap_status
from homeowner_dagster.leads.territories import CHANGE_COLUMNS, derive_territory
from homeowner_dagster.partitions import client_month_key
from homeowner_dagster_tests import pipeline_fixtures
from homeowner_dagster_tests.pipeline_fixtures import (
    CLIENTS_YAML,
    MONTH,
    QUIET,
    TERRITORY,
    Pipeline,
)

pipeline_sandbox = pipeline_fixtures.pipeline_sandbox
pipeline = pipeline_fixtures.pipeline

FEB = date(2027, 2, 1)


def rows(dsn: str, query: str, *params: object) -> list[tuple]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(query, params).fetchall()


def scalar(dsn: str, query: str, *params: object) -> object:
    return rows(dsn, query, *params)[0][0]


def run(pipeline: Pipeline, client: str, month: date, only: list[str] | None = None):  # noqa: ANN201
    job = pipeline.defs.resolve_job_def("monthly_pull")
    return job.execute_in_process(
        instance=pipeline.instance,
        partition_key=client_month_key(client, month),
        run_config=QUIET,
        asset_selection=[AssetKey(name) for name in only] if only else None,
        raise_on_error=False,
    )


def change(
    id_: int, kind: str, month: str, zip_: str, client: str, from_client: str | None = None
) -> dict:
    return {
        "id": id_,
        "kind": kind,
        "month": month,
        "zip": zip_,
        "state": "NJ",
        "color": None,
        "client_slug": client,
        "from_client": from_client,
    }


# The rule, without a database


def test_a_sheet_carries_forward_and_a_move_applies_from_its_month_on() -> None:
    changes = pd.DataFrame(
        [
            change(1, "sheet", "2026-12", "07030", "a"),
            change(2, "sheet", "2026-12", "07302", "a"),
            change(3, "sheet", "2026-12", "07001", "b"),
            change(4, "move", "2027-01", "07302", "b", from_client="a"),
            change(5, "assign", "2027-03", "07002", "a"),
        ],
        columns=CHANGE_COLUMNS,
    )

    def held(month: str) -> dict[str, str]:
        t = derive_territory(changes, month)
        assert t.problems == []
        return dict(zip(t.zips["zip"], t.zips["client_slug"], strict=True))

    assert derive_territory(changes, "2026-11").sheet_month is None and held("2026-11") == {}
    assert held("2026-12") == {"07030": "a", "07302": "a", "07001": "b"}
    assert held("2027-01") == held("2027-02") == {"07030": "a", "07302": "b", "07001": "b"}
    assert held("2027-03") == {"07030": "a", "07302": "b", "07001": "b", "07002": "a"}
    assert derive_territory(changes, "2027-02").sheet_month == "2026-12"
    # A later sheet replaces everything before it.
    later = pd.concat(
        [changes, pd.DataFrame([change(6, "sheet", "2027-04", "07030", "b")])], ignore_index=True
    )
    assert dict(
        zip(
            *[derive_territory(later, "2027-05").zips[c] for c in ("zip", "client_slug")],
            strict=True,
        )
    ) == {"07030": "b"}
    # An assignment of a held ZIP never takes it: it is a problem, the holder keeps it.
    clash = pd.concat(
        [changes, pd.DataFrame([change(7, "assign", "2027-02", "07001", "a")])], ignore_index=True
    )
    t = derive_territory(clash, "2027-02")
    assert t.problems == [(7, "ZIP 07001 already belongs to b in 2027-02")]
    assert t.zips.set_index("zip").loc["07001", "client_slug"] == "b"


@pytest.mark.parametrize(
    ("cleaned", "status"),
    [
        (15_000, "met"),
        (11_500, "under"),
        (14_999, "under"),
        (11_499, "below_minimum"),
        (0, "below_minimum"),
        (15_001, "over"),
    ],
)
def test_gap_status_against_target_and_minimum_to_proceed(cleaned: int, status: str) -> None:
    result = gap_status(cleaned, 100)
    assert (result.status, result.target, result.minimum_to_proceed) == (status, 15_000, 11_500)
    assert result.meets_minimum == (status != "below_minimum")


# The commands, on a real database


@pytest.fixture
def clients_file(tmp_path: Path) -> Path:
    path = tmp_path / "clients.yaml"
    path.write_text(
        CLIENTS_YAML.replace("    licensed_states: [FL]", "    licensed_states: [FL, NJ]")
    )
    return path


def test_zips_show_and_changes_that_apply_from_their_month_on(
    database_url: str,
    clients_file: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HOMEOWNER_USER", "dana")  # who approved each change is recorded
    assert main(["clients", "import", str(clients_file)]) == 0
    sheet = tmp_path / "zips.csv"
    sheet.write_text("Zipcode,Territory\n07030,garden-state\n07302,garden-state\n07001,sunshine\n")
    assert main(["zips", "import", str(sheet), "--month", "2026-12"]) == 0
    assert (
        main(
            [
                "zips",
                "move",
                "--from",
                "garden-state",
                "--to",
                "sunshine",
                "--month",
                "2027-01",
                "07302",
            ]
        )
        == 0
    )
    capsys.readouterr()

    def show(client: str, month: str) -> str:
        assert main(["zips", "show", "--client", client, "--month", month]) == 0
        return capsys.readouterr().out

    december, february = show("garden-state", "2026-12"), show("garden-state", "2027-02")
    assert "2 ZIP(s), from the sheet of 2026-12" in december and "07302" in december
    assert "1 ZIP(s), from the sheet of 2026-12 plus changes since" in february
    assert "07030" in february and "07302" not in february
    assert "moved from garden-state 2027-01" in show("sunshine", "2027-03")
    assert "no sheet imported for 2026-11 or earlier" in show("garden-state", "2026-11")
    assert main(["zips", "show", "--client", "nobody", "--month", "2027-01"]) == 2
    assert "unknown client 'nobody'" in capsys.readouterr().err
    assert main(["approve", "--client", "nobody", "--month", "2027-01"]) == 2
    assert "no client with slug 'nobody'" in capsys.readouterr().err

    # Exclusivity holds for every month the change reaches: a ZIP free in December but moved to
    # sunshine from January cannot be given to garden-state from December on.
    assert main(["zips", "assign", "--client", "garden-state", "--month", "2027-02", "07001"]) == 2
    assert "ZIP 07001 already belongs to sunshine in 2027-02" in capsys.readouterr().err
    assert main(["zips", "assign", "--client", "garden-state", "--month", "2026-12", "07002"]) == 0
    assert main(["zips", "assign", "--client", "sunshine", "--month", "2027-02", "07002"]) == 2
    assert "already belongs to garden-state" in capsys.readouterr().err
    assert (
        main(
            [
                "zips",
                "move",
                "--from",
                "garden-state",
                "--to",
                "sunshine",
                "--month",
                "2027-01",
                "07002",
            ]
        )
        == 0
    )
    # Written months follow: December stays as it was, January (written by the move) changed.
    held = dict(rows(database_url, "select month || ' ' || zip, client_slug from client_zipcodes"))
    assert held["2026-12 07302"] == "garden-state" and held["2026-12 07002"] == "garden-state"
    assert held["2027-01 07302"] == "sunshine" and held["2027-01 07002"] == "sunshine"
    assert (
        scalar(
            database_url, "select count(*) from territory_changes where approved_by = %s", "dana"
        )
        == 6
    )


def test_an_empty_or_header_only_zip_sheet_is_refused_and_keeps_the_territory(
    database_url: str, clients_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["clients", "import", str(clients_file)]) == 0
    sheet = tmp_path / "zips.csv"
    sheet.write_text("Zipcode,Territory\n07030,garden-state\n")
    assert main(["zips", "import", str(sheet), "--month", "2026-12"]) == 0
    before = rows(
        database_url, "select kind, month, zip, client_slug from territory_changes order by zip"
    )
    capsys.readouterr()
    for text in ("Zipcode,Territory,Color\n", "Zipcode,Territory,Color\n,,\n\n", ""):
        sheet.write_text(text)
        assert main(["zips", "import", str(sheet), "--month", "2027-01"]) == 2, text
        err = capsys.readouterr().err
        assert (
            err.splitlines()[-1]
            == "homeowner zips: ZIP import refused (1 problem(s) above); nothing written"
        ), err
        assert ("no ZIP rows below its header" in err) if text else ("the sheet is empty" in err)
    assert (
        rows(
            database_url, "select kind, month, zip, client_slug from territory_changes order by zip"
        )
        == before
    )
    assert main(["zips", "show", "--client", "garden-state", "--month", "2027-01"]) == 0
    assert "1 ZIP(s), from the sheet of 2026-12" in capsys.readouterr().out


# The monthly pull, end to end in the sandbox


def _only_a_december_sheet(pipeline: Pipeline, folder: Path) -> None:
    """Forget the fixture's January sheet: the team imported one sheet, for 2026-12."""
    with psycopg.connect(pipeline.dsn) as conn:
        conn.execute("delete from territory_changes")
        conn.execute("delete from client_zipcodes")
    lines = ["Zipcode,Territory"] + [f"{z},{c}" for c, zips in TERRITORY.items() for z in zips]
    sheet = folder / "december.csv"
    sheet.write_text("\n".join(lines) + "\n")
    assert main(["zips", "import", str(sheet), "--month", "2026-12"]) == 0


@pytest.mark.slow
def test_the_pull_of_a_month_without_its_own_sheet_uses_the_carried_forward_territory(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    dsn, cole = pipeline.dsn, pipeline.sandbox.cole
    _only_a_december_sheet(pipeline, tmp_path)
    moved = TERRITORY["garden-state"][0]
    with psycopg.connect(dsn) as conn:  # sunshine may hold NJ ZIPs from January
        conn.execute("update clients set licensed_states = '{FL,NJ}' where slug = 'sunshine'")
    assert (
        main(
            [
                "zips",
                "move",
                "--from",
                "garden-state",
                "--to",
                "sunshine",
                "--month",
                "2027-01",
                moved,
            ]
        )
        == 0
    )

    before = len(cole.exports_served())
    assert run(pipeline, "garden-state", FEB, only=["raw_leads"]).success
    served = cole.exports_served()[before:]
    pulled = sorted(z for e in served for z in e["zips"])
    assert pulled == sorted(TERRITORY["garden-state"][1:])  # the sheet minus the move of January
    written = rows(
        dsn,
        "select zip, pulled_at from client_zipcodes where month = '2027-02' and client_slug = 'garden-state'",
    )
    assert sorted(z for z, _ in written) == pulled
    assert {at.astimezone(UTC).date() for _, at in written} == {
        datetime.now(UTC).date()
    }  # pulled today
    assert (
        scalar(
            dsn,
            "select count(*) from raw_leads where client_slug = 'garden-state' and month = '2027-02'",
        )
        > 0
    )
    # December is before the move: garden-state still holds the ZIP there.
    assert (
        scalar(
            dsn,
            "select client_slug from client_zipcodes where month = '2026-12' and zip = %s",
            moved,
        )
        == "garden-state"
    )
    # Exclusivity in the written month: the moved ZIP is sunshine's, once.
    assert rows(
        dsn, "select client_slug from client_zipcodes where month = '2027-02' and zip = %s", moved
    ) == [("sunshine",)]


@pytest.mark.slow
def test_a_month_with_no_sheet_at_or_before_it_fails_once_naming_the_import(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    with psycopg.connect(pipeline.dsn) as conn:
        conn.execute("delete from territory_changes")
        conn.execute("delete from client_zipcodes")
    sheet = tmp_path / "march.csv"
    sheet.write_text("Zipcode,Territory\n07030,garden-state\n")
    assert main(["zips", "import", str(sheet), "--month", "2027-03"]) == 0  # later: does not count
    result = run(pipeline, "garden-state", FEB, only=["raw_leads"])
    assert not result.success
    failures = [e for e in result.all_events if e.event_type == DagsterEventType.STEP_FAILURE]
    retries = [e for e in result.all_events if e.event_type == DagsterEventType.STEP_UP_FOR_RETRY]
    assert len(failures) == 1 and retries == []
    message = failures[0].step_failure_data.user_failure_data.description
    assert message.startswith("garden-state has no ZIPs assigned for 2027-02. Fix: ")
    assert "`homeowner zips import FILE --month 2027-02`" in message


@pytest.mark.slow
def test_each_gap_status_and_the_slack_message_with_minimum_and_zips(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    dsn, slack = pipeline.dsn, pipeline.sandbox.slack
    monkeypatch.setenv("HOMEOWNER_GAP_COLE_COUNT_QUERIES", "0")
    monkeypatch.setenv("HOMEOWNER_GAP_MAX_CANDIDATES", "6")
    assert run(pipeline, "garden-state", MONTH).success
    cleaned = scalar(
        dsn, "select cleaned_count from monthly_cleaned_leads where client_slug = 'garden-state'"
    )
    assert cleaned > 100
    overrides = {
        "over": cleaned - 1,
        "met": cleaned,
        "under": cleaned + 1,
        "below_minimum": 2 * cleaned,
    }
    for status, target in overrides.items():
        with psycopg.connect(dsn) as conn:
            conn.execute(
                "update clients set target_override = %s where slug = 'garden-state'", [target]
            )
        slack.messages.clear()
        # Cole count queries (the yield of nearby free ZIPs) for one status only: they take a browser.
        monkeypatch.setenv(
            "HOMEOWNER_GAP_COLE_COUNT_QUERIES", "1" if status == "below_minimum" else "0"
        )
        assert run(
            pipeline, "garden-state", MONTH, only=["monthly_cleaned_leads", "gap_report"]
        ).success
        report = rows(
            dsn,
            "select status, minimum_to_proceed, suggestions from gap_reports where client_slug = 'garden-state'",
        )[0]
        assert report[0] == status
        minimum = round(target * 11_500 / 15_000)
        assert report[1] == minimum
        (text,) = [t for t in slack.messages_in("#garden-state") if t.startswith("📊 Gap Analysis")]
        assert f"Status: {status}" in text and f"minimum to proceed {minimum:,}" in text
        with_zips = [s for s in report[2] if s["zips"]]
        if status == "below_minimum":
            assert with_zips, report[2]  # nearby free ZIPs, counted by Cole count queries
        for suggestion in with_zips:
            line = next(
                t for t in text.splitlines() if t.startswith("• ") and suggestion["zips"][0] in t
            )
            assert all(z in line for z in suggestion["zips"][:15]), (line, suggestion["zips"])


@pytest.mark.slow
def test_hold_below_minimum_waits_for_homeowner_approve(
    pipeline: Pipeline,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    dsn, sandbox = pipeline.dsn, pipeline.sandbox
    monkeypatch.setenv(
        "HOMEOWNER_GAP_COLE_COUNT_QUERIES", "0"
    )  # the gap's suggestions are not the point here
    held_yaml = tmp_path / "clients.yaml"
    held_yaml.write_text(
        CLIENTS_YAML.replace(
            '    slack_channel: "#garden-state"\n',
            '    slack_channel: "#garden-state"\n    hold_below_minimum: true\n',
        )
    )
    assert main(["clients", "import", str(held_yaml)]) == 0
    assert run(pipeline, "garden-state", MONTH).success
    assert (
        scalar(dsn, "select status from gap_reports where client_slug = 'garden-state'")
        == "below_minimum"
    )
    gap_text = next(
        t for t in sandbox.slack.messages_in("#garden-state") if t.startswith("📊 Gap Analysis")
    )
    assert "homeowner approve --client garden-state --month 2027-01" in gap_text

    window = windows_of_month(MONTH)[0]
    assert pipeline.weekly("garden-state", window.start).success
    assert sandbox.bison.lead_lists("Garden State Insurance") == {}
    assert (
        scalar(dsn, "select count(*) from client_lead_batches where client_slug = 'garden-state'")
        == 0
    )
    notice = [
        t for t in sandbox.slack.messages_in("#garden-state") if t.startswith("⏸️ Upload held")
    ]
    assert (
        len(notice) == 1 and "homeowner approve --client garden-state --month 2027-01" in notice[0]
    )

    assert main(["approve", "--client", "garden-state", "--month", "2027-01", "--by", "dana"]) == 0
    assert "approved for upload by dana" in capsys.readouterr().out
    who, when = rows(
        dsn,
        "select approved_by, approved_at from upload_approvals where client_slug = 'garden-state'",
    )[0]
    assert who == "dana" and when is not None

    assert pipeline.weekly("garden-state", window.start).success
    lists = sandbox.bison.lead_lists("Garden State Insurance")
    in_window = scalar(
        dsn,
        "select count(*) from cleaned_leads where client_slug = 'garden-state' "
        "and renewal_window = %s",
        window.start,
    )
    assert len(lists) == 1 and sum(lists.values()) == in_window > 0
    assert (
        scalar(dsn, "select lead_count from client_lead_batches where client_slug = 'garden-state'")
        == in_window
    )


def test_assignments_made_before_the_migration_become_that_months_sheet(
    empty_database_url: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    folder = Path(__file__).resolve().parents[1] / "migrations"
    files = sorted(folder.glob("*.sql"))
    mine = folder / "20261202100100_territory_carry_forward_and_hold.sql"
    for f in files[: files.index(mine)]:  # the database as it was before this migration
        (tmp_path / f.name).write_text(f.read_text())
    migrate.migrate(empty_database_url, tmp_path)
    with psycopg.connect(empty_database_url, autocommit=True) as conn:
        conn.execute(
            "insert into clients (slug, name, workspace_name, package_tier, licensed_states) "
            "values ('acme', 'Acme', 'Acme', 100, '{NJ}')"
        )
        conn.execute(
            "insert into client_zipcodes (client_slug, client_name, workspace_name, month, zip, state, color) "
            "values ('acme', 'Acme', 'Acme', '2027-01', '07030', 'NJ', 'green')"
        )
        conn.execute(mine.read_text())
        assert conn.execute(
            "select kind, month, zip, client_slug, color from territory_changes"
        ).fetchall() == [("sheet", "2027-01", "07030", "acme", "green")]
    assert (
        main(["zips", "show", "--client", "acme", "--month", "2027-04"]) == 0
    )  # migrate: the rest
    assert "07030  NJ  sheet 2027-01" in capsys.readouterr().out  # carried forward to April
