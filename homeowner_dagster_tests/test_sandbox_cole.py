"""The sandbox Cole X Dates site, driven by real Chromium, and the homeowner generator behind it."""

from __future__ import annotations

import csv
import io
import time
from datetime import date

import numpy as np
import pyotp
import pytest

from homeowner_dagster.sandbox import generator
from homeowner_dagster.sandbox.cole_site import (
    EXPORT_LIMIT_MESSAGE,
    FAULT_TOTP_SECRET,
    SESSION_EXPIRED_MESSAGE,
    WRONG_PASSWORD_MESSAGE,
    ZIP_SPACES_MESSAGE,
)
from homeowner_dagster_tests import cole_fixtures
from homeowner_dagster_tests.cole_fixtures import TEST_CREDENTIALS

# The shared fixtures, made visible to pytest in this module.
cole_sandbox = cole_fixtures.cole_sandbox
cole = cole_fixtures.cole
chromium = cole_fixtures.chromium
page = cole_fixtures.page

MONTH = date(2027, 3, 1)
NJ_ZIPS = ["07030", "07302"]


def login(page, url: str, state: str = "NJ", password: str | None = None) -> None:
    username, real_password, _ = TEST_CREDENTIALS[state]
    page.goto(f"{url}/login?state={state}")
    page.fill("#username", username)
    page.fill("#password", password or real_password)
    page.click("#login-button")
    page.wait_for_load_state()


def fill_search(page, zips: str, fields: list[str] | None = None, **extra: str) -> None:
    page.select_option("#list-type", "Emailing")
    page.fill("#zip-codes", zips)
    page.select_option("#renewal-month", "2027-03")
    for field in fields or generator.SOP_COLUMNS:
        page.check(f"[id='field-{field}']")
    for name, value in extra.items():
        page.fill(f"#{name.replace('_', '-')}", value)
    page.click("#search-button")
    page.wait_for_load_state()


def record_count(page) -> int:
    return int(page.get_attribute("#record-count", "data-count"))


# --- generator ----------------------------------------------------------------------------


def test_generator_is_deterministic_and_counts_match_rows() -> None:
    a = generator.rows_for("07030", MONTH)
    b = generator.rows_for("07030", MONTH)
    assert a.equals(b)
    assert list(a.columns) == generator.SOP_COLUMNS
    assert generator.count_for("07030", MONTH) == len(a) == generator.zip_size("07030", MONTH)
    for days in [(1, 7), (8, 14), (22, 31), (29, 31)]:
        assert generator.count_for("07030", MONTH, days) == len(
            generator.rows_for("07030", MONTH, days)
        )
    parts = sum(generator.count_for("07030", MONTH, d) for d in [(1, 10), (11, 20), (21, 31)])
    assert parts == len(a)
    filtered = generator.rows_for(
        "75034", MONTH, home_value_max=900_000, purchase_years=(2000, 2010)
    )
    assert len(filtered) == generator.count_for(
        "75034", MONTH, home_value_max=900_000, purchase_years=(2000, 2010)
    )
    assert generator.rows_for("99999", MONTH).empty  # not a real ZIP
    assert list(generator.rows_for("07030", MONTH, shape="property").columns) == (
        generator.PROPERTY_COLUMNS
    )


def test_generator_mess_in_realistic_proportions() -> None:
    frame = generator.rows_for("08701", MONTH)
    n = len(frame)
    assert n > 10_000  # a documented huge ZIP exceeds the export cap on its own
    assert all(generator.zip_size(z, MONTH) > 10_000 for z in generator.HUGE_ZIPS)
    email = frame["Email_Address"]
    assert 0.28 < (email == "").mean() < 0.38
    malformed = email[(email != "")].str.fullmatch(r"[^@\s]+@[^@\s]+\.[a-z]+").eq(False).mean()
    assert 0.02 < malformed < 0.12
    assert 0.4 < (frame["Head_Household"] == "Y").mean() < 0.6
    assert (frame["Zip"] == "8701").mean() > 0.5  # New Jersey ZIPs lose their leading zero
    assert frame["First_Name"].str.isupper().any() and frame["First_Name"].str.islower().any()
    assert frame["First_Name"].str.contains("[^\x00-\x7f]").any()  # accented names
    purchase = frame["Purchase_Date"].str.slice(0, 2).astype(int)
    assert 0.9 < (purchase == 3).mean() < 1.0  # mostly the requested month, a few outside
    years = frame["Purchase_Date"].str.slice(6).astype(int)
    assert years.between(1990, 2024).all()

    def share_over_900k(state: str) -> float:
        zips = generator.demo_zips(state, 25)
        values = np.concatenate(
            [
                generator.rows_for(z, MONTH)["Home_Value"]
                .str.replace(r"[$,]", "", regex=True)
                .replace("", "nan")
                .astype(float)
                .to_numpy()
                for z in zips
            ]
        )
        return float(np.nanmean(values > 900_000))

    texas, florida = share_over_900k("TX"), share_over_900k("FL")
    assert 0.0 < florida < texas


