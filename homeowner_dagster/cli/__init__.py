"""`homeowner`: the team's command line. Each subcommand lives in its own module.

Every command ends in one of two ways: its result, or one clear line on stderr and a non-zero
exit status (no traceback) when the input or the environment is wrong.
"""

from __future__ import annotations

import argparse
import importlib
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
    "homeowner_dagster.cli.preflight",
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
