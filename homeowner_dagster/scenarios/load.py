"""The load scenario: 50 clients through one month of the pipeline on the sandbox.

Shared by `homeowner_dagster_tests/test_load.py` (which asserts nothing is lost or uploaded
twice) and `bench/bench_load.py` (which prints the stage table). 50 demo clients in NJ, FL and TX,
1-2 ZIPs each (no ZIP shared), each with its own Bison workspace and Evergreen campaign; the TX
clients' homes over $900k are routed to a TX high-net-worth client. The monthly job runs once per
client and the weekly job once per client and window, in worker processes the way the run queue
would allow them (monthly: one worker per Cole state login; weekly: `weekly_workers`).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import psycopg
from dagster import DagsterEventType, DagsterInstance

from homeowner_dagster import db, registry
from homeowner_dagster.leads.calendar import add_months, month_key, windows_of_month
from homeowner_dagster.leads.territories import parse_clients, parse_hnw_rules, parse_zip_sheet
from homeowner_dagster.partitions import client_partitions
from homeowner_dagster.sandbox import Sandbox, generator
from homeowner_dagster.sandbox import slug as env_slug

MONTH = date(2027, 1, 1)
STATES = ("NJ", "FL", "TX")
CLIENT_COUNT = 50
HNW_CLIENT = "load-tx-hnw"
QUIET = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}
RUN_CONFIG: dict[str, dict[str, Any]] = {
    # No Cole count queries in the gap report: 50 more browser sessions of 30 searches each
    # would measure the gap report's optional look-around, not the pipeline.
    # (a deployment setting: HOMEOWNER_GAP_COLE_COUNT_QUERIES=0, set by the test).
    "monthly_pull": QUIET,
    "weekly_upload": QUIET,
}
STAGES = {
    "raw_leads": "Cole pull",
    "cleaned_leads": "cleaning + verification",
    "monthly_cleaned_leads": "totals",
    "gap_report": "gap report",
    "bison_lead_lists": "Bison upload",
    "evergreen_campaign": "Evergreen",
}


def instance_overrides(dsn: str) -> dict[str, Any]:
    return {
        "storage": {"postgres": {"postgres_url": db.dagster_storage_url(dsn)}},
        "compute_logs": {
            "module": "dagster._core.storage.noop_compute_log_manager",
            "class": "NoOpComputeLogManager",
        },
    }


# -- the scenario --------------------------------------------------------------------------------


@dataclass(frozen=True)
class LoadClient:
    slug: str
    name: str
    state: str
    zips: tuple[str, ...]


def load_clients(count: int = CLIENT_COUNT, month: date = MONTH) -> list[LoadClient]:
    """`count` clients spread over NJ, FL, TX with 1-2 distinct, ordinary-sized ZIPs each."""
    per_state = {s: [c for c in range(count) if STATES[c % len(STATES)] == s] for s in STATES}
    clients = []
    for state, numbers in per_state.items():
        pool = iter(
            z
            for z in generator.demo_zips(state, 600)
            if 150 <= generator.count_for(z, month) <= 700
        )
        for rank, number in enumerate(numbers):
            zips = tuple(next(pool) for _ in range(1 + number % 2))
            if state == "TX" and rank == 0:
                slug, name = HNW_CLIENT, "Load TX High Net Worth Agency"
            else:
                slug, name = (
                    f"load-{state.lower()}-{number + 1:02d}",
                    f"Load {state} {number + 1:02d} Agency",
                )
            clients.append(LoadClient(slug, name, state, zips))
    return clients


def clients_yaml(clients: list[LoadClient]) -> str:
    lines = ["clients:"]
    for c in clients:
        lines += [
            f"  - slug: {c.slug}",
            f"    name: {c.name}",
            f"    workspace: {c.name}",
            f"    bison_token_env: BISON_TOKEN_{env_slug(c.name)}",
            "    package_tier: 100",
            f"    licensed_states: [{c.state}]",
            f'    slack_channel: "#{c.slug}"',
        ]
    sources = [c.slug for c in clients if c.state == "TX" and c.slug != HNW_CLIENT]
    lines += [
        "hnw_routing:",
        "  - name: texas-high-net-worth",
        f"    destination: {HNW_CLIENT}",
        "    source_states: [TX]",
        f"    source_clients: [{', '.join(sources)}]",
        "    threshold: 900000",
    ]
    return "\n".join(lines) + "\n"


def prepare(sandbox: Sandbox, dsn: str, clients: list[LoadClient], month: date = MONTH) -> None:
    """Registry, ZIP sheet and HNW rule in the database; a workspace and campaign per client.
    The deployment's Slack allowlist holds each client's channel (set in this process)."""
    os.environ["HOMEOWNER_SLACK_CHANNELS"] = ",".join(f"#{c.slug}" for c in clients)
    text = clients_yaml(clients)
    registry.upsert_clients(parse_clients(text, "load.yaml"), dsn)
    registry.upsert_hnw_rules(parse_hnw_rules(text, "load.yaml"), dsn)
    sheet = ["Zipcode,Territory,Color"] + [f"{z},{c.slug}," for c in clients for z in c.zips]
    registry.import_zips(parse_zip_sheet("\n".join(sheet) + "\n"), month_key(month), dsn)
    previous = windows_of_month(add_months(month, -1))[-1]
    for c in clients:
        sandbox.bison.add_workspace(c.name, f"token-{c.slug}")
        sandbox.bison.add_campaign(c.name, previous.evergreen_title, max_emails_per_day=333)


# -- running it: worker processes, one Dagster run per partition ------------------------------------

WORKER = r"""
import json, os, sys, time
from dagster import instance_for_test
from homeowner_dagster.definitions import build_definitions
from homeowner_dagster.partitions import client_month_key, client_window_key
from homeowner_dagster.scenarios.load import RUN_CONFIG, instance_overrides
from homeowner_dagster.scenarios.two_clients import wait_on_the_sandbox_clock

