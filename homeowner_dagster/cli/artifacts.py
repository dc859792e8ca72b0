"""`homeowner artifacts link RUN_ID`: sign again the screenshot and trace links of a failed run.

Links posted in a failure alert live HOMEOWNER_SIGNED_URL_TTL (24 h by default); whoever looks
later asks for fresh ones. The new links are printed and stored in agent_runs / agent_errors.
"""

from __future__ import annotations

import argparse
import os

from homeowner_dagster import db
from homeowner_dagster.addresses import AddressRefused
from homeowner_dagster.cli import CommandError
from homeowner_dagster.resources.artifacts import ArtifactStoreResource


def register(subparsers: argparse._SubParsersAction) -> None:
    artifacts = subparsers.add_parser("artifacts", help="screenshots and traces of failed runs")
    asub = artifacts.add_subparsers(dest="action", required=True)
    p = asub.add_parser("link", help="fresh signed links to a run's screenshot and trace")
    p.add_argument("run_id")
    p.set_defaults(handler=run_artifacts_link)


def artifact_store() -> ArtifactStoreResource:
    """The store the pipeline writes to, from the same environment variables."""
    backend = os.environ.get("HOMEOWNER_ARTIFACTS_BACKEND") or "local"
    return ArtifactStoreResource(
        backend=backend,
        local_dir=os.environ.get("HOMEOWNER_ARTIFACTS_DIR") or None,
        supabase_key=os.environ.get("SUPABASE_SERVICE_ROLE_KEY") if backend == "supabase" else None,
    )


def run_artifacts_link(args: argparse.Namespace) -> int:
    store = artifact_store()
    with db.transaction() as conn:
        errors = conn.execute(
            "select id, step, error_type, screenshot_url, trace_url from agent_errors "
            "where run_id = %s order by id",
            [args.run_id],
        ).fetchall()
        if not errors:
            raise CommandError(
                f"no failure with links recorded for run {args.run_id} (agent_errors)"
            )
        printed = 0
        for error_id, step, error_type, screenshot, trace in errors:
            fresh = {}
            for what, link in (("screenshot", screenshot), ("trace", trace)):
                if not link:
                    continue
                try:
                    fresh[what] = store.relink(link)
                except (ValueError, FileNotFoundError, AddressRefused) as exc:
                    raise CommandError(f"{what} of run {args.run_id}: {exc}") from None
                print(f"{step or 'run'} {error_type} {what}: {fresh[what]}")
                printed += 1
            conn.execute(
                "update agent_errors set screenshot_url = coalesce(%s, screenshot_url), "
                "trace_url = coalesce(%s, trace_url) where id = %s",
                [fresh.get("screenshot"), fresh.get("trace"), error_id],
            )
            if fresh.get("trace"):
                conn.execute(
                    "update agent_runs set trace_url = %s where run_id = %s",
                    [fresh["trace"], args.run_id],
                )
    if not printed:
        raise CommandError(f"run {args.run_id} kept no screenshot or trace")
    if store.backend == "supabase":
        seconds = store.link_seconds()
        print(
            f"links valid for {seconds // 3600} h"
            if seconds % 3600 == 0
            else f"links valid for {seconds} s"
        )
    else:
        print("local files do not expire")
    return 0
