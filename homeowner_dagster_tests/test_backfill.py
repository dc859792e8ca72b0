"""A missed month backfilled with `dagster job backfill` ends in the same state as an on-time run."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import psycopg
import pytest
from dagster import DagsterInstance, DagsterRunStatus, RunsFilter

from homeowner_dagster import db, settings
from homeowner_dagster.cli.stopping import start_group, stop_group
from homeowner_dagster.sandbox import generator
from homeowner_dagster.sandbox.server import free_port
from homeowner_dagster_tests import pipeline_fixtures
from homeowner_dagster_tests.pipeline_fixtures import Pipeline, load_clients
from homeowner_dagster_tests.test_pipeline import fingerprint

pipeline_sandbox = pipeline_fixtures.pipeline_sandbox
pipeline = pipeline_fixtures.pipeline

SKIPPED = date(2026, 12, 1)


def _month_rows(dsn: str) -> dict[str, int]:
    with psycopg.connect(dsn) as conn:
        return {
            table: conn.execute(
                psycopg.sql.SQL("select count(*) from {} where month = '2026-12'").format(
                    psycopg.sql.Identifier(table)
                )
            ).fetchone()[0]
            for table in (
                "raw_leads",
                "cleaned_leads",
                "rejected_leads",
                "monthly_cleaned_leads",
                "gap_reports",
            )
        }


@pytest.mark.slow
def test_backfill_of_a_skipped_month_from_the_dagster_cli(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    dsn = pipeline.dsn
    load_clients(dsn, SKIPPED)
    home = tmp_path / "dagster_home"
    home.mkdir()
    storage_url = db.dagster_storage_url(dsn)
    (home / "dagster.yaml").write_text(
        f"storage:\n  postgres:\n    postgres_url: '{storage_url}'\n"
        # No daemon in a test: launch runs at once instead of queueing them for it.
        "run_coordinator:\n  module: dagster.core.run_coordinator\n  class: DefaultRunCoordinator\n"
        "telemetry:\n  enabled: false\n"
    )
    env = dict(os.environ)
    env.update({"DAGSTER_HOME": str(home), settings.DAGSTER_STORAGE_URL_ENV: storage_url})
    # Production shape: a long-lived code server executes the runs the CLI launches.
    port = free_port()
    workspace = tmp_path / "workspace.yaml"
    workspace.write_text(
        f"load_from:\n  - grpc_server:\n      host: 127.0.0.1\n      port: {port}\n"
        "      location_name: homeowner_dagster\n"
    )
    bin_dir = Path(sys.executable).parent
    # Its own process group with default signal dispositions, stopped as `homeowner dev` stops
    # its own: a suite started with SIGINT/SIGTERM ignored must not leave it running.
    server = start_group(
        [
            str(bin_dir / "dagster"),
            "code-server",
            "start",
            "-m",
            "homeowner_dagster.definitions",
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
        ],
        cwd=settings.project_root(),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    instance = DagsterInstance.from_config(str(home))  # same Postgres storage as the CLI's runs
    try:
        deadline = time.monotonic() + 120
        while (
            subprocess.run(
                [str(bin_dir / "dagster"), "api", "grpc-health-check", "-p", str(port)],
                capture_output=True,
                env=env,
            ).returncode
            != 0
        ):
            assert server.poll() is None, server.stderr.read().decode()[-2000:]
            assert time.monotonic() < deadline, "code server did not start"
            time.sleep(1)
        result = subprocess.run(
            [
                str(bin_dir / "dagster"),
                "job",
                "backfill",
                "-w",
                str(workspace),
                "-j",
                "monthly_pull",
                "--partitions",
                "garden-state|2026-12",
                "--noprompt",
            ],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        assert "Launched backfill job" in result.stdout
        deadline = time.monotonic() + 300
        while True:
            runs = instance.get_runs(RunsFilter(job_name="monthly_pull"))
            if runs and all(r.is_finished for r in runs):
                break
            assert time.monotonic() < deadline, (
                f"backfill run did not finish: {[r.status for r in runs]}"
            )
            time.sleep(1)
        assert [r.status for r in runs] == [DagsterRunStatus.SUCCESS]
        assert runs[0].tags["dagster/partition"] == "garden-state|2026-12"
        assert "dagster/backfill" in runs[0].tags
    finally:
        instance.dispose()
        stop_group(server)

    backfilled = fingerprint(dsn)
    counts = _month_rows(dsn)
    # every record Cole's sandbox holds for the month's ZIPs (831 for December's, fewer renewals)
    planted = sum(
        generator.count_for(z, SKIPPED) for z in pipeline_fixtures.TERRITORY["garden-state"]
    )
    assert counts["raw_leads"] == planted > 0 and counts["monthly_cleaned_leads"] == 1
    # The same partition materialized on time (in-process, as the schedule's run would) changes nothing.
    pipeline.monthly("garden-state", SKIPPED)
    assert fingerprint(dsn) == backfilled
