"""Seeded homeowner rows as a Cole X Dates export shows them, messy on purpose.

Deterministic per (ZIP, renewal month): the same query always returns the same rows, so the
sandbox site's count and its CSV agree and tests can assert exact numbers. The homes of a ZIP
and calendar month stay the same year after year, and so do their owners (C-HOMEOWNERS): the
same person in the same home renews on the same day every year, with the same email and the
same purchase date, until the home sells (`SELL_SHARE` of homes a year, seeded): then a new
owner, with a new name and email, bought it in the year before, in the same month. The owners of
`BASE_YEAR` are the generator's first draw; other years differ by the sales in between. The mess follows
what the team sees in real exports: names in any case, a third of rows without email, a few
malformed emails, about half without head-of-household, log-normal home values with a tail
above $900k (heavier in Texas), New Jersey ZIPs that lost their leading zero, accented names
that only survive in Windows-1252, owners repeated across ZIPs, and a few purchase dates
outside the requested month.

Counting never builds strings: the purchase-date and home-value columns come from their own
random streams, so `count_for` costs a few numpy operations and still equals
`len(rows_for(...))` exactly.
"""

from __future__ import annotations

import calendar
import hashlib
import io
from collections.abc import Iterable, Sequence
from datetime import date
from functools import lru_cache

import numpy as np
import pandas as pd

from homeowner_dagster.leads.columns import COLE_SOP_FIELDS

# Cole's SOP export: the 13 fields the team ticks, in the order the CSV shows them.
SOP_COLUMNS: list[str] = list(COLE_SOP_FIELDS)
# The other header shape Cole uses for property-style lists (a guess, see sandbox/README.md).
PROPERTY_COLUMNS: list[str] = [
    "Owner First Name",
    "Owner Last Name",
    "Property Address",
    "Property City",
    "Property State",
    "Property Zip",
    "Phone",
    "Email",
    "Sale Date",
    "Estimated Home Value",
    "Head of Household",
    "Estimated Income",
    "Birth Date",
]
HEADER_SHAPES: dict[str, list[str]] = {"sop": SOP_COLUMNS, "property": PROPERTY_COLUMNS}

# ZIPs that hold more than the 10,000-record export cap on their own, every month.
HUGE_ZIPS: dict[str, int] = {"75034": 12_000, "08701": 11_000, "77494": 10_600}

EXPORT_CAP = 9_999
MALFORMED_EMAIL_SHARE = 0.04
NO_EMAIL_SHARE = 1 / 3
HEAD_OF_HOUSEHOLD_SHARE = 0.5
OUTSIDE_MONTH_SHARE = 0.03
SHARED_OWNER_SHARE = 0.03
ACCENTED_NAME_SHARE = 0.05
# Homes that change hands in a year (a guess: Americans stay about 12 years in a home).
SELL_SHARE = 0.08
BASE_YEAR = 2027  # the year whose owners are the first draw

