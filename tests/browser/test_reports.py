"""Officials' dashboard in real Chromium, on `make run`'s twelve months of history."""

from importlib import import_module

import pytest
from playwright.sync_api import expect

from kpireports import demo
from tenants.demo import DEMO_PASSWORD
from tenants.demo import demo_seed as tenants_seed
from tests.browser.conftest import ARTIFACTS

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

CHARTS = ["chart-volume", "chart-revenue-tier", "chart-rpt", "chart-vci", "chart-employment"]


@pytest.fixture
def history():
    # Transactional tests flush the database after each test, taking the
    # reference data the migrations seeded with it: put it back first.
    from django.apps import apps

    from tenants.services import regions_sync

    regions_sync()
    import_module("valuechain.migrations.0002_append_only_and_tiers").seed_tiers(apps, None)
    tenants_seed()
    demo.demo_seed()


def log_in(page, username):
    page.goto("/accounts/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", DEMO_PASSWORD)
    page.click("#login-button")
    page.wait_for_url("**/")


def _charts_drawn(page, ids):
    for chart in ids:
        page.wait_for_selector(f"#{chart}[data-rendered=true] canvas")
        box = page.locator(f"#{chart} canvas").first.bounding_box()
        assert box["width"] > 200 and box["height"] > 200, chart


def _screenshot(page, name):
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / name), full_page=True)


def test_a_province_official_sees_the_province_and_its_cities(page, history):
    log_in(page, "official")
    page.click("[data-link=reports]")
    page.wait_for_url("**/reports/520000/")
    assert page.text_content("#report-title").startswith("Guizhou")
    _charts_drawn(page, [*CHARTS, "chart-league", "chart-map"])
    league = page.locator("#section-league tbody td:first-child").all_text_contents()
    assert {"Guiyang", "Zunyi"} <= set(league) and "Zhengzhou" not in league
    options = page.locator("#picker-region option").all_text_contents()
    assert "Guizhou" in options and "Guiyang" in options and "Henan" not in options
    # A tooltip states the definition of the figure under the pointer.
    assert "T3" in page.get_attribute(".kpi-card[data-row='9']", "title")
    assert "demo-520100" not in page.content()  # no person is ever named
    _screenshot(page, "reports-province-official.png")

    # Drill down to a city through the picker, keeping the period.
    page.select_option("#picker-region", "520100")
    page.fill("#picker-start", "2026-01")
    page.click("#report-picker button[type=submit]")
    page.wait_for_url("**/reports/520100/?**")
    assert page.text_content("#report-title").startswith("Guiyang")
    with page.expect_download() as download:
        page.click("#export-pdf")
    assert download.value.suggested_filename.endswith(".pdf")

    response = page.goto("/reports/410000/")
    assert response.status == 404


def test_a_city_official_sees_the_city_only(page, history):
    log_in(page, "official-city")
    page.goto("/reports/")
    page.wait_for_url("**/reports/520100/")
    _charts_drawn(page, CHARTS)
    assert page.locator("#picker-region option").all_text_contents() == ["Guiyang"]
    assert page.locator("#section-league").count() == 0  # a city has no cities under it
    _screenshot(page, "reports-city-official.png")
    for code in ("520000", "520300"):
        assert page.goto(f"/reports/{code}/").status == 404


def test_the_dashboard_speaks_chinese(page, history):
    log_in(page, "official")
    page.goto("/reports/520000/")
    page.select_option("#language-select", "zh-hans")
    expect(page.locator("html")).to_have_attribute("lang", "zh-hans")
    assert "贵州" in page.text_content("#report-title")
    assert "价值链指数" in page.text_content("#section-summary")
    _charts_drawn(page, ["chart-vci"])
