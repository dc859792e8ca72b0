"""Every PT2 rule and every rejection reason, the SOP's examples, and a property test."""

from __future__ import annotations

import io
from datetime import date

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from homeowner_dagster.leads.cleaning import (
    WHITESPACE,
    clean_leads,
    dedupe_key,
    normalised_address,
    parse_home_values,
    tidy_addresses,
    tidy_emails,
    tidy_names,
    tidy_phones,
    tidy_zips,
)
from homeowner_dagster.leads.cole_csv import read_cole_csv, write_people_csv
from homeowner_dagster.leads.columns import CLEANED_COLUMNS, SOURCE_COLUMNS
from homeowner_dagster.leads.routing import RoutingRule, route_destinations
from homeowner_dagster.leads.schemas import CleanedLeadFrame, RawLeadFrame, RejectedLeadFrame

FEB_2027 = date(2027, 2, 1)
GOOD = {
    "First_Name": "ann", "Last_Name": "lee", "Address_1": "1 Main St", "City": "Austin",
    "State": "TX", "Zip": "78701", "Cell Phone Number": "", "Email_Address": "ann@x.com",
    "Purchase_Date (MM/DD/YYYY)": "2/3/2020", "Home_Value": "450000", "Head_Household": "Y",
    "Income": "", "Date_of_Birth": "",
}  # fmt: skip


def raw_frame(*changes: dict, drop: tuple[str, ...] = ()) -> pd.DataFrame:
    rows = []
    for i, change in enumerate(changes):
        row = {**GOOD, "Email_Address": f"p{i}@x.com", **change}
        rows.append({k: v for k, v in row.items() if k not in drop})
    frame = pd.DataFrame(rows, dtype=object)
    frame["source_export"] = "cole.csv"
    frame["source_row"] = range(1, len(frame) + 1)
    return frame


def one(change: dict, **options):
    return clean_leads(raw_frame(change), FEB_2027, **options)


def reason_of(change: dict, **options) -> str | None:
    result = one(change, **options)
    return result.rejected["reason"].iloc[0] if len(result.rejected) else None


def test_sop_name_examples():
    names = pd.Series(["o'brien", "mary-jane", "JOSÉ", "  ann   marie "])
    assert tidy_names(names).tolist() == ["O'Brien", "Mary-Jane", "José", "Ann Marie"]


def test_address_and_city_rules():
    addresses = pd.Series(["9 5TH AVE", "12 MAIN ST", "1 n  22ND\nst", "3 3RD   rd"])
    assert tidy_addresses(addresses).tolist() == [
        "9 5th Ave",
        "12 Main St",
        "1 N 22nd St",
        "3 3rd Rd",
    ]
    lead = one({"City": "san  ANTONIO", "State": " tx"}).cleaned.iloc[0]
    assert (lead["city"], lead["state"]) == ("San Antonio", "TX")


def test_zip_rules():
    zips = pd.Series(["7034", "78701-1234", "787011234", " 78701 ", "ABCDE", "123456", ""])
    assert tidy_zips(zips).tolist() == ["07034", "78701", "78701", "78701", "", "", ""]


def test_phone_rules():
    phones = pd.Series(["+1 (512) 555-0100", "512.555.0100", "555-0100", "", "22 512 555 0100"])
    assert tidy_phones(phones).tolist() == ["5125550100", "5125550100", "", "", ""]


def test_home_value_rules():
    values = pd.Series(["$1,250,000.00", "900,001", "450000", "", "n/a", "-5"])
    parsed = parse_home_values(values)
    assert parsed.iloc[:3].tolist() == [1250000.0, 900001.0, 450000.0]
    assert parsed.iloc[3:].isna().all()


def test_email_is_trimmed_and_lower_cased():
    assert (
        one({"Email_Address": "  Ann.Lee@Example.COM "}).cleaned["email"].iloc[0]
        == "ann.lee@example.com"
    )


