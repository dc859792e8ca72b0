"""The zip_yield chart shows in the Dagster UI: a real webserver, a real Chromium, a screenshot."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pandas as pd
import pytest
from dagster import DagsterInstance
from playwright.sync_api import sync_playwright

from homeowner_dagster import db, settings
from homeowner_dagster.partitions import client_month_key, client_partitions
from homeowner_dagster_tests.pipeline_fixtures import MONTH, QUIET, load_clients

CLIENT = "garden-state"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _seed_outcomes(dsn: str) -> None:
    """Measured lead outcomes for three ZIPs (as campaign_outcomes would have stored them)."""
    rows = []
    for zip_code, leads, interested in (("07030", 600, 30), ("07302", 500, 12), ("07001", 700, 2)):
        for i in range(leads):
            rows.append(
                {
                    "client_slug": CLIENT,
                    "window_start": "2027-01-01" if i % 2 else "2027-01-08",
                    "month": "2027-01",
                    "dedupe_key": f"{zip_code}-{i}",
                    "zip": zip_code,
                    "verification_result": "Safe to Send",
                    "replied": i < interested * 2,
                    "interested": i < interested,
                    "bounced": i % 50 == 7,
                    "first_reply_at": pd.Timestamp("2026-12-07T10:00Z") + pd.Timedelta(days=i % 21)
                    if i < interested * 2
                    else None,
                }
            )
    frame = pd.DataFrame(rows)
    with db.transaction(dsn) as conn:
        db.copy_rows(conn, "lead_outcomes", frame, list(frame.columns))


@pytest.fixture
def dagster_home(database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text(
        "storage:\n  postgres:\n    postgres_url:\n      env: HOMEOWNER_DAGSTER_STORAGE_URL\n"
        "telemetry:\n  enabled: false\n"
    )
    monkeypatch.setenv(settings.DAGSTER_STORAGE_URL_ENV, db.dagster_storage_url(database_url))
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.setenv("HOMEOWNER_ARTIFACTS_DIR", str(tmp_path / "artifacts"))
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-not-used-here")
    return home


@pytest.fixture
def webserver(dagster_home: Path) -> Iterator[str]:
    port = _free_port()
    bin_dir = Path(sys.executable).parent
    proc = subprocess.Popen(
        [str(bin_dir / "dagster-webserver"), "-h", "127.0.0.1", "-p", str(port), "-m", "homeowner_dagster.definitions"],
        cwd=settings.project_root(),
        env={**os.environ},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 240  # a wait bound on a loaded machine, not an assertion
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{url}/server_info", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None, "dagster-webserver exited"
            time.sleep(1)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


def test_zip_yield_chart_shows_in_the_dagster_ui(
    database_url: str, dagster_home: Path, webserver: str, tmp_path: Path
) -> None:
    load_clients(database_url)
    _seed_outcomes(database_url)
    from homeowner_dagster.definitions import build_definitions

    instance = DagsterInstance.get()
    try:
        instance.add_dynamic_partitions(client_partitions.name, [CLIENT])
        result = build_definitions().resolve_job_def("outcomes_monthly").execute_in_process(
            instance=instance, partition_key=client_month_key(CLIENT, MONTH), run_config=QUIET
        )
        assert result.success
    finally:
        instance.dispose()
    chart_files = list((tmp_path / "artifacts").rglob("*.svg"))
    assert len(chart_files) == 1 and "<svg" in chart_files[0].read_text()

    shot = tmp_path / "zip_yield_chart.png"
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=os.environ.get(settings.CHROMIUM_ENV, "/usr/bin/chromium"),
            args=list(settings.CHROMIUM_ARGS),
        )
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        # The UI's "join the community" pop-up on localhost would cover the page: mark it seen.
        page.add_init_script("window.localStorage.setItem('communityNux', JSON.stringify('1'))")
        page.goto(f"{webserver}/assets/zip_yield?view=events", wait_until="domcontentloaded")
        page.get_by_text("chart", exact=True).first.wait_for(timeout=120_000)
        show = page.get_by_text("[Show Markdown]")
        if show.count():
            show.first.click()
        image = page.locator('img[src^="data:image/svg+xml"]').first
        image.wait_for(state="visible", timeout=60_000)
        size = image.evaluate("img => [img.naturalWidth, img.naturalHeight, img.complete]")
        image.screenshot(path=str(shot))
        browser.close()
    assert size[2] and size[0] >= 600 and size[1] >= 200  # the SVG decoded and drew
    assert shot.stat().st_size > 5_000
