"""`homeowner clean` end to end on files written here: outputs, summary, refusals, no leftovers."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from homeowner_dagster.cli import main

HEADER = (
    "First_Name,Last_Name,Address_1,City,State,Zip,Cell Phone Number,Email_Address,"
    "Purchase_Date (MM/DD/YYYY),Home_Value,Head_Household,Income,Date_of_Birth"
)
ROWS = [
    'o\'brien,SMITH,9 5TH AVE,austin,tx,78701,(512) 555-0100,Ann@X.com,02/03/1999,"$450,000",Y,90,1/2/1960',
    'mary-jane,lee,12 MAIN ST,Dallas,TX,75001,,mj@x.com,2/21/2010,"$1,250,000.00",Y,,',
    "bob,ray,1 Elm St,Newark,NJ,7034,,bob@x.com,2010-03-01,500000,Y,,",
    "bob,ray,1 Elm St,Newark,NJ,7034,,bob@x.com,02-22-2011,950000,Y,,",
]


def write_export(path, rows, header=HEADER):
    path.write_text(header + "\n" + "\n".join(rows) + "\n", encoding="utf-8")
    return path


def test_clean_writes_every_output(tmp_path, capsys):
    export = write_export(tmp_path / "cole.csv", ROWS)
    out = tmp_path / "out"
    code = main(
        ["clean", str(export), "--month", "2027-02", "--out", str(out), "--hnw-states", "TX"]
    )
    assert code == 0
    assert sorted(p.name for p in out.iterdir()) == [
        "cleaned.csv",
        "hnw.csv",
        "rejected.csv",
        "summary.json",
    ]
    cleaned = pd.read_csv(out / "cleaned.csv", dtype=str)
    assert cleaned["first_name"].tolist() == ["O'Brien"]
    assert cleaned.loc[0, "address"] == "9 5th Ave"
    assert cleaned.loc[0, "readable_purchase_date"] == "February 3rd"
    assert cleaned.loc[0, "renewal_window"] == "2027-02-01"
    hnw = pd.read_csv(out / "hnw.csv", dtype=str)
    assert hnw["first_name"].tolist() == ["Mary-Jane"]
    rejected = pd.read_csv(out / "rejected.csv", dtype=str, keep_default_na=False)
    assert rejected["reason"].tolist() == ["outside_renewal_month", "home_value_above_max"]
    assert rejected.loc[0, "Zip"] == "7034"  # original value kept
    summary = json.loads((out / "summary.json").read_text())
    assert summary["input_rows"] == 4
    assert (summary["cleaned_rows"], summary["rejected_rows"], summary["hnw_rows"]) == (1, 2, 1)
    assert summary["by_reason"]["home_value_above_max"] == 1
    printed = capsys.readouterr().out
    assert "outside_renewal_month" in printed and "cleaned" in printed


def test_duplicates_across_files_are_found(tmp_path):
    a = write_export(tmp_path / "a.csv", ROWS[:1])
    b = write_export(tmp_path / "b.csv", ROWS[:1])
    out = tmp_path / "out"
    assert main(["clean", str(a), str(b), "--month", "2027-02", "--out", str(out)]) == 0
    rejected = pd.read_csv(out / "rejected.csv", dtype=str)
    assert rejected["reason"].tolist() == ["duplicate"]
    assert rejected["source_export"].tolist() == ["b.csv"]
    assert not (out / "hnw.csv").exists()


def test_no_head_of_household_flag_keeps_those_rows(tmp_path):
    row = ROWS[0].replace(",Y,", ",N,")
    export = write_export(tmp_path / "cole.csv", [row])
    out = tmp_path / "out"
    assert (
        main(
            [
                "clean",
                str(export),
                "--month",
                "2027-02",
                "--out",
                str(out),
                "--no-head-of-household",
            ]
        )
        == 0
    )
    assert json.loads((out / "summary.json").read_text())["cleaned_rows"] == 1


@pytest.mark.parametrize(
    "args, message",
    [
        (["--month", "2027-13"], "YYYY-MM"),
        (["--month", "2027-02", "--hnw-states", "Texas"], "two-letter"),
    ],
)
def test_bad_arguments_exit_with_one_line(tmp_path, capsys, args, message):
    export = write_export(tmp_path / "cole.csv", ROWS)
    out = tmp_path / "out"
    assert main(["clean", str(export), *args, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err and "Traceback" not in err
    assert not out.exists()


def test_bad_file_leaves_no_partial_output(tmp_path, capsys):
    good = write_export(tmp_path / "good.csv", ROWS)
    bad = write_export(tmp_path / "bad.csv", ["a,b"], header="First_Name,Last_Name")
    out = tmp_path / "out"
    assert main(["clean", str(good), str(bad), "--month", "2027-02", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert "bad.csv" in err and "email" in err and "\n" not in err
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.csv", "good.csv"]
    assert (
        main(["clean", str(tmp_path / "missing.csv"), "--month", "2027-02", "--out", str(out)]) == 2
    )
    assert not out.exists()


def test_rerun_replaces_outputs_in_existing_folder(tmp_path):
    export = write_export(tmp_path / "cole.csv", ROWS)
    out = tmp_path / "out"
    assert (
        main(["clean", str(export), "--month", "2027-02", "--out", str(out), "--hnw-states", "TX"])
        == 0
    )
    assert main(["clean", str(export), "--month", "2027-02", "--out", str(out)]) == 0
    assert not (out / "hnw.csv").exists()
    assert json.loads((out / "summary.json").read_text())["by_reason"]["home_value_above_max"] == 2


def test_cleaning_the_cleaned_file_changes_nothing(tmp_path):
    export = write_export(tmp_path / "cole.csv", ROWS)
    first, second = tmp_path / "first", tmp_path / "second"
    assert main(["clean", str(export), "--month", "2027-02", "--out", str(first)]) == 0
    assert (
        main(["clean", str(first / "cleaned.csv"), "--month", "2027-02", "--out", str(second)]) == 0
    )
    assert (first / "cleaned.csv").read_bytes() == (second / "cleaned.csv").read_bytes()
    assert json.loads((second / "summary.json").read_text())["rejected_rows"] == 0
