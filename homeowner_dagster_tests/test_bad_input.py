"""Bad input, on purpose: property-based and fuzz tests of every reader of the team's files.

The Cole CSV reader (and `homeowner clean` on files), the ZIP sheet import, the client import
and the Evergreen title parser get arbitrary bytes, wrong encodings, missing and duplicated
headers, huge fields and formula-injection cells. Each must end in a clean result or one clear
error (a ValueError subclass; for the CLI one line on stderr and exit status 2, no traceback),
never a partial write: a refused import leaves the tables as they were, a refused clean leaves
no output folder. Values starting with = + - @ come out neutralised (a leading `'`) in every CSV
the project writes for people (cleaned, rejected, hnw) or for Bison (the lead list).

Every property test counts the inputs it tried in `INPUTS_TRIED` (printed with `-s`).
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import tempfile
from collections import Counter
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pandas as pd
import psycopg
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from homeowner_dagster import registry
from homeowner_dagster.cli import main
from homeowner_dagster.leads.calendar import (
    EvergreenTitle,
    RenewalWindow,
    parse_evergreen_title,
    windows_of_month,
)
from homeowner_dagster.leads.cole_csv import ColeFileError, read_cole_csv, write_people_csv
from homeowner_dagster.leads.spreadsheet import FORMULA_PREFIXES
from homeowner_dagster.leads.territories import TerritoryError, parse_clients, parse_zip_sheet
from homeowner_dagster.resources.bison import lead_list_csv

INPUTS_TRIED: Counter[str] = Counter()
# pandas mends rows longer than the header (dropping the extra cells) and says so; expected here.
pytestmark = pytest.mark.filterwarnings("ignore::pandas.errors.ParserWarning")
FORMULA_CHARS = FORMULA_PREFIXES  # = + - @ tab CR and the full-width forms
INJECTIONS = [
    "=cmd|' /C calc'!A0",
    "+1-2",
    "-3",
    "@SUM(1)",
    '=HYPERLINK("http://evil.example","x")',
    "=1+1",
    "-2+3",
    "+",
    "@",
    "=",
]
HEADER = [
    "First_Name", "Last_Name", "Address_1", "City", "State", "Zip", "Cell Phone Number",
    "Email_Address", "Purchase_Date (MM/DD/YYYY)", "Home_Value", "Head_Household", "Income",
]  # fmt: skip
GOOD_ROW = [
    "Ann", "Smith", "9 5th Ave", "Austin", "TX", "78701", "(512) 555-0100", "ann@example.com",
    "02/03/1999", "450000", "Y", "90",
]  # fmt: skip
MONTH = "2027-02"
FAST = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SLOW = settings(
    max_examples=45,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


@pytest.fixture(scope="module", autouse=True)
def report_inputs() -> Iterator[None]:
    yield
    print(f"\nbad-input inputs tried: {sum(INPUTS_TRIED.values())} {dict(INPUTS_TRIED)}")


def cli(*argv: str) -> tuple[int, str, str]:
    """Run `homeowner ...`: its exit code, stdout and stderr. Any exception escaping is a bug."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


def assert_clear_refusal(code: int, err: str, command: str) -> None:
    """Exit 2, no traceback, and the last line of stderr is `homeowner <command>: ...`."""
    assert code == 2, err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert lines and lines[-1].startswith(f"homeowner {command}: "), err


def csv_cells(path: Path) -> Iterator[str]:
    with open(path, newline="", encoding="utf-8") as handle:
        for row in csv.reader(handle):
            yield from row


def assert_formula_safe(path: Path) -> None:
    """No cell of the file would run as a spreadsheet formula."""
    for cell in csv_cells(path):
        assert not cell.startswith(FORMULA_CHARS), f"{path.name}: unneutralised cell {cell[:40]!r}"


# -- strategies ---------------------------------------------------------------------------------

