"""The renewal calendar: renewal months, renewal windows, due Mondays, list names, evergreen titles.

A homeowner's policy renews on the anniversary of the purchase (the x-date). Each renewal
month is cut into four renewal windows (days 1-7, 8-14, 15-21, 22-end), and each window is
uploaded on the one Monday that falls 28 to 34 days before the window's first day.
"""

from __future__ import annotations

import calendar as _calendar
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np
import pandas as pd

WINDOW_START_DAYS: tuple[int, ...] = (1, 8, 15, 22)
LEAD_DAYS_MIN = 28
LEAD_DAYS_MAX = 34
MONTH_NAMES: tuple[str, ...] = tuple(_calendar.month_name[1:])  # "January" .. "December"


def ordinal(day: int) -> str:
    """`1st`, `2nd`, `3rd`, `4th`, `11th`, `21st`: how the team writes days."""
    if 11 <= day % 100 <= 13:
        suffix = "th"
    else:
        suffix = {1: "st", 2: "nd", 3: "rd"}.get(day % 10, "th")
    return f"{day}{suffix}"


def readable_date(d: date) -> str:
    """`August 3rd`: the purchase date as the SOP's Clay column shows it."""
    return f"{MONTH_NAMES[d.month - 1]} {ordinal(d.day)}"


def last_day_of_month(year: int, month: int) -> int:
    return _calendar.monthrange(year, month)[1]


def parse_month(text: str) -> date:
    """`2027-02` -> date(2027, 2, 1); a clear ValueError otherwise."""
    m = re.fullmatch(r"\s*(\d{4})-(\d{1,2})\s*", str(text))
    if not m or not 1 <= int(m.group(2)) <= 12:
        raise ValueError(f"month must look like YYYY-MM (got {text!r})")
    return date(int(m.group(1)), int(m.group(2)), 1)


def month_key(d: date) -> str:
    return f"{d.year:04d}-{d.month:02d}"


