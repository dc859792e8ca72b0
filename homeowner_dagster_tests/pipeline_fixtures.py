"""Fixtures for end-to-end runs: the sandbox, two demo clients, a Postgres-backed Dagster instance."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pytest
from dagster import DagsterInstance, Definitions, instance_for_test

from homeowner_dagster import db, settings
from homeowner_dagster.leads.calendar import windows_of_month
from homeowner_dagster.partitions import client_month_key, client_partitions, client_window_key
from homeowner_dagster.resources import bison as bison_resource
from homeowner_dagster.sandbox import Sandbox
from homeowner_dagster.scenarios.two_clients import (  # the scenario, shared with bench/
    CLIENTS_YAML,
    MONTH,
    QUIET,
    TERRITORY,
    load_clients,
    reset_outside_world,
    seed_month,
    wait_on_the_sandbox_clock,
)

__all__ = [
    "CLIENTS_YAML",
    "MONTH",
    "QUIET",
    "TERRITORY",
    "Pipeline",
    "load_clients",
    "pipeline",
    "pipeline_sandbox",
    "reset_outside_world",
    "seed_month",
    "use_sandbox",
    "wait_on_the_sandbox_clock",
]


@dataclass
class Pipeline:
    """Runs the project's own jobs against the sandbox, recording runs in a Postgres instance."""

    sandbox: Sandbox
    dsn: str
    instance: DagsterInstance
    defs: Definitions

    def monthly(self, client: str, month: date = MONTH, raise_on_error: bool = True):  # noqa: ANN201
        job = self.defs.resolve_job_def("monthly_pull")
        return job.execute_in_process(
            instance=self.instance,
            partition_key=client_month_key(client, month),
            run_config=QUIET,
            raise_on_error=raise_on_error,
        )

    def weekly(self, client: str, window_start: date, raise_on_error: bool = True):  # noqa: ANN201
        job = self.defs.resolve_job_def("weekly_upload")
        return job.execute_in_process(
            instance=self.instance,
            partition_key=client_window_key(client, window_start),
            run_config=QUIET,
            raise_on_error=raise_on_error,
        )

    def whole_month(self, clients: list[str], month: date = MONTH) -> None:
        for client in clients:
            self.monthly(client, month)
        for window in windows_of_month(month):
            for client in clients:
                self.weekly(client, window.start)


def use_sandbox(
    sandbox: Sandbox,
    monkeypatch: pytest.MonkeyPatch,
    artifacts: Path,
    database_url: str | None = None,
) -> None:
    """The environment of a run on the sandbox: its addresses and credentials, local artifacts,
    the ops channel; with `database_url`, Dagster's storage URL as a deployment sets it (the
    `dagster` schema: preflight's and `homeowner check`'s database lines check it)."""
    for key, value in sandbox.env().items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("HOMEOWNER_ARTIFACTS_DIR", str(artifacts))
    monkeypatch.setenv("HOMEOWNER_SLACK_CHANNEL", "#homeowner-ops")
    if database_url:
        monkeypatch.setenv(settings.DAGSTER_STORAGE_URL_ENV, db.dagster_storage_url(database_url))


@pytest.fixture(scope="module")
def pipeline_sandbox() -> Iterator[Sandbox]:
    """The sandbox of a test module; the connector's waits for Bison (an import, an attach's
    5-minute sync) move its clock instead of sleeping, for every test of the module."""
    sandbox = Sandbox(seed=11)
    reset_outside_world(sandbox)
    waiting = bison_resource.pause
    bison_resource.pause = sandbox.bison.advance
    try:
        with sandbox:
            yield sandbox
    finally:
        bison_resource.pause = waiting


@pytest.fixture
def pipeline(
    pipeline_sandbox: Sandbox, database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Pipeline]:
    reset_outside_world(pipeline_sandbox)
    use_sandbox(pipeline_sandbox, monkeypatch, tmp_path / "artifacts")
    pipeline_sandbox.faults.off()
    from homeowner_dagster.definitions import build_definitions

    defs = build_definitions()
    load_clients(database_url)
    storage = {"storage": {"postgres": {"postgres_url": db.dagster_storage_url(database_url)}}}
    with instance_for_test(overrides=storage) as instance:
        instance.add_dynamic_partitions(client_partitions.name, list(TERRITORY))
        yield Pipeline(pipeline_sandbox, database_url, instance, defs)
    pipeline_sandbox.faults.off()
    assert os.environ.get("DEBOUNCE_API_KEY")