cell_text = st.one_of(
    st.text(max_size=30),
    st.sampled_from(INJECTIONS),
    st.sampled_from(INJECTIONS).flatmap(lambda f: st.text(max_size=10).map(lambda t: f + t)),
    st.sampled_from(["", " ", "\r\n", '"', ",", "\x00", "\ufeff", "é", "€", "💥"]),
    st.sampled_from(GOOD_ROW),
)
header_name = st.one_of(
    st.sampled_from(HEADER), st.text(max_size=12), st.sampled_from(["", "Email"])
)


@st.composite
def cole_files(draw: st.DrawFn) -> bytes:
    """A Cole export gone wrong in some way, as bytes on disk."""
    kind = draw(st.sampled_from(["bytes", "header+bytes", "table", "table"]))
    if kind == "bytes":
        return draw(st.binary(max_size=400))
    if kind == "header+bytes":
        return (",".join(HEADER) + "\r\n").encode() + draw(st.binary(max_size=400))
    # A table: the real header with columns dropped, duplicated, renamed or added.
    header = list(HEADER)
    for _ in range(draw(st.integers(0, 3))):
        action = draw(st.sampled_from(["drop", "duplicate", "rename", "add"]))
        index = draw(st.integers(0, len(header) - 1)) if header else 0
        if action == "drop" and header:
            header.pop(index)
        elif action == "duplicate" and header:
            header.insert(index, header[index])
        elif action == "rename" and header:
            header[index] = draw(header_name)
        else:
            header.insert(index, draw(header_name))
    rows = []
    for _ in range(draw(st.integers(0, 4))):
        row = [draw(cell_text) if draw(st.booleans()) else GOOD_ROW[i % len(GOOD_ROW)]
               for i in range(len(header))]  # fmt: skip
        row = row[: draw(st.integers(0, len(row) + 1))] + draw(
            st.lists(cell_text, max_size=2)
        )  # short and long rows
        rows.append(row)
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator=draw(st.sampled_from(["\n", "\r\n"]))).writerows(
        [header, *rows]
    )
    encoding = draw(st.sampled_from(["utf-8", "utf-8-sig", "cp1252", "utf-16", "latin-1"]))
    return buffer.getvalue().encode(encoding, errors="replace")


# -- the Cole CSV reader ------------------------------------------------------------------------


@FAST
@given(cole_files())
@example(b"")
@example(b"\xff\xfe\x00\x00")
@example(b"\x81\x8d\x8f\x90\x9d")  # bytes cp1252 has no character for
@example((",".join(HEADER) + "\n").encode())  # header only
@example((",".join(HEADER + ["Email_Address"]) + "\n").encode())  # the same field twice
@example(b"First_Name,Last_Name\nA,B\n")  # required columns missing
@example(b'"First_Name,Last_Name\nA,B\n')  # unbalanced quote
def test_read_cole_csv_returns_text_or_a_clear_error(data: bytes) -> None:
    INPUTS_TRIED["read_cole_csv"] += 1
    for arrow in (False, True):
        try:
            frame = read_cole_csv(data, "fuzz.csv", arrow=arrow)
        except ColeFileError as exc:
            assert str(exc) and "\n" not in str(exc).strip()
            continue
        assert frame["source_row"].tolist() == list(range(1, len(frame) + 1))
        assert (frame["source_export"] == "fuzz.csv").all()
        text = frame.drop(columns=["source_row"])
        assert all(isinstance(v, str) for column in text for v in text[column].tolist())


def test_a_one_megabyte_cell_is_read_whole() -> None:
    huge = "x" * (1 << 20)
    data = (",".join(HEADER) + "\n" + ",".join(GOOD_ROW[:-1] + [huge]) + "\n").encode()
    INPUTS_TRIED["read_cole_csv"] += 1
    frame = read_cole_csv(data, "huge.csv")
    assert frame.loc[0, "Income"] == huge


