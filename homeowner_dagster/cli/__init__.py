"""`homeowner`: the team's command line. Each subcommand lives in its own module.

Every command ends in one of two ways: its result, or one clear line on stderr and a non-zero
exit status (no traceback) when the input or the environment is wrong.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

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
}


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
    try:
        return int(args.handler(args) or 0)
    except CommandError as exc:
        print(f"homeowner {args.command}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"homeowner {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
