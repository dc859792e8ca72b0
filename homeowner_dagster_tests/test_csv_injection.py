"""Every CSV the project writes is safe to open in a spreadsheet: header cells included."""

from __future__ import annotations

import csv
import io

import pandas as pd

from homeowner_dagster.cli import main
from homeowner_dagster.leads.cole_csv import write_people_csv
from homeowner_dagster.resources.bison import lead_list_csv
from homeowner_dagster_tests.test_clean_command import HEADER, ROWS, write_export

FORMULAS = ['=HYPERLINK("http://x")', "+1+1", "-2+3", "@SUM(A1)"]
# OWASP adds tab and carriage return; Excel also starts a formula at the full-width = + - @.
MORE = ["\t=1+1", "\r=1+1", "\uff1dSUM(A1)", "\uff0b1", "\uff0d1", "\uff20SUM(A1)"]
STARTS = (
    "=",
    "+",
    "-",
    "@",
    "\t",
    "\r",
    "\uff1d",
    "\uff0b",
    "\uff0d",
    "\uff20",
)  # written out, not imported


def _rows(path) -> list[list[str]]:  # noqa: ANN001
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.reader(handle))


def _runs_a_formula(cell: str) -> bool:
    return cell.startswith(STARTS)


def test_a_cole_header_cell_reaches_rejected_csv_neutralised(tmp_path) -> None:  # noqa: ANN001
    header = HEADER + ',=HYPERLINK("http://x")'
    rows = [row + ",=1+1" for row in ROWS]
    export = write_export(tmp_path / "cole.csv", rows, header=header)
    out = tmp_path / "out"
    assert main(["clean", str(export), "--month", "2027-02", "--out", str(out)]) == 0
    rejected = _rows(out / "rejected.csv")
    assert len(rejected) > 1
    assert '\'=HYPERLINK("http://x")' in rejected[0]
    for name in ("cleaned.csv", "rejected.csv"):
        cells = [cell for row in _rows(out / name) for cell in row]
        assert not [c for c in cells if _runs_a_formula(c)], name


def test_people_csv_and_bison_list_neutralise_header_and_data(tmp_path) -> None:  # noqa: ANN001
    frame = pd.DataFrame(
        {name: [f"{name} value", "=2*3"] for name in FORMULAS} | {"email": ["a@x.com", "b@x.com"]}
    )
    write_people_csv(frame, tmp_path / "people.csv")
    rows = _rows(tmp_path / "people.csv")
    assert rows[0][:4] == ["'" + f for f in FORMULAS]
    assert not [c for row in rows for c in row if _runs_a_formula(c)]
    data, _ = lead_list_csv(pd.DataFrame({"email": ["=a@x.com"], "first_name": ["@Ann"]}))
    bison_rows = list(csv.reader(data.decode().splitlines()))
    assert sorted(map(tuple, zip(*bison_rows, strict=True))) == [
        ("email", "'=a@x.com"),
        ("first_name", "'@Ann"),
    ]


def test_tab_cr_and_full_width_starts_are_neutralised_in_headers_and_cells(tmp_path) -> None:  # noqa: ANN001
    frame = pd.DataFrame(
        {name: [name, "plain"] for name in MORE} | {"email": ["a@x.com", "b@x.com"]}
    )
    write_people_csv(frame, tmp_path / "people.csv")
    rows = _rows(tmp_path / "people.csv")
    assert rows[0][: len(MORE)] == ["'" + m for m in MORE]  # header cells
    assert rows[1][: len(MORE)] == ["'" + m for m in MORE]  # data cells
    assert rows[2][0] == "plain"
    assert not [c for row in rows for c in row if _runs_a_formula(c)]
    data, _ = lead_list_csv(
        pd.DataFrame(
            {"email": ["\t@x.com"], "first_name": ["\uff1dHYPERLINK(1)"], "last_name": ["\rDoe"]}
        )
    )
    cells = {h: v for h, v in zip(*csv.reader(io.StringIO(data.decode(), newline="")), strict=True)}
    assert cells == {
        "email": "'\t@x.com",
        "first_name": "'\uff1dHYPERLINK(1)",
        "last_name": "'\rDoe",
    }
