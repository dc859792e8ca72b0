"""One Cole session per login however runs start: three clients of one state, three concurrent
runs without any run tag (as the UI or a backfill launches them), never two sessions at once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from dagster import DagsterInstance, instance_for_test

from homeowner_dagster import db, registry
from homeowner_dagster.leads.calendar import month_key
from homeowner_dagster.leads.territories import parse_clients, parse_zip_sheet
from homeowner_dagster.partitions import client_partitions
from homeowner_dagster.resources.cole.login_lock import cole_login_lock, lock_key
from homeowner_dagster.sandbox import Sandbox
from homeowner_dagster.sandbox.generator import demo_zips
from homeowner_dagster_tests.pipeline_fixtures import MONTH

CLIENTS = ("nj-alpha", "nj-beta", "nj-gamma")
OVERRIDES = {
    "compute_logs": {
        "module": "dagster._core.storage.noop_compute_log_manager",
        "class": "NoOpComputeLogManager",
    }
}

# One process per run, no tags: the Cole pull step only (the part that opens a session).
WORKER = r"""
import json, os, sys
from dagster import AssetKey, instance_for_test
from homeowner_dagster.definitions import build_definitions
from homeowner_dagster.partitions import client_month_key

overrides = json.loads(sys.argv[2])
with instance_for_test(overrides=overrides) as instance:
    job = build_definitions().resolve_job_def("monthly_pull")
    result = job.execute_in_process(
        instance=instance, partition_key=client_month_key(sys.argv[1], os.environ["MONTH"]),
        asset_selection=[AssetKey("raw_leads")], raise_on_error=False,
        run_config={"loggers": {"console": {"config": {"log_level": "ERROR"}}}},
    )
    print(json.dumps({"client": sys.argv[1], "success": result.success, "run_id": result.run_id}), flush=True)
"""


def _clients_yaml() -> str:
    entries = "".join(
        f"  - slug: {slug}\n    name: {slug.title()}\n    workspace: {slug.title()}\n"
        f"    package_tier: 100\n    licensed_states: [NJ]\n"
        for slug in CLIENTS
    )
    return "clients:\n" + entries


def _waiting_runs(instance: DagsterInstance) -> set[str]:
    """Clients whose run has said in its log that it waits for the Cole NJ login."""
    waiting = set()
    for run in instance.get_runs():
        client = run.tags.get("dagster/partition/client")
        if any(
            "waiting for the Cole NJ login" in (e.user_message or "")
            for e in instance.all_logs(run.run_id)
        ):
            waiting.add(client)
    return waiting


@pytest.mark.slow
def test_three_clients_of_one_state_never_share_a_cole_login(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fact C-LOGIN-PER-STATE."""
    zips = demo_zips("NJ", 3)
    registry.upsert_clients(parse_clients(_clients_yaml(), "clients.yaml"), database_url)
    sheet = "Zipcode,Territory,Color\n" + "".join(
        f"{z},{c},\n" for z, c in zip(zips, CLIENTS, strict=True)
    )
    registry.import_zips(parse_zip_sheet(sheet), month_key(MONTH), database_url)
    overrides: dict[str, Any] = {
        "storage": {"postgres": {"postgres_url": db.dagster_storage_url(database_url)}},
        **OVERRIDES,
    }
    with Sandbox(seed=5) as sandbox, instance_for_test(overrides=overrides) as instance:
        instance.add_dynamic_partitions(client_partitions.name, list(CLIENTS))
        env = {
            **os.environ,
            **sandbox.env(),
            "MONTH": month_key(MONTH),
            "HOMEOWNER_ARTIFACTS_DIR": str(tmp_path / "artifacts"),
            "PYTHONPATH": os.pathsep.join(
                filter(None, [str(Path(__file__).parents[1]), os.environ.get("PYTHONPATH")])
            ),
        }
        login = env["COLE_NJ_USERNAME"]
        children: list[subprocess.Popen[str]] = []
        try:
            # Another run holds the NJ login while the three start, so all three must wait for it.
            with cole_login_lock(login, "NJ", database_url):
                children = [
                    subprocess.Popen(
                        [sys.executable, "-c", WORKER, slug, json.dumps(overrides)],
                        env=env,
                        stdout=subprocess.PIPE,
                        stderr=subprocess.PIPE,
                        text=True,
                    )
                    for slug in CLIENTS
                ]
                deadline = time.monotonic() + 600
                while _waiting_runs(instance) != set(CLIENTS):
                    assert all(c.poll() is None for c in children), [
                        c.communicate() for c in children
                    ]
                    assert time.monotonic() < deadline, (
                        f"runs not waiting: {_waiting_runs(instance)}"
                    )
                    time.sleep(1)
                assert sandbox.cole.logins == 0  # nobody got past the lock while it was held
            outcomes = []
            for child in children:
                out, err = child.communicate(timeout=900)
                assert child.returncode == 0, err[-4000:]
                outcomes += [json.loads(line) for line in out.splitlines() if line.startswith("{")]
        finally:
            for child in children:
                if child.poll() is None:
                    child.kill()
                    child.wait(timeout=30)

        assert sorted((o["client"], o["success"]) for o in outcomes) == [(c, True) for c in CLIENTS]
        assert sandbox.cole.logins == 3
        assert sandbox.cole.max_sessions_per_login == {login: 1}
    # Each client's rows were written from its own partition key.
    with db.connect(database_url) as conn:
        rows = dict(
            conn.execute("select client_slug, count(*) from raw_leads group by 1").fetchall()
        )
    assert set(rows) == set(CLIENTS) and all(n > 0 for n in rows.values())


def test_lock_keys_differ_per_login_and_are_stable() -> None:
    assert lock_key("nj-user") == lock_key("nj-user")
    assert lock_key("nj-user") != lock_key("tx-user")
