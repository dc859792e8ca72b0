"""Selectors in one place: the page model reads selectors.toml (ordered fallbacks), an operator's
file can replace keys, the sister product's login form works through the fallbacks, and a
missing element is reported by its key (error text and screenshot name)."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest

from homeowner_dagster.resources.cole import SelectorMissing
from homeowner_dagster.resources.cole import selectors as cole_selectors
from homeowner_dagster.resources.cole.pages import ColePages, SearchForm
from homeowner_dagster.sandbox import generator
from homeowner_dagster_tests import cole_fixtures
from homeowner_dagster_tests.cole_fixtures import TEST_CREDENTIALS

cole_sandbox = cole_fixtures.cole_sandbox
cole = cole_fixtures.cole
cole_env = cole_fixtures.cole_env
chromium = cole_fixtures.chromium
page = cole_fixtures.page
resource = cole_fixtures.resource

MONTH = date(2027, 3, 1)


@pytest.fixture
def sister_login(cole):  # noqa: ANN001, ANN201
    cole.state.login_style = "sister"
    yield cole
    cole.state.login_style = "xdates"


def test_the_packaged_file_names_every_element_the_flow_uses() -> None:
    book = cole_selectors.load()
    assert set(book.pages) == set(cole_selectors.PAGES)
    assert "zip_codes" in book.keys("search") and book.page_of("zip_codes") == "search"
    assert book.candidates("zip_codes")[0] == "#zip-codes"
    assert len(book.candidates("login_form")) >= 2  # the sister form's fallback is listed


def test_the_sister_products_login_form_works_through_the_fallbacks(resource, sister_login) -> None:
    """Realty Resource's ASP.NET-style form: other names, and an agreement box to tick."""
    count = resource.count("NJ", ["07030"], MONTH)
    assert count == generator.count_for("07030", MONTH)
    assert sister_login.state.logins == 1 and sister_login.state.failed_logins == 0


def test_a_renamed_id_is_found_by_its_fallback(resource, cole) -> None:
    cole.faults.on("cole", "missing_selector", keep_name=True)
    assert resource.count("NJ", ["07030"], MONTH) == generator.count_for("07030", MONTH)


def test_a_missing_element_is_named_by_its_key_in_the_error_and_the_screenshot(
    resource, cole
) -> None:
    cole.faults.on("cole", "missing_selector")
    with pytest.raises(SelectorMissing) as caught:
        resource.count("NJ", ["07030"], MONTH)
    error = caught.value
    assert error.selector_key == "zip_codes"
    assert "'zip_codes'" in str(error) and "selectors.toml" in str(error)
    shot = Path(unquote(urlparse(error.screenshot_url).path))
    assert shot.name.endswith("SelectorMissing-zip_codes-screenshot.png"), shot.name
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_an_operators_file_replaces_keys_without_touching_the_flow(
    resource, cole, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The redesign renamed the ZIP field; the operator adds its new id in their own file."""
    cole.faults.on("cole", "missing_selector")
    override = tmp_path / "selectors.toml"
    override.write_text('[pages.search]\nzip_codes = ["#zipcode-list", "#zip-codes"]\n')
    monkeypatch.setenv(cole_selectors.SELECTORS_ENV, str(override))
    assert cole_selectors.book().candidates("zip_codes") == ("#zipcode-list", "#zip-codes")
    assert cole_selectors.book().candidates("search_form") == ("#search-form",)  # others kept
    # The sandbox's redesigned form also renamed the field (zipcode_list): the site answers,
    # and the search reaches it (a refusal naming the empty ZIP list, not SelectorMissing).
    with pytest.raises(Exception) as caught:
        resource.count("NJ", ["07030"], MONTH)
    assert not isinstance(caught.value, SelectorMissing), caught.value
    assert "ZIP" in str(caught.value)


def test_a_file_naming_an_unknown_key_is_refused(tmp_path: Path) -> None:
    override = tmp_path / "selectors.toml"
    override.write_text('[pages.search]\nzip_code = ["#zip"]\n')
    with pytest.raises(cole_selectors.SelectorFileError, match="zip_code"):
        cole_selectors.load(override)


# Tests with the module's own browser (`page`) come last: a resource call (which starts its own
# Playwright) cannot run in a thread where the module's Playwright is already running.


def test_the_sister_form_is_surveyed_by_its_fallbacks(sister_login, page) -> None:
    pages = ColePages(page, sister_login.url, 5_000)
    pages.open_login("NJ")
    found = pages.survey("login")
    assert found["login_form"] == "form#aspnetForm"
    assert found["username"] == "input[name$='UserName' i]"
    assert found["password"] == "input[type=password]"
    assert pages.locate("user_agreement") is not None


def test_the_agreement_box_must_be_ticked_on_the_sister_form(sister_login, page) -> None:
    """The sandbox refuses the sister form without the box: the page model's ticking is real."""
    pages = ColePages(page, sister_login.url, 5_000)
    pages.open_login("NJ")
    username, password, _ = TEST_CREDENTIALS["NJ"]
    page.fill("input[name$='UserName' i]", username)
    page.fill("input[type=password]", password)
    page.click("input[type=submit]")
    assert "User Agreement" in page.inner_text("body")
    assert sister_login.state.logins == 0


def test_the_survey_reports_the_fallback_that_matched(cole, page) -> None:
    cole.faults.on("cole", "missing_selector", keep_name=True)
    pages = ColePages(page, cole.url, 5_000)
    username, password, _ = TEST_CREDENTIALS["NJ"]
    pages.login("NJ", username, password)
    pages.open_search()
    assert pages.survey("search")["zip_codes"] == "input[name='zip_codes']"


def test_search_form_fills_from_the_keys(cole, page) -> None:
    pages = ColePages(page, cole.url, 5_000)
    username, password, _ = TEST_CREDENTIALS["NJ"]
    assert pages.login("NJ", username, password) is False
    assert pages.search(SearchForm("NJ", ["07030"], MONTH)) == generator.count_for("07030", MONTH)
    assert pages.matched["record_count"] == "#record-count"