_FIRST = (
    "James Mary Robert Patricia John Jennifer Michael Linda David Elizabeth William Barbara "
    "Richard Susan Joseph Jessica Thomas Sarah Charles Karen Christopher Lisa Daniel Nancy "
    "Matthew Betty Anthony Sandra Mark Margaret Donald Ashley Steven Kimberly Paul Emily Andrew "
    "Donna Joshua Michelle Kenneth Carol Kevin Amanda Brian Melissa George Deborah Timothy "
    "Stephanie Ronald Rebecca Jason Sharon Edward Laura Jeffrey Cynthia Ryan Amy Jacob Kathleen "
    "Gary Angela Nicholas Shirley Eric Brenda Jonathan Emma Larry Anna Justin Pamela Scott "
    "Nicole Brandon Samantha Frank Katherine Gregory Christine Raymond Debra Patrick Rachel"
).split()
_LAST = (
    "Smith Johnson Williams Brown Jones Garcia Miller Davis Rodriguez Martinez Hernandez Lopez "
    "Gonzalez Wilson Anderson Thomas Taylor Moore Jackson Martin Lee Perez Thompson White Harris "
    "Sanchez Clark Ramirez Lewis Robinson Walker Young Allen King Wright Scott Torres Nguyen "
    "Hill Flores Green Adams Nelson Baker Hall Rivera Campbell Mitchell Carter Roberts Gomez "
    "Phillips Evans Turner Diaz Parker Cruz Edwards Collins Reyes Stewart Morris Morales Murphy "
    "Cook Rogers Gutierrez Ortiz Morgan Cooper Peterson Bailey Reed Kelly Howard Ramos Kim Cox "
    "Ward Richardson Watson Brooks Chavez Wood James Bennett Gray Mendoza Ruiz Hughes Price"
).split()
# Names whose accents exist in Windows-1252 (the encoding the export is written in).
_FIRST_ACCENTED = ["José", "Zoë", "Renée", "François", "Chloé", "Inés", "Raúl", "Agnès", "Jürgen"]
_LAST_ACCENTED = ["Muñoz", "Peña", "Nuñez", "Ibáñez", "Müller", "Lefèvre", "García", "Gómez"]
_STREETS = (
    "Oak Maple Cedar Pine Elm Washington Lake Hill Park Main Church Walnut Sunset Ridge Spring "
    "Highland Meadow Forest River Willow Jefferson Lincoln Madison Franklin Chestnut Dogwood"
).split()
_SUFFIXES = ["St", "Ave", "Rd", "Dr", "Ln", "Ct", "Blvd", "Way", "Pl", "Cir"]
_DOMAINS = ["gmail.com", "yahoo.com", "aol.com", "hotmail.com", "comcast.net", "outlook.com"]
_INCOMES = [
    "",
    "Under $50,000",
    "$50,000 - $74,999",
    "$75,000 - $99,999",
    "$100,000 - $149,999",
    "$150,000 - $249,999",
    "$250,000+",
]
# Median home value and log spread per state; Texas has the heavier tail above $900k.
_VALUE_MEDIAN = {"TX": 320_000.0, "NJ": 380_000.0}
_VALUE_SIGMA = {"TX": 0.7}
_DEFAULT_MEDIAN, _DEFAULT_SIGMA = 300_000.0, 0.45


def _seed(*parts: object) -> int:
    """A stable 64-bit seed (Python's hash() is salted per process)."""
    text = "|".join(str(p) for p in parts).encode()
    return int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "little")


def _rng(*parts: object) -> np.random.Generator:
    return np.random.default_rng(_seed(*parts))


def _month_key(month: date) -> str:
    return f"{month.year:04d}-{month.month:02d}"


@lru_cache(maxsize=1)
def _zip_index() -> dict[str, dict]:
    import zipcodes

    return {z["zip_code"]: z for z in zipcodes.list_all()}


def zip_info(zip_code: str) -> dict | None:
    """City, state, lat/long of a real ZIP (offline `zipcodes` data), or None."""
    return _zip_index().get(str(zip_code).zfill(5))


@lru_cache(maxsize=64)
def _state_zips(state: str) -> tuple[str, ...]:
    return tuple(
        sorted(
            z["zip_code"]
            for z in _zip_index().values()
            if z["state"] == state and z["zip_code_type"] == "STANDARD" and z["active"]
        )
    )


def demo_zips(state: str, n: int) -> list[str]:
    """`n` real, ordinary-sized ZIPs of `state`, spread over the state's ZIP range."""
    zips = [z for z in _state_zips(state.upper()) if z not in HUGE_ZIPS]
    if n >= len(zips):
        return list(zips)
    step = len(zips) / n
    return [zips[int(i * step)] for i in range(n)]


def _base_key(month_key: str) -> str:
    """The month of BASE_YEAR holding the same homes as `month_key` (same calendar month)."""
    return f"{BASE_YEAR:04d}-{month_key[5:]}"


def zip_size(zip_code: str, month: date) -> int:
    """How many homeowners Cole lists for a ZIP in a renewal month (0 for an unknown ZIP); the
    same homes every year."""
    zip_code = str(zip_code).zfill(5)
    if zip_info(zip_code) is None:
        return 0
    rng = _rng("size", zip_code, _base_key(_month_key(month)))
    if zip_code in HUGE_ZIPS:
        return HUGE_ZIPS[zip_code] + int(rng.integers(0, 400))
    if rng.random() < 0.1:  # rural ZIPs: tens of homeowners
        return int(np.exp(rng.uniform(np.log(12.0), np.log(120.0))))
    size = float(np.exp(rng.normal(np.log(1_000.0), 0.8)))
    return int(min(max(size, 12.0), 6_000.0))