@SLOW
@given(cole_files())
@example((",".join(HEADER) + "\n" + ",".join(GOOD_ROW) + "\n").encode())
@example((",".join(HEADER) + "\n" + ",".join(GOOD_ROW[:-1] + ["=" * (1 << 20)]) + "\n").encode())
def test_clean_command_writes_everything_or_nothing(data: bytes) -> None:
    INPUTS_TRIED["homeowner clean"] += 1
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        export = folder / "cole.csv"
        export.write_bytes(data)
        out = folder / "out"
        code, _, err = cli("clean", str(export), "--month", MONTH, "--out", str(out),
                           "--hnw-states", "TX")  # fmt: skip
        if code != 0:
            assert_clear_refusal(code, err, "clean")
            assert "cole.csv" in err
            assert sorted(p.name for p in folder.iterdir()) == ["cole.csv"]  # no out, no temp
            return
        names = sorted(p.name for p in out.iterdir())
        assert names == ["cleaned.csv", "hnw.csv", "rejected.csv", "summary.json"]
        summary = json.loads((out / "summary.json").read_text())
        assert summary["input_rows"] == (
            summary["cleaned_rows"] + summary["rejected_rows"] + summary["hnw_rows"]
        )
        for name in ("cleaned.csv", "rejected.csv", "hnw.csv"):
            assert_formula_safe(out / name)


def injected_export(folder: Path) -> Path:
    """Rows that clean fine, every free-text cell an injection; plus rows that get rejected."""
    rows = []
    for i, formula in enumerate(INJECTIONS):
        row = dict(zip(HEADER, GOOD_ROW, strict=True))
        row.update(
            {
                "First_Name": formula,
                "Last_Name": f"{formula}{i}",
                "Address_1": f"{i} {formula}",
                "City": formula,
                "Income": formula,
                "Email_Address": f"person{i}@example.com",
            }
        )
        rows.append(row)
        rows.append({**row, "Email_Address": formula, "Last_Name": f"x{i}"})  # rejected: email
        rows.append({**row, "Home_Value": "2000000", "Email_Address": f"rich{i}@example.com"})
    path = folder / "injected.csv"
    pd.DataFrame(rows, columns=HEADER).to_csv(path, index=False)
    return path


def test_clean_neutralises_every_injection_in_every_people_csv(tmp_path: Path) -> None:
    export = injected_export(tmp_path)
    out = tmp_path / "out"
    code, _, err = cli(
        "clean", str(export), "--month", MONTH, "--out", str(out), "--hnw-states", "TX"
    )
    assert code == 0, err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["cleaned_rows"] and summary["rejected_rows"] and summary["hnw_rows"]
    seen: set[str] = set()
    for name in ("cleaned.csv", "rejected.csv", "hnw.csv"):
        assert_formula_safe(out / name)
        seen.update(csv_cells(out / name))
    # The original text is kept behind the quote, so a person still sees what Cole sent.
    assert "'=cmd|' /C calc'!A0" in seen and "'@SUM(1)" in seen and "'+1-2" in seen
    assert "'-3" in seen


@FAST
@given(
    st.lists(
        st.lists(cell_text | st.text(max_size=8), min_size=1, max_size=4), min_size=1, max_size=6
    ).filter(lambda rows: len({len(r) for r in rows}) == 1),
    st.booleans(),
)
def test_write_people_csv_round_trips_with_formulas_quoted(
    rows: list[list[str]], object_dtype: bool
) -> None:
    INPUTS_TRIED["write_people_csv"] += 1
    columns = [f"c{i}" for i in range(len(rows[0]))]
    frame = pd.DataFrame(rows, columns=columns)
    if not object_dtype:
        frame = frame.astype(pd.StringDtype("pyarrow"))
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "people.csv"
        write_people_csv(frame, path)
        with open(path, newline="", encoding="utf-8") as handle:
            back = list(csv.reader(handle))
    assert back[0] == columns
    expected = [["'" + v if v.startswith(FORMULA_CHARS) else v for v in row] for row in rows]
    assert back[1:] == expected


