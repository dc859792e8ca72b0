"""Reading Cole exports: both header shapes, both encodings, awkward CSV, refused files."""

from __future__ import annotations

import pandas as pd
import pytest

from homeowner_dagster.leads.cole_csv import (
    ColeFileError,
    match_headers,
    read_cole_csv,
    write_people_csv,
)
from homeowner_dagster.leads.spreadsheet import neutralise_series

SOP_HEADER = (
    "First_Name,Last_Name,Address_1,City,State,Zip,Cell Phone Number,Email_Address,"
    "Purchase_Date (MM/DD/YYYY),Home_Value,Head_Household,Income,Date_of_Birth"
)
PROPERTY_HEADER = (
    "First Name,Last Name,Mailing Address,Mailing City,Mailing State,Mailing ZIP,"
    "Property Address,Property City,Property State,Property ZIP,Home Value Estimate,"
    "Purchase Date,Email"
)


def test_sop_shape_is_matched():
    found = match_headers(SOP_HEADER.split(","))
    assert found["first_name"] == "First_Name"
    assert found["address"] == "Address_1"
    assert found["zip"] == "Zip"
    assert found["email"] == "Email_Address"
    assert found["purchase_date"] == "Purchase_Date (MM/DD/YYYY)"
    assert found["phone"] == "Cell Phone Number"
    assert found["head_of_household"] == "Head_Household"
    assert found["date_of_birth"] == "Date_of_Birth"


def test_property_fields_count_in_the_mailing_property_shape():
    found = match_headers(PROPERTY_HEADER.split(","))
    assert found["address"] == "Property Address"
    assert found["city"] == "Property City"
    assert found["state"] == "Property State"
    assert found["zip"] == "Property ZIP"
    assert found["home_value"] == "Home Value Estimate"
    assert "head_of_household" not in found


def test_headers_match_ignoring_case_spaces_underscores_punctuation():
    found = match_headers(
        ["FIRST-NAME", "last name", "ADDRESS 1", "zip.", "E_Mail", "purchase date", "Home-Value"]
    )
    assert found["first_name"] == "FIRST-NAME"
    assert found["email"] == "E_Mail"


def test_missing_required_columns_are_named():
    with pytest.raises(ColeFileError) as caught:
        match_headers(["First Name", "Last Name", "Address", "Zip"])
    message = str(caught.value)
    assert "email" in message and "purchase_date" in message and "home_value" in message
    assert isinstance(caught.value, ValueError)


def test_values_stay_text_with_source_columns():
    data = (
        SOP_HEADER + "\r\nann,lee,1 main st,austin,tx,07034,,a@b.com,2/3/2020,450000,Y,,\r\n\r\n"
    ).encode()
    frame = read_cole_csv(data, "march.csv")
    assert len(frame) == 1
    assert frame.loc[0, "Zip"] == "07034"
    assert frame.loc[0, "Income"] == ""
    assert frame.loc[0, "source_export"] == "march.csv"
    assert frame["source_row"].tolist() == [1]
    assert list(frame.columns[:13]) == SOP_HEADER.split(",")


def test_bom_cp1252_quotes_and_line_breaks(tmp_path):
    text = (
        SOP_HEADER
        + '\n"JOSÉ","Smith, Jr","9 5TH AVE\nApt 2",Newark,NJ,7034,,j@x.com,2/3/2020,"$1,250,000.00",Y,,\n'
    )
    for name, data in [
        ("bom.csv", b"\xef\xbb\xbf" + text.encode("utf-8")),
        ("win.csv", text.encode("cp1252")),
    ]:
        path = tmp_path / name
        path.write_bytes(data)
        frame = read_cole_csv(path, name)
        assert frame.columns[0] == "First_Name"
        assert frame.loc[0, "First_Name"] == "JOSÉ"
        assert frame.loc[0, "Last_Name"] == "Smith, Jr"
        assert frame.loc[0, "Address_1"] == "9 5TH AVE\nApt 2"
        assert frame.loc[0, "Home_Value"] == "$1,250,000.00"


def test_extra_columns_are_carried_and_short_rows_filled():
    data = (SOP_HEADER + ",Notes,Notes\n" + "a,b,c,d,e,12345,,a@b.com,1/1/2020,1,Y\n").encode()
    frame = read_cole_csv(data, "x.csv")
    assert "Notes" in frame.columns and "Notes.1" in frame.columns
    assert frame.loc[0, "Notes"] == "" and frame.loc[0, "Date_of_Birth"] == ""