def test_generator_repeats_owners_across_zips() -> None:
    zips = generator.demo_zips("NJ", 12)
    frames = [generator.rows_for(z, MONTH) for z in zips]
    owners = [
        set(
            zip(
                f["First_Name"].str.lower(),
                f["Last_Name"].str.lower(),
                f["Date_of_Birth"],
                strict=True,
            )
        )
        for f in frames
    ]
    shared_somewhere = sum(len(a & b) for i, a in enumerate(owners) for b in owners[i + 1 :])
    assert shared_somewhere > 0


def test_generator_keeps_its_homeowners_year_after_year() -> None:
    """Fact C-HOMEOWNERS: the same homes every year; the same owner renews on the same day with
    the same name and email (purchase date fixed) until the home sells; about SELL_SHARE of
    homes a year get a new owner with a new email, who bought it the year before.

    Fails against the old generator: every (ZIP, month) drew new homeowners, so no homeowner of
    2027 came back in 2028."""
    zips = generator.demo_zips("NJ", 6)
    sold_shares = []
    for z in zips:
        a, b = generator.rows_for(z, date(2027, 3, 1)), generator.rows_for(z, date(2028, 3, 1))
        same = generator.same_owner_as_a_year_before(z, date(2028, 3, 1))
        assert len(a) == len(b) and (a["Address_1"] == b["Address_1"]).all()  # the same homes
        kept = generator.OWNER_COLUMNS + ["Purchase_Date"]
        assert a.loc[same, kept].equals(b.loc[same, kept])  # same owner, email, purchase date
        new = ~same & (a["Email_Address"] != "") & (b["Email_Address"] != "")
        assert (a.loc[new, "Email_Address"] != b.loc[new, "Email_Address"]).all()
        assert (
            b.loc[~same, "Purchase_Date"].str.slice(6) == "2027"
        ).all()  # bought the year before
        sold_shares.append(float((~same).mean()))
        for days in [(1, 7), (22, 31)]:
            assert generator.count_for(z, date(2028, 3, 1), days) == len(
                generator.rows_for(z, date(2028, 3, 1), days)
            )
    assert 0.04 < sum(sold_shares) / len(sold_shares) < 0.14
    later = generator.same_owner_as_a_year_before(zips[0], date(2030, 3, 1))
    assert 0.8 < later.mean() < 0.98  # sales go on every year


def test_generator_sizes() -> None:
    zips = generator.demo_zips("TX", 80)
    sizes = [generator.zip_size(z, MONTH) for z in zips]
    assert min(sizes) < 100 and max(sizes) > 2_000
    frame = generator.rows_for("77494", date(2031, 8, 1))  # a ZIP over the export cap on its own
    assert len(frame) > 10_000  # speed: bench/bench_cole_pull.py
    picked = generator.pick_zips("TX", MONTH, 60, 80_000)
    total = sum(generator.zip_size(z, MONTH) for z in picked)
    assert len(set(picked)) == 60 and 76_000 < total < 84_000


def test_csv_bytes_are_windows_1252_with_headers() -> None:
    """Fact C-SOP-FIELDS."""
    data = generator.csv_bytes([generator.rows_for("07030", MONTH)], "sop", "cp1252")
    text = data.decode("cp1252")
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0] == generator.SOP_COLUMNS
    assert len(rows) - 1 == generator.count_for("07030", MONTH)
    with pytest.raises(UnicodeDecodeError):
        data.decode("utf-8")  # accented names are single Windows-1252 bytes


# --- the site, through a browser -----------------------------------------------------------


def test_login_search_count_and_csv_download(cole, page) -> None:
    login(page, cole.url)
    assert page.url.endswith("/search")
    assert cole.state.logins == 1
    fill_search(page, ",".join(NJ_ZIPS))
    expected = sum(generator.count_for(z, MONTH) for z in NJ_ZIPS)
    assert record_count(page) == expected
    page.click("#export-button")
    with page.expect_download() as info:
        page.click("#download-link")
    download = info.value
    assert download.failure() is None
    text = open(download.path(), "rb").read().decode("cp1252")
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0] == generator.SOP_COLUMNS
    assert len(rows) - 1 == expected
    assert cole.state.downloads_completed == 1
    assert cole.state.exports_served()[0]["zips"] == tuple(NJ_ZIPS)


def test_only_ticked_fields_and_filters(cole, page) -> None:
    """Fact C-SOP-FIELDS."""
    login(page, cole.url)
    fill_search(
        page,
        "07030",
        fields=["First_Name", "Email_Address"],
        home_value_max="500000",
        purchase_day_from="1",
        purchase_day_to="7",
    )
    expected = generator.count_for("07030", MONTH, (1, 7), home_value_max=500_000)
    assert record_count(page) == expected
    page.click("#export-button")
    with page.expect_download() as info:
        page.click("#download-link")
    rows = list(csv.reader(io.StringIO(open(info.value.path(), "rb").read().decode("cp1252"))))
    assert rows[0] == ["First_Name", "Email_Address"] and len(rows) - 1 == expected


