"""The Definitions load, the CLI validates them, dagster.yaml is a valid Postgres instance, and the
time x dynamic multi-partition IO path with the window -> month mapping works on this dagster."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from dagster import (
    AssetIn,
    AssetKey,
    DagsterInstance,
    Definitions,
    InputContext,
    IOManager,
    OutputContext,
    asset,
    instance_for_test,
    materialize,
)

from homeowner_dagster import db, settings
from homeowner_dagster.definitions import defs
from homeowner_dagster.leads.columns import BISON_FIELD_MAP
from homeowner_dagster.leads.schemas import CleanedLeadFrame
from homeowner_dagster.partitions import (
    client_month_key,
    client_month_partitions,
    client_partitions,
    client_window_key,
    client_window_partitions,
    window_to_month,
)


def test_definitions_load() -> None:
    Definitions.validate_loadable(defs)
    repo = defs.get_repository_def()
    assert repo.get_sensor_def("client_registry_sensor")


def columns_shown(asset_name: str) -> dict[str, tuple[str, list[str]]]:
    """What the UI's Columns panel lists for an asset before any run: the definition's
    `dagster/column_schema` (the webserver serves it as a TableSchemaMetadataEntry)."""
    spec = defs.resolve_assets_def(asset_name).specs_by_key[AssetKey(asset_name)]
    schema = spec.metadata["dagster/column_schema"].schema
    return {c.name: (c.type, list(c.constraints.other)) for c in schema.columns}


def test_cleaned_leads_and_bison_lists_show_the_pandera_model_columns() -> None:
    """The cleaned leads show every column of CleanedLeadFrame with its type and checks; the
    Bison list shows the columns Bison gets, typed as in the same model."""
    model = CleanedLeadFrame.to_schema().columns
    cleaned = columns_shown("cleaned_leads")
    assert list(cleaned) == list(model)
    assert cleaned["zip"] == (str(model["zip"].dtype), ["str_matches('^\\d{5}$')"])
    assert cleaned["home_value"][1] == [">= 0"]
    bison = columns_shown("bison_lead_lists")
    assert list(bison) == list(BISON_FIELD_MAP)
    assert all(bison[name] == cleaned[name] for name in bison)


def test_dagster_cli_validates_the_workspace(database_url: str, tmp_path: Path) -> None:
    env = dict(os.environ)
    env[settings.DAGSTER_STORAGE_URL_ENV] = db.dagster_storage_url(database_url)
    env.pop("DAGSTER_HOME", None)
    result = subprocess.run(
        [
            str(Path(sys.executable).parent / "dagster"),
            "definitions",
            "validate",
            "-w",
            "workspace.yaml",
        ],
        cwd=settings.project_root(),
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "Validation successful" in result.stdout + result.stderr


def test_dagster_yaml_is_a_postgres_instance_with_cole_login_limits(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shutil.copyfile(settings.project_root() / "dagster.yaml", tmp_path / "dagster.yaml")
    monkeypatch.setenv(settings.DAGSTER_STORAGE_URL_ENV, db.dagster_storage_url(database_url))
    instance = DagsterInstance.from_config(str(tmp_path))
    try:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        limits = {
            limit["key"]: limit["limit"]
            for limit in instance.get_concurrency_config().run_queue_config.tag_concurrency_limits
        }
        assert limits["cole-login-NJ"] == 1 and limits["cole-login-TX"] == 1
        pools = instance.get_concurrency_config().pool_config  # DeBounce: one verifying step
        assert pools.default_pool_limit == 1 and pools.pool_granularity.value == "op"
        assert instance.run_retries_enabled
        assert instance.run_monitoring_enabled
    finally:
        instance.dispose()


class _MemoryIO(IOManager):
    """Stores each partition's output under its key, so the test can see what each run read."""

    def __init__(self) -> None:
        self.store: dict[tuple[str, str], object] = {}

    def handle_output(self, context: OutputContext, obj: object) -> None:
        self.store[(context.asset_key.to_user_string(), context.asset_partition_key)] = obj

    def load_input(self, context: InputContext) -> object:
        keys = context.asset_partition_keys
        return [self.store[(context.asset_key.to_user_string(), k)] for k in keys]


def test_client_window_reads_its_client_month_through_the_mapping() -> None:
    @asset(partitions_def=client_month_partitions)
    def monthly(context) -> str:  # noqa: ANN001
        return f"leads of {context.partition_key}"

    @asset(
        partitions_def=client_window_partitions,
        ins={"monthly": AssetIn(partition_mapping=window_to_month)},
    )
    def weekly(context, monthly: list[str]) -> str:  # noqa: ANN001
        return f"{context.partition_key} <- {monthly}"

    io = _MemoryIO()
    with instance_for_test() as instance:
        instance.add_dynamic_partitions(client_partitions.name, ["acme", "lone-star"])
        for client in ("acme", "lone-star"):
            result = materialize(
                [monthly],
                instance=instance,
                resources={"io_manager": io},
                partition_key=client_month_key(client, "2027-01"),
            )
            assert result.success
        result = materialize(
            [monthly, weekly],
            instance=instance,
            resources={"io_manager": io},
            partition_key=client_window_key("lone-star", "2027-01-22"),
            selection=[weekly],
        )
        assert result.success
    assert (
        io.store[("weekly", "lone-star|2027-01-22")]
        == "lone-star|2027-01-22 <- ['leads of lone-star|2027-01']"
    )


def test_gap_report_reads_zip_yield_in_the_lineage_and_is_made_again_when_yields_change() -> None:
    """The lineage draws zip_yield -> gap_report (the client's own yields, its month and six back);
    a new yield makes the gap report of the month being pulled again, older reports stay."""
    from dagster import AssetKey, AssetMaterialization, evaluate_automation_conditions

    from homeowner_dagster.partitions import month_partitions

    graph = defs.resolve_asset_graph()
    assert AssetKey("zip_yield") in graph.get(AssetKey("gap_report")).parent_keys
    latest = month_partitions.get_last_partition_key()
    earlier = month_partitions.get_partition_keys()[-4]
    gap_report, zip_yield = AssetKey("gap_report"), AssetKey("zip_yield")
    with instance_for_test() as instance:
        instance.add_dynamic_partitions(client_partitions.name, ["acme", "other"])
        for client in ("acme", "other"):
            for month in (latest, earlier):
                instance.report_runless_asset_event(
                    AssetMaterialization(gap_report, partition=client_month_key(client, month))
                )
        first = evaluate_automation_conditions(defs=defs, instance=instance)
        assert first.total_requested == 0  # nothing changed since the reports were made
        for month in (latest, earlier):
            instance.report_runless_asset_event(
                AssetMaterialization(zip_yield, partition=client_month_key("acme", month))
            )
        second = evaluate_automation_conditions(defs=defs, instance=instance, cursor=first.cursor)
        assert second.get_requested_partitions(gap_report) == {client_month_key("acme", latest)}
        # Made again: nothing more to do.
        instance.report_runless_asset_event(
            AssetMaterialization(gap_report, partition=client_month_key("acme", latest))
        )
        third = evaluate_automation_conditions(defs=defs, instance=instance, cursor=second.cursor)
        assert third.total_requested == 0, third.get_requested_partitions(gap_report)