@pytest.mark.parametrize(
    "change, reason",
    [
        ({"Zip": "ABCDE"}, "invalid_zip"),
        ({"Email_Address": ""}, "invalid_email"),
        ({"Email_Address": "ann@@x.com"}, "invalid_email"),
        ({"Email_Address": "ann..lee@x.com"}, "invalid_email"),
        ({"Purchase_Date (MM/DD/YYYY)": "someday"}, "invalid_purchase_date"),
        ({"Purchase_Date (MM/DD/YYYY)": "2/30/2020"}, "invalid_purchase_date"),
        ({"Purchase_Date (MM/DD/YYYY)": "3/3/2020"}, "outside_renewal_month"),
        ({"Home_Value": ""}, "missing_home_value"),
        ({"Home_Value": "unknown"}, "missing_home_value"),
        ({"Head_Household": ""}, "not_head_of_household"),
        ({"Head_Household": "no"}, "not_head_of_household"),
        ({"Head_Household": "FALSE"}, "not_head_of_household"),
        ({"Head_Household": "0"}, "not_head_of_household"),
        ({"Home_Value": "900001"}, "home_value_above_max"),
        ({"Home_Value": "900000"}, None),
        ({"Zip": "ABCDE", "Email_Address": ""}, "invalid_zip"),  # first reason wins
        ({"Home_Value": "", "Head_Household": "N"}, "missing_home_value"),
    ],
)
def test_every_reason_in_order(change, reason):
    assert reason_of(change) == reason


def test_accepted_date_forms_and_derived_columns():
    forms = ["2/3/2020", "02/03/2020", "2020-02-03", "02-03-2020"]
    result = clean_leads(raw_frame(*[{"Purchase_Date (MM/DD/YYYY)": f} for f in forms]), FEB_2027)
    assert len(result.cleaned) == 4
    lead = result.cleaned.iloc[0]
    assert lead["purchase_date"] == pd.Timestamp("2020-02-03")
    assert lead["purchase_day"] == 3
    assert lead["readable_purchase_date"] == "February 3rd"
    assert lead["renewal_date"] == pd.Timestamp("2027-02-03")
    assert lead["renewal_window"] == pd.Timestamp("2027-02-01")


def test_readable_dates_and_windows():
    days = ["2/21/2019", "2/22/2019", "2/11/2019", "2/14/2019", "2/15/2019"]
    result = clean_leads(raw_frame(*[{"Purchase_Date (MM/DD/YYYY)": d} for d in days]), FEB_2027)
    assert result.cleaned["readable_purchase_date"].tolist() == [
        "February 21st", "February 22nd", "February 11th", "February 14th", "February 15th",
    ]  # fmt: skip
    assert result.cleaned["renewal_window"].dt.day.tolist() == [15, 22, 8, 8, 15]


def test_feb_29_renews_on_feb_28_in_a_common_year():
    lead = one({"Purchase_Date (MM/DD/YYYY)": "2/29/2020"}).cleaned.iloc[0]
    assert lead["renewal_date"] == pd.Timestamp("2027-02-28")
    assert lead["renewal_window"] == pd.Timestamp("2027-02-22")
    leap = clean_leads(raw_frame({"Purchase_Date (MM/DD/YYYY)": "2/29/2020"}), date(2028, 2, 1))
    assert leap.cleaned["renewal_date"].iloc[0] == pd.Timestamp("2028-02-29")


def test_home_value_and_max():
    assert (
        one({"Home_Value": "$1,250,000.00"}, max_home_value=2_000_000).cleaned["home_value"].iloc[0]
        == 1_250_000.0
    )
    assert reason_of({"Home_Value": "950000"}, max_home_value=1_000_000) is None