def add_months(d: date, months: int) -> date:
    """First day of the month `months` after d's month."""
    index = d.year * 12 + (d.month - 1) + months
    return date(index // 12, index % 12 + 1, 1)


def renewal_date(purchase: date, renewal_year: int) -> date:
    """The anniversary of `purchase` in `renewal_year`; Feb 29 becomes Feb 28 in a common year."""
    day = min(purchase.day, last_day_of_month(renewal_year, purchase.month))
    return date(renewal_year, purchase.month, day)


@dataclass(frozen=True, order=True)
class RenewalWindow:
    """Days `start.day`..`end.day` of one renewal month."""

    start: date
    end: date

    @classmethod
    def containing(cls, d: date) -> RenewalWindow:
        start_day = max(s for s in WINDOW_START_DAYS if s <= d.day)
        return cls.starting(d.replace(day=start_day))

    @classmethod
    def starting(cls, start: date) -> RenewalWindow:
        if start.day not in WINDOW_START_DAYS:
            raise ValueError(f"a renewal window starts on day 1, 8, 15 or 22 (got {start})")
        if start.day == 22:
            end = start.replace(day=last_day_of_month(start.year, start.month))
        else:
            end = start + timedelta(days=6)
        return cls(start, end)

    @property
    def month(self) -> date:
        return self.start.replace(day=1)

    @property
    def key(self) -> str:
        """The `window` partition key: the ISO date of the first day."""
        return self.start.isoformat()

    @property
    def list_name(self) -> str:
        """`(February 1st - 7th renewals) 2028`: the Email Bison lead list of this window.

        The team's wording plus the year: the SOP's name repeats every year, ours must not, so
        next year's window never finds this year's list.
        """
        month = MONTH_NAMES[self.start.month - 1]
        return f"({month} {ordinal(self.start.day)} - {ordinal(self.end.day)} renewals) {self.start.year}"

    @property
    def evergreen_title(self) -> str:
        """`Evergreen, Last Upload: February 1–7` (en dash), the campaign title after upload."""
        month = MONTH_NAMES[self.start.month - 1]
        return f"{EVERGREEN_PREFIX} {month} {self.start.day}\u2013{self.end.day}"

    @property
    def due_monday(self) -> date:
        """The one Monday whose due window this is (28 to 34 days before the first day)."""
        latest = self.start - timedelta(days=LEAD_DAYS_MIN)
        return latest - timedelta(days=latest.weekday())

    def next(self) -> RenewalWindow:
        return RenewalWindow.starting(self.end + timedelta(days=1))


def client_list_name(window: RenewalWindow, client_name: str, shared_workspace: bool) -> str:
    """The window's Bison list name for a client: the team's name, plus the client's name when
    another client uploads to the same workspace (two clients' lists never share a name)."""
    return f"{window.list_name} {client_name}" if shared_workspace else window.list_name


def windows_of_month(month: date) -> list[RenewalWindow]:
    """The four renewal windows of a month; they tile it with no gap or overlap."""
    first = month.replace(day=1)
    return [RenewalWindow.starting(first.replace(day=d)) for d in WINDOW_START_DAYS]


def due_window(monday: date) -> RenewalWindow | None:
    """The window whose first day lies in [monday+28, monday+34], or None (some Mondays have none)."""
    for offset in range(LEAD_DAYS_MIN, LEAD_DAYS_MAX + 1):
        d = monday + timedelta(days=offset)
        if d.day in WINDOW_START_DAYS:
            return RenewalWindow.starting(d)
    return None


def windows_starting_between(first: date, last: date) -> list[RenewalWindow]:
    """Every window whose first day is in [first, last]."""
    out = []
    d = first
    while d <= last:
        if d.day in WINDOW_START_DAYS:
            out.append(RenewalWindow.starting(d))
        d += timedelta(days=1)
    return out


def renewal_month_pulled_on(day: date) -> date:
    """On the 15th of M the team pulls renewal month M+2."""
    return add_months(day.replace(day=1), 2)


# A window's life in the Bison ledger, in order. `done`: the list is attached and the campaign
# title moved on to it (or left because it already names a later window).
WINDOW_STATES: tuple[str, ...] = ("pending", "list_created", "list_verified", "attached", "done")


def state_at_least(state: str | None, wanted: str) -> bool:
    """Has a window in `state` (None: no ledger row, i.e. pending) reached `wanted`?"""
    return WINDOW_STATES.index(state or "pending") >= WINDOW_STATES.index(wanted)


def windows_to_upload(
    monday: date, done: set[date], pulled_months: set[str]
) -> list[tuple[RenewalWindow, bool]]:
    """What Monday's run asks for: (window, late).

    The due window always (its run ends as skipped with a notice when its month is not pulled),
    and every window of a pulled month that is not `done` and whose first day is still ahead
    (up to Monday + 34 days), whatever state it stopped in: late when its due Monday has passed.
    """
    due = due_window(monday)
    out: list[tuple[RenewalWindow, bool]] = []
    if due is not None and due.start not in done:
        out.append((due, False))
    for window in windows_starting_between(
        monday + timedelta(days=1), monday + timedelta(days=LEAD_DAYS_MAX)
    ):
        # Any window starting before Monday + 28 other than the due one is late.
        if window == due or window.start in done:
            continue
        if month_key(window.month) in pulled_months:
            out.append((window, window.due_monday < monday))
    return sorted(out, key=lambda item: item[0])


# How far back Monday's run looks for missed windows: a window is missed on the first Monday on or
# after its first day, so five weeks cover a schedule that was off for a month; older history
# (months pulled before this pipeline ran) is not announced.
MISSED_LOOKBACK_DAYS = 35


def missed_windows(
    monday: date, settled: set[date], pulled_months: set[str]
) -> list[RenewalWindow]:
    """Windows of pulled months whose first day has come, except `settled` (done or reported)."""
    return [
        window
        for month in sorted(pulled_months)
        for window in windows_of_month(parse_month(month))
        if monday - timedelta(days=MISSED_LOOKBACK_DAYS) < window.start <= monday
        and window.start not in settled
    ]


def window_list_leads(leads: pd.DataFrame) -> pd.DataFrame:
    """The leads of one window's Bison list: one per email address (first by source order).

    Bison keeps one lead per address, so an owner of two homes renewing in the same window gets
    one email, and the ledger records exactly the leads the list holds.
    """
    return leads.drop_duplicates(subset=["email"], keep="first")


EVERGREEN_PREFIX = "Evergreen, Last Upload:"
# A title names a window whose upload is done: at most five weeks ahead of today (a window is
# uploaded 28-34 days before its first day).
TITLE_AHEAD_DAYS = 35
# Any dash people type: hyphen, en dash, em dash, minus sign, figure dash.
_DASHES = "\u2010\u2011\u2012\u2013\u2014\u2015\u2212-"
# `February 1-7`, `Feb 1–7`, `February 1st - 7th`, `February 1st-7th`, any case.
# An optional prefix of the campaign's own (`HNW Evergreen, Last Upload: ...`) is kept on rename.
_TITLE_RE = re.compile(
    r"^\s*+(?P<head>(?:[a-z&'-]++\s++){0,3}?evergreen\s*+,?\s*+last\s++upload\s*+:?)\s*+"
    r"(?P<month>[a-z]++)(?P<dot>\.?)\s*+(?P<start>\d{1,2})(?P<ordinal>st|nd|rd|th)?"
    rf"(?P<dash>\s*+[{_DASHES}]\s*+)(?P<end>\d{{1,2}})(?:st|nd|rd|th)?\s*$",
    re.IGNORECASE,
)
# The longest the last window of each month can be (February: 29 in a leap year).
_MONTH_LAST_DAYS = {
    m: max(last_day_of_month(2028, m), last_day_of_month(2027, m)) for m in range(1, 13)
}


@dataclass(frozen=True)
class EvergreenTitle:
    """What an Evergreen campaign title says: the last window uploaded (month, first and last
    day), and how the campaign writes it (kept when the title moves on)."""

    month: int
    start_day: int
    end_day: int
    head: str = EVERGREEN_PREFIX
    month_style: str = "full"  # full | abbreviated | abbreviated. (with a dot)
    month_case: str = "title"  # title | upper | lower
    dash: str = "\u2013"  # the dash as written, with its spaces
    ordinals: bool = False

    def window(self, today: date, known: Iterable[date] = ()) -> RenewalWindow:
        """The window this title names. `known`: first days of windows this campaign's title was
        moved to before (the ledger): the latest of them this title names, if any. Otherwise
        the year that makes it the latest window starting before `today` + TITLE_AHEAD_DAYS:
        a title names a window uploaded already, at most its lead time ahead, never one months
        ahead ("June 22-30" read in January is last June)."""
        named = [d for d in known if (d.month, d.day) == (self.month, self.start_day)]
        if named:
            return RenewalWindow.starting(max(named))
        latest = today + timedelta(days=TITLE_AHEAD_DAYS)
        for year in (latest.year, latest.year - 1):
            start = date(year, self.month, self.start_day)
            if start <= latest:
                return RenewalWindow.starting(start)
        raise AssertionError("unreachable: last year's window always starts before today")

    def naming(self, window: RenewalWindow) -> str:
        """`window` written the way this title writes its window (month, dash, ordinals)."""
        month = MONTH_NAMES[window.start.month - 1]
        if self.month_style != "full":
            month = month[:3] + ("." if self.month_style.endswith(".") else "")
        month = {"upper": month.upper(), "lower": month.lower()}.get(self.month_case, month)
        first, last = window.start.day, window.end.day
        days = (
            f"{ordinal(first)}{self.dash}{ordinal(last)}"
            if self.ordinals
            else f"{first}{self.dash}{last}"
        )
        return f"{self.head} {month} {days}"


def parse_evergreen_title(title: str) -> EvergreenTitle:
    """Read `Evergreen, Last Upload: February 1–7` in every form the team writes.

    `February 1-7`, `Feb 1–7`, `February 1st - 7th`, `February 1st-7th`; any case, any dash.

    Raises ValueError with the title quoted when it does not name a renewal window (an
    impossible day such as "Feb 22-31" included).
    """
    m = _TITLE_RE.match(title or "")
    if not m:
        raise ValueError(
            f"campaign title {title!r} is not like 'Evergreen, Last Upload: February 1\u20137'"
        )
    written = m.group("month")
    name, start, end = written.lower(), int(m.group("start")), int(m.group("end"))
    months = [n.lower() for n in MONTH_NAMES]
    matches = [
        i for i, n in enumerate(months) if n == name or (len(name) >= 3 and n.startswith(name))
    ]
    if len(matches) != 1:
        raise ValueError(f"campaign title {title!r} names no month")
    month = matches[0] + 1
    if start not in WINDOW_START_DAYS:
        raise ValueError(f"campaign title {title!r}: a window starts on day 1, 8, 15 or 22")
    expected_end = {1: 7, 8: 14, 15: 21}.get(start)
    if expected_end is not None and end != expected_end:
        raise ValueError(f"campaign title {title!r}: window {start} ends on {expected_end}")
    shortest = 28 if month == 2 else _MONTH_LAST_DAYS[month]
    if start == 22 and not shortest <= end <= _MONTH_LAST_DAYS[month]:
        raise ValueError(
            f"campaign title {title!r}: {MONTH_NAMES[month - 1]}'s last window ends on day "
            + ("28 or 29" if month == 2 else str(_MONTH_LAST_DAYS[month]))
        )
    head = m.group("head").strip()
    if re.sub(r"[\s,:]+", " ", head).strip().casefold() == "evergreen last upload":
        head = EVERGREEN_PREFIX  # the team's own spelling, whatever case or spacing it had
    style = "full" if name == months[month - 1] else "abbreviated" + m.group("dot")
    case = "upper" if written.isupper() else "lower" if written.islower() else "title"
    return EvergreenTitle(
        month, start, end, head, style, case, m.group("dash"), m.group("ordinal") is not None
    )


def retitle(title: str, window: RenewalWindow) -> str:
    """The campaign's title moved on to `window`, in the campaign's own style: its prefix, full
    or abbreviated month, its dash, ordinals or not.

    `Evergreen, Last Upload: January 22nd-31st` -> `Evergreen, Last Upload: February 1st-7th`;
    `HNW Evergreen, Last Upload: Jan 22–31` -> `HNW Evergreen, Last Upload: Feb 1–7`.
    A title that cannot be read becomes the team's standard one.
    """
    try:
        return parse_evergreen_title(title).naming(window)
    except ValueError:
        return window.evergreen_title


# Vectorized forms for cleaning a million rows: no Python loop per row.

_SUFFIX = np.array(["th", "st", "nd", "rd"] + ["th"] * 6)


def readable_dates(dates: pd.Series) -> pd.Series:
    """`readable_date` on a datetime64 Series (NaT -> <NA>)."""
    valid = dates.notna()
    out = pd.Series(pd.NA, index=dates.index, dtype="string")
    if not valid.any():
        return out
    d = dates[valid]
    day = d.dt.day.to_numpy()
    suffix = np.where((day % 100 >= 11) & (day % 100 <= 13), "th", _SUFFIX[day % 10])
    month = np.asarray(MONTH_NAMES, dtype=object)[d.dt.month.to_numpy() - 1]
    out[valid] = month + " " + day.astype(str).astype(object) + suffix.astype(object)
    return out


def renewal_dates(purchase: pd.Series, renewal_year: int) -> pd.Series:
    """`renewal_date` on a datetime64 Series: the anniversary in `renewal_year`."""
    month = purchase.dt.month
    days_in = pd.Series(
        [last_day_of_month(renewal_year, m) for m in range(1, 13)], index=range(1, 13)
    )
    limit = month.map(days_in)
    day = np.minimum(purchase.dt.day, limit)
    return pd.to_datetime(
        pd.DataFrame({"year": renewal_year, "month": month, "day": day}), errors="coerce"
    )


def window_starts(renewal: pd.Series) -> pd.Series:
    """First day of the renewal window holding each date (datetime64 Series)."""
    day = renewal.dt.day
    start_day = np.select([day >= 22, day >= 15, day >= 8], [22, 15, 8], default=1)
    return renewal - pd.to_timedelta(day - start_day, unit="D")
