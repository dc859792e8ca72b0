"""`homeowner watchdog`: posts once when the database stops and once when it is back.

The pipeline's database (with Dagster's storage in its `dagster` schema) is a PostgreSQL server
of the test's own, so it can really be stopped; Slack is the sandbox's. The daemon's heartbeats
are written as the daemon writes them, fresh, so only the database can be the finding.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from dagster import DagsterInstance
from dagster._daemon.types import DaemonHeartbeat

from homeowner_dagster import db, settings
from homeowner_dagster.cli import main
from homeowner_dagster.sandbox import Sandbox
from homeowner_dagster.watchdog import (
    Finding,
    ScheduleSeen,
    messages,
    overdue_schedule,
    stale_heartbeats,
)


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    with Sandbox(seed=29) as running:
        yield running


def _beat() -> None:
    """Every daemon the instance needs, alive now."""
    instance = DagsterInstance.get()
    try:
        for daemon in instance.get_required_daemon_types():
            instance.add_daemon_heartbeat(
                DaemonHeartbeat(time.time(), daemon, "test-daemon", errors=[])
            )
    finally:
        instance.dispose()


def test_the_watchdog_posts_once_when_the_database_stops_and_once_when_it_is_back(
    own_server, sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,  # noqa: ANN001
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    url = own_server.get_uri()
    for key, value in sandbox.env().items():
        monkeypatch.setenv(key, value)
    home = tmp_path / "dagster"
    home.mkdir()
    shutil.copyfile(settings.project_root() / "dagster.yaml", home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.setenv(settings.DATABASE_URL_ENV, url)
    monkeypatch.setenv(settings.DAGSTER_STORAGE_URL_ENV, db.dagster_storage_url(url))
    monkeypatch.setenv("HOMEOWNER_SLACK_CHANNEL", "#homeowner-ops")
    state = tmp_path / "watchdog-state" / "watchdog.json"
    sandbox.slack.messages.clear()

    def watch() -> tuple[int, list[str]]:
        code = main(["watchdog", "--state", str(state)])
        capsys.readouterr()
        return code, sandbox.slack.messages_in("#homeowner-ops")

    _beat()
    assert watch() == (0, [])  # all well: nothing posted
    own_server.stop()
    try:
        code, posted = watch()
        assert code == 1 and len(posted) == 1, posted
        assert posted[0].startswith("🚨 Watchdog: the pipeline's database is unreachable")
        assert watch() == (1, posted)  # still down: not posted again
    finally:
        own_server.start()
    _beat()
    code, posted = watch()
    assert code == 0 and len(posted) == 2, posted
    assert (
        posted[1].startswith("✅ Watchdog: right again") and "database is unreachable" in posted[1]
    )
    assert watch() == (0, posted)  # well again: nothing more


NOW = datetime(2027, 1, 18, 16, 0, tzinfo=UTC)  # a Monday, 10:00 in Chicago


def test_a_stale_or_missing_heartbeat_is_a_finding() -> None:
    beats = {
        "SENSOR": (NOW - timedelta(seconds=30)).timestamp(),
        "SCHEDULER": (NOW - timedelta(minutes=12)).timestamp(),
    }
    found = stale_heartbeats(beats, ["SENSOR", "SCHEDULER", "BACKFILL"], NOW)
    assert [f.key for f in found] == ["daemon:SCHEDULER", "daemon:BACKFILL"]
    assert "last beat 12 min ago" in found[0].text and "has no heartbeat" in found[1].text


def test_a_schedule_that_missed_its_monday_tick_is_a_finding() -> None:
    due = datetime(2027, 1, 18, 15, 0, tzinfo=UTC).timestamp()  # Monday 09:00 America/Chicago
    week_before = due - 7 * 86400

    def seen(last: float | None, started: float | None = week_before - 86400) -> ScheduleSeen:
        return ScheduleSeen("weekly_upload_schedule", "0 9 * * 1", "America/Chicago", started, last)

    finding = overdue_schedule(seen(week_before), NOW)
    assert finding is not None and finding.key == "schedule:weekly_upload_schedule"
    assert (
        "did not tick at 2027-01-18 09:00" in finding.text
        and "last tick: 2027-01-11 15:00 UTC" in finding.text
    )
    assert overdue_schedule(seen(due + 5), NOW) is None  # ticked
    assert overdue_schedule(seen(None, started=due + 60), NOW) is None  # started since
    assert (
        overdue_schedule(seen(week_before), NOW - timedelta(minutes=55)) is None
    )  # within the grace


def test_each_change_is_posted_once() -> None:
    down = [Finding("database", "the pipeline's database is unreachable (refused)")]
    assert messages({}, down)[0].startswith("🚨 Watchdog: the pipeline's database is unreachable")
    assert messages({"database": "x"}, down) == (None, None)
    assert messages({"database": "x"}, []) == (None, "✅ Watchdog: right again:\n• x")