def test_zips_with_spaces_are_refused_visibly(cole, page) -> None:
    """Fact C-ZIP-LIST."""
    login(page, cole.url)
    fill_search(page, "07030, 07302")
    assert page.inner_text("#search-error") == ZIP_SPACES_MESSAGE
    assert page.locator("#record-count").count() == 0


def test_export_of_10000_or_more_is_refused(cole, page) -> None:
    """Fact C-EXPORT-CAP."""
    login(page, cole.url)
    fill_search(page, "08701")
    count = record_count(page)
    assert count >= 10_000
    page.click("#export-button")
    assert page.inner_text("#export-error") == EXPORT_LIMIT_MESSAGE.format(count=count)
    assert page.locator("#download-link").count() == 0
    assert not cole.state.exports


def test_wrong_password_and_wrong_password_fault(cole, page) -> None:
    login(page, cole.url, password="not-it")
    assert page.inner_text("#login-error") == WRONG_PASSWORD_MESSAGE
    cole.faults.on("cole", "wrong_password", times=1)
    login(page, cole.url)
    assert page.inner_text("#login-error") == WRONG_PASSWORD_MESSAGE
    login(page, cole.url)  # the fault fired once
    assert page.url.endswith("/search")
    assert cole.state.failed_logins == 2 and cole.state.logins == 1


def test_totp_step_for_an_account_with_a_secret(cole, page) -> None:
    login(page, cole.url, state="TX")
    assert page.url.endswith("/mfa")
    page.goto(cole.url + "/search")  # not signed in until the code is given
    assert "/login" in page.url
    login(page, cole.url, state="TX")
    page.fill("#otp", "000000")
    page.click("#verify-button")
    assert page.locator("#mfa-error").count() == 1
    page.fill("#otp", pyotp.TOTP(TEST_CREDENTIALS["TX"][2]).now())
    page.click("#verify-button")
    page.wait_for_load_state()
    assert page.url.endswith("/search")


def test_mfa_fault_asks_an_account_without_secret_for_a_code(cole, page) -> None:
    cole.faults.on("cole", "mfa")
    login(page, cole.url)
    assert page.url.endswith("/mfa")
    page.fill("#otp", pyotp.TOTP(FAULT_TOTP_SECRET).now())
    page.click("#verify-button")
    page.wait_for_load_state()
    assert page.url.endswith("/search")


def test_session_expired_fault_and_idle_timeout(cole, page) -> None:
    login(page, cole.url)
    cole.faults.on("cole", "session_expired", times=1)
    page.goto(cole.url + "/search")
    assert "/login" in page.url
    assert page.inner_text("#login-error") == SESSION_EXPIRED_MESSAGE
    login(page, cole.url)
    cole.state.session_ttl_seconds = 0.2
    try:
        time.sleep(0.4)
        page.goto(cole.url + "/search")
        assert "/login" in page.url
    finally:
        cole.state.session_ttl_seconds = 1800


def test_captcha_fault_shows_an_interstitial(cole, page) -> None:
    cole.faults.on("cole", "captcha", times=1)
    login(page, cole.url)
    assert page.locator("#captcha-form").count() == 1
    assert page.locator("#search-form").count() == 0


def test_slow_page_fault(cole, page) -> None:
    cole.faults.on("cole", "slow_page", times=1, delay=1.2)
    started = time.perf_counter()
    page.goto(cole.url + "/login?state=NJ")
    assert time.perf_counter() - started >= 1.2  # the fault's delay happened
    page.goto(cole.url + "/login?state=NJ")
    assert cole.faults.peek("cole", "slow_page") is None  # used up after one page
    assert cole.faults.fired.count(("cole", "slow_page")) == 1


def test_missing_selector_fault_renames_the_zip_field(cole, page) -> None:
    cole.faults.on("cole", "missing_selector")
    login(page, cole.url)
    assert page.locator("#search-form").count() == 1
    assert page.locator("#zip-codes").count() == 0
    assert page.locator("#zipcode-list").count() == 1


def test_http_500_and_429_faults(cole, page) -> None:
    cole.faults.on("cole", "http_500", times=1)
    assert page.goto(cole.url + "/login?state=NJ").status == 500
    cole.faults.on("cole", "http_429", times=1, retry_after=7)
    response = page.goto(cole.url + "/login?state=NJ")
    assert response.status == 429 and response.headers["retry-after"] == "7"
    assert page.goto(cole.url + "/login?state=NJ").status == 200


def test_dropped_download_fault(cole, page) -> None:
    login(page, cole.url)
    fill_search(page, "07030")
    page.click("#export-button")
    cole.faults.on("cole", "dropped_download")  # every attempt, Chromium's resumes included
    with page.expect_download() as info:
        page.click("#download-link")
    assert info.value.failure() is not None
    assert cole.state.downloads_completed == 0 and cole.state.downloads_started >= 1
    cole.faults.off("cole", "dropped_download")
    with page.expect_download() as info:
        page.click("#download-link")
    assert info.value.failure() is None
    assert cole.state.downloads_completed == 1
