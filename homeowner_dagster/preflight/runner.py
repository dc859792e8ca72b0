"""Run every probe and gather the report.

The database comes first (it names the active clients), then the services side by side: Bison
per client, DeBounce, Clay and Slack in worker threads, while Cole walks its state logins in the
calling thread (Playwright's browser belongs to the thread that started it, so a caller can lend
its own). A probe that breaks on something unforeseen becomes one failed line, never a crash.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date, datetime
from zoneinfo import ZoneInfo

from homeowner_dagster import registry
from homeowner_dagster.partitions import TIMEZONE
from homeowner_dagster.preflight import bison, clay, cole, database, debounce, slack
from homeowner_dagster.preflight.addresses import address_findings
from homeowner_dagster.preflight.findings import FAILED, Finding, failed, ordered, skipped
from homeowner_dagster.preflight.services import Services


@dataclass
class Report:
    findings: list[Finding]
    seconds: float

    @property
    def failures(self) -> list[Finding]:
        return [f for f in self.findings if f.status == FAILED]

    @property
    def exit_code(self) -> int:
        return 1 if self.failures else 0


def _guarded(service: str, probe: Callable[[], list[Finding]]) -> list[Finding]:
    try:
        return probe()
    except Exception as exc:  # noqa: BLE001 - the class name only: a message may hold a URL
        return [failed(service, "", "probe", "the probe stopped on an unexpected answer; run it again, "
                       "then report it with this line", type(exc).__name__, depends=f"preflight/{service}.py")]  # fmt: skip


def today_in_chicago() -> date:
    return datetime.now(ZoneInfo(TIMEZONE)).date()


def run_preflight(
    services: Services,
    *,
    post: bool = False,
    browser: object | None = None,
    today: date | None = None,
    only: Sequence[str] = (),
) -> Report:
    """Every probe, read-only (with `post`, a test message per Slack channel is the one write)."""
    started = time.perf_counter()
    found, dsn, clients = database.probe_database()
    if clients is None:
        clients = []
        found.append(
            skipped("database", "", "active clients", "unknown: per-client probes not run")
        )
    if only:
        unknown = sorted(set(only) - {c.slug for c in clients})
        found += [
            failed("database", slug, "active client", "no active client with this slug")
            for slug in unknown
        ]
        clients = [c for c in clients if c.slug in only]
    settings, unaddressed = address_findings()
    found += settings
    need = None
    if services.verification.backend == "clay" and dsn:
        need = debounce.forecast(dsn, clients)[0]
    twins = bison.duplicate_tokens(clients)
    probes: dict[str, Callable[[], list[Finding]]] = {
        "debounce": lambda: debounce.probe_debounce(services.verification, dsn, clients),
        "clay": lambda: clay.probe_clay(services.clay, need),
        "slack": lambda: slack.probe_slack(services.slack, clients, registry.ops_channel(), post),
    }
    with ThreadPoolExecutor(max_workers=4, thread_name_prefix="preflight") as pool:
        futures: list[Future[list[Finding]]] = [
            pool.submit(
                _guarded, "bison", lambda c=c: bison.probe_client(services.bison, c, dsn, twins)
            )
            for c in clients
        ]
        for name, probe in probes.items():
            if name in unaddressed:
                found.append(
                    skipped(name, "", "probe", "not probed: its address is refused (see settings)")
                )
            else:
                futures.append(pool.submit(_guarded, name, probe))
        if "cole" in unaddressed:
            found.append(
                skipped("cole", "", "logins", "not probed: COLE_URL is refused (see settings)")
            )
        else:
            found += _guarded(
                "cole",
                lambda: cole.probe_cole(
                    services.cole, dsn, clients, today or today_in_chicago(), browser
                ),
            )
        for future in futures:
            found += future.result()
    return Report(ordered(found), time.perf_counter() - started)