wait_on_the_sandbox_clock(os.environ["BISON_INSTANCE_URL"])
tasks = json.loads(sys.argv[1])
with instance_for_test(overrides=instance_overrides(os.environ["HOMEOWNER_DATABASE_URL"])) as instance:
    defs = build_definitions()
    for job_name, client, period in tasks:
        key = (client_month_key if job_name == "monthly_pull" else client_window_key)(client, period)
        began = time.perf_counter()
        result = defs.resolve_job_def(job_name).execute_in_process(
            instance=instance, partition_key=key, run_config=RUN_CONFIG[job_name], raise_on_error=False
        )
        print(json.dumps({"job": job_name, "client": client, "period": period, "run_id": result.run_id,
                          "success": result.success, "seconds": time.perf_counter() - began}), flush=True)
"""


def run_in_workers(batches: list[list[tuple[str, str, str]]]) -> tuple[list[dict[str, Any]], float]:
    """Each batch in its own process, in order; every run's outcome, and the wall time."""
    began = time.perf_counter()
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(
            filter(None, [str(Path(__file__).parents[2]), os.environ.get("PYTHONPATH")])
        ),
    }
    children = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, json.dumps(batch)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for batch in batches
        if batch
    ]
    runs: list[dict[str, Any]] = []
    for child in children:
        out, err = child.communicate(timeout=1800)
        done = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
        assert child.returncode == 0, err[-5000:]
        runs += done
    return runs, time.perf_counter() - began


def monthly_batches(
    clients: list[LoadClient], month: date = MONTH
) -> list[list[tuple[str, str, str]]]:
    """One worker per Cole state login; the HNW destination before its sources is not needed
    (routed leads are kept when the destination's own run replaces its partition)."""
    return [
        [("monthly_pull", c.slug, month_key(month)) for c in clients if c.state == state]
        for state in STATES
    ]


