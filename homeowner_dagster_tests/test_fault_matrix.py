"""Fault matrix: every sandbox fault a run meets, injected into real monthly and weekly runs.

One database and one Dagster instance serve the whole module: the monthly partitions of both
clients and garden-state's first weekly window's list (uploaded and verified, not yet attached)
are materialized once, and every case starts from that state. Each case does what its name says:

- `survives`: the fault fired, the run succeeded and the tables hold exactly what a fault-free
  run writes (every column but the write timestamps); Bison holds each list once. Slow pages are
  slower than the resource's timeout (set short for the case), so a retry must have happened.
- `dagster-retry`: the resource gives up (or has no retries of its own) and Dagster's RetryPolicy
  runs the step again: the run's events hold STEP_UP_FOR_RETRY, then success. These runs use the
  multiprocess executor, so each step process reads HOMEOWNER_STEP_RETRY_DELAY_SECONDS (0.2 s
  here instead of 30 s) when it loads the assets.
- `fails-<Error>`: the run fails with that typed error, the Slack alert (the failure sensor
  evaluated on the run) names the run and the error, with screenshot and trace for Cole; an
  `agent_errors` row records it. Before the failing run the sandbox's data changes (Cole's
  generator yields other addresses, DeBounce another seed), so a write of the failing step would
  show: the previous partition is compared on every stored column, timestamps included. Then
  the data and the fault are put back and a clean run writes the original data again (the
  weekly case attaches the list the fixture uploaded: the window ends `done`, attached once).

Faults that never clear run with step retries off (`NO_RETRIES`): Dagster would retry the
step twice after its delay and end in the same typed failure; the `dagster-retry` cases show the
RetryPolicy at work. Errors marked non-retryable (BulkJobFailed, BulkUploadUnconfirmed,
BadRetryAfter and the Cole errors a person must fix) run with step retries on, and the test
checks that Dagster did not retry them.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import types
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import psycopg
import pytest
import yaml
from dagster import (
    AssetKey,
    DagsterEventType,
    build_run_status_sensor_context,
    execute_job,
    instance_for_test,
    reconstructable,
)

from homeowner_dagster import db, settings
from homeowner_dagster.cli import main as homeowner
from homeowner_dagster.leads.calendar import windows_of_month
from homeowner_dagster.partitions import client_month_key, client_partitions, client_window_key
from homeowner_dagster.sandbox import Sandbox
from homeowner_dagster.sandbox import generator as cole_generator
from homeowner_dagster_tests import pipeline_fixtures
from homeowner_dagster_tests.pipeline_fixtures import MONTH, QUIET, TERRITORY, Pipeline
from homeowner_dagster_tests.test_pipeline import WORKSPACES, bison_view

pytestmark = pytest.mark.slow(seconds=530)  # the whole file, 8 min 46 s alone: started first

pipeline_sandbox = pipeline_fixtures.pipeline_sandbox

# Gap reports skip Cole count queries here: a second browser session per run would double the
# matrix's time, and a fault must hit the pull, not a best-effort count query.
# (a deployment setting, from the environment: see the `matrix` fixture).
RUN_CONFIG: dict[str, Any] = QUIET
NO_RETRIES = {"retries": {"disabled": {}}}
OPS_CHANNEL = "#homeowner-ops"
WINDOWS = windows_of_month(MONTH)
# Resource settings of one case (`model_copy` updates), passed to spawned step processes too.
OVERRIDES_ENV = "HOMEOWNER_MATRIX_RESOURCE_OVERRIDES"
FROM_CLEANING = [
    AssetKey("cleaned_leads"),
    AssetKey("monthly_cleaned_leads"),
    AssetKey("gap_report"),
]

# Tables of a partition's stored state; every column counts (email_verifications and
# debounce_bulk_jobs are caches across partitions, agent_* the run log: left out).
TABLES = [
    "raw_leads",
    "cleaned_leads",
    "rejected_leads",
    "monthly_cleaned_leads",
    "gap_reports",
    "client_lead_batches",
    "client_lead_batch_leads",
    "client_zipcodes",
]
# Columns rewritten on every write of a partition (timestamps): left out only when comparing a
# successful rerun with the fault-free run, never when checking a partition was left untouched.
WRITE_TIMESTAMPS = {
    "pulled_at",
    "loaded_at",
    "updated_at",
    "created_at",
    "uploaded_at",
    "attached_at",
    "assigned_at",
    "verified_at",
}


# -- running the project's jobs -------------------------------------------------------------------


def _resources() -> dict[str, Any]:
    """The case's resources, rebuilt with its settings (Dagster builds a resource from the
    arguments it was created with, so `model_copy` would be ignored)."""
    from homeowner_dagster.definitions import build_resources

    overrides = json.loads(os.environ.get(OVERRIDES_ENV) or "{}")
    base = build_resources()
    return {
        name: type(base[name])(
            **{**{k: getattr(base[name], k) for k in base[name].model_fields_set}, **fields}
        )
        for name, fields in overrides.items()
    }


def _job(name: str):  # noqa: ANN202
    from homeowner_dagster.definitions import build_definitions

    return build_definitions(_resources()).resolve_job_def(name)


def monthly_pull_job():  # noqa: ANN201 - module-level so `reconstructable` can find it
    return _job("monthly_pull")


def weekly_upload_job():  # noqa: ANN201
    return _job("weekly_upload")


def run(
    pipe: Pipeline,
    job_name: str,
    key: str,
    step_retries: bool = True,
    spawn: bool = False,
    selection: list[AssetKey] | None = None,
):  # noqa: ANN201
    """One run of the project's job for one partition; never raises on a failed run.

    In process by default; `spawn` runs each step in its own process (multiprocess executor)."""
    job = _job(job_name)
    config = RUN_CONFIG if job_name == "monthly_pull" else QUIET
    if step_retries and not spawn:
        return job.execute_in_process(
            instance=pipe.instance,
            partition_key=key,
            run_config=config,
            raise_on_error=False,
            asset_selection=selection,
        )
    executor = (
        {"multiprocess": {} if step_retries else NO_RETRIES}
        if spawn
        else {"in_process": NO_RETRIES}
    )
    target = monthly_pull_job if job_name == "monthly_pull" else weekly_upload_job
    return execute_job(
        reconstructable(target),
        instance=pipe.instance,
        run_config={**config, "execution": {"config": executor}},
        tags=job.get_tags_for_partition_key(key, None),
        asset_selection=selection,
    )


def events_of(pipe: Pipeline, result: Any, kind: DagsterEventType) -> list[Any]:
    logs = pipe.instance.all_logs(result.dagster_run.run_id, of_type=kind)
    return [entry.dagster_event for entry in logs]


def step_retried(pipe: Pipeline, result: Any) -> list[str]:
    return [e.step_key for e in events_of(pipe, result, DagsterEventType.STEP_UP_FOR_RETRY)]


def succeeded_steps(pipe: Pipeline, result: Any) -> set[str]:
    return {e.step_key for e in events_of(pipe, result, DagsterEventType.STEP_SUCCESS)}


# -- what a run leaves behind ---------------------------------------------------------------------


def stored(dsn: str, with_timestamps: bool = True) -> dict[str, tuple[int, str]]:
    """Row count and hash per table (all columns) and per column, of every table in TABLES."""
    out: dict[str, tuple[int, str]] = {}
    with psycopg.connect(dsn) as conn:
        for table in TABLES:
            cols = [
                r[0]
                for r in conn.execute(
                    "select column_name from information_schema.columns where table_name = %s "
                    "and table_schema = 'public' order by ordinal_position",
                    [table],
                ).fetchall()
                if with_timestamps or r[0] not in WRITE_TIMESTAMPS
            ]
            rows = conn.execute(
                psycopg.sql.SQL("select {} from {}").format(
                    psycopg.sql.SQL(", ").join(map(psycopg.sql.Identifier, cols)),
                    psycopg.sql.Identifier(table),
                )
            ).fetchall()
            out[table] = (len(rows), _digest(rows))
            for i, col in enumerate(cols):
                out[f"{table}.{col}"] = (len(rows), _digest([(r[i],) for r in rows]))
    return out


def _digest(rows: list[tuple]) -> str:
    return hashlib.sha256("\n".join(sorted(map(repr, rows))).encode()).hexdigest()


# What each step writes (a table, or one column of it); the rest of a partition must stay put
# when a run fails.
WRITTEN_BY = {
    "raw_leads": {"raw_leads", "client_zipcodes.raw_count", "client_zipcodes.pulled_at"},
    "cleaned_leads": {"cleaned_leads", "rejected_leads", "client_zipcodes.cleaned_count"},
    "monthly_cleaned_leads": {"monthly_cleaned_leads"},
    "gap_report": {"gap_reports", "cleaned_leads.surplus"},
    "bison_lead_lists": {"client_lead_batches", "client_lead_batch_leads"},
    "evergreen_campaign": {"client_lead_batches"},
}


def untouched_keys(keys: set[str], succeeded: set[str]) -> set[str]:
    """Fingerprint keys no successful step of the run may have changed."""
    written = set().union(*(WRITTEN_BY.get(step, set()) for step in succeeded))
    whole = {w for w in written if "." not in w}
    partly = {w.split(".")[0] for w in written if "." in w}
    return {
        k
        for k in keys
        if k.split(".")[0] not in whole
        and k not in written
        and not ("." not in k and k in partly)  # the row hash of a partly written table
    }


def alert_for(pipe: Pipeline, result: Any) -> str:
    """Evaluate the run-failure sensor on this run, as the daemon would; its Slack message."""
    from homeowner_dagster.sensors import run_failure_alert_sensor

    failure = next(e for e in result.all_events if e.event_type == DagsterEventType.RUN_FAILURE)
    with build_run_status_sensor_context(
        sensor_name=run_failure_alert_sensor.name,
        dagster_instance=pipe.instance,
        dagster_run=result.dagster_run,
        dagster_event=failure,
        resources={
            "database": pipe.defs.resources["database"],
            "slack": pipe.defs.resources["slack"],
        },
    ).for_run_failure() as context:
        run_failure_alert_sensor(context)
    run_id = result.dagster_run.run_id
    alerts = [m for m in pipe.sandbox.slack.messages_in(OPS_CHANNEL) if run_id in m]
    assert len(alerts) == 1, alerts
    return alerts[0]


def error_row(dsn: str, run_id: str) -> tuple[str, str | None, str | None]:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "select error_type, screenshot_url, trace_url from agent_errors where run_id = %s",
            [run_id],
        ).fetchall()
        status = conn.execute(
            "select status from agent_runs where run_id = %s", [run_id]
        ).fetchone()
    assert len(rows) == 1 and status == ("failure",), (rows, status)
    return rows[0]


def local_file(link: str) -> Path:
    path = Path(unquote(urlparse(link).path))
    assert path.is_file() and path.stat().st_size > 0, link
    return path


def bison_state(sandbox: Sandbox) -> dict[str, object]:
    """Lists, titles, attachments and campaign settings of both workspaces."""
    view = bison_view(sandbox)
    for workspace in WORKSPACES.values():
        campaigns = sandbox.bison.workspaces[workspace].campaigns.values()
        view[workspace + " campaigns"] = sorted(
            (c["name"], tuple(c["lead_list_ids"]), c["max_emails_per_day"], c["open_tracking"])
            for c in campaigns
        )
    return view


def instance_overrides(dsn: str) -> dict[str, Any]:
    """Runs and events in the test database; the project's concurrency pools (dagster.yaml);
    step output not captured to files (the runs' own events are what the tests read)."""
    project = yaml.safe_load((settings.project_root() / "dagster.yaml").read_text())
    return {
        "storage": {"postgres": {"postgres_url": db.dagster_storage_url(dsn)}},
        "concurrency": {"pools": project["concurrency"]["pools"]},
        "compute_logs": {
            "module": "dagster._core.storage.noop_compute_log_manager",
            "class": "NoOpComputeLogManager",
        },
    }


# -- the sandbox's data, changed before a failing run ---------------------------------------------


def reseeded_cole() -> types.ModuleType:
    """Cole's generator with other street addresses: what a new month's pull would bring."""
    variant = types.ModuleType("reseeded_generator")
    variant.__dict__.update(cole_generator.__dict__)

    def rows_for(*args: Any, **kwargs: Any) -> Any:
        frame = cole_generator.rows_for(*args, **kwargs).copy()
        street = frame.columns[2]  # Address_1 (or the property shape's street column)
        frame[street] = frame[street].where(frame[street].eq(""), frame[street] + " Rear")
        return frame

    variant.rows_for = rows_for  # type: ignore[attr-defined]
    return variant


class changed_sandbox_data:  # noqa: N801 - a context manager used like a function
    """Cole's rows and DeBounce's verdicts differ inside the block, and are restored after."""

    def __init__(self, sandbox: Sandbox, dsn: str, client: str) -> None:
        self.sandbox, self.dsn, self.client = sandbox, dsn, client

    def __enter__(self) -> None:
        zip_code = TERRITORY[self.client][0]
        assert (
            not reseeded_cole()
            .rows_for(zip_code, MONTH)
            .equals(cole_generator.rows_for(zip_code, MONTH))
        )
        self.seed = self.sandbox.debounce.seed
        with psycopg.connect(self.dsn) as conn:
            emails = [
                r[0]
                for r in conn.execute(
                    "select email from cleaned_leads where client_slug = %s", [self.client]
                ).fetchall()
            ]
        before = [self.sandbox.debounce.code_for(e) for e in emails]
        self.sandbox.cole.generator = reseeded_cole()
        self.sandbox.debounce.seed = self.seed + 1000
        assert [self.sandbox.debounce.code_for(e) for e in emails] != before

    def __exit__(self, *exc: object) -> None:
        self.sandbox.cole.generator = cole_generator
        self.sandbox.debounce.seed = self.seed


# -- the module's state ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def matrix(
    pipeline_sandbox: Sandbox,
    postgres_server_url: str,
    migrated_template: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Pipeline]:
    """Both clients' January pulled and cleaned; garden-state's first window's list uploaded and
    verified (PT4), its attach (PT5) left to do."""
    name = f"homeowner_matrix_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(postgres_server_url, autocommit=True) as conn:
        conn.execute(f'create database "{name}" template "{migrated_template}"')
    base, _, query = postgres_server_url.partition("?")
    dsn = f"{base.rsplit('/', 1)[0]}/{name}" + (f"?{query}" if query else "")
    patch = pytest.MonkeyPatch()
    try:
        pipeline_fixtures.reset_outside_world(pipeline_sandbox)
        patch.setenv(settings.DATABASE_URL_ENV, dsn)
        for key, value in pipeline_sandbox.env().items():
            patch.setenv(key, value)
        patch.setenv("HOMEOWNER_ARTIFACTS_DIR", str(tmp_path_factory.mktemp("artifacts")))
        patch.setenv("HOMEOWNER_SLACK_CHANNEL", OPS_CHANNEL)
        patch.setenv(settings.STEP_RETRY_DELAY_ENV, "0.2")  # read by spawned step processes
        patch.setenv(settings.GAP_COLE_COUNTS_ENV, "0")
        from homeowner_dagster.definitions import build_definitions

        defs = build_definitions()
        pipeline_fixtures.load_clients(dsn)
        with instance_for_test(overrides=instance_overrides(dsn)) as instance:
            instance.add_dynamic_partitions(client_partitions.name, list(TERRITORY))
            pipe = Pipeline(pipeline_sandbox, dsn, instance, defs)
            for client in TERRITORY:
                assert run(pipe, "monthly_pull", client_month_key(client, MONTH)).success
            first = client_window_key("garden-state", WINDOWS[0])
            assert run(
                pipe, "weekly_upload", first, selection=[AssetKey("bison_lead_lists")]
            ).success
            yield pipe
    finally:
        pipeline_sandbox.faults.off()
        patch.undo()
        with psycopg.connect(postgres_server_url, autocommit=True) as conn:
            conn.execute(f'drop database if exists "{name}" with (force)')


