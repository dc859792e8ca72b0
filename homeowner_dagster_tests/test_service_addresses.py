"""No run config can send a secret anywhere: every address comes from the deployment, checked.

An "attacker" HTTP server on loopback records every request it gets. A launch that overrides a
secret-bearing resource's address in run config is refused by the schema (the field does not
exist); an environment address off the vendor's hosts (or an http one that is not the sandbox's)
is refused when the resource is about to send. Either way the attacker, and the real service,
receive nothing.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from dagster import DagsterInvalidConfigError, Definitions
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from homeowner_dagster import addresses
from homeowner_dagster.addresses import AddressRefused
from homeowner_dagster.leads.calendar import add_months
from homeowner_dagster.partitions import client_month_key
from homeowner_dagster.resources.artifacts import ArtifactStoreResource
from homeowner_dagster.resources.clay import ClayResource
from homeowner_dagster.resources.cole import ColeResource
from homeowner_dagster.resources.email_verification import EmailVerificationResource
from homeowner_dagster.resources.slack import HomeownerSlackResource
from homeowner_dagster.sandbox.server import serve
from homeowner_dagster_tests import pipeline_fixtures
from homeowner_dagster_tests.pipeline_fixtures import MONTH, QUIET, Pipeline

pipeline_sandbox = pipeline_fixtures.pipeline_sandbox
pipeline = pipeline_fixtures.pipeline

# A field of this shape in a resource's run config could point a secret somewhere.
ADDRESS_LIKE = re.compile(r"url|uri|host|endpoint|address|_env$|^env_|path")


@dataclass
class Attacker:
    url: str
    requests: list[str] = field(default_factory=list)


@pytest.fixture(scope="module")
def attacker() -> Iterator[Attacker]:
    seen = Attacker("")

    async def anything(request: Request) -> JSONResponse:
        seen.requests.append(f"{request.method} {request.url.path}")
        return JSONResponse({"ok": True, "success": "1"})

    app = Starlette(
        routes=[Route("/{path:path}", anything, methods=["GET", "POST", "PUT", "PATCH"])]
    )
    server = serve("attacker", app)
    seen.url = server.url
    yield seen
    server.stop()


def _fields(config_type: object, prefix: str = "") -> Iterator[str]:
    """Every field name of a config type, nested ones as `parent.child`."""
    for name, spec in (getattr(config_type, "fields", None) or {}).items():
        yield f"{prefix}{name}"
        yield from _fields(spec.config_type, f"{prefix}{name}.")
    for inner in getattr(config_type, "type_params", None) or ():
        yield from _fields(inner, prefix)


def _resource_fields(defs: Definitions) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for job in defs.resolve_all_job_defs():
        resources = job.run_config_schema.config_type.fields["resources"].config_type
        for key, spec in resources.fields.items():
            found.setdefault(key, set()).update(_fields(spec.config_type))
    return found


@pytest.mark.parametrize(
    "backends", [{}, {"HOMEOWNER_EMAIL_BACKEND": "clay", "HOMEOWNER_ARTIFACTS_BACKEND": "supabase"}]
)
def test_the_launchpad_has_no_field_that_names_an_address(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch, backends: dict[str, str]
) -> None:
    from homeowner_dagster.definitions import build_definitions

    for key, value in backends.items():
        monkeypatch.setenv(key, value)
    fields = _resource_fields(build_definitions())
    # The secret-bearing resources are all there, with their safe settings.
    assert {"cole", "slack", "email_verification", "artifacts", "database", "bison"} <= set(fields)
    assert "config.timeout_ms" in fields["cole"] and "config.max_retries" in fields["slack"]
    offending = sorted(f"{key}.{name}" for key, names in fields.items() for name in names
                       if ADDRESS_LIKE.search(name.rsplit(".", 1)[-1]) and key != "io_manager")  # fmt: skip
    assert offending == []


# The fields the launchpad offered before (issue 21), and the env-var indirections next to them.
OVERRIDES = [
    ("cole", "base_url"),
    ("cole", "lock_url_env"),
    ("cole", "chromium_path"),
    ("slack", "base_url"),
    ("email_verification", "api_url"),
    ("email_verification", "bulk_url"),
    ("email_verification", "clay"),
    ("artifacts", "supabase_url"),
    ("artifacts", "signed_url_seconds"),
    ("database", "url_env"),
]


@pytest.mark.parametrize(("resource", "name"), OVERRIDES, ids=[f"{r}.{n}" for r, n in OVERRIDES])
def test_a_launch_that_redirects_a_secret_is_refused_and_sends_nothing(
    pipeline: Pipeline, attacker: Attacker, resource: str, name: str
) -> None:
    sandbox = pipeline.sandbox
    logins, credits = sandbox.cole.logins, sandbox.debounce.credits_used
    value: object = {"config": {"webhook_url": attacker.url}} if name == "clay" else attacker.url
    run_config = {**QUIET, "resources": {resource: {"config": {name: value}}}}
    job = pipeline.defs.resolve_job_def("monthly_pull")
    with pytest.raises(DagsterInvalidConfigError, match=name):
        job.execute_in_process(
            instance=pipeline.instance,
            partition_key=client_month_key("garden-state", MONTH),
            run_config=run_config,
        )
    assert attacker.requests == []
    assert (sandbox.cole.logins, sandbox.debounce.credits_used, sandbox.slack.messages) == (
        logins,
        credits,
        [],
    )


def _send(variable: str, tmp_path: Path) -> Callable[[], object]:
    """The call that would carry a secret to `variable`'s address."""
    month = add_months(MONTH, 2)
    sends: dict[str, Callable[[], object]] = {
        "SLACK_API_URL": lambda: HomeownerSlackResource(token="xoxb-secret").post(
            "#homeowner-ops", "hi"
        ),
        "COLE_URL": lambda: ColeResource(
            artifacts=ArtifactStoreResource(local_dir=str(tmp_path))
        ).pull("NJ", ["07030"], month, download_dir=tmp_path),
        "DEBOUNCE_API_URL": lambda: EmailVerificationResource(api_key="secret").verify(
            ["a@example.com"]
        ),
        "DEBOUNCE_BULK_URL": lambda: EmailVerificationResource(
            api_key="secret",
            bulk_threshold=0,
            artifacts=ArtifactStoreResource(backend="supabase", supabase_key="service-key"),
        ).verify(["a@example.com"]),  # fmt: skip
        "CLAY_WEBHOOK_URL": lambda: ClayResource(api_key="k", table_id="t").push_rows(
            [{"email": "a@example.com"}]
        ),
        "CLAY_API_URL": lambda: ClayResource(api_key="k", table_id="t").read_rows(),
        "SUPABASE_URL": lambda: ArtifactStoreResource(
            backend="supabase", supabase_key="service-key"
        ).put_bytes(b"screenshot", "runs/r/shot.png"),
    }
    return sends[variable]