def weekly_batches(
    clients: list[LoadClient], workers: int, month: date = MONTH
) -> list[list[tuple[str, str, str]]]:
    """Clients split over `workers`; each worker goes window by window (Monday by Monday)."""
    batches: list[list[tuple[str, str, str]]] = [[] for _ in range(workers)]
    for window in windows_of_month(month):
        for i, c in enumerate(clients):
            batches[i % workers].append(("weekly_upload", c.slug, window.start.isoformat()))
    return batches


def step_seconds(instance: DagsterInstance, run_ids: list[str]) -> dict[str, list[float]]:
    """Seconds from STEP_START to STEP_SUCCESS of every step of these runs, by step key."""
    out: dict[str, list[float]] = defaultdict(list)
    kinds = {DagsterEventType.STEP_START, DagsterEventType.STEP_SUCCESS}
    for run_id in run_ids:
        started: dict[str, float] = {}
        for entry in instance.all_logs(run_id, of_type=kinds):
            event = entry.dagster_event
            if event.event_type == DagsterEventType.STEP_START:
                started[entry.step_key] = entry.timestamp
            elif entry.step_key in started:
                out[entry.step_key].append(entry.timestamp - started[entry.step_key])
    return out


@dataclass
class LoadReport:
    clients: int
    monthly_runs: list[dict[str, Any]]
    weekly_runs: list[dict[str, Any]]
    monthly_wall: float
    weekly_wall: float
    steps: dict[str, list[float]] = field(default_factory=dict)

    def table(self) -> str:
        def pct(values: list[float], q: float) -> float:
            ordered = sorted(values)
            return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0

        def row(label: str, values: list[float]) -> tuple[str, ...]:
            return (
                label,
                str(len(values)),
                f"{sum(values):.1f}",
                f"{sum(values) / max(len(values), 1):.2f}",
                f"{pct(values, 0.5):.2f}",
                f"{pct(values, 0.95):.2f}",
                f"{max(values, default=0):.2f}",
            )

        rows = [("stage", "steps", "total s", "mean s", "p50 s", "p95 s", "max s")]
        rows += [row(label, self.steps.get(key, [])) for key, label in STAGES.items()]
        rows += [
            row("monthly run (whole)", [r["seconds"] for r in self.monthly_runs]),
            row("weekly run (whole)", [r["seconds"] for r in self.weekly_runs]),
        ]
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        lines = [
            " | ".join(
                cell.ljust(w) if i == 0 else cell.rjust(w)
                for i, (cell, w) in enumerate(zip(r, widths, strict=True))
            )
            for r in rows
        ]
        lines.insert(1, "-+-".join("-" * w for w in widths))
        lines.append("")
        lines.append(
            f"{self.clients} clients: monthly phase {self.monthly_wall:.1f} s wall "
            f"({len(self.monthly_runs)} runs), weekly phase {self.weekly_wall:.1f} s wall "
            f"({len(self.weekly_runs)} runs)"
        )
        return "\n".join(lines)


def run_load(
    instance: DagsterInstance, clients: list[LoadClient], weekly_workers: int = 4
) -> LoadReport:
    instance.add_dynamic_partitions(client_partitions.name, [c.slug for c in clients])
    monthly, monthly_wall = run_in_workers(monthly_batches(clients))
    weekly, weekly_wall = run_in_workers(weekly_batches(clients, weekly_workers))
    report = LoadReport(len(clients), monthly, weekly, monthly_wall, weekly_wall)
    report.steps = step_seconds(instance, [r["run_id"] for r in monthly + weekly])
    return report


# -- what must hold --------------------------------------------------------------------------------


