"""HTTP requests per 1,000 leads uploaded to Email Bison and verified (single and bulk), against the
sandbox, and the sandbox's start time. Run by hand: `.venv/bin/python bench/bench_api_requests.py`.

Requests are counted at the client (every `httpx.Client.send`, retries included), so the figures
are what the real services would see.
"""

from __future__ import annotations

import os
import time

import httpx
import pandas as pd

from homeowner_dagster.resources.artifacts import ArtifactStoreResource
from homeowner_dagster.resources.bison import BisonResource
from homeowner_dagster.resources.email_verification import EmailVerificationResource
from homeowner_dagster.sandbox import Sandbox

LEADS = 1_000
_sent = {"n": 0}
_original_send = httpx.Client.send


def _counting_send(self: httpx.Client, request: httpx.Request, **kwargs: object) -> httpx.Response:
    _sent["n"] += 1
    return _original_send(self, request, **kwargs)  # type: ignore[arg-type]


def counted(action) -> tuple[int, float]:  # noqa: ANN001
    _sent["n"] = 0
    began = time.perf_counter()
    action()
    return _sent["n"], time.perf_counter() - began


def leads(n: int) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "first_name": [f"Ann{i}" for i in range(n)],
            "last_name": ["Lee"] * n,
            "email": [f"owner{i}@example.com" for i in range(n)],
            "date_of_birth": ["1970-01-01"] * n,
            "address": ["1 Main St"] * n,
            "city": ["Newark"] * n,
            "state": ["NJ"] * n,
            "zip": ["07001"] * n,
            "renewal_date": ["2027-03-04"] * n,
            "phone": ["555-0100"] * n,
            "home_value": [350_000] * n,
        }
    )


def main() -> None:
    starts = []
    for _ in range(5):
        began = time.perf_counter()
        with Sandbox():
            starts.append(time.perf_counter() - began)
    print(
        f"sandbox start: median {sorted(starts)[2]:.2f} s, max {max(starts):.2f} s (5 starts, 5-6 services)"
    )

    httpx.Client.send = _counting_send  # type: ignore[method-assign]
    with Sandbox() as sandbox:
        env = sandbox.env()
        os.environ.update(env)
        frame = leads(LEADS)
        workspace = BisonResource(min_interval_seconds=0.0).workspace(
            env["BISON_INSTANCE_URL"], "BISON_TOKEN_ACME_INSURANCE"
        )
        uploaded: list[int] = []

        def new_list(name: str, batch: pd.DataFrame) -> None:
            list_id, _ = workspace.upload_lead_list(name, batch)
            workspace.lead_list_count(list_id)  # waits for Bison's queued import
            uploaded.append(list_id)

        n, secs = counted(lambda: new_list("(March 1st - 7th renewals)", frame))
        print(
            f"Bison new list, first ever:  {n:5d} requests per {LEADS:,} leads ({secs:.2f} s; custom variables created, 1 CSV POST, import polled)"
        )
        second = frame.assign(email=[f"second{i}@example.com" for i in range(LEADS)])
        before = sandbox.bison.requests
        n, secs = counted(lambda: new_list("(March 8th - 14th renewals)", second))
        seen = sandbox.bison.requests - before
        print(
            f"Bison new list:              {n:5d} requests per {LEADS:,} leads ({secs:.2f} s; {seen} seen by the sandbox; custom-variable look-up, 1 CSV POST, import polled)"
        )
        campaign = workspace.find_evergreen_campaign()
        n, _ = counted(
            lambda: (
                workspace.attach_lead_list(campaign["id"], uploaded[0]),
                workspace.rename_campaign(campaign["id"], "Evergreen, Last Upload: March 1st-7th"),
            )
        )
        print(
            f"Bison attach + rename:       {n:5d} requests per window (attach, campaign read, update, read back)"
        )

        emails = frame["email"].tolist()
        single = EmailVerificationResource(
            api_key=env["DEBOUNCE_API_KEY"], bulk_threshold=LEADS
        )
        n, secs = counted(lambda: single.verify(emails))
        print(
            f"DeBounce single endpoint:    {n:5d} requests per {LEADS:,} leads ({secs:.2f} s, 5 in flight)"
        )
        artifacts = ArtifactStoreResource(
            backend="supabase",
            supabase_key=env["SUPABASE_SERVICE_ROLE_KEY"],
        )
        bulk = EmailVerificationResource(
            api_key=env["DEBOUNCE_API_KEY"],
            bulk_threshold=10,
            poll_seconds=0.1,
            artifacts=artifacts,
        )
        n, secs = counted(lambda: bulk.verify([f"bulk{i}@example.com" for i in range(LEADS)]))
        print(
            f"DeBounce bulk flow:          {n:5d} requests per {LEADS:,} leads ({secs:.2f} s; storage upload + sign, upload, polls, download)"
        )
    httpx.Client.send = _original_send  # type: ignore[method-assign]


if __name__ == "__main__":
    main()
