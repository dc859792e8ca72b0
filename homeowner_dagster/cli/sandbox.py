"""`homeowner sandbox`: every outside service on loopback, until Ctrl-C."""

from __future__ import annotations

import argparse
import time

from homeowner_dagster.cli import CommandError
from homeowner_dagster.cli.stopping import install_stop_handlers


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "sandbox",
        help="run the fake Cole X Dates, DeBounce, Email Bison, Clay, Slack and Supabase Storage",
        description="Start every sandbox service on loopback, print URLs and demo credentials, run until Ctrl-C.",
    )
    parser.add_argument(
        "--seed", type=int, default=7, help="seed of the generated homeowners and codes"
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from homeowner_dagster.sandbox import Sandbox
    from homeowner_dagster.sandbox.bison import DEMO_IMPORT_SECONDS

    stop = install_stop_handlers()  # Ctrl-C and SIGTERM, even when started with them ignored
    began = time.perf_counter()
    sandbox = Sandbox(seed=args.seed)
    sandbox.bison.import_seconds = DEMO_IMPORT_SECONDS  # Bison's queued import, visible
    try:
        sandbox.start()
    except RuntimeError as exc:
        raise CommandError(str(exc)) from exc
    try:
        elapsed = time.perf_counter() - began
        print(f"Sandbox started in {elapsed:.2f} s (seed {args.seed}).\n")
        for name, url in sandbox.urls.items():
            print(f"  {name:<9} {url}")
        if sandbox.cole is None:
            print("  cole      (not available yet: homeowner_dagster.sandbox.cole_site is missing)")
        print("\nEnvironment for the resources (demo credentials, sandbox only):")
        for key, value in sandbox.env().items():
            print(f"  export {key}={value}")
        print("\nPress Ctrl-C to stop.", flush=True)
        while not stop.wait(0.5):
            pass
    finally:
        sandbox.stop()
    print("\nSandbox stopped.", flush=True)
    return 0