@FAST
@given(
    st.lists(
        st.fixed_dictionaries(
            {
                "email": cell_text,
                "first_name": cell_text,
                "last_name": cell_text,
                "address": cell_text,
                "city": cell_text,
                "home_value": st.one_of(
                    st.floats(allow_nan=True), st.integers(-(10**6), 10**9), cell_text
                ),
            }
        ),
        min_size=1,
        max_size=5,
    )
)
def test_bison_lead_list_neutralises_formulas(rows: list[dict[str, object]]) -> None:
    INPUTS_TRIED["lead_list_csv"] += 1
    body, mapping = lead_list_csv(pd.DataFrame(rows))
    assert "email" in mapping.values()
    parsed = list(csv.reader(io.StringIO(body.decode("utf-8"), newline="")))
    for row in parsed[1:]:
        for cell in row:
            assert not cell.startswith(FORMULA_CHARS), cell


# -- the ZIP sheet and client imports (one database per test; counts checked per input) ---------

CLIENTS_YAML = """
- slug: acme
  name: Acme Insurance
  workspace: Acme WS
  package_tier: 100
  licensed_states: [NJ]
- slug: sunny
  name: Sunny Coverage
  package_tier: 200
  licensed_states: FL
"""
TABLES = ("clients", "client_zipcodes", "hnw_routing_rules")


def counts(url: str) -> dict[str, int]:
    with psycopg.connect(url) as conn:
        return {
            t: conn.execute(f"select count(*) from {t}").fetchone()[0]  # noqa: S608 (constant names)
            for t in TABLES
        }


def table_rows(url: str, table: str) -> list[tuple]:
    with psycopg.connect(url) as conn:
        return sorted(conn.execute(f"select * from {table}").fetchall(), key=repr)  # noqa: S608


zip_cell = st.one_of(
    st.sampled_from(["07030", "7030", "07030-1234", "070301234", "33101", "32801", "07302"]),
    st.sampled_from(["00000", "99999", "1234", "ABCDE", "", " ", "07030.0", "7.03E+03"]),
    st.sampled_from(INJECTIONS),
    st.text(max_size=12),
)
territory_cell = st.one_of(
    st.sampled_from(["acme", "Acme Insurance", "ACME WS", "sunny", "Sunny Coverage", "nobody", ""]),
    st.sampled_from(INJECTIONS),
    st.text(max_size=12),
)
zip_header = st.one_of(
    st.just(["Zipcode", "Territory", "Color"]),
    st.just(["Zip", "Client"]),
    st.just(["Zipcode", "Zip", "Territory"]),  # two ZIP columns
    st.just(["Territory", "Color"]),  # no ZIP column
    st.lists(st.text(max_size=10), max_size=3),
)


@st.composite
def zip_sheets(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["bytes", "sheet", "sheet", "sheet"]))
    if kind == "bytes":
        return draw(st.binary(max_size=300))
    header = draw(zip_header)
    rows = [
        [draw(zip_cell), draw(territory_cell), draw(cell_text)][: max(len(header), 1)]
        + draw(st.lists(cell_text, max_size=1))
        for _ in range(draw(st.integers(0, 6)))
    ]
    buffer = io.StringIO()
    csv.writer(buffer).writerows([header, *rows])
    encoding = draw(st.sampled_from(["utf-8", "utf-8-sig", "utf-8", "cp1252", "utf-16"]))
    return buffer.getvalue().encode(encoding, errors="replace")


@SLOW
@given(sheet=zip_sheets())
@example(sheet=b"Zipcode,Territory,Color\n07030,acme,\n33101,sunny,\n")
@example(sheet=b"Zipcode,Territory,Color\n07030,sunny,\n")  # held by acme already
@example(sheet=b"Zipcode,Territory,Color\n07001,acme,\n07001,sunny,\n")  # one ZIP, two clients
@example(sheet=b"Zipcode,Territory,Color\n07002,acme,=cmd|' /C calc'!A0\n07003,acme,\x00\n")
@example(sheet=("Zipcode,Territory\n" + "9" * (1 << 20) + ",acme\n").encode())  # 1 MB cell
def test_zip_import_writes_everything_or_nothing(database_url: str, sheet: bytes) -> None:
    INPUTS_TRIED["homeowner zips import"] += 1
    if not counts(database_url)["clients"]:
        registry.upsert_clients(parse_clients(CLIENTS_YAML, "clients.yaml"), database_url)
    before = table_rows(database_url, "client_zipcodes")
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "zips.csv"
        path.write_bytes(sheet)
        code, out, err = cli("zips", "import", str(path), "--month", MONTH)
    after = table_rows(database_url, "client_zipcodes")
    if code != 0:
        assert_clear_refusal(code, err, "zips")
        assert after == before, "a refused ZIP import changed client_zipcodes"
        return
    written = int(out.split()[0])
    assert len(after) == len(before) + written
    assert set(before) <= set(after)  # nothing already held was changed