def test_high_net_worth_routing():
    frame = raw_frame(
        {"Home_Value": "$1,250,000.00", "State": "TX"},
        {"Home_Value": "$1,250,000.00", "State": "NJ"},
        {"Home_Value": "$1,250,000.00", "State": "tx", "Zip": "bad"},
        {"Home_Value": "100000", "State": "TX"},
    )
    result = clean_leads(frame, FEB_2027, hnw_states=["tx"])
    assert result.hnw["source_row"].tolist() == [1]
    assert result.rejected["reason"].tolist() == ["home_value_above_max", "invalid_zip"]
    assert result.cleaned["source_row"].tolist() == [4]
    assert list(result.hnw.columns) == CLEANED_COLUMNS + SOURCE_COLUMNS
    without = clean_leads(frame, FEB_2027)
    assert without.hnw.empty and without.summary()["by_reason"]["home_value_above_max"] == 2


TEXAS = RoutingRule("texas-hnw", "agency-hnw", ("TX",), 900_000)
JERSEY = RoutingRule("jersey-hnw", "jersey-hnw", ("NJ",), 1_000_000)


def test_a_rule_routes_only_above_its_own_threshold_and_above_the_client_cap():
    frame = raw_frame(
        {"Home_Value": "800000", "State": "TX"},  # above a 700k cap, under the rule: rejected
        {"Home_Value": "950000", "State": "TX"},  # above both: routed
        {"Home_Value": "650000", "State": "TX"},  # under the cap: the client's own lead
        {"Home_Value": "950000", "State": "OK"},  # no rule for Oklahoma: rejected
    )
    result = clean_leads(frame, FEB_2027, max_home_value=700_000, routing_rules=[TEXAS])
    assert result.hnw["source_row"].tolist() == [2]
    assert result.destinations.tolist() == ["agency-hnw"]
    assert result.cleaned["source_row"].tolist() == [3]
    assert result.rejected.set_index("source_row")["reason"].to_dict() == {
        1: "home_value_above_max",
        4: "home_value_above_max",
    }
    # A cap above the rule's threshold keeps the client's own leads under its cap.
    high_cap = clean_leads(frame, FEB_2027, max_home_value=2_000_000, routing_rules=[TEXAS])
    assert high_cap.hnw.empty and len(high_cap.cleaned) == 4


def test_each_rule_sends_to_its_own_destination_first_match_in_file_order():
    other = RoutingRule("texas-other", "other-hnw", ("TX", "NJ"), 900_000)
    frame = raw_frame(
        {"Home_Value": "1200000", "State": "TX"},
        {"Home_Value": "1200000", "State": "NJ"},
        {"Home_Value": "950000", "State": "NJ"},  # under JERSEY's threshold: the next rule takes it
    )
    result = clean_leads(frame, FEB_2027, routing_rules=[TEXAS, JERSEY, other])
    assert dict(zip(result.hnw["source_row"], result.destinations, strict=True)) == {
        1: "agency-hnw",
        2: "jersey-hnw",
        3: "other-hnw",
    }
    assert {d: f["source_row"].tolist() for d, f in result.routed().items()} == {
        "agency-hnw": [1],
        "jersey-hnw": [2],
        "other-hnw": [3],
    }
    assert result.summary()["routed_to"] == {"agency-hnw": 1, "jersey-hnw": 1, "other-hnw": 1}
    reordered = clean_leads(frame, FEB_2027, routing_rules=[other, TEXAS, JERSEY])
    assert set(reordered.destinations) == {"other-hnw"}
    # Rows conserved per destination: raw = cleaned + rejected + routed.
    assert len(result.cleaned) + len(result.rejected) + sum(map(len, result.routed().values())) == 3


def test_routing_rule_from_a_stored_rule_defaults_to_900k():
    rule = RoutingRule.from_record(
        {"name": "r", "destination_client": "d", "source_states": ["tx"], "threshold": None}
    )
    assert rule == RoutingRule("r", "d", ("TX",), 900_000.0)
    destinations = route_destinations(
        pd.Series(["TX", "TX", "TX"]),
        pd.Series([900_000.0, 900_001.0, float("nan")]),
        800_000,
        [rule],
    )
    assert destinations.tolist() == ["", "d", ""]