@pytest.fixture(autouse=True)
def no_fault_left(pipeline_sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    pipeline_sandbox.faults.off()
    pipeline_sandbox.faults.fired.clear()
    yield
    pipeline_sandbox.faults.off()


def forget_verdicts(dsn: str) -> None:
    """Addresses verified earlier come from the cache: forget them, so the provider is called."""
    with psycopg.connect(dsn) as conn:
        conn.execute("delete from email_verifications")
        conn.execute("delete from debounce_bulk_jobs")


def assert_failed_cleanly(
    pipe: Pipeline, result: Any, before: dict, before_bison: dict
) -> tuple[str, str]:
    """A failed run, alerted with its id (and Cole's links), recorded in agent_errors; every
    stored column of what its failed steps own is as before, and Bison too. Returns (alert,
    recorded error type)."""
    assert not result.success
    run_id = result.dagster_run.run_id
    alert = alert_for(pipe, result)
    assert run_id in alert and "Error: " in alert, alert
    recorded_type, screenshot, trace = error_row(pipe.dsn, run_id)
    assert f"Error: {recorded_type}" in alert
    if recorded_type in COLE_ERRORS:
        links = re.findall(r"file://\S+?(?:\.png|\.zip)", alert)
        assert screenshot in links and trace in links, (links, screenshot, trace)
        assert local_file(screenshot).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert local_file(trace).read_bytes()[:2] == b"PK"
    after = stored(pipe.dsn)
    keep = untouched_keys(set(before), succeeded_steps(pipe, result))
    moved = sorted(k for k in keep if after[k] != before[k])
    assert not moved, f"the failed run changed {moved}"
    assert bison_state(pipe.sandbox) == before_bison
    return alert, recorded_type


COLE_ERRORS = {
    "AuthFailed",
    "MfaRequired",
    "CaptchaBlocked",
    "SelectorMissing",
    "SiteUnavailable",
    "RateLimited",
    "DownloadFailed",
    "SessionExpired",
    "SiteTimeout",
    "BadRetryAfter",
}
PEEKED = {"mfa", "missing_selector"}  # shape pages without being "used up"
BULK = {"email_verification": {"bulk_threshold": 10, "poll_seconds": 0.05}}
# garden-state verifies about 3,600 addresses: the bulk flow, whose upload is never re-sent after a
# 5xx (it may have been taken). A 500 that the resource may retry needs the single endpoint.
SINGLE = {"email_verification": {"bulk_threshold": 100_000}}


# (service, fault, fault parameters, outcome, resource overrides)
# outcome: "survives", "dagster-retry", or the typed error the run fails with.
MONTHLY_CASES: list[tuple[str, str, dict, str, dict]] = [
    # A person has to act: the run fails at once with the typed error.
    ("cole", "wrong_password", {}, "AuthFailed", {}),
    ("cole", "mfa", {}, "MfaRequired", {}),  # the NJ login has no TOTP secret
    ("cole", "captcha", {}, "CaptchaBlocked", {}),
    ("cole", "missing_selector", {}, "SelectorMissing", {}),
    ("cole", "http_429", {"raw": "in a while"}, "BadRetryAfter", {}),
    ("debounce", "bulk_failed", {"times": 1}, "BulkJobFailed", BULK),
    ("debounce", "dropped_upload", {"times": 1}, "BulkUploadUnconfirmed", BULK),
    # Transient and clearing: the resource's own retries (or a new login) get through.
    ("cole", "session_expired", {"times": 1}, "survives", {}),  # expires after login: logs in again
    # A page slower than the page timeout: it times out, and the retry gets through.
    ("cole", "slow_page", {"times": 1, "delay": 6}, "survives", {"cole": {"timeout_ms": 4000}}),
    ("cole", "http_429", {"times": 2, "retry_after": 1, "form": "date"}, "survives", {}),
    ("cole", "http_500", {"times": 2}, "survives", {}),
    ("cole", "dropped_download", {"times": 6}, "survives", {}),  # Chromium resumes 5 times itself
    ("debounce", "http_429", {"times": 3, "retry_after": 0}, "survives", {}),
    ("debounce", "http_500", {"times": 3}, "survives", SINGLE),
    ("slack", "http_429", {"times": 2, "retry_after": 1, "form": "date"}, "survives", {}),
    ("clay", "http_429", {"times": 2, "retry_after": 0}, "survives", {}),  # Clay verifies
    # The resource gives up, or has no retries of its own: Dagster's RetryPolicy runs the step again.
    ("storage", "http_500", {"times": 1}, "dagster-retry", BULK),  # DeBounce's list upload
    (
        "debounce",
        "http_500",
        {"times": 1},
        "dagster-retry",
        {"email_verification": {"bulk_threshold": 100_000, "max_attempts": 1}},  # no own retries
    ),
    # Transient but never clearing: the typed error after the resource's retries.
    ("cole", "http_500", {}, "SiteUnavailable", {}),
    ("cole", "http_429", {"retry_after": 0}, "RateLimited", {}),
    ("cole", "dropped_download", {}, "DownloadFailed", {}),
    ("debounce", "http_429", {"retry_after": 0}, "EmailVerificationError", {}),
]
NON_RETRYABLE = {
    "AuthFailed",
    "MfaRequired",
    "CaptchaBlocked",
    "SelectorMissing",
    "BadRetryAfter",
    "BulkJobFailed",
    "BulkUploadUnconfirmed",
}
VERIFIERS = {"debounce", "clay", "storage"}  # cases that start at the cleaning step


def _case_id(case: tuple) -> str:
    service, fault, params, outcome, _ = case
    form = "-date" if params.get("form") == "date" else ""
    return f"{service}-{fault}{form}-" + (
        outcome if outcome in ("survives", "dagster-retry") else f"fails-{outcome}"
    )


@pytest.mark.parametrize(
    ("service", "fault", "params", "outcome", "overrides"),
    MONTHLY_CASES,
    ids=[_case_id(c) for c in MONTHLY_CASES],
)
def test_monthly_run_under_fault(
    matrix: Pipeline,
    monkeypatch: pytest.MonkeyPatch,
    service: str,
    fault: str,
    params: dict,
    outcome: str,
    overrides: dict,
) -> None:
    sandbox, dsn = matrix.sandbox, matrix.dsn
    client = "garden-state"
    key = client_month_key(client, MONTH)
    selection = FROM_CLEANING if service in VERIFIERS else None
    if service in VERIFIERS:
        forget_verdicts(dsn)
    if service == "clay":
        monkeypatch.setenv("HOMEOWNER_EMAIL_BACKEND", "clay")
        overrides = {"email_verification": {"poll_seconds": 0.1, "timeout_seconds": 120}}
    monkeypatch.setenv(OVERRIDES_ENV, json.dumps(overrides))
    before, before_content = stored(dsn), stored(dsn, with_timestamps=False)
    before_bison = bison_state(sandbox)
    messages_before = list(sandbox.slack.messages_in("#garden-state"))
    params = dict(params)
    sandbox.faults.on(service, fault, times=params.pop("times", None), **params)

    if outcome in ("survives", "dagster-retry"):
        result = run(
            matrix, "monthly_pull", key, spawn=outcome == "dagster-retry", selection=selection
        )
        if fault not in PEEKED:
            assert (service, fault) in sandbox.faults.fired
        assert result.success
        retried = step_retried(matrix, result)
        assert retried == (["cleaned_leads"] if outcome == "dagster-retry" else []), retried
        # Exactly what a fault-free run writes: same raw, cleaned, rejected rows, totals, report.
        assert stored(dsn, with_timestamps=False) == before_content
        if service == "slack":  # each of the run's messages posted once, after the rate limit
            posted = [p.splitlines()[0] for p in sandbox.slack.messages_in("#garden-state")]
            posted = posted[len(messages_before) :]
            assert len(posted) == len(set(posted)), posted
            assert {
                "✅ Raw Pull Complete: Garden State Insurance",
                "✅ Data Refinement Complete: Garden State Insurance",
            } <= set(posted), posted
        if service in VERIFIERS:  # every address verified afresh, by the case's provider
            with psycopg.connect(dsn) as conn:
                providers = dict(
                    conn.execute(
                        "select provider, count(*) from email_verifications group by provider"
                    ).fetchall()
                )
            assert set(providers) == {"clay" if service == "clay" else "debounce"}, providers
        with psycopg.connect(dsn) as conn:
            raw, cleaned, rejected = (
                conn.execute(
                    psycopg.sql.SQL("select count(*) from {} where client_slug = %s").format(
                        psycopg.sql.Identifier(table)
                    ),
                    [client],
                ).fetchone()[0]
                for table in ("raw_leads", "cleaned_leads", "rejected_leads")
            )
        assert raw > 1000 and raw == cleaned + rejected
        return

    step_retries = outcome in NON_RETRYABLE  # with retries on, Dagster must not retry these
    with changed_sandbox_data(sandbox, dsn, client):
        result = run(matrix, "monthly_pull", key, step_retries=step_retries, selection=selection)
    if fault not in PEEKED:
        assert (service, fault) in sandbox.faults.fired
    _, observed = assert_failed_cleanly(matrix, result, before, before_bison)
    assert observed == outcome, f"typed error {outcome} expected, the run reported {observed}"
    assert step_retried(matrix, result) == []
    sandbox.faults.off()
    if fault == "dropped_upload":  # a person finds the list on DeBounce's dashboard and says so
        with psycopg.connect(dsn) as conn:
            (listing,) = conn.execute(
                "select listing_key from debounce_bulk_jobs where status = 'uploading'"
            ).fetchone()
        assert (
            homeowner(["debounce-job", listing, "--list-id", max(sandbox.debounce.lists, key=int)])
            == 0
        )
    uploads = sandbox.debounce.uploads
    again = run(matrix, "monthly_pull", key, selection=selection)
    assert again.success
    if fault == "dropped_upload":
        assert sandbox.debounce.uploads == uploads  # the paid list was used, not sent again
    assert stored(dsn, with_timestamps=False) == before_content


# Weekly: the first four upload a fresh window under the fault; the last attaches the list the
# fixture uploaded (garden-state, January 1-7) while Bison keeps failing (a window already done
# makes no Bison call at all: test_a_done_window_calls_bison_not_at_all).
WEEKLY_CASES = [
    ("dropped_connection", {"times": 1}, "survives", "garden-state", WINDOWS[1], {}),  # answer lost
    ("http_429", {"times": 3, "retry_after": 0}, "survives", "garden-state", WINDOWS[2], {}),
    ("http_500", {"times": 3}, "survives", "garden-state", WINDOWS[3], {}),
    # Slower than the resource's timeout: the request times out and is sent again.
    (
        "slow_page",
        {"times": 1, "delay": 5},
        "survives",
        "sunshine",
        WINDOWS[0],
        {"bison": {"timeout_seconds": 3}},
    ),
    ("http_429", {"retry_after": 0}, "RetriesExhausted", "garden-state", WINDOWS[0], {}),
]


@pytest.mark.parametrize(
    ("fault", "params", "outcome", "client", "window", "overrides"),
    WEEKLY_CASES,
    ids=[f"bison-{c[0]}-{c[2] if c[2] == 'survives' else 'fails-' + c[2]}" for c in WEEKLY_CASES],
)
def test_weekly_run_under_bison_fault(
    matrix: Pipeline,
    monkeypatch: pytest.MonkeyPatch,
    fault: str,
    params: dict,
    outcome: str,
    client: str,
    window: Any,
    overrides: dict,
) -> None:
    sandbox, dsn = matrix.sandbox, matrix.dsn
    workspace = WORKSPACES[client]
    key = client_window_key(client, window)
    monkeypatch.setenv(OVERRIDES_ENV, json.dumps(overrides))
    before, before_bison = stored(dsn), bison_state(sandbox)
    before_content = stored(dsn, with_timestamps=False)
    params = dict(params)
    sandbox.faults.on("bison", fault, times=params.pop("times", None), **params)

    result = run(matrix, "weekly_upload", key, step_retries=outcome == "survives")
    assert ("bison", fault) in sandbox.faults.fired

    if outcome == "survives":
        assert result.success
        if overrides:  # the slow answer outlasted the timeout the run used
            assert _resources()["bison"].timeout_seconds < params["delay"]
        names = sandbox.bison.list_names(workspace)
        assert names.count(window.list_name) == 1, names  # uploaded once, answer lost or not
        in_bison = len(sandbox.bison.list_leads(workspace, window.list_name))
        with psycopg.connect(dsn) as conn:
            ledger = conn.execute(
                "select lead_count, status, campaign_title_after from client_lead_batches "
                "where client_slug = %s and window_start = %s",
                [client, window.start],
            ).fetchone()
            keys = conn.execute(
                "select count(*) from client_lead_batch_leads where client_slug = %s and window_start = %s",
                [client, window.start],
            ).fetchone()[0]
            expected = conn.execute(
                "select count(distinct email) from cleaned_leads where client_slug = %s "
                "and renewal_window = %s and not surplus",
                [client, window.start],
            ).fetchone()[0]
        assert ledger == (in_bison, "done", window.evergreen_title)
        assert in_bison == keys == expected > 0
        campaign = sandbox.bison.campaign(workspace, window.evergreen_title)
        assert sandbox.bison.attached_lists(workspace, campaign["id"]).count(window.list_name) == 1
        assert campaign["max_emails_per_day"] == 333  # settings sent back with the rename
        # Other workspaces untouched.
        for other, view in before_bison.items():
            if not other.startswith(workspace):
                assert bison_state(sandbox)[other] == view
        return

    _, observed = assert_failed_cleanly(matrix, result, before, before_bison)
    sandbox.faults.off()
    again = run(matrix, "weekly_upload", key)
    assert again.success
    assert observed == outcome, f"typed error {outcome} expected, the run reported {observed}"
    # The clean rerun finished the window (attached once, the ledger `done`), nothing else.
    after = stored(dsn, with_timestamps=False)
    moved = {k.split(".")[0] for k in after if after[k] != before_content[k]}
    assert moved == {"client_lead_batches"}, moved
    with psycopg.connect(dsn) as conn:
        state, list_id = conn.execute(
            "select status, bison_list_id from client_lead_batches "
            "where client_slug = %s and window_start = %s",
            [client, window.start],
        ).fetchone()
    campaigns = sandbox.bison.workspaces[workspace].campaigns.values()
    campaign = next(c for c in campaigns if c["name"].startswith("Evergreen"))
    assert state == "done" and campaign["lead_list_ids"].count(int(list_id)) == 1


def test_a_done_window_calls_bison_not_at_all(matrix: Pipeline) -> None:
    """A weekly run of a window already `done` makes no Bison request (bench_api_requests.py
    prints 0), so a rate limit that never lifts cannot stop it."""
    sandbox, key = matrix.sandbox, client_window_key("garden-state", WINDOWS[0])
    assert run(matrix, "weekly_upload", key).success  # done, if a case above did not finish it
    sandbox.faults.on("bison", "http_429", retry_after=0)
    requests = sandbox.bison.requests
    assert run(matrix, "weekly_upload", key, step_retries=False).success
    assert sandbox.bison.requests == requests and ("bison", "http_429") not in sandbox.faults.fired


# One run of the cleaning step in a process of its own, as a run worker would start it.
_ONE_RUN = """
import json, sys
from dagster import AssetKey, instance_for_test
from homeowner_dagster_tests.test_fault_matrix import RUN_CONFIG, _job, instance_overrides
with instance_for_test(overrides=instance_overrides(sys.argv[1])) as instance:
    result = _job("monthly_pull").execute_in_process(
        instance=instance, partition_key=sys.argv[2], run_config=RUN_CONFIG,
        asset_selection=[AssetKey("cleaned_leads")], raise_on_error=False,
    )
    print(json.dumps({"run_id": result.run_id, "success": result.success}))
"""


def test_debounce_in_flight_limit_holds_across_two_concurrent_runs(
    matrix: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both clients' cleaning steps start at once, in two runs in two processes sharing the
    Dagster database. The `debounce` pool (limit 1, dagster.yaml) holds one step until the
    other is done, so DeBounce never sees more than its 5 requests in flight. Without the pool
    the two steps' 10 threads overlap: the sandbox would count up to 10 in flight and refuse."""
    sandbox, dsn = matrix.sandbox, matrix.dsn
    forget_verdicts(dsn)
    monkeypatch.setenv(
        OVERRIDES_ENV, json.dumps({"email_verification": {"bulk_threshold": 100_000}})
    )
    with psycopg.connect(dsn) as conn:
        to_verify = conn.execute("select count(*) from raw_leads").fetchone()[0]
    sandbox.debounce.max_in_flight_seen = sandbox.debounce.refused_for_concurrency = 0
    calls = sandbox.debounce.single_calls
    sandbox.debounce.latency = 0.02  # each call takes long enough for the runs to overlap
    try:
        workers = [
            subprocess.Popen(
                [sys.executable, "-c", _ONE_RUN, dsn, client_month_key(client, MONTH)],
                stdout=subprocess.PIPE,
                text=True,
            )
            for client in TERRITORY
        ]
        outputs = [
            json.loads(w.communicate(timeout=900)[0].strip().splitlines()[-1]) for w in workers
        ]
    finally:
        sandbox.debounce.latency = 0.005
    assert all(o["success"] for o in outputs), outputs
    blocked = [
        o["run_id"]
        for o in outputs
        if any(
            "blocked by limit for pool debounce" in (entry.dagster_event.message or "")
            for entry in matrix.instance.all_logs(
                o["run_id"], of_type=DagsterEventType.ENGINE_EVENT
            )
        )
    ]
    assert len(blocked) >= 1, "the two cleaning steps never met at the pool"
    assert sandbox.debounce.max_in_flight_seen <= 5
    assert sandbox.debounce.refused_for_concurrency == 0
    assert 0 < sandbox.debounce.single_calls - calls <= to_verify


def test_matrix_covers_every_fault_a_run_meets() -> None:
    """Every Cole, Bison, DeBounce, Clay, Slack and storage fault a run can meet is a case."""
    from homeowner_dagster.sandbox.faults import JOB_FAULTS, KNOWN_FAULTS

    monthly = {(s, f) for s, f, *_ in MONTHLY_CASES}
    weekly = {("bison", f) for f, *_ in WEEKLY_CASES}
    assert {("cole", f) for f in KNOWN_FAULTS["cole"]} <= monthly
    assert {("bison", f) for f in KNOWN_FAULTS["bison"]} <= weekly
    assert {("debounce", f) for f in ("http_429", "http_500", *JOB_FAULTS["debounce"])} <= monthly
    assert {"slack", "clay", "storage"} <= {s for s, *_ in MONTHLY_CASES}
    assert any(outcome == "dagster-retry" for *_, outcome, _ in MONTHLY_CASES)


def test_readme_states_the_matrix_as_it_is() -> None:
    """Every number in the README's fault-matrix row is the matrix's own count."""
    row = next(
        line
        for line in (settings.project_root() / "README.md").read_text().splitlines()
        if line.startswith("| fault matrix")
    )
    outcomes = [c[3] for c in MONTHLY_CASES] + [c[2] for c in WEEKLY_CASES]
    counts = {
        "cases": len(outcomes),
        "monthly": len(MONTHLY_CASES),
        "weekly": len(WEEKLY_CASES),
        "survive": outcomes.count("survives"),
        "dagster-retry": outcomes.count("dagster-retry"),
        "fail": sum(o not in ("survives", "dagster-retry") for o in outcomes),
    }
    for word, count in counts.items():
        assert f"{count} {word}" in row, f"README says other than '{count} {word}': {row}"
    failures = {o for o in outcomes if o not in ("survives", "dagster-retry")}
    assert all(error in row for error in failures), failures
