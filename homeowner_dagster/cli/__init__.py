"""`homeowner`: the team's command line. Each subcommand lives in its own module.

Every command ends in one of two ways: its result, or one clear line on stderr and a non-zero
exit status (no traceback) when the input or the environment is wrong.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

# Modules that add subcommands; each defines `register(subparsers)`.
COMMAND_MODULES: tuple[str, ...] = (
    "homeowner_dagster.cli.database",
    "homeowner_dagster.cli.clean",
    "homeowner_dagster.cli.sandbox",
    "homeowner_dagster.cli.demo",
    "homeowner_dagster.cli.check",
    "homeowner_dagster.cli.artifacts",
    "homeowner_dagster.cli.windows",
    "homeowner_dagster.cli.approve",
    "homeowner_dagster.cli.debounce",
)


class CommandError(Exception):
    """A problem the user can fix; printed as one line, exit status 2."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="homeowner",
        description="Cole X Dates pulls, lead cleaning, gap reports and Email Bison uploads.",
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    started_here = _embedded_database_stopped()
    try:
        return int(args.handler(args) or 0)
    except CommandError as exc:
        print(f"homeowner {args.command}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"homeowner {args.command}: interrupted", file=sys.stderr)
        return 130
    finally:
        if started_here:
            _stop_embedded_database()


def _embedded_database_stopped() -> bool:
    """Whether this command would start the embedded PostgreSQL (no configured database, none
    running): then it stops it when done, as it found it. One started by `homeowner dev` (or
    by anything else before this command) is left as it is."""
    from homeowner_dagster import db, settings

    return not os.environ.get(settings.DATABASE_URL_ENV) and not db.embedded_running()


def _stop_embedded_database() -> None:
    from homeowner_dagster import db

    try:
        if db.embedded_running():
            db.stop_embedded()
    except Exception as exc:  # noqa: BLE001 - the command's own result stands; say it in one line
        print(f"homeowner: the embedded PostgreSQL this command started was not stopped ({exc.__class__.__name__})",
              file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