def test_duplicate_required_header_is_refused():
    data = (SOP_HEADER + ",Email_Address\n").encode()
    with pytest.raises(ColeFileError, match="duplicate"):
        read_cole_csv(data, "x.csv")


@pytest.mark.parametrize("data", [b"", b"\n\n", b"\x81\x8d\x90 not text"])
def test_unreadable_files_are_refused(data):
    with pytest.raises(ColeFileError):
        read_cole_csv(data, "x.csv")


def test_missing_file_is_a_cole_file_error(tmp_path):
    with pytest.raises(ColeFileError, match="cannot read"):
        read_cole_csv(tmp_path / "nope.csv", "nope.csv")


def test_formula_injection_is_neutralised(tmp_path):
    series = pd.Series(["=cmd()", "+1 555", "-2", "@x", "plain", "o'brien"])
    assert neutralise_series(series).tolist() == [
        "'=cmd()",
        "'+1 555",
        "'-2",
        "'@x",
        "plain",
        "o'brien",
    ]
    path = tmp_path / "people.csv"
    write_people_csv(pd.DataFrame({"name": ["=HYPERLINK(1)", "Ann"], "n": [1, 2]}), path)
    assert path.read_text(encoding="utf-8") == "name,n\n'=HYPERLINK(1),1\nAnn,2\n"


def test_arrow_text_holds_the_same_values(tmp_path):
    text = (
        SOP_HEADER
        + '\n"JOSÉ","Smith, Jr","9 5TH AVE\nApt 2",Newark,NJ,07034,,j@x.com,2/3/2020,"$1,250,000.00",Y,,\n'
    )
    data = text.encode("cp1252")
    plain = read_cole_csv(data, "win.csv")
    arrow = read_cole_csv(data, "win.csv", arrow=True)
    assert (plain.dtypes[:13].astype(str) == "object").all()
    assert (arrow.dtypes[:13] == "string[pyarrow]").all()
    pd.testing.assert_frame_equal(arrow.astype(object), plain.astype(object))


@pytest.mark.parametrize(
    "body",
    [
        "a,b,c,d,e,12345,,a@b.com,1/1/2020,1,Y\n",  # short row: pyarrow refuses, pandas fills
        "a,b,c,d,e,12345,,a@b.com,1/1/2020,1,Y,,\n   \n",  # line of blanks: pandas skips it
    ],
)
def test_files_pyarrow_refuses_read_as_pandas_reads_them(body):
    data = (SOP_HEADER + "\n" + body).encode()
    for arrow in (False, True):
        frame = read_cole_csv(data, "x.csv", arrow=arrow)
        assert (
            len(frame) == 1
            and frame.loc[0, "Zip"] == "12345"
            and frame.loc[0, "Date_of_Birth"] == ""
        )


def test_people_csv_quotes_like_the_csv_module_and_formats_numbers_and_dates(tmp_path):
    path = tmp_path / "people.csv"
    frame = pd.DataFrame(
        {
            "text": ["a,b", 'say "hi"', "two\nlines", "bare\rreturn", None, "-5"],
            "value": [450000.0, 1250000.5, 0.1 + 0.2, float("nan"), 1e16, -5.0],
            "day": pd.to_datetime(["2027-02-03", None, "2027-02-28", None, None, None]),
            "n": [1, 2, 3, 4, 5, 6],
        }
    )
    write_people_csv(frame, path)
    assert path.read_bytes().decode("utf-8") == (
        "text,value,day,n\n"
        '"a,b",450000,2027-02-03,1\n'
        '"say ""hi""",1250000.5,,2\n'
        '"two\nlines",0.3,2027-02-28,3\n'
        '"bare\rreturn",,,4\n'
        ",1e+16,,5\n"
        "'-5,-5,,6\n"
    )
    back = pd.read_csv(path, dtype=str, keep_default_na=False)
    assert back["text"].tolist() == ["a,b", 'say "hi"', "two\nlines", "bare\rreturn", "", "'-5"]


def test_people_csv_with_one_column_quotes_empty_cells(tmp_path):
    path = tmp_path / "one.csv"
    write_people_csv(pd.DataFrame({"email": ["a@x.com", ""]}, dtype="string[pyarrow]"), path)
    assert path.read_text(encoding="utf-8") == 'email\na@x.com\n""\n'
