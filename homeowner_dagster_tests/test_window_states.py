"""Each renewal window's whole state, recorded on `renewal_window` by its sensor (no browser):
not pulled, pending, held, list_created, done and missed from a real ledger; a change made in a
shell (`homeowner approve`) recorded on the next tick; nothing recorded twice; and `homeowner
windows` prints the same states (one rule)."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

import pytest
from dagster import (
    DagsterInstance,
    SensorResult,
    SkipReason,
    build_sensor_context,
    instance_for_test,
)
from dagster._core.test_utils import freeze_time

from homeowner_dagster import db, store
from homeowner_dagster.assets.renewal_window import RENEWAL_WINDOW, renewal_window_states
from homeowner_dagster.cli import main as homeowner
from homeowner_dagster.leads.calendar import RenewalWindow, windows_of_month
from homeowner_dagster.partitions import client_partitions
from homeowner_dagster.resources.database import PostgresResource
from homeowner_dagster_tests.pipeline_fixtures import TERRITORY, load_clients, seed_month

TODAY = datetime(2026, 12, 10, 9, tzinfo=ZoneInfo("America/Chicago"))  # 2027-01's pull day has come
NOVEMBER, DECEMBER, JANUARY = date(2026, 11, 1), date(2026, 12, 1), date(2027, 1, 1)


def _tick(instance: DagsterInstance, cursor: str | None = None) -> SensorResult | SkipReason:
    context = build_sensor_context(
        instance=instance, cursor=cursor, resources={"database": PostgresResource()}
    )
    return renewal_window_states(context)


def _states(result: SensorResult) -> dict[str, str]:
    assert all(e.asset_key == RENEWAL_WINDOW for e in result.asset_events)
    return {e.partition: e.metadata["state"].value for e in result.asset_events}


def _done(dsn: str, client: str, window: RenewalWindow) -> None:
    """The ledger steps a weekly run records, in its order."""
    keys = store.window_leads(dsn, client, window)["dedupe_key"]
    store.ensure_window(dsn, client, window)
    store.record_list_created(dsn, client, window, "901", keys)
    store.record_list_verified(dsn, client, window, len(keys))
    store.record_attached(dsn, client, window, 100 + len(keys))
    store.record_done(dsn, client, window, window.evergreen_title)


@pytest.fixture
def instance() -> DagsterInstance:
    with instance_for_test() as instance:
        instance.add_dynamic_partitions(client_partitions.name, list(TERRITORY))
        yield instance


def test_every_window_state_is_recorded_once_and_a_shell_change_on_the_next_tick(
    database_url: str, instance: DagsterInstance, capsys: pytest.CaptureFixture[str]
) -> None:
    load_clients(database_url)
    with db.connect(database_url) as conn:
        conn.execute("update clients set hold_below_minimum = true where slug = 'sunshine'")
        conn.commit()
    # garden-state: November and January pulled, December never; sunshine: January, no gap report.
    for month in (NOVEMBER, JANUARY):
        seed_month(database_url, "garden-state", month)
    seed_month(database_url, "sunshine", JANUARY)
    nov, dec, jan = (windows_of_month(m) for m in (NOVEMBER, DECEMBER, JANUARY))
    _done(database_url, "garden-state", nov[2])
    store.ensure_window(database_url, "garden-state", jan[0])
    store.record_list_created(database_url, "garden-state", jan[0], "902", ["k1"])

    with freeze_time(TODAY):
        first = _tick(instance)
        states = _states(first)
        garden = {k.split("|")[1]: v for k, v in states.items() if k.startswith("garden-state|")}
        assert garden == {
            **{w.key: "missed" for w in nov},
            nov[2].key: "done",
            **{w.key: "not pulled" for w in dec},
            **{w.key: "pending" for w in jan},
            jan[0].key: "list_created",
        }
        assert {k: v for k, v in states.items() if k.startswith("sunshine|")} == {
            f"sunshine|{w.key}": "held" for w in jan
        }
        done = next(e for e in first.asset_events if e.partition == f"garden-state|{nov[2].key}")
        assert done.metadata["campaign_title"].value == nov[2].evergreen_title
        assert done.metadata["list_name"].value == nov[2].list_name
        assert done.metadata["bison_list_id"].value == "901"

        again = _tick(instance, first.cursor)
        assert isinstance(again, SkipReason)  # nothing changed: nothing recorded twice

        # A person approves sunshine's January in a shell: the next tick records its windows only.
        assert (
            homeowner(["approve", "--client", "sunshine", "--month", "2027-01", "--by", "dana"])
            == 0
        )
        after = _tick(instance, first.cursor)
        assert _states(after) == {f"sunshine|{w.key}": "pending" for w in jan}

        # `homeowner windows` shows the same states (one rule).
        capsys.readouterr()
        assert homeowner(["windows", "--client", "garden-state"]) == 0
        printed = capsys.readouterr().out.splitlines()[1:]
        listed = {line[:10]: line[11:25].strip() for line in printed if line[:4].isdigit()}
        assert listed == garden
