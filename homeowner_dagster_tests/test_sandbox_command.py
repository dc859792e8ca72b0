"""`homeowner sandbox` runs, prints its URLs and demo logins, and a person can log in to Cole."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from playwright.sync_api import sync_playwright

from homeowner_dagster import settings


def ignore_stop_signals() -> None:
    """As a background shell or CI hands them down: SIGINT and SIGTERM ignored."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def test_homeowner_sandbox_prints_logins_that_work_in_a_browser() -> None:
    process = subprocess.Popen(
        [str(Path(sys.executable).parent / "homeowner"), "sandbox"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=settings.project_root(),
        preexec_fn=ignore_stop_signals,  # noqa: PLW1509 - the point of the test
    )
    lines: list[str] = []
    try:
        deadline = time.monotonic() + 60
        while not any("Press Ctrl-C" in line for line in lines):
            assert time.monotonic() < deadline and process.poll() is None, "".join(lines)
            lines.append(process.stdout.readline())
        text = "".join(lines)
        cole_url = re.search(r"^\s+cole\s+(http://127\.0\.0\.1:\d+)", text, re.M).group(1)
        env = dict(re.findall(r"export (\w+)=(\S+)", text))
        username, password = env["COLE_NJ_USERNAME"], env["COLE_NJ_PASSWORD"]

        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path="/usr/bin/chromium", args=list(settings.CHROMIUM_ARGS)
            )
            page = browser.new_page()
            page.goto(f"{cole_url}/login?state=NJ")
            page.fill("#username", username)
            page.fill("#password", password)
            page.click("#login-button")
            page.wait_for_selector("#search-form")
            assert "/search" in page.url
            browser.close()
    finally:
        # A service manager's SIGTERM, although the process inherited it ignored.
        began = time.monotonic()
        process.send_signal(signal.SIGTERM)
        try:
            out, _ = process.communicate(timeout=60)
        finally:
            if process.poll() is None:
                process.kill()
        print(f"homeowner sandbox stopped {time.monotonic() - began:.1f} s after SIGTERM")
    assert process.returncode == 0
    assert "Sandbox stopped." in out
