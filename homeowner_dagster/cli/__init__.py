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

from homeowner_dagster.sanitiser import sanitise, scrub_exception

# Each subcommand and the module that adds it (`register(subparsers)`), in `--help` order. A run
# of one command imports only its own module: `homeowner clean` needs pandas, not Dagster.
COMMANDS: dict[str, str] = {
    "migrate": "homeowner_dagster.cli.database",
    "clients": "homeowner_dagster.cli.database",
    "zips": "homeowner_dagster.cli.database",
    "dev": "homeowner_dagster.cli.database",
    "env": "homeowner_dagster.cli.database",
    "clean": "homeowner_dagster.cli.clean",
    "sandbox": "homeowner_dagster.cli.sandbox",
    "demo": "homeowner_dagster.cli.demo",
    "check": "homeowner_dagster.cli.check",
    "artifacts": "homeowner_dagster.cli.artifacts",
    "windows": "homeowner_dagster.cli.windows",
    "approve": "homeowner_dagster.cli.approve",
    "debounce-job": "homeowner_dagster.cli.debounce",
    "preflight": "homeowner_dagster.cli.preflight",
    "watchdog": "homeowner_dagster.cli.watchdog",
}
# Commands that never open the project's database (and must not import its driver to find out).
NO_DATABASE: frozenset[str] = frozenset({"clean"})


class CommandError(Exception):
    """A problem the user can fix; printed as one line, exit status 2."""


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The whole command line, or only `command`'s part of it when that is a known command."""
    parser = argparse.ArgumentParser(
        prog="homeowner",
        description="Cole X Dates pulls, lead cleaning, gap reports and Email Bison uploads.",
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    modules = [COMMANDS[command]] if command in COMMANDS else dict.fromkeys(COMMANDS.values())
    for module_name in modules:
        importlib.import_module(module_name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser(argv[0] if argv else None).parse_args(argv)
    started_here = args.command not in NO_DATABASE and _embedded_database_stopped()
    try:
        return int(args.handler(args) or 0)
    except CommandError as exc:
        print(f"homeowner {args.command}: {sanitise(str(exc))}", file=sys.stderr)
        return 2
    except Exception as exc:
        scrub_exception(exc)  # the traceback Python prints names no secret
        raise
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
        print(
            f"homeowner: the embedded PostgreSQL this command started was not stopped ({exc.__class__.__name__})",
            file=sys.stderr,
        )


if __name__ == "__main__":
    sys.exit(main())
