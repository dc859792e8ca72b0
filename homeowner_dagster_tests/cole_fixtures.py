"""Fixtures shared by the Cole tests: the sandbox Cole site on loopback, a Chromium browser.

Make the fixtures visible in a test module by assigning them: `cole = cole_fixtures.cole`.
One site and one browser per module keep the suite fast; faults are switched off after every
test so tests do not leak misbehaviour into each other.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from homeowner_dagster import settings
from homeowner_dagster.sandbox.cole_site import ColeSiteState, build_cole_app
from homeowner_dagster.sandbox.faults import Faults
from homeowner_dagster.sandbox.server import RunningServer, serve

CHROMIUM_ARGS = list(settings.CHROMIUM_ARGS)
# Test accounts: New Jersey without MFA, Texas with a TOTP secret.
TEST_CREDENTIALS: dict[str, tuple[str, str, str | None]] = {
    "NJ": ("agency-nj", "Nj-Secret-Pw-4821", None),
    "TX": ("agency-tx", "Tx-Secret-Pw-9377", "JBSWY3DPEHPK3PXPKRSXG5CTMVRXEZLU"),
}


def chromium_executable() -> str | None:
    configured = os.environ.get("HOMEOWNER_CHROMIUM")
    if configured:
        return configured
    return "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None


@dataclass
class ColeSandbox:
    """The running site, its state (for inspection) and its fault switchboard."""

    state: ColeSiteState
    faults: Faults
    server: RunningServer

    @property
    def url(self) -> str:
        return self.server.url


@pytest.fixture(scope="module")
def cole_sandbox() -> Iterator[ColeSandbox]:
    state = ColeSiteState(credentials=dict(TEST_CREDENTIALS))
    faults = Faults()
    server = serve("cole", build_cole_app(state, faults))
    yield ColeSandbox(state, faults, server)
    server.stop()


@pytest.fixture
def cole(cole_sandbox: ColeSandbox) -> Iterator[ColeSandbox]:
    """The module's site with no fault on and empty inspection records, per test."""
    state = cole_sandbox.state
    cole_sandbox.faults.off()
    with state.lock:
        state.sessions.clear()
        state.searches.clear()
        state.exports.clear()
        state.logins = state.failed_logins = 0
    yield cole_sandbox
    cole_sandbox.faults.off()


@pytest.fixture(scope="module")
def chromium() -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium_executable(), headless=True, args=CHROMIUM_ARGS
        )
        yield browser
        browser.close()


@pytest.fixture
def page(chromium: object) -> Iterator[object]:
    """A fresh browser context (no cookies) per test."""
    context = chromium.new_context(accept_downloads=True)  # type: ignore[attr-defined]
    page = context.new_page()
    page.set_default_timeout(15_000)
    yield page
    context.close()


@pytest.fixture
def resource(
    cole: ColeSandbox, cole_env: object, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> object:
    """A ColeResource on the module's site with short timeouts, artifacts under tmp_path."""
    from homeowner_dagster.resources.artifacts import ArtifactStoreResource
    from homeowner_dagster.resources.cole import ColeResource

    monkeypatch.setenv("COLE_URL", cole.url)  # the deployment's setting, never run config
    monkeypatch.setenv("HOMEOWNER_SANDBOX_ORIGINS", cole.url)  # the one http address allowed
    return ColeResource(
        timeout_ms=4_000,
        backoff_seconds=0.2,
        artifacts=ArtifactStoreResource(local_dir=str(tmp_path / "artifacts")),
    )


@pytest.fixture
def cole_env(monkeypatch: pytest.MonkeyPatch) -> dict[str, tuple[str, str, str | None]]:
    """COLE_<STATE>_* variables for the test accounts."""
    for state, (username, password, secret) in TEST_CREDENTIALS.items():
        monkeypatch.setenv(f"COLE_{state}_USERNAME", username)
        monkeypatch.setenv(f"COLE_{state}_PASSWORD", password)
        if secret:
            monkeypatch.setenv(f"COLE_{state}_TOTP_SECRET", secret)
        else:
            monkeypatch.delenv(f"COLE_{state}_TOTP_SECRET", raising=False)
    return TEST_CREDENTIALS