@pytest.mark.parametrize(
    ("purchase", "pulled_on", "reason"),
    [
        ("2/3/2027", None, "invalid_purchase_date"),  # in the renewal month itself
        ("2/20/2031", None, "invalid_purchase_date"),  # years ahead
        ("1/1/2027", None, "invalid_purchase_date"),  # the first day of the renewal year
        ("12/20/2026", date(2026, 12, 15), "invalid_purchase_date"),  # after the pull
        ("2/3/2026", date(2026, 12, 15), None),  # one year before: renews 2027-02-03
        ("12/15/2026", date(2026, 12, 15), "outside_renewal_month"),  # the pull day is a real date
    ],
)
def test_purchase_dates_that_cannot_renew_in_the_month(purchase, pulled_on, reason):
    assert reason_of({"Purchase_Date (MM/DD/YYYY)": purchase}, pulled_on=pulled_on) == reason


def test_leads_another_client_holds_are_held_by_other_client_not_duplicate():
    frame = raw_frame(
        {"Email_Address": "ann@x.com"},
        {"Email_Address": "ann@x.com"},
        {"Email_Address": "bob@x.com"},
    )
    first = clean_leads(frame, FEB_2027)
    ann, bob = first.cleaned["dedupe_key"].tolist()
    result = clean_leads(frame, FEB_2027, held_by_others=[ann], known_dedupe_keys=[bob])
    assert result.rejected["reason"].tolist() == [
        "held_by_other_client",
        "held_by_other_client",
        "duplicate",
    ]
    by_reason = result.summary()["by_reason"]
    assert (by_reason["held_by_other_client"], by_reason["duplicate"]) == (2, 1)
    assert result.cleaned.empty


@pytest.mark.parametrize(
    "first, joint",
    [
        ("John & Mary", True),
        ("john and mary", True),
        ("Smith, John", True),
        ("Alexandra", False),
        ("Andy", False),
    ],
)
def test_joint_owner_first_names_without_head_of_household_column(first, joint):
    result = clean_leads(raw_frame({"First_Name": first}, drop=("Head_Household",)), FEB_2027)
    assert (result.summary()["by_reason"]["not_head_of_household"] == 1) is joint
    off = clean_leads(
        raw_frame({"First_Name": first}, drop=("Head_Household",)),
        FEB_2027,
        head_of_household_required=False,
    )
    assert len(off.cleaned) == 1


def test_duplicates_keep_the_first_and_known_keys():
    frame = raw_frame(
        {"Email_Address": "Ann@X.com", "Address_1": "1 Main St., Apt 2"},
        {"Email_Address": "ann@x.com", "Address_1": "1  MAIN ST APT 2"},
        {"Email_Address": "bob@x.com"},
    )
    result = clean_leads(frame, FEB_2027)
    assert result.cleaned["source_row"].tolist() == [1, 3]
    assert result.rejected["reason"].tolist() == ["duplicate"]
    assert result.rejected["Email_Address"].tolist() == ["ann@x.com"]  # original value
    bob = result.cleaned["dedupe_key"].iloc[1]
    again = clean_leads(frame, FEB_2027, known_dedupe_keys=[bob])
    assert again.rejected["reason"].tolist() == ["duplicate", "duplicate"]


def test_dedupe_key_is_sha256_of_email_and_normalised_address():
    import hashlib

    key = dedupe_key(pd.Series([" Ann@X.com"]), pd.Series(["1 Main St.,  Apt 2"])).iloc[0]
    assert key == hashlib.sha256(b"ann@x.com|1 main st apt 2").hexdigest()