def pick_zips(state: str, month: date, n: int, total: int, include_huge: bool = True) -> list[str]:
    """`n` ZIPs of `state` whose sizes add up to about `total` (with one huge ZIP if asked).

    For benchmarks and the acceptance test: "60 ZIPs, about 80,000 rows, one over the cap".
    """
    chosen: list[str] = []
    if include_huge:
        huge = [z for z in HUGE_ZIPS if (zip_info(z) or {}).get("state") == state.upper()]
        if not huge:
            raise ValueError(f"no huge ZIP in {state}; HUGE_ZIPS: {sorted(HUGE_ZIPS)}")
        chosen.append(huge[0])
    remaining = total - sum(zip_size(z, month) for z in chosen)
    slots = n - len(chosen)
    candidates = [z for z in _state_zips(state.upper()) if z not in HUGE_ZIPS]
    sizes = {z: zip_size(z, month) for z in candidates}
    for z in candidates:  # greedy: each pick aims at the average the rest still needs
        if slots == 0:
            break
        target = remaining / slots
        if 0.75 * target <= sizes[z] <= 1.25 * target or slots == 1 and sizes[z] <= remaining:
            chosen.append(z)
            remaining -= sizes[z]
            slots -= 1
    if slots:
        raise ValueError(f"could not pick {n} ZIPs of {state} totalling {total}")
    return chosen


@lru_cache(maxsize=512)
def _generations(zip_code: str, month_key: str) -> tuple[np.ndarray, np.ndarray]:
    """Per home: which owner holds it in `month_key`'s year (0: BASE_YEAR's; +k: the k-th after
    it; -k: the k-th before), and the year of the latest sale up to that year (0 if none since
    BASE_YEAR). A sale in year y puts a new owner in the home for y's renewals."""
    n = len(_base_purchase_dates(zip_code, _base_key(month_key))[0])
    year = int(month_key[:4])
    owner = np.zeros(n, dtype=np.int64)
    sold_in = np.zeros(n, dtype=np.int64)
    for y in range(BASE_YEAR + 1, year + 1):
        sold = _rng("sold", zip_code, month_key[5:], y).random(n) < SELL_SHARE
        owner += sold
        sold_in = np.where(sold, y, sold_in)
    for y in range(year + 1, BASE_YEAR + 1):
        owner -= _rng("sold", zip_code, month_key[5:], y).random(n) < SELL_SHARE
    return owner, sold_in


def same_owner_as_a_year_before(zip_code: str, month: date) -> np.ndarray:
    """Per row of `rows_for(zip_code, month)`: the owner renewed here a year before too."""
    key = _month_key(month)
    now = _generations(str(zip_code).zfill(5), key)[0]
    before = _generations(str(zip_code).zfill(5), f"{int(key[:4]) - 1:04d}-{key[5:]}")[0]
    return now == before


