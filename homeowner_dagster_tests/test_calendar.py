"""The renewal calendar: the SOP's examples and properties over eleven years of windows."""

from __future__ import annotations

from datetime import date, timedelta

import pandas as pd
import pytest

from homeowner_dagster.leads.calendar import (
    RenewalWindow,
    due_window,
    parse_evergreen_title,
    parse_month,
    readable_date,
    readable_dates,
    renewal_date,
    renewal_dates,
    window_starts,
    windows_of_month,
)


@pytest.mark.parametrize(
    ("monday", "start", "end"),
    [
        (date(2024, 1, 1), date(2024, 2, 1), date(2024, 2, 7)),
        (date(2024, 1, 8), date(2024, 2, 8), date(2024, 2, 14)),
        (date(2024, 1, 15), date(2024, 2, 15), date(2024, 2, 21)),
        (date(2024, 1, 22), date(2024, 2, 22), date(2024, 2, 29)),
    ],
)
def test_sop_due_windows(monday: date, start: date, end: date) -> None:
    window = due_window(monday)
    assert window == RenewalWindow(start, end)
    assert window.due_monday == monday


def test_a_monday_with_no_due_window() -> None:
    # 2024-01-29 + 28..34 = Feb 26 .. Mar 3: Feb 22 is too early, Mar 1 lies in range.
    assert due_window(date(2024, 1, 29)) == RenewalWindow(date(2024, 3, 1), date(2024, 3, 7))
    # 2024-02-05 + 28..34 = Mar 4 .. Mar 10: Mar 8 lies in range.
    assert due_window(date(2024, 2, 5)).start == date(2024, 3, 8)
    # 2026-12-28 + 28..34 = Jan 25 .. Jan 31 2027: no window starts then.
    assert due_window(date(2026, 12, 28)) is None


def test_every_window_2025_to_2035_has_exactly_one_due_monday_and_months_are_tiled() -> None:
    mondays = []
    d = date(2024, 11, 4)  # a Monday before the first window of 2025
    while d <= date(2035, 12, 31):
        mondays.append(d)
        d += timedelta(days=7)
    due_by_window: dict[RenewalWindow, list[date]] = {}
    for monday in mondays:
        window = due_window(monday)
        if window is not None:
            due_by_window.setdefault(window, []).append(monday)
    month = date(2025, 1, 1)
    while month <= date(2035, 12, 1):
        windows = windows_of_month(month)
        assert [w.start.day for w in windows] == [1, 8, 15, 22]
        covered = []
        for w in windows:
            assert due_by_window.get(w) == [w.due_monday], w
            assert 28 <= (w.start - w.due_monday).days <= 34
            assert w.due_monday.weekday() == 0
            covered.extend(w.start + timedelta(days=i) for i in range((w.end - w.start).days + 1))
            assert 7 <= (w.end - w.start).days + 1 <= 10
        next_month = (month.replace(day=28) + timedelta(days=4)).replace(day=1)
        expected = [month + timedelta(days=i) for i in range((next_month - month).days)]
        assert covered == expected
        month = next_month


def test_list_names_and_titles() -> None:
    feb = windows_of_month(date(2027, 2, 1))
    assert feb[0].list_name == "(February 1st - 7th renewals) 2027"
    assert feb[1].list_name == "(February 8th - 14th renewals) 2027"
    assert feb[2].list_name == "(February 15th - 21st renewals) 2027"
    assert feb[3].list_name == "(February 22nd - 28th renewals) 2027"
    assert windows_of_month(date(2028, 2, 1))[3].list_name == "(February 22nd - 29th renewals) 2028"
    # Next year's window has a list name of its own: it can never find this year's list.
    assert windows_of_month(date(2028, 2, 1))[0].list_name != feb[0].list_name
    assert feb[0].evergreen_title == "Evergreen, Last Upload: February 1\u20137"
    assert (
        windows_of_month(date(2027, 3, 1))[3].evergreen_title
        == "Evergreen, Last Upload: March 22\u201331"
    )


@pytest.mark.parametrize(
    "title",
    [
        "Evergreen, Last Upload: February 1\u20137",
        "Evergreen, Last Upload: February 1-7",
        "EVERGREEN, LAST UPLOAD: february 1 - 7",
        "evergreen,last upload: Feb 1-7",
        "Evergreen, Last Upload: Feb 1\u20137",
        "Evergreen, Last Upload: February 1st - 7th",
        "Evergreen, Last Upload: February 1st-7th",
        "evergreen, last upload: february 1ST \u2014 7TH",
        "Evergreen, Last Upload: Feb. 1 \u2212 7",
    ],
)
def test_title_parser_accepts_the_spellings_people_use(title: str) -> None:
    parsed = parse_evergreen_title(title)
    assert (parsed.month, parsed.start_day, parsed.end_day) == (2, 1, 7)
    assert parsed.window(date(2027, 1, 5)) == RenewalWindow(date(2027, 2, 1), date(2027, 2, 7))


@pytest.mark.parametrize(
    "title",
    [
        "Evergreen",
        "Evergreen, Last Upload: Smarch 1-7",
        "Evergreen, Last Upload: March 2-8",
        "",
        "Evergreen, Last Upload: March 22-25",
        "Evergreen, Last Upload: Ma 1-7",  # March or May: never a guess
        "Evergreen, Last Upload: February 1st and 7th",
        "Evergreen, Last Upload: 1-7 February",
        "Evergreen, Last Upload: Feb 22-31",  # impossible days are refused
        "Evergreen, Last Upload: April 22-31",
        "Evergreen, Last Upload: June 22-29",
    ],
)
def test_title_parser_refuses_with_the_title_quoted(title: str) -> None:
    with pytest.raises(ValueError, match="campaign title"):
        parse_evergreen_title(title)