def test_mailing_property_shape_uses_the_property_address():
    raw = pd.DataFrame(
        [
            {
                "First Name": "ann",
                "Last Name": "lee",
                "Mailing Address": "PO BOX 1",
                "Mailing City": "Elsewhere",
                "Mailing State": "CA",
                "Mailing ZIP": "90210",
                "Property Address": "4 1ST ST",
                "Property City": "austin",
                "Property State": "TX",
                "Property ZIP": "78701-0001",
                "Home Value Estimate": "$300,000",
                "Purchase Date": "2/1/2001",
                "Email": "ann@x.com",
            }
        ],
        dtype=object,
    )
    lead = clean_leads(raw, FEB_2027).cleaned.iloc[0]
    assert (lead["address"], lead["city"], lead["state"], lead["zip"]) == (
        "4 1st St",
        "Austin",
        "TX",
        "78701",
    )
    assert lead["source_row"] == 1


def test_reject_moves_leads_with_original_values_and_summary():
    frame = raw_frame({"First_Name": "ANN"}, {}, {"Zip": "x"})
    result = clean_leads(frame, FEB_2027)
    later = result.reject(result.cleaned["source_row"] == 1, "email_not_safe_to_send")
    assert later.cleaned["source_row"].tolist() == [2]
    assert later.rejected["reason"].tolist() == ["email_not_safe_to_send", "invalid_zip"]
    assert later.rejected["First_Name"].iloc[0] == "ANN"
    summary = later.summary()
    assert summary == {
        "input_rows": 3, "cleaned_rows": 1, "rejected_rows": 2, "hnw_rows": 0, "routed_to": {},
        "by_reason": {**dict.fromkeys(summary["by_reason"], 0), "invalid_zip": 1, "email_not_safe_to_send": 1},
    }  # fmt: skip
    with pytest.raises(ValueError):
        result.reject(result.cleaned["source_row"] == 1, "because")
    RejectedLeadFrame.validate(later.rejected)


def test_frames_satisfy_their_schemas():
    frame = raw_frame({}, {"Zip": "x"}, {"Home_Value": "2000000"})
    RawLeadFrame.validate(frame)
    result = clean_leads(frame, FEB_2027, hnw_states=["TX"])
    CleanedLeadFrame.validate(result.cleaned)
    CleanedLeadFrame.validate(result.hnw)
    RejectedLeadFrame.validate(result.rejected)


def round_trip(frame: pd.DataFrame) -> pd.DataFrame:
    """Write cleaned leads as the command does and read them back as a new export."""
    buffer = io.StringIO()
    path = None
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "cleaned.csv"
        write_people_csv(frame, path)
        del buffer
        return read_cole_csv(path.read_bytes(), "cleaned.csv")


