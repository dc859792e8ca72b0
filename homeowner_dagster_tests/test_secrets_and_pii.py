"""No secret and no homeowner's personal data leaks into what people and tools read.

The demo pipeline runs on the sandbox with distinctive secret values (Cole passwords, Bison
tokens, the DeBounce key, the Slack token, the Supabase service key, a database password, a Clay
webhook's path, token and API key), once with a Cole failure (captcha: screenshot and trace are
kept), once with a database password holding an unencoded `%` (psycopg quotes such a password in
its error: the run must fail naming the problem, without it), once with Clay as the verifier, and
then a whole month for both clients with DeBounce's bulk flow (its upload call carries the signed
link to the address list, itself a secret), then `homeowner preflight` (table, JSON, --post) and
the weekly preflight job with a failing check. Every Python log record, every Dagster event (message and serialized metadata), every
run's config and tags, every asset materialization's metadata, every Slack message, every file
under the artifacts folder (traces unzipped, every member), every object in the sandbox's
storage, the agent_runs / agent_errors rows, what the processes wrote to stdout/stderr and every
file under the Dagster instance's folder (its log files) are searched for the secrets: none may
appear, raw, percent-encoded or base64-encoded. Slack messages, materialization metadata, log
lines and stderr must carry counts, not homeowners' emails (in any of those three forms), last
names or street addresses.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import logging
import os
import re
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import parse_qs, unquote_plus, urlsplit

import psycopg
import pytest
from dagster import DagsterEventType, Definitions, build_run_status_sensor_context
from dagster._serdes import serialize_value

from homeowner_dagster.definitions import build_definitions
from homeowner_dagster.leads.calendar import windows_of_month
from homeowner_dagster.partitions import client_month_key
from homeowner_dagster_tests import pipeline_fixtures
from homeowner_dagster_tests.pipeline_fixtures import MONTH, QUIET, TERRITORY, Pipeline

pipeline_sandbox = pipeline_fixtures.pipeline_sandbox
pipeline = pipeline_fixtures.pipeline

# Letters, digits and dashes only, so URL- or JSON-encoding cannot hide them from the search.
COLE = {
    "NJ": ("agency-nj-5d1c9e", "S3cret-Cole-NJ-7f3a"),
    "FL": ("agency-fl-c0ffee", "S3cret-Cole-FL-2a77"),
}
BISON = {
    "Garden State Insurance": ("BISON_TOKEN_GARDEN_STATE_INSURANCE", "S3cret-Bison-garden-e4f1"),
    "Sunshine Coverage": ("BISON_TOKEN_SUNSHINE_COVERAGE", "S3cret-Bison-sunshine-6c0d"),
}
DEBOUNCE_KEY = "S3cret-Debounce-0b9a44"
SLACK_TOKEN = "xoxb-S3cret-Slack-4e2c91"
SUPABASE_KEY = "S3cret-Supabase-service-71f0"
DB_PASSWORD = "S3cret-Db-Password-a1b2"
PERCENT_PASSWORD = "S3cret%zz-Db-Pct-9c1e"  # not percent-encoded: psycopg cannot read the URL
CLAY_TOKEN = "S3cret-Clay-hook-token-5b7d"
CLAY_KEY = "S3cret-Clay-api-3e9f"


def secrets(sandbox) -> dict[str, str]:  # noqa: ANN001
    found = {f"COLE_{s}_PASSWORD": p for s, (_, p) in COLE.items()}
    found |= {env: token for env, token in BISON.values()}
    found |= {
        "DEBOUNCE_API_KEY": DEBOUNCE_KEY,
        "SLACK_BOT_TOKEN": SLACK_TOKEN,
        "SUPABASE_SERVICE_ROLE_KEY": SUPABASE_KEY,
        "database password": DB_PASSWORD,
        "database password with %": PERCENT_PASSWORD,
        "Clay webhook path": sandbox.clay_webhook_id.removeprefix("pull-in-data-from-a-webhook-"),
        "CLAY_WEBHOOK_TOKEN": CLAY_TOKEN,
        "CLAY_API_KEY": CLAY_KEY,
    }
    for n, link in enumerate(sandbox.debounce.list_urls, start=1):  # the signed links' tokens
        found[f"signed DeBounce list link {n}"] = parse_qs(urlsplit(link).query)["token"][0]
    return found


class Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []
        self.unformattable: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = f"{record.name} {record.levelname} {record.getMessage()}"
        except Exception:  # a broken format string still shows its parts (and is a defect:
            # logging then prints the raw arguments to stderr)
            line = f"{record.name} {record.msg!r} {record.args!r}"
            self.unformattable.append(line)
        if record.exc_info and record.exc_info[1] is not None:
            line += f" {record.exc_info[1]!r}"
        self.lines.append(line)


class _BelowWarning(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.WARNING


@contextmanager
def collecting_logs() -> Iterator[Collect]:
    """Every record of every logger at DEBUG into a Collect handler, for the block's duration.

    pytest's own capture handlers keep seeing only warnings and above, as in normal operation.
    """
    handler = Collect()
    root = logging.getLogger()
    quiet = _BelowWarning()
    others = list(root.handlers)
    for other in others:
        other.addFilter(quiet)
    loggers = [root, logging.getLogger("dagster"), logging.getLogger("homeowner_dagster")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.DEBUG)
    root.addHandler(handler)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)
        for other in others:
            other.removeFilter(quiet)


@pytest.fixture
def secret_pipeline(pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch) -> Iterator[Pipeline]:
    """The pipeline fixture with every credential replaced by a known, distinctive value."""
    sandbox = pipeline.sandbox
    saved_cole = dict(sandbox.cole.credentials)
    for state, (username, password) in COLE.items():
        sandbox.cole.credentials[state] = (username, password, None)
        monkeypatch.setenv(f"COLE_{state}_USERNAME", username)
        monkeypatch.setenv(f"COLE_{state}_PASSWORD", password)
    for workspace, (env, token) in BISON.items():
        sandbox.bison.workspaces[workspace].token = token
        monkeypatch.setenv(env, token)
    monkeypatch.setattr(sandbox.debounce, "api_key", DEBOUNCE_KEY)
    monkeypatch.setenv("DEBOUNCE_API_KEY", DEBOUNCE_KEY)
    monkeypatch.setattr(sandbox.slack, "token", SLACK_TOKEN)
    monkeypatch.setenv("SLACK_BOT_TOKEN", SLACK_TOKEN)
    monkeypatch.setattr(sandbox.storage, "service_key", SUPABASE_KEY)
    monkeypatch.setenv("SUPABASE_SERVICE_ROLE_KEY", SUPABASE_KEY)
    monkeypatch.setattr(sandbox.clay.webhooks[sandbox.clay_webhook_id], "token", CLAY_TOKEN)
    monkeypatch.setenv("CLAY_WEBHOOK_TOKEN", CLAY_TOKEN)
    monkeypatch.setattr(sandbox.clay, "api_key", CLAY_KEY)
    monkeypatch.setenv("CLAY_API_KEY", CLAY_KEY)
    monkeypatch.setattr(sandbox.debounce, "list_urls", [])
    # The test server trusts local connections, so a password in the URL is carried everywhere
    # the URL goes and checked nowhere: exactly what must not be logged.
    url = re.sub(
        r"^postgresql://([^:@/]*):?[^@/]*@", rf"postgresql://\1:{DB_PASSWORD}@", pipeline.dsn
    )
    assert DB_PASSWORD in url
    monkeypatch.setenv("HOMEOWNER_DATABASE_URL", url)
    yield pipeline
    sandbox.cole.credentials.clear()
    sandbox.cole.credentials.update(saved_cole)


def run_failure_sensor(pipe: Pipeline, result) -> None:  # noqa: ANN001
    from homeowner_dagster.sensors import run_failure_alert_sensor

    failure = next(e for e in result.all_events if e.event_type == DagsterEventType.RUN_FAILURE)
    resources = pipe.defs.resources
    with build_run_status_sensor_context(
        sensor_name=run_failure_alert_sensor.name,
        dagster_instance=pipe.instance,
        dagster_run=result.dagster_run,
        dagster_event=failure,
        resources={"database": resources["database"], "slack": resources["slack"]},
    ).for_run_failure() as context:
        run_failure_alert_sensor(context)


def run_preflights(pipe: Pipeline) -> None:
    """`homeowner preflight` (table, JSON, --post) and the weekly preflight job, each with a
    failing check (DeBounce credits low), so their output, screenshots, metadata and Slack
    messages (test messages, the failure post) are searched like the rest."""
    from homeowner_dagster.cli import main

    sandbox = pipe.sandbox
    balance, sandbox.debounce.balance = sandbox.debounce.balance, 10
    try:
        assert main(["preflight"]) == 1
        assert main(["preflight", "--json", "--post"]) == 1
        job = pipe.defs.resolve_job_def("preflight")
        assert job.execute_in_process(
            instance=pipe.instance, run_config=pipeline_fixtures.QUIET
        ).success
    finally:
        sandbox.debounce.balance = balance


def artifact_texts(folder: Path) -> Iterator[tuple[str, bytes]]:
    """Every file under `folder`; zip archives (Playwright traces) member by member."""
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        data = path.read_bytes()
        yield str(path.relative_to(folder)), data
        if zipfile.is_zipfile(io.BytesIO(data)):
            yield from _zip_members(str(path.relative_to(folder)), data)


def _zip_members(name: str, data: bytes) -> Iterator[tuple[str, bytes]]:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        for member in archive.namelist():
            content = archive.read(member)
            yield f"{name}!{member}", content
            if zipfile.is_zipfile(io.BytesIO(content)):
                yield from _zip_members(f"{name}!{member}", content)


def event_records(pipe: Pipeline) -> tuple[list[str], list[str]]:
    """(every serialized event and run record, every materialization's metadata as text)."""
    records: list[str] = []
    metadata: list[str] = []
    for run in pipe.instance.get_runs():
        records.append(serialize_value(run))
        for entry in pipe.instance.all_logs(run.run_id):
            records.append(entry.user_message or "")
            records.append(serialize_value(entry))
            event = entry.dagster_event
            if event is not None and event.event_type == DagsterEventType.ASSET_MATERIALIZATION:
                materialization = event.step_materialization_data.materialization
                metadata.append(serialize_value(materialization.metadata))
                metadata.append(
                    json.dumps({k: str(v.value) for k, v in materialization.metadata.items()})
                )
    return records, metadata


_BASE64_RUN = re.compile(rb"[A-Za-z0-9+/_-]{12,}")  # padding left off: re-added per alignment
EMAIL_RE = re.compile(r"[A-Za-z0-9._%+'-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")


def decoded_views(data: str | bytes) -> list[str]:
    """The text as is, percent-decoded, and every base64 run in it decoded (each alignment), so
    a search of these views finds raw, percent-encoded and base64-encoded needles alike."""
    raw = data if isinstance(data, bytes) else data.encode("utf-8", "surrogatepass")
    text = raw.decode("latin-1")
    views = [text, unquote_plus(text)]
    for run in _BASE64_RUN.findall(raw):
        run = run.replace(b"-", b"+").replace(b"_", b"/")
        for start in range(4):
            chunk = run[start:]
            if len(chunk) % 4 == 1:
                chunk = chunk[:-1]
            chunk += b"=" * (-len(chunk) % 4)
            if len(chunk) >= 12:
                try:
                    views.append(base64.b64decode(chunk).decode("latin-1"))
                except (binascii.Error, ValueError):
                    pass
    return views


def encoded_forms(secret: str) -> list[str]:
    """The forms a planted value would take: raw, percent-encoded, base64 (how the views above
    are checked to reach them)."""
    from urllib.parse import quote

    return [secret, quote(secret, safe=""), base64.b64encode(secret.encode()).decode()]


def database_texts(dsn: str) -> list[str]:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute("select * from agent_runs").fetchall()
        rows += conn.execute("select * from agent_errors").fetchall()
    return [repr(r) for r in rows]


def homeowners(dsn: str) -> tuple[set[str], set[str], set[str]]:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute("select email, last_name, address from cleaned_leads").fetchall()
        raw = conn.execute("select record::text from raw_leads").fetchall()
    # Every address Cole gave us, also those rejected (DeBounce saw them too).
    emails = {r[0].lower() for r in rows if r[0]}
    emails |= {e.lower() for (record,) in raw for e in EMAIL_RE.findall(record)}
    last_names = {r[1] for r in rows if r[1] and len(r[1]) >= 3}
    addresses = {r[2] for r in rows if r[2]}
    return emails, last_names, addresses


def pii_in(
    text: str, emails: set[str], names_re: re.Pattern[str], addresses: set[str]
) -> list[str]:
    found = sorted(
        {e for view in decoded_views(text) for e in EMAIL_RE.findall(view) if e.lower() in emails}
    )
    found += [a for a in addresses if a in text]
    found += [m.group(0) for m in names_re.finditer(text)]
    return found


def monthly(pipe: Pipeline, defs: Definitions, client: str, run_config: dict | None = None):  # noqa: ANN201
    """A monthly run of `defs` (another email backend, say) recorded in the pipeline's instance."""
    return defs.resolve_job_def("monthly_pull").execute_in_process(
        instance=pipe.instance,
        partition_key=client_month_key(client, MONTH),
        run_config={**QUIET, **(run_config or {})},
        raise_on_error=False,
    )


# DeBounce's bulk flow for a run's new addresses (per-run settings the launchpad offers).
BULK = {"resources": {"email_verification": {"config": {
    "api_key": {"env": "DEBOUNCE_API_KEY"}, "bulk_threshold": 10, "poll_seconds": 0.05,
}}}}  # fmt: skip


@pytest.mark.slow(seconds=140)
def test_no_secret_or_homeowner_data_in_logs_events_metadata_slack_or_traces(
    secret_pipeline: Pipeline,
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pipe, sandbox = secret_pipeline, secret_pipeline.sandbox
    clients = list(TERRITORY)
    # The views reach each encoded form of a planted value.
    for form in encoded_forms("jane.doe@example.com") + encoded_forms("pad" + DB_PASSWORD):
        assert any(
            "jane.doe@example.com" in v or DB_PASSWORD in v for v in decoded_views(f"x {form}.")
        ), form
    capfd.readouterr()

    with collecting_logs() as python_logs:
        # A Cole failure first: the screenshot and trace of the failed page are kept, alerted.
        sandbox.faults.on("cole", "captcha")
        failed = pipe.monthly(clients[0], raise_on_error=False)
        assert not failed.success
        run_failure_sensor(pipe, failed)
        sandbox.faults.off()
        # A database password with an unencoded `%`: the run fails, the alert names the fix.
        good_url = os.environ["HOMEOWNER_DATABASE_URL"]
        monkeypatch.setenv(
            "HOMEOWNER_DATABASE_URL", good_url.replace(DB_PASSWORD, PERCENT_PASSWORD)
        )
        refused = pipe.monthly(clients[0], raise_on_error=False)
        assert not refused.success
        run_failure_sensor(pipe, refused)
        monkeypatch.setenv("HOMEOWNER_DATABASE_URL", good_url)
        # Clay as the verifier for one client's month (its webhook's path and token are secrets).
        monkeypatch.setenv("HOMEOWNER_EMAIL_BACKEND", "clay")
        sandbox.faults.on("clay", "http_429", times=1, retry_after=0)
        result = monthly(pipe, build_definitions(), clients[1])
        assert result.success, [
            str(e.event_specific_data.error) for e in result.all_events if e.is_step_failure
        ]
        monkeypatch.delenv("HOMEOWNER_EMAIL_BACKEND")
        # The whole month, new addresses through DeBounce's bulk flow (a signed list link).
        for client in clients:
            result = monthly(pipe, pipe.defs, client, BULK)
            assert result.success, [
                str(e.event_specific_data.error) for e in result.all_events if e.is_step_failure
            ]
        for window in windows_of_month(MONTH):
            for client in clients:
                pipe.weekly(client, window.start)
        run_preflights(pipe)
    captured = capfd.readouterr()
    assert python_logs.unformattable == [], python_logs.unformattable[:3]

    artifacts = list(artifact_texts(tmp_path / "artifacts"))
    names = [n for n, _ in artifacts]
    assert any(n.endswith(".png") for n in names), names
    assert any(n.endswith(".zip") for n in names) and any("!" in n for n in names), names
    records, metadata = event_records(pipe)
    assert metadata, "no materialization recorded"
    slack = [json.dumps(m, ensure_ascii=False) for m in sandbox.slack.messages]
    assert any("CaptchaBlocked" in m for m in slack)
    assert any(
        "Preflight:" in m and "credits for next month" in m for m in slack
    )  # the weekly job's post
    assert any("homeowner preflight: test message" in m for m in slack)  # --post
    assert "credits for next month" in captured.out  # the command's table and JSON
    assert any(n.startswith("preflight/") and n.endswith("-login.png") for n in names), names
    # The `%` run's alert names the problem and its fix, in one line, without the password.
    assert any(
        "DatabaseUrlInvalid" in m and "percent-encode the password" in m and "%25" in m
        for m in slack
    ), slack
    assert sandbox.debounce.list_urls, "the bulk flow was not used"
    assert sandbox.clay.tables[sandbox.clay_table_id]["rows"], "Clay was not used"
    storage = [(f"{b}/{p}", o.data) for (b, p), o in sandbox.storage.objects.items()]

    texts: list[tuple[str, str]] = [("python log", line) for line in python_logs.lines]
    texts += [("dagster event", r) for r in records]
    texts += [("slack", m) for m in slack]
    texts += [("database", r) for r in database_texts(pipe.dsn)]
    stderr = [("stderr", captured.err), ("stdout", captured.out)]
    texts += stderr
    log_files = [
        (f"instance file {p}", p.read_bytes())
        for p in Path(pipe.instance.root_directory).rglob("*")
        if p.is_file()
    ]
    blobs: list[tuple[str, bytes]] = artifacts + storage + log_files
    assert len(python_logs.lines) > 10 and len(records) > 100

    # The search reaches into each kind of record: known non-secret text is found in each.
    cole_host = sandbox.urls["cole"].split("//", 1)[1].encode()
    assert any(cole_host in data for name, data in artifacts if "!" in name), "trace not searched"
    assert any("garden-state" in line for line in python_logs.lines)
    assert any("/v3/sources/webhook/" in line for line in python_logs.lines), (
        "no Clay request logged"
    )
    assert any("/v1/upload/" in line and "url=" in line for line in python_logs.lines), (
        "no bulk upload logged"
    )
    assert any("garden-state|2027-01" in r for r in records)
    assert any("Garden State Insurance" in m for m in slack)
    print(
        f"searched {len(python_logs.lines)} log lines, {len(records)} event/run records, "
        f"{len(metadata)} metadata texts, {len(slack)} Slack messages, "
        f"{len(artifacts)} artifact files and trace members, {len(storage)} stored objects, "
        f"{len(captured.err)} characters of stderr, {len(log_files)} instance files; "
        "each raw, percent-decoded and base64-decoded"
    )

    leaks = []
    views = [(where, decoded_views(text), text) for where, text in texts]
    views += [(f"file {where}", decoded_views(data), "") for where, data in blobs]
    for name, secret in secrets(sandbox).items():
        leaks += [
            f"{name} in {where}: {text[:200]!r}"
            for where, found, text in views
            if any(secret in v for v in found)
        ]
    assert leaks == [], "\n".join(leaks)

    emails, last_names, addresses = homeowners(pipe.dsn)
    assert len(emails) > 100 and len(addresses) > 100
    names_re = re.compile(r"\b(?:" + "|".join(map(re.escape, sorted(last_names))) + r")\b")
    exposed = []
    for where, items in (
        ("slack", slack),
        ("metadata", metadata),
        ("python log", python_logs.lines),
        ("stderr/stdout", [captured.err, captured.out]),
        ("instance log file", [data.decode("latin-1") for _, data in log_files]),
    ):
        for text in items:
            for hit in pii_in(text, emails, names_re, addresses):
                exposed.append(f"{where}: {hit!r} in {text[:160]!r}")
    assert exposed == [], "\n".join(exposed[:20])
