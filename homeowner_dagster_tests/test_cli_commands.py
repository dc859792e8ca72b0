"""The command line builds only the part a command needs, and that part is the whole one's own."""

from __future__ import annotations

import subprocess
import sys

from homeowner_dagster.cli import COMMANDS, build_parser


def _commands(parser) -> dict:
    """Subcommand name -> its parser, as `homeowner --help` lists them."""
    return next(a for a in parser._actions if a.dest == "command").choices


def test_every_command_is_found_where_the_map_says():
    """A command the map misses, or maps to the wrong module, would fail to parse on its own."""
    whole = _commands(build_parser())
    assert list(whole) == list(COMMANDS)
    for name in COMMANDS:
        alone = _commands(build_parser(name))  # its module's commands, no other module's
        assert {COMMANDS[c] for c in alone} == {COMMANDS[name]}
        assert alone[name].format_help() == whole[name].format_help()


def test_clean_does_not_import_dagster(tmp_path):
    """`homeowner clean` starts in the time pandas takes to import, not Dagster's and the project's."""
    export = tmp_path / "cole.csv"
    export.write_text(
        "First_Name,Last_Name,Address_1,City,State,Zip,Email_Address,Purchase_Date,Home_Value\n"
        "Ann,Lee,9 Main St,Austin,TX,78701,ann@x.com,02/03/1999,450000\n",
        encoding="utf-8",
    )
    code = (
        "import sys; from homeowner_dagster.cli import main; "
        f"main(['clean', {str(export)!r}, '--month', '2027-02', '--out', {str(tmp_path / 'out')!r}]); "
        "print(sorted({m.split('.')[0] for m in sys.modules} & "
        "{'dagster', 'playwright', 'supabase', 'psycopg', 'httpx', 'homeowner_dagster_tests'}))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip().splitlines()[-1] == "[]"
    assert (tmp_path / "out" / "cleaned.csv").read_text().count("\n") == 2