VARIABLES = ["SLACK_API_URL", "COLE_URL", "DEBOUNCE_API_URL", "DEBOUNCE_BULK_URL", "CLAY_WEBHOOK_URL",
             "CLAY_API_URL", "SUPABASE_URL"]  # fmt: skip


@pytest.mark.parametrize("variable", VARIABLES)
@pytest.mark.parametrize("where", ["loopback-http", "plain-http", "other-host", "unset"])
def test_an_address_off_the_allowed_hosts_is_refused_before_anything_is_sent(
    pipeline: Pipeline, attacker: Attacker, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
    variable: str, where: str,
) -> None:  # fmt: skip
    sandbox = pipeline.sandbox
    if where == "unset":
        monkeypatch.delenv(variable)
        default = addresses.ADDRESSES[variable].default
        if default:  # unset, a documented address means the vendor's own (never sent to here)
            assert addresses.service_address(variable) == default
            return
    elif where == "other-host" and not addresses.ADDRESSES[variable].hosts:
        # Cole documents no host: the deployment's https address is its own choice.
        assert addresses.address_problem(variable, "https://attacker.example", {}) is None
        return
    else:
        address = {"loopback-http": attacker.url, "plain-http": "http://attacker.example"}.get(
            where, "https://attacker.example"
        )
        monkeypatch.setenv(
            variable,
            f"{address}/v3/sources/webhook/secret-hook" if "WEBHOOK" in variable else address,
        )
    logins, credits, objects = (
        sandbox.cole.logins,
        sandbox.debounce.credits_used,
        len(sandbox.storage.objects),
    )
    with pytest.raises(AddressRefused) as refused:
        _send(variable, tmp_path)()
    message = str(refused.value)
    assert variable in message and "homeowner check" in message
    assert "secret-hook" not in message  # the webhook's path is its secret
    assert attacker.requests == []
    assert (sandbox.cole.logins, sandbox.debounce.credits_used, len(sandbox.storage.objects)) == (
        logins,
        credits,
        objects,
    )
    assert sandbox.slack.messages == []


def test_the_sandbox_origins_admit_only_loopback_http_with_the_exact_port() -> None:
    env = {
        addresses.SANDBOX_ORIGINS_ENV: "http://127.0.0.1:8123,http://evil.example:80,http://10.0.0.5:8080"
    }
    assert addresses.sandbox_origins(env) == {"http://127.0.0.1:8123"}
    ok = {**env, "SLACK_API_URL": "http://127.0.0.1:8123/api/"}
    assert addresses.service_address("SLACK_API_URL", ok) == "http://127.0.0.1:8123/api/"
    for refused in ("http://127.0.0.1:8124/api/", "http://evil.example/api/", "https://slack.com.evil.example/api/",
                    "https://user:pw@slack.com/api/", "https://evilsupabase.co"):  # fmt: skip
        variable = "SUPABASE_URL" if "supabase" in refused else "SLACK_API_URL"
        assert addresses.address_problem(variable, refused, env), refused
    assert addresses.address_problem("SUPABASE_URL", "https://abcd.supabase.co", {}) is None
    assert (
        addresses.address_problem("COLE_URL", "https://cole.example", {}) is None
    )  # no vendor host known


def test_without_cole_url_the_monthly_run_fails_naming_it_and_no_login_is_typed(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("COLE_URL")
    logins = pipeline.sandbox.cole.logins
    result = pipeline.monthly("garden-state", raise_on_error=False)
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    message = failure.step_failure_data.user_failure_data.description
    assert message.startswith("COLE_URL is not set") and "no default" in message, message
    assert pipeline.sandbox.cole.logins == logins and pipeline.sandbox.cole.failed_logins == 0
    # No retry can fix a missing setting: one attempt, not the step's RetryPolicy's three.
    assert sum(1 for e in result.all_events if e.event_type_value == "STEP_UP_FOR_RETRY") == 0
