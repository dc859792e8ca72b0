"""A state's Cole pull against the sandbox site: exports used against the lower bound, and speed.

Run by hand: `.venv/bin/python bench/bench_cole_pull.py [STATE]` (default TX). It starts the
sandbox Cole site on loopback, pulls 60 ZIPs totalling about 80,000 records (one ZIP over the
10,000-record export cap) through ColeResource with real Chromium, counting every ZIP on the
site, and prints exports used vs ceil(total / 9,999), wall time, and how long the site takes to
serve a 10,000-row CSV download (target: under 2 seconds).
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import httpx

from homeowner_dagster.resources.artifacts import ArtifactStoreResource
from homeowner_dagster.resources.cole import ColeResource
from homeowner_dagster.sandbox import generator
from homeowner_dagster.sandbox.cole_site import DEMO_CREDENTIALS, ColeSiteState, build_cole_app
from homeowner_dagster.sandbox.faults import Faults
from homeowner_dagster.sandbox.server import serve

MONTH = date(2027, 3, 1)


def time_10k_download(url: str, state: str, zips: list[str]) -> list[float]:
    """Log in over plain HTTP, search ZIPs worth about 10,000 rows, time the CSV download."""
    username, password, secret = DEMO_CREDENTIALS[state]
    with httpx.Client(base_url=url, follow_redirects=True, timeout=30) as client:
        client.post("/login", data={"state": state, "username": username, "password": password})
        if secret:
            import pyotp

            client.post("/mfa", data={"otp": pyotp.TOTP(secret).now()})
        chosen, total = [], 0
        for z in zips:
            n = generator.count_for(z, MONTH)
            if total + n <= 9_999:
                chosen.append(z)
                total += n
        fields = generator.SOP_COLUMNS
        page = client.post(
            "/search",
            data={
                "licensed_state": state,
                "list_type": "Emailing",
                "zip_codes": ",".join(chosen),
                "renewal_month": f"{MONTH:%Y-%m}",
                "fields": fields,
            },
        )
        search_id = page.text.split("/searches/")[1].split("/")[0]
        ready = client.post(f"/searches/{search_id}/export")
        export_path = ready.text.split("href='")[1].split("'")[0]
        timings = []
        for _ in range(5):
            started = time.perf_counter()
            body = client.get(export_path).content
            timings.append(time.perf_counter() - started)
        rows = body.count(b"\r\n") - 1
        print(f"10k download: {rows:,} rows, {len(body) / 1e6:.2f} MB")
        return timings


def main() -> None:
    state = (sys.argv[1] if len(sys.argv) > 1 else "TX").upper()
    site = ColeSiteState()
    server = serve("cole", build_cole_app(site, Faults()))
    try:
        username, password, secret = DEMO_CREDENTIALS[state]
        os.environ[f"COLE_{state}_USERNAME"] = username
        os.environ[f"COLE_{state}_PASSWORD"] = password
        if secret:
            os.environ[f"COLE_{state}_TOTP_SECRET"] = secret
        zips = generator.pick_zips(state, MONTH, 60, 80_000)
        os.environ["COLE_URL"] = os.environ["HOMEOWNER_SANDBOX_ORIGINS"] = server.url
        with tempfile.TemporaryDirectory() as tmp:
            resource = ColeResource(
                artifacts=ArtifactStoreResource(local_dir=str(Path(tmp) / "artifacts")),
            )
            started = time.perf_counter()
            pull = resource.pull(state, zips, MONTH, download_dir=Path(tmp) / "pull")
            wall = time.perf_counter() - started
        total = sum(pull.zip_counts.values())
        print(f"state {state}, renewal month {MONTH:%Y-%m}: {len(zips)} ZIPs, {total:,} records")
        print(
            f"exports used: {pull.exports_used}, lower bound ceil({total:,}/9,999) = "
            f"{pull.lower_bound}"
        )
        print(f"rows downloaded: {pull.total_rows:,}; site searches: {site.searches_run}")
        print(f"pull wall time: {wall:.1f} s")
        timings = time_10k_download(server.url, state, generator.demo_zips(state, 200))
        print(
            f"10k CSV download: first (rows generated) {timings[0] * 1000:.0f} ms, then median "
            f"{statistics.median(timings[1:]) * 1000:.0f} ms (target < 2 s)"
        )
    finally:
        server.stop()


if __name__ == "__main__":
    main()