client_value = st.one_of(
    st.text(max_size=12),
    st.integers(-5, 10**12),
    st.floats(),
    st.booleans(),
    st.none(),
    st.lists(st.text(max_size=3), max_size=2),
    st.sampled_from(INJECTIONS + ["100", "200", "NJ", "NJ,TX", "yes", "\x00", "x" * (1 << 16)]),
)
CLIENT_KEYS = ["slug", "name", "workspace", "package_tier", "licensed_states", "target_override",
               "max_home_value", "active", "bison_token_env", "slack_channel", "Client Name"]  # fmt: skip


@st.composite
def client_files(draw: st.DrawFn) -> tuple[str, bytes]:
    kind = draw(st.sampled_from(["bytes", "yaml-text", "yaml", "yaml", "csv"]))
    if kind == "bytes":
        return draw(st.sampled_from(["c.yaml", "c.csv"])), draw(st.binary(max_size=300))
    if kind == "yaml-text":
        return "c.yaml", draw(st.text(max_size=200)).encode("utf-8", errors="replace")
    base = {"slug": "fuzzed", "name": "Fuzzed", "package_tier": 100, "licensed_states": ["NJ"]}
    records = []
    for _ in range(draw(st.integers(0, 3))):
        record = dict(base) if draw(st.booleans()) else {}
        for key in draw(st.lists(st.sampled_from(CLIENT_KEYS), max_size=4)):
            record[key] = draw(client_value)
        records.append(record)
    if kind == "yaml":
        import yaml

        return "c.yaml", yaml.safe_dump({"clients": records}, allow_unicode=True).encode()
    columns = list(dict.fromkeys(k for r in records for k in r)) or ["slug"]
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(columns)
    for record in records:
        writer.writerow(["" if record.get(c) is None else str(record.get(c)) for c in columns])
    return "c.csv", buffer.getvalue().encode("utf-8")


@SLOW
@given(file=client_files())
@example(file=("c.yaml", b"- slug: neg\n  name: N\n  package_tier: 100\n  licensed_states: NJ\n"
                         b"  target_override: -5\n"))  # fmt: skip
@example(file=("c.yaml", b"- slug: big\n  name: B\n  package_tier: 100\n  licensed_states: NJ\n"
                         b"  target_override: 99999999999\n"))  # fmt: skip
@example(file=("c.yaml", b"- slug: nan\n  name: N\n  package_tier: 100\n  licensed_states: NJ\n"
                         b"  max_home_value: .nan\n"))  # fmt: skip
@example(
    file=("c.yaml", b'- slug: nul\n  name: "A\\0"\n  package_tier: 100\n  licensed_states: NJ\n')
)
@example(file=("c.yaml", b"[" * 5000))  # nesting deeper than the parser's recursion
@example(file=("c.csv", b"slug,name,package_tier,licensed_states\nbig,B,100," + b"N" * 200_000))
@example(file=("c.yaml", b"- slug: ok\n  name: =cmd|' /C calc'!A0\n  package_tier: 200\n"
                         b"  licensed_states: [TX, NJ]\n"))  # fmt: skip
