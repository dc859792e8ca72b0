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


# 40 ZIPs: (leads, human replies, interested); 07099 is plainly the worst, 07000 the best.
ZIPS = {f"07{i:03d}": (400, 8 + i % 5, 1 + i % 3) for i in range(1, 39)} | {
    "07000": (900, 60, 20),
    "07099": (900, 2, 0),
}


def _seed_outcomes(dsn: str) -> None:
    """Measured lead outcomes (as campaign_outcomes would have stored them), windows 60 days old."""
    attached = pd.Timestamp.now(tz="UTC") - pd.Timedelta(days=60)
    rows = []
    for zip_code, (leads, replies, interested) in ZIPS.items():
        for i in range(leads):
            rows.append(
                {
                    "client_slug": CLIENT,
                    "window_start": "2027-01-01" if i % 2 else "2027-01-08",
                    "month": "2027-01",
                    "dedupe_key": f"{zip_code}-{i}",
                    "zip": zip_code,
                    "verification_result": "Safe to Send",
                    "replied": i < replies,
                    "interested": i < interested,
                    "bounced": i % 50 == 7,
                    "first_reply_at": attached + pd.Timedelta(days=1 + i % 21)
                    if i < replies
                    else None,
                    "attached_at": attached,
                }
            )
    frame = pd.DataFrame(rows)
    with db.transaction(dsn) as conn:
        db.copy_rows(conn, "lead_outcomes", frame, list(frame.columns))


def _boxes(svg: str) -> list[tuple[float, float, float, float, str]]:
    """Approximate boxes of the chart's text labels (x0, y0, x1, y1, text)."""
    import re

    out = []
    for m in re.finditer(r'<text x="([\d.]+)" y="([\d.]+)"([^>]*)>([^<]*)</text>', svg):
        x, y, attrs, text = float(m[1]), float(m[2]), m[3], m[4]
        size = float(re.search(r'font-size="([\d.]+)"', attrs)[1]) if "font-size" in attrs else 12.0
        width = 0.55 * size * len(text)
        x0 = (
            x - width
            if 'text-anchor="end"' in attrs
            else x - width / 2
            if 'text-anchor="middle"' in attrs
            else x
        )
        out.append((x0, y - 0.8 * size, x0 + width, y + 0.2 * size, text))
    return out


def test_chart_shows_every_end_with_axes_and_no_label_over_another() -> None:
    from homeowner_dagster import charts
    from homeowner_dagster.leads.outcomes import weekly_trend, yield_book

    frame = []
    as_of = pd.Timestamp("2027-03-01T17:00Z")
    for zip_code, (leads, replies, interested) in ZIPS.items():
        for i in range(leads):
            frame.append(
                {
                    "client_slug": CLIENT,
                    "zip": zip_code,
                    "dedupe_key": f"{zip_code}-{i}",
                    "replied": i < replies,
                    "interested": i < interested,
                    "bounced": False,
                    "first_reply_at": as_of - pd.Timedelta(days=50 - i % 21)
                    if i < replies
                    else pd.NaT,
                    "attached_at": as_of - pd.Timedelta(days=60),
                    "as_of": as_of,
                }
            )
    outcomes = pd.DataFrame(frame)
    book = yield_book(CLIENT, outcomes)
    svg = charts.yield_chart_svg(
        "Garden State", "2027-01", book.client_zips, book.client_rate, weekly_trend(outcomes), book
    )
    texts = [b[4] for b in _boxes(svg)]
    assert "07000" in texts and "07099" in texts  # the best and the worst ZIP
    assert any("ZIPs between" in t for t in texts)  # 40 ZIPs: both ends, the middle counted
    assert "interested per 1,000 leads (client average" in svg and "week of first reply" in svg
    boxes = _boxes(svg)
    overlaps = [
        (a[4], b[4])
        for i, a in enumerate(boxes)
        for b in boxes[i + 1 :]
        if a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]
    ]
    assert overlaps == []


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
        [
            str(bin_dir / "dagster-webserver"),
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
            "-m",
            "homeowner_dagster.definitions",
        ],
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
        result = (
            build_definitions()
            .resolve_job_def("outcomes_monthly")
            .execute_in_process(
                instance=instance, partition_key=client_month_key(CLIENT, MONTH), run_config=QUIET
            )
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
        src = image.get_attribute("src")
        image.screenshot(path=str(shot))
        browser.close()
    assert size[2] and size[0] >= 600 and size[1] >= 200  # the SVG decoded and drew
    assert shot.stat().st_size > 5_000
    # The chart the browser drew has the worst ZIP on it (the one to act on), not only the best.
    import base64

    drawn = base64.b64decode(src.split(",", 1)[1]).decode()
    assert ">07099<" in drawn and ">07000<" in drawn