def per_client_counts(dsn: str, month: date = MONTH) -> dict[str, dict[str, int]]:
    m = month_key(month)
    queries = {
        "raw": "select client_slug, count(*) from raw_leads where month = %s group by 1",
        "cleaned": "select client_slug, count(*) from cleaned_leads where month = %s and routed_from is null group by 1",
        "routed_in": "select client_slug, count(*) from cleaned_leads where month = %s and routed_from is not null group by 1",
        "routed_out": "select routed_from, count(*) from cleaned_leads where month = %s and routed_from is not null group by 1",
        "rejected": "select client_slug, count(*) from rejected_leads where month = %s group by 1",
        "due": "select client_slug, sum(n) from (select client_slug, renewal_window, count(distinct email) as n "
        "from cleaned_leads where month = %s and not surplus group by 1, 2) w group by 1",
        "uploaded": "select client_slug, sum(lead_count) from client_lead_batches where month = %s group by 1",
        "windows": "select client_slug, count(*) from client_lead_batches where month = %s and status = 'done' group by 1",
    }
    out: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    with psycopg.connect(dsn) as conn:
        for name, query in queries.items():
            for client, n in conn.execute(query, [m]).fetchall():
                out[client][name] = int(n)
    return out


def addresses_in_two_windows(sandbox: Sandbox, clients: list[LoadClient]) -> int:
    """Addresses in more than one window's list of a workspace: owners of two homes whose
    renewals fall in different windows (two homes, two ledger keys, one Bison lead)."""
    total = 0
    for c in clients:
        members = [
            e
            for lst in sandbox.bison.workspaces[c.name].lead_lists.values()
            for e in lst["lead_emails"]
        ]
        total += len(members) - len(set(members))
    return total


def assert_nothing_lost_nothing_twice(
    sandbox: Sandbox, dsn: str, clients: list[LoadClient], month: date = MONTH
) -> None:
    counts = per_client_counts(dsn, month)
    windows = windows_of_month(month)
    last = windows[-1]
    for c in clients:
        n = counts[c.slug]
        assert n["raw"] == sum(generator.count_for(z, month) for z in c.zips), (
            c
        )  # all of Cole's records
        assert n["raw"] == n["cleaned"] + n["rejected"] + n["routed_out"], (c.slug, dict(n))
        assert n["cleaned"] > 0 and n["uploaded"] == n["due"] > 0, (c.slug, dict(n))
        assert n["windows"] == len(windows), (c.slug, dict(n))
        workspace = sandbox.bison.workspaces[c.name]
        names = sorted(lst["name"] for lst in workspace.lead_lists.values())
        assert names == sorted(w.list_name for w in windows), (c.slug, names)  # one list per window
        for lst in workspace.lead_lists.values():  # no lead twice in a list
            assert len(lst["lead_emails"]) == len(set(lst["lead_emails"])), (c.slug, lst["name"])
        members = [e for lst in workspace.lead_lists.values() for e in lst["lead_emails"]]
        assert len(members) == n["uploaded"], c.slug  # Bison holds what the ledger says
        assert len(workspace.leads) == len(set(members)), c.slug  # one lead per address
        campaign = sandbox.bison.campaign(c.name, last.evergreen_title)
        assert sorted(sandbox.bison.attached_lists(c.name, campaign["id"])) == names
        # B-UNIQUE: an owner of homes in two windows is one lead, attached twice
        assert (
            campaign["total_leads"] == len(set(members)) and campaign["max_emails_per_day"] == 333
        ), (c.slug, campaign["total_leads"], len(set(members)), campaign["max_emails_per_day"])
    tx_sources = [c for c in clients if c.state == "TX" and c.slug != HNW_CLIENT]
    assert (
        sum(counts[c.slug]["routed_out"] for c in tx_sources) == counts[HNW_CLIENT]["routed_in"] > 0
    )
    with psycopg.connect(dsn) as conn:
        twice = conn.execute(
            "select count(*) - count(distinct (month, dedupe_key)) from client_lead_batch_leads"
        ).fetchone()[0]
    assert twice == 0  # no lead in two clients' or two windows' lists