@lru_cache(maxsize=512)
def _purchase_dates(zip_code: str, month_key: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(years, months, days) of every row in `month_key`'s year: each owner's own purchase date
    (fixed while they own the home); only this stream decides day-range counts."""
    years, months, days = _base_purchase_dates(zip_code, _base_key(month_key))
    owner, sold_in = _generations(zip_code, month_key)
    if not owner.any():
        return years, months, days
    years, days = years.copy(), days.copy()
    month_len = np.array([calendar.monthrange(2001, m)[1] for m in range(1, 13)])
    year = int(month_key[:4])
    for g in np.unique(owner[owner != 0]):
        rows = owner == g
        rng = _rng("owner-dates", zip_code, month_key[5:], int(g))
        bought = np.where(sold_in > 0, sold_in - 1, rng.integers(1990, year, len(owner)))
        years[rows] = bought[rows]
        day_u = rng.random(len(owner))
        lengths = month_len[months - 1] + ((months == 2) & (years % 4 == 0))
        days[rows] = ((day_u * lengths).astype(np.int64) + 1)[rows]
    return years, months, days


@lru_cache(maxsize=512)
def _base_purchase_dates(
    zip_code: str, month_key: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(years, months, days) of BASE_YEAR's owners."""
    year0, month0 = int(month_key[:4]), int(month_key[5:])
    n = zip_size(zip_code, date(year0, month0, 1))
    rng = _rng("dates", zip_code, month_key)
    years = rng.integers(1990, 2025, n)
    outside = rng.random(n) < OUTSIDE_MONTH_SHARE
    shift = np.where(rng.random(n) < 0.5, -1, 1)
    months = np.where(outside, (month0 - 1 + shift) % 12 + 1, month0)
    day_u = rng.random(n)
    month_len = np.array([calendar.monthrange(2001, m)[1] for m in range(1, 13)])  # common year
    lengths = month_len[months - 1] + ((months == 2) & (years % 4 == 0))
    days = (day_u * lengths).astype(np.int64) + 1
    return years, months.astype(np.int64), days


@lru_cache(maxsize=512)
def _home_values(zip_code: str, month_key: str) -> np.ndarray:
    """Whole-dollar home values; NaN where Cole has none."""
    month_key = _base_key(month_key)  # a home keeps its value, whoever owns it
    years, _, _ = _base_purchase_dates(zip_code, month_key)
    n = len(years)
    state = (zip_info(zip_code) or {}).get("state", "")
    rng = _rng("values", zip_code, month_key)
    median = _VALUE_MEDIAN.get(state, _DEFAULT_MEDIAN)
    sigma = _VALUE_SIGMA.get(state, _DEFAULT_SIGMA)
    local = float(np.exp(_rng("zip-level", zip_code).normal(0.0, 0.2)))  # richer/poorer ZIPs
    values = np.round(rng.lognormal(np.log(median * local), sigma, n), -3)
    values[rng.random(n) < 0.02] = np.nan
    return values


def _mask(
    zip_code: str,
    month: date,
    purchase_day_range: tuple[int, int] | None,
    home_value_max: int | None,
    purchase_years: tuple[int, int] | None,
) -> np.ndarray:
    key = _month_key(month)
    years, _, days = _purchase_dates(zip_code, key)
    keep = np.ones(len(days), dtype=bool)
    if purchase_day_range is not None:
        keep &= (days >= purchase_day_range[0]) & (days <= purchase_day_range[1])
    if purchase_years is not None:
        keep &= (years >= purchase_years[0]) & (years <= purchase_years[1])
    if home_value_max is not None:
        values = _home_values(zip_code, key)
        keep &= ~(values > home_value_max)  # rows without a value stay, as on the site
    return keep


def count_for(
    zip_code: str,
    month: date,
    purchase_day_range: tuple[int, int] | None = None,
    home_value_max: int | None = None,
    purchase_years: tuple[int, int] | None = None,
) -> int:
    """Rows `rows_for` would return, without building them."""
    zip_code = str(zip_code).zfill(5)
    return int(_mask(zip_code, month, purchase_day_range, home_value_max, purchase_years).sum())


def _case(rng: np.random.Generator, names: np.ndarray) -> list[str]:
    """Names in any case: mostly Title, some UPPER, some lower."""
    style = rng.random(len(names))
    return [
        s.upper() if u < 0.2 else s.lower() if u < 0.3 else s
        for s, u in zip(names.tolist(), style.tolist(), strict=True)
    ]


def _owners(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    first = np.array(_FIRST, dtype=object)[rng.integers(0, len(_FIRST), n)]
    last = np.array(_LAST, dtype=object)[rng.integers(0, len(_LAST), n)]
    acc_f = rng.random(n) < ACCENTED_NAME_SHARE
    acc_l = rng.random(n) < ACCENTED_NAME_SHARE
    first[acc_f] = np.array(_FIRST_ACCENTED, dtype=object)[
        rng.integers(0, len(_FIRST_ACCENTED), acc_f.sum())
    ]
    last[acc_l] = np.array(_LAST_ACCENTED, dtype=object)[
        rng.integers(0, len(_LAST_ACCENTED), acc_l.sum())
    ]
    dob_year = rng.integers(1940, 1995, n)
    dob_month = rng.integers(1, 13, n)
    dob_day = rng.integers(1, 29, n)
    phone = rng.integers(201_200_0000, 989_999_9999, n)
    tag = rng.integers(1, 999, n)
    domain = np.array(_DOMAINS, dtype=object)[rng.integers(0, len(_DOMAINS), n)]
    return {
        "first": first,
        "last": last,
        "dob": np.array(
            [f"{m:02d}/{d:02d}/{y}" for y, m, d in zip(dob_year, dob_month, dob_day, strict=True)],
            dtype=object,
        ),
        "phone": phone,
        "tag": tag,
        "domain": domain,
    }


@lru_cache(maxsize=16)
def _shared_owners(state: str, month_key: str) -> dict[str, np.ndarray]:
    """A pool of owners per state and month who show up in several ZIPs (duplicates)."""
    return _owners(_rng("shared-owners", state, month_key), 400)


def _ascii(name: str) -> str:
    return name.translate(str.maketrans("éëèüñáúíóçÉ", "eeeunauiocE"))


# Columns that belong to the owner (a new owner brings new ones); the rest belong to the home.
OWNER_COLUMNS = [
    "First_Name", "Last_Name", "Cell Phone Number", "Email_Address", "Head_Household", "Income",
    "Date_of_Birth",
]  # fmt: skip


@lru_cache(maxsize=256)
def _zip_frame(zip_code: str, month_key: str) -> pd.DataFrame:
    """Every row of the ZIP for the month, SOP shape, plus numeric helper columns (`_...`): the
    base year's homes, each with the owner who holds it in `month_key`'s year."""
    base = _draw_frame(zip_code, _base_key(month_key), ("rows", zip_code, _base_key(month_key)))
    owner, _ = _generations(zip_code, month_key)
    if not owner.any():
        return base
    frame = base.copy()
    for g in np.unique(owner[owner != 0]):
        rows = owner == g
        others = _draw_frame(
            zip_code, _base_key(month_key), ("owners", zip_code, month_key[5:], int(g))
        )
        frame.loc[rows, OWNER_COLUMNS] = others.loc[rows, OWNER_COLUMNS]
    years, months, days = _purchase_dates(zip_code, month_key)
    frame["Purchase_Date"] = [
        f"{m:02d}/{d:02d}/{y}"
        for y, m, d in zip(years.tolist(), months.tolist(), days.tolist(), strict=True)
    ]
    frame["_day"], frame["_year"] = days, years
    return frame


@lru_cache(maxsize=64)
def _draw_frame(zip_code: str, month_key: str, seed: tuple[object, ...]) -> pd.DataFrame:
    """Every row of the ZIP for a BASE_YEAR month, owners drawn from the stream `seed`."""
    years, months, days = _base_purchase_dates(zip_code, month_key)
    values = _home_values(zip_code, month_key)
    n = len(days)
    info = zip_info(zip_code) or {"city": "", "state": ""}
    state = info["state"]
    rng = _rng(*seed)
    owners = _owners(rng, n)
    shared = rng.random(n) < SHARED_OWNER_SHARE
    if shared.any():
        pool = _shared_owners(
            state, "|".join(map(str, seed[2:])) if seed[0] != "rows" else month_key
        )
        picks = rng.integers(0, len(pool["first"]), shared.sum())
        for key in owners:
            owners[key][shared] = pool[key][picks]
    first = _case(rng, owners["first"])
    last = _case(rng, owners["last"])

    # Email: a third missing, a few malformed, the rest first.last+tag@domain.
    u = rng.random(n)
    kind = np.where(
        u < NO_EMAIL_SHARE, 0, np.where(u < NO_EMAIL_SHARE + MALFORMED_EMAIL_SHARE, 1, 2)
    )
    broken = rng.integers(0, 4, n)
    emails: list[str] = []
    for f, la, t, d, k, b in zip(
        owners["first"], owners["last"], owners["tag"], owners["domain"], kind, broken, strict=True
    ):
        if k == 0:
            emails.append("")
            continue
        local = f"{_ascii(f).lower()}.{_ascii(la).lower()}{t}".replace(" ", "")
        if k == 2:
            emails.append(f"{local}@{d}")
        elif b == 0:
            emails.append(f"{local}@{d.split('.')[0]}")  # no TLD
        elif b == 1:
            emails.append(f"{local}@@{d}")
        elif b == 2:
            emails.append(f"{local} @{d}")
        else:
            emails.append(f"{local}{d}")  # no @

    phones = owners["phone"]
    phone_style = rng.integers(0, 4, n)
    phone_text = [
        ""
        if s == 0
        else f"({p // 10_000_000}) {p // 10_000 % 1000:03d}-{p % 10_000:04d}"
        if s == 1
        else str(p)
        for p, s in zip(phones.tolist(), phone_style.tolist(), strict=True)
    ]
    numbers = rng.integers(1, 9_999, n)
    streets = np.array(_STREETS, dtype=object)[rng.integers(0, len(_STREETS), n)]
    suffixes = np.array(_SUFFIXES, dtype=object)[rng.integers(0, len(_SUFFIXES), n)]
    address = [f"{a} {s} {x}" for a, s, x in zip(numbers.tolist(), streets, suffixes, strict=True)]
    # Leading zeros lost (New Jersey's 07xxx/08xxx become 4 digits) in most rows of such ZIPs.
    short_zip = zip_code.lstrip("0") or "0"
    zip_col = (
        np.where(rng.random(n) < 0.8, short_zip, zip_code)
        if short_zip != zip_code
        else [zip_code] * n
    )
    value_style = rng.random(n) < 0.6
    home_value = [
        "" if np.isnan(v) else f"${int(v):,}" if s else str(int(v))
        for v, s in zip(values.tolist(), value_style.tolist(), strict=True)
    ]
    hoh = np.where(rng.random(n) < HEAD_OF_HOUSEHOLD_SHARE, "Y", "")
    income = np.array(_INCOMES, dtype=object)[rng.integers(0, len(_INCOMES), n)]
    dob = np.where(rng.random(n) < 0.15, "", owners["dob"])
    purchase = [
        f"{m:02d}/{d:02d}/{y}"
        for y, m, d in zip(years.tolist(), months.tolist(), days.tolist(), strict=True)
    ]
    frame = pd.DataFrame(
        {
            "First_Name": first,
            "Last_Name": last,
            "Address_1": address,
            "City": [info["city"].upper() if rng.random() < 0.5 else info["city"]] * n,
            "State": [state] * n,
            "Zip": zip_col,
            "Cell Phone Number": phone_text,
            "Email_Address": emails,
            "Purchase_Date": purchase,
            "Home_Value": home_value,
            "Head_Household": hoh,
            "Income": income,
            "Date_of_Birth": dob,
            "_day": days,
            "_year": years,
        }
    )
    return frame


def rows_for(
    zip_code: str,
    month: date,
    purchase_day_range: tuple[int, int] | None = None,
    shape: str = "sop",
    home_value_max: int | None = None,
    purchase_years: tuple[int, int] | None = None,
) -> pd.DataFrame:
    """The rows Cole returns for one ZIP and renewal month, as strings in `shape`'s header."""
    zip_code = str(zip_code).zfill(5)
    if shape not in HEADER_SHAPES:
        raise ValueError(f"shape must be one of {sorted(HEADER_SHAPES)}")
    frame = _zip_frame(zip_code, _month_key(month))
    keep = _mask(zip_code, month, purchase_day_range, home_value_max, purchase_years)
    out = frame.loc[keep, SOP_COLUMNS].reset_index(drop=True)
    if shape != "sop":
        out.columns = HEADER_SHAPES[shape]
    return out


def csv_bytes(
    frames: Iterable[pd.DataFrame],
    shape: str = "sop",
    encoding: str = "cp1252",
    columns: Sequence[str] | None = None,
) -> bytes:
    """One CSV with a header row, as Cole's export writes it (Windows-1252 by default).

    `columns` picks a subset of the shape's headers (the ticked fields), in the shape's order.
    """
    header = HEADER_SHAPES[shape]
    chosen = [c for c in header if columns is None or c in set(columns)]
    parts = [f for f in frames if len(f)]
    frame = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=header)
    buffer = io.StringIO()
    frame.to_csv(buffer, columns=chosen, index=False, lineterminator="\r\n")
    return buffer.getvalue().encode(encoding, errors="replace")
