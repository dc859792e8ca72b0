"""A secret never follows a redirect; Slack messages go only to channels the deployment lists.

Each secret-bearing client is pointed (through its environment address) at a loopback server
that answers every request with a redirect to a second one, the catcher. The call fails, and the
catcher sees no request at all (or, for Cole's browser, no login typed into its form). Both
servers are listed as sandbox origins, so the address check lets the first request through: only
the refusal to follow protects the secret here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import psycopg
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from homeowner_dagster import registry
from homeowner_dagster.cli import main
from homeowner_dagster.leads.territories import TerritoryError, parse_clients
from homeowner_dagster.resources.artifacts import ArtifactStoreResource
from homeowner_dagster.resources.bison import BisonResource
from homeowner_dagster.resources.clay import ClayResource
from homeowner_dagster.resources.cole import ColeResource, LoginOffSite
from homeowner_dagster.resources.email_verification import EmailVerificationResource
from homeowner_dagster.resources.slack import HomeownerSlackResource
from homeowner_dagster.sandbox.cole_site import ColeSiteState, build_cole_app
from homeowner_dagster.sandbox.faults import Faults
from homeowner_dagster.sandbox.server import RunningServer, serve
from homeowner_dagster_tests import pipeline_fixtures
from homeowner_dagster_tests.pipeline_fixtures import CLIENTS_YAML, Pipeline

pipeline_sandbox = pipeline_fixtures.pipeline_sandbox
pipeline = pipeline_fixtures.pipeline

SECRET = "S3cret-follows-nowhere-42"


@dataclass
class Recorder:
    server: RunningServer | None = None
    seen: list[str] = field(default_factory=list)
    redirect_to: str = ""  # an origin: every request is answered 302 there; "" answers 200

    @property
    def url(self) -> str:
        assert self.server is not None
        return self.server.url


def _recording(name: str) -> Recorder:
    """A loopback server that records each request (method, URL, headers, body)."""
    recorder = Recorder()

    async def anything(request: Request) -> Response:
        body = (await request.body()).decode("latin-1")
        recorder.seen.append(f"{request.method} {request.url} {dict(request.headers)} {body}")
        if not recorder.redirect_to:
            return Response('{"ok": true}', media_type="application/json")
        return RedirectResponse(
            f"{recorder.redirect_to}{request.url.path}?{request.url.query}", status_code=302
        )

    methods = ["GET", "POST", "PUT", "PATCH", "DELETE"]
    recorder.server = serve(
        name, Starlette(routes=[Route("/{path:path}", anything, methods=methods)])
    )
    return recorder


@pytest.fixture(scope="module")
def servers() -> Iterator[tuple[Recorder, Recorder]]:
    redirector, catcher = _recording("redirector"), _recording("catcher")
    yield redirector, catcher
    for recorder in (redirector, catcher):
        assert recorder.server is not None
        recorder.server.stop()


@pytest.fixture
def redirecting(
    servers: tuple[Recorder, Recorder], monkeypatch: pytest.MonkeyPatch
) -> tuple[Recorder, Recorder]:
    """The redirector sends every request on to the catcher; both are sandbox origins."""
    redirector, catcher = servers
    redirector.seen.clear()
    catcher.seen.clear()
    redirector.redirect_to = catcher.url
    monkeypatch.setenv("HOMEOWNER_SANDBOX_ORIGINS", f"{redirector.url},{catcher.url}")
    return redirector, catcher


# service -> (its address variable, the call carrying a secret, given the redirector's URL)
CALLS: dict[str, tuple[str, Callable[[str], object]]] = {
    "slack": ("SLACK_API_URL", lambda _: HomeownerSlackResource(token=f"xoxb-{SECRET}", max_retries=0).post("#homeowner-ops", "hi")),
    "debounce": ("DEBOUNCE_API_URL", lambda _: EmailVerificationResource(api_key=SECRET, max_attempts=1).verify(["a@example.com"])),
    "clay-webhook": ("CLAY_WEBHOOK_URL", lambda _: ClayResource(api_key=SECRET, max_attempts=1).push_rows([{"email": "a@example.com"}], submitted_before=0)),
    "clay-api": ("CLAY_API_URL", lambda _: ClayResource(api_key=SECRET, table_id="t", max_attempts=1).read_rows()),
    "supabase": ("SUPABASE_URL", lambda _: ArtifactStoreResource(backend="supabase", supabase_key=SECRET).put_bytes(b"png", "runs/r/shot.png")),
    "bison": ("", lambda url: BisonResource(max_attempts=1).workspace(url, "BISON_TOKEN_REDIRECTED").custom_variables()),
}  # fmt: skip


@pytest.mark.parametrize("service", list(CALLS))
def test_no_client_carrying_a_secret_follows_a_redirect(
    redirecting: tuple[Recorder, Recorder], monkeypatch: pytest.MonkeyPatch, service: str
) -> None:
    redirector, catcher = redirecting
    variable, call = CALLS[service]
    address = redirector.url + ("/api/" if service == "slack" else "")
    if variable:
        monkeypatch.setenv(
            variable, address + ("/v3/sources/webhook/hook-1" if "WEBHOOK" in variable else "")
        )
    monkeypatch.setenv("CLAY_WEBHOOK_TOKEN", SECRET)
    monkeypatch.setenv("BISON_TOKEN_REDIRECTED", SECRET)
    with pytest.raises(Exception):  # noqa: B017, PT011 - each client's own error type
        call(redirector.url)
    assert len(redirector.seen) >= 1 and SECRET in redirector.seen[0]  # sent to the allowed address
    assert catcher.seen == []  # and never on to where its redirect pointed


def test_the_cole_login_is_never_typed_on_another_site(
    redirecting: tuple[Recorder, Recorder], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """COLE_URL answers with a redirect to another origin that serves a working login form."""
    redirector, _ = redirecting
    other_site = ColeSiteState(credentials={"NJ": ("agency-nj", SECRET, None)})
    server = serve("other-cole", build_cole_app(other_site, Faults()))
    try:
        redirector.redirect_to = server.url
        monkeypatch.setenv("HOMEOWNER_SANDBOX_ORIGINS", f"{redirector.url},{server.url}")
        monkeypatch.setenv("COLE_URL", redirector.url)
        monkeypatch.setenv("COLE_NJ_USERNAME", "agency-nj")
        monkeypatch.setenv("COLE_NJ_PASSWORD", SECRET)
        resource = ColeResource(
            timeout_ms=5_000,
            max_attempts=1,
            artifacts=ArtifactStoreResource(local_dir=str(tmp_path)),
        )
        with pytest.raises(LoginOffSite, match="nothing was typed there"):
            resource.pull("NJ", ["07030"], date(2027, 3, 1), download_dir=tmp_path / "pull")
    finally:
        server.stop()
    assert any("/login" in line for line in redirector.seen)
    assert (other_site.logins, other_site.failed_logins) == (
        0,
        0,
    )  # no login reached the other site


# -- Slack channels: the deployment's allowlist ------------------------------------------------


def test_a_client_with_a_channel_outside_the_allowlist_is_refused_at_import(
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("HOMEOWNER_SLACK_CHANNELS", "#garden-state")
    monkeypatch.setenv("HOMEOWNER_SLACK_CHANNEL", "#ops-team")
    with pytest.raises(TerritoryError) as refused:
        registry.upsert_clients(parse_clients(CLIENTS_YAML, "clients.yaml"), database_url)
    assert refused.value.problems == [
        "client 2 (sunshine): slack channel '#sunshine' is not in HOMEOWNER_SLACK_CHANNELS (nor the "
        "operations channel HOMEOWNER_SLACK_CHANNEL); the operator adds it there"
    ]
    file = tmp_path / "clients.yaml"
    file.write_text(CLIENTS_YAML.replace('"#sunshine"', '"@dana"'))  # a direct message
    assert main(["clients", "import", str(file)]) == 2
    err = capsys.readouterr().err
    assert (
        "slack channel '@dana' is not in HOMEOWNER_SLACK_CHANNELS" in err
        and "nothing written" in err
    )
    with psycopg.connect(database_url) as conn:
        assert conn.execute("select count(*) from clients").fetchone()[0] == 0
    # Listed (any case, `#` or not) or the operations channel: accepted.
    file.write_text(
        CLIENTS_YAML.replace('"#sunshine"', '"ops-team"').replace(
            '"#garden-state"', '"#Garden-State"'
        )
    )
    assert main(["clients", "import", str(file)]) == 0


def test_a_channel_edited_in_the_table_stops_the_run_before_anything_is_posted(
    pipeline: Pipeline,
) -> None:
    with psycopg.connect(pipeline.dsn) as conn:
        conn.execute("update clients set slack_channel = '#everyone' where slug = 'garden-state'")
    logins = pipeline.sandbox.cole.logins
    result = pipeline.monthly("garden-state", raise_on_error=False)
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    assert "slack channel '#everyone' is not in HOMEOWNER_SLACK_CHANNELS" in str(
        failure.step_failure_data.user_failure_data.description
    )
    assert pipeline.sandbox.slack.messages_in("#everyone") == []
    assert pipeline.sandbox.cole.logins == logins