def test_client_import_writes_everything_or_nothing(
    database_url: str, file: tuple[str, bytes]
) -> None:
    INPUTS_TRIED["homeowner clients import"] += 1
    name, data = file
    before = table_rows(database_url, "clients")
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / name
        path.write_bytes(data)
        code, out, err = cli("clients", "import", str(path))
    after = table_rows(database_url, "clients")
    if code != 0:
        assert_clear_refusal(code, err, "clients")
        assert after == before, "a refused client import changed the clients table"
        return
    imported = out.split(":", 1)[1].strip().split(", ")
    slugs_after = {r[0] for r in after}
    assert set(imported) <= slugs_after
    assert slugs_after - set(imported) == {r[0] for r in before} - set(imported)


def test_parse_clients_refuses_values_the_database_would_reject() -> None:
    base = "- slug: a\n  name: A\n  package_tier: 100\n  licensed_states: NJ\n"
    for extra, message in [
        ("  target_override: -5\n", "target override"),
        ("  target_override: 99999999999\n", "target override"),
        ("  max_home_value: .nan\n", "max home value"),
        ("  max_home_value: -1\n", "max home value"),
        ('  slack_channel: "#a\\0"\n', "NUL"),
    ]:
        with pytest.raises(TerritoryError, match=message):
            parse_clients(base + extra, "c.yaml")
    with pytest.raises(TerritoryError, match="not valid YAML"):
        parse_clients("[" * 5000, "c.yaml")
    with pytest.raises(TerritoryError, match="not readable CSV"):
        parse_clients("slug,name\na," + "x" * 200_000 + "\n", "c.csv")


def test_zip_sheet_reports_a_nul_colour_as_a_problem() -> None:
    sheet = parse_zip_sheet("Zipcode,Territory,Color\n07030,acme,re\x00d\n")
    assert sheet.problems == ["line 2: a cell holds a NUL character"]


# -- the Evergreen title parser -------------------------------------------------------------------

TITLE_PARTS = st.one_of(
    st.text(max_size=40),
    st.builds(
        lambda prefix, month, start, dash, end, tail: f"{prefix}{month} {start}{dash}{end}{tail}",
        st.sampled_from(
            [
                "Evergreen, Last Upload: ",
                "evergreen,last upload:",
                "EVERGREEN , LAST  UPLOAD : ",
                "Evergreen Last Upload: ",
                "=Evergreen, Last Upload: ",
            ]
        ),  # fmt: skip
        st.sampled_from(["February", "feb", "Feb.", "Ma", "Jun", "Ju", "Sept", "Smarch", "", "💥"]),
        st.integers(-1, 40).map(str) | st.sampled_from(["٣", "01", "1e1", ""]),
        st.sampled_from(["\u2013", "\u2014", "-", "--", " - ", "~", ""]),
        st.integers(-1, 40).map(str) | st.sampled_from(["٧", "07", ""]),
        st.sampled_from(["", " ", "\n", " renewals", "x" * 1000]),
    ),
)


@settings(max_examples=400, deadline=None)
@given(TITLE_PARTS)
@example("x" * (1 << 20))
@example("Evergreen, Last Upload: " + " " * 100_000 + "x")
def test_evergreen_title_parses_to_a_window_or_a_clear_error(title: str) -> None:
    INPUTS_TRIED["parse_evergreen_title"] += 1
    try:
        parsed = parse_evergreen_title(title)
    except ValueError as exc:
        assert "campaign title" in str(exc)
        return
    assert isinstance(parsed, EvergreenTitle)
    window = parsed.window(date(2027, 6, 15))
    assert window.start.month == parsed.month and window.start.day == parsed.start_day


@settings(max_examples=100, deadline=None)
@given(st.dates(min_value=date(2000, 1, 1), max_value=date(2099, 12, 1)))
def test_every_evergreen_title_we_write_parses_back(day: date) -> None:
    INPUTS_TRIED["parse_evergreen_title"] += 1
    for window in windows_of_month(day.replace(day=1)):
        parsed = parse_evergreen_title(window.evergreen_title)
        assert parsed.window(window.start) == window
    assert RenewalWindow.containing(day).start <= day