def test_title_round_trips_for_every_window_of_a_year() -> None:
    for month in range(1, 13):
        for w in windows_of_month(date(2027, month, 1)):
            assert parse_evergreen_title(w.evergreen_title).window(w.start) == w
            # Read on its due Monday (28-34 days before), the window itself: this year's.
            assert parse_evergreen_title(w.evergreen_title).window(w.due_monday) == w


@pytest.mark.parametrize(
    ("title", "today", "start"),
    [
        (
            "Evergreen, Last Upload: June 22-30",
            date(2027, 1, 11),
            date(2026, 6, 22),
        ),  # stale: last June
        ("Evergreen, Last Upload: December 22-31", date(2027, 1, 4), date(2026, 12, 22)),
        (
            "Evergreen, Last Upload: Feb 8-14",
            date(2027, 1, 4),
            date(2027, 2, 8),
        ),  # the coming 5 weeks
        (
            "Evergreen, Last Upload: Feb 15-21",
            date(2027, 1, 4),
            date(2026, 2, 15),
        ),  # 6 weeks ahead: last year's
        ("Evergreen, Last Upload: January 1-7", date(2027, 11, 26), date(2027, 1, 1)),
        ("Evergreen, Last Upload: January 1-7", date(2027, 11, 27), date(2028, 1, 1)),
    ],
)
def test_a_titles_year_makes_it_the_latest_window_at_most_five_weeks_ahead(
    title: str, today: date, start: date
) -> None:
    """Never a window more than six months ahead (a stale "June 22-30" in January is last June,
    not next June), never one more than five weeks ahead (a window is uploaded 28-34 days before)."""
    assert parse_evergreen_title(title).window(today).start == start


def test_a_title_the_ledger_knows_is_read_in_the_year_it_was_written() -> None:
    """A window the campaign's title was moved to before (the ledger's) wins over the date rule:
    a window uploaded early still reads as itself."""
    parsed = parse_evergreen_title("Evergreen, Last Upload: January 8-14")
    assert parsed.window(date(2026, 12, 3)).start == date(2026, 1, 8)  # 36 days ahead: last year
    known = [date(2027, 1, 8), date(2026, 12, 22)]
    assert parsed.window(date(2026, 12, 3), known).start == date(2027, 1, 8)


def test_readable_dates_and_renewal_dates() -> None:
    assert readable_date(date(2020, 8, 3)) == "August 3rd"
    assert readable_date(date(2020, 3, 1)) == "March 1st"
    assert readable_date(date(2020, 3, 11)) == "March 11th"
    assert readable_date(date(2020, 3, 22)) == "March 22nd"
    assert renewal_date(date(2016, 2, 29), 2027) == date(2027, 2, 28)
    assert renewal_date(date(2016, 2, 29), 2028) == date(2028, 2, 29)
    s = pd.to_datetime(pd.Series(["2016-02-29", "2019-02-03", "2001-02-21", None, "2010-02-12"]))
    assert list(readable_dates(s).fillna("-")) == [
        "February 29th",
        "February 3rd",
        "February 21st",
        "-",
        "February 12th",
    ]
    renewals = renewal_dates(s, 2027)
    assert renewals.iloc[0] == pd.Timestamp("2027-02-28")
    assert pd.isna(renewals.iloc[3])
    assert list(window_starts(renewals.dropna()).dt.day) == [22, 1, 15, 8]


def test_parse_month() -> None:
    assert parse_month("2027-02") == date(2027, 2, 1)
    for bad in ["2027-13", "Feb 2027", "", "2027/02"]:
        with pytest.raises(ValueError, match="YYYY-MM"):
            parse_month(bad)


def test_a_window_list_holds_one_lead_per_address() -> None:
    from homeowner_dagster.leads.calendar import window_list_leads

    leads = pd.DataFrame(
        {
            "email": ["a@x.com", "b@x.com", "a@x.com"],
            "address": ["1 Main St", "2 Oak Ave", "9 Elm St"],
        }
    )
    assert list(window_list_leads(leads)["address"]) == ["1 Main St", "2 Oak Ave"]


def test_the_sandbox_seed_titles_are_read() -> None:
    """The ordinal style the sandbox's demo workspaces seed (issue 11: it used to be refused)."""
    from homeowner_dagster.sandbox import DEMO_WORKSPACES

    for _, titles in DEMO_WORKSPACES:
        evergreen = [t for t in titles if t.startswith("Evergreen")]
        for title in evergreen:
            parsed = parse_evergreen_title(title)
            assert parsed.start_day in (1, 22)


@pytest.mark.parametrize(
    ("title", "after"),
    [
        ("evergreen,last upload: Feb 1-7", "Evergreen, Last Upload: Feb 8-14"),
        (
            "Evergreen, Last Upload: February 1st - 7th",
            "Evergreen, Last Upload: February 8th - 14th",
        ),
        ("HNW Evergreen, Last Upload: Feb 1st-7th", "HNW Evergreen, Last Upload: Feb 8th-14th"),
        ("Evergreen, Last Upload: February 1\u20137", "Evergreen, Last Upload: February 8\u201314"),
        ("Evergreen, Last Upload: FEB. 1 \u2013 7", "Evergreen, Last Upload: FEB. 8 \u2013 14"),
    ],
)
def test_a_moved_title_keeps_the_campaigns_own_prefix_and_style(title: str, after: str) -> None:
    """Abbreviated or full month (its case and dot), hyphen or en dash (and its spaces),
    ordinals or not: the campaign's own style is kept ("Feb 8-14", the SOP's, stays that way)."""
    from homeowner_dagster.leads.calendar import retitle

    assert retitle(title, RenewalWindow.starting(date(2027, 2, 8))) == after