messy_text = st.text(alphabet=st.sampled_from(list("aZé '-&,.=+@ \n1")), max_size=12)
rows = st.fixed_dictionaries(
    {
        "First_Name": st.one_of(messy_text, st.sampled_from(["o'brien", "JOHN & MARY", "=cmd"])),
        "Last_Name": messy_text,
        "Address_1": st.one_of(messy_text, st.sampled_from(["9 5TH AVE", "1 Main St.", "-1 x"])),
        "City": messy_text,
        "State": st.sampled_from(["TX", "nj", "texas", "", "=1"]),
        "Zip": st.sampled_from(["7034", "78701", "78701-1234", "x", ""]),
        "Cell Phone Number": st.sampled_from(["+1 512 555 0100", "", "12"]),
        "Email_Address": st.sampled_from(
            ["a@x.com", "A@X.COM", "b@y.org", "bad", "", "'-a@x.com", "-a@x.com"]
        ),
        "Purchase_Date (MM/DD/YYYY)": st.sampled_from(
            ["2/3/2020", "2020-02-29", "03-01-2020", "2/30/2020", "x"]
        ),
        "Home_Value": st.sampled_from(["$1,250,000.00", "900000", "900000.01", "", "12.5", "0"]),
        "Head_Household": st.sampled_from(["Y", "N", "", "yes", "False"]),
        "Date_of_Birth": st.sampled_from(["1/2/1960", "", "unknown", "=1"]),
    }
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(rows, max_size=12), st.booleans(), st.booleans())
def test_rows_are_conserved_and_cleaning_twice_changes_nothing(records, routing, hoh):
    columns = list(GOOD)
    raw = pd.DataFrame(records, columns=[c for c in columns if c != "Income"], dtype=object).fillna(
        ""
    )
    raw["source_export"] = "cole.csv"
    raw["source_row"] = range(1, len(raw) + 1)
    options = dict(hnw_states=["TX"] if routing else [], head_of_household_required=hoh)
    first = clean_leads(raw, FEB_2027, **options)
    assert len(first.cleaned) + len(first.rejected) + len(first.hnw) == len(raw)
    everywhere = sorted(
        first.cleaned["source_row"].tolist()
        + first.rejected["source_row"].tolist()
        + first.hnw["source_row"].tolist()
    )
    assert everywhere == list(range(1, len(raw) + 1))
    CleanedLeadFrame.validate(first.cleaned)
    second = clean_leads(round_trip(first.cleaned), FEB_2027, **options)
    assert second.rejected.empty and second.hnw.empty
    pd.testing.assert_frame_equal(
        second.cleaned.reset_index(drop=True),
        first.cleaned.reset_index(drop=True),
        check_dtype=False,
    )


def test_whitespace_is_what_python_strips():
    import sys

    assert set(WHITESPACE) == {c for c in map(chr, range(sys.maxunicode + 1)) if c.isspace()}


ASCII_RULES = [tidy_addresses, tidy_emails, tidy_phones, normalised_address]


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.text(
            alphabet=st.sampled_from(list("aZs tT1 9\t\n\x0b\x1c,.'=-+@()&$nNdDrRhH")), max_size=14
        ),
        min_size=1,
        max_size=20,
    )
)
def test_arrow_and_python_agree_on_ascii(values):
    for rule in ASCII_RULES:
        in_arrow = rule.__wrapped__(pd.Series(values, dtype="string[pyarrow]"))
        in_python = rule.__wrapped__(pd.Series(values, dtype=object))
        assert in_arrow.astype(object).tolist() == in_python.tolist(), rule.__name__


def test_text_beyond_ascii_takes_pythons_way():
    values = pd.Series(["İSTANBUL CAD", "STRAßE 5TH", "ΣΟΦΟΣ", "١٢٣ main", "plain st", "x\u2003 y"])
    for rule in ASCII_RULES:
        expected = rule.__wrapped__(values.astype(object)).tolist()
        assert rule(values).astype(object).tolist() == expected, rule.__name__
    assert tidy_names(pd.Series(["ßen", "İ"])).tolist() == ["ßen".title(), "İ".title()]  # "Ssen"


def test_every_date_reaches_the_bison_csv_as_yyyy_mm_dd():
    """The two paths that build a lead list: leads straight from cleaning (pandas timestamps)
    and leads read back from Postgres (datetime.date, birth dates as text)."""
    import csv

    from homeowner_dagster.resources.bison import lead_list_csv

    cleaned = one({"Date_of_Birth": "3/4/1961"}).cleaned
    from_db = cleaned.assign(
        renewal_date=cleaned["renewal_date"].dt.date,
        purchase_date=cleaned["purchase_date"].dt.date,
        date_of_birth="1961-03-04",
    ).astype(object)
    as_text = cleaned.assign(renewal_date="2027-02-03 00:00:00", date_of_birth="03/04/1961")
    for frame in (cleaned, from_db, as_text):
        data, mapping = lead_list_csv(frame)
        row = next(csv.DictReader(io.StringIO(data.decode())))
        assert (row["renewal_date"], row["date_of_birth"]) == ("2027-02-03", "1961-03-04")
        assert mapping["renewal_date"] == "renewal_date"
