"""Each role's job in real Chromium, in English and Chinese, with no console errors:
a client makes a token and reads its project's progress and statement, a city
office makes a token and downloads its report, a centre's manager changes an
annotator's tier with a reason. Screenshots of each main page go to test-artifacts/.
"""

from importlib import import_module

import pytest
from playwright.sync_api import expect

from tenants.demo import DEMO_PASSWORD
from tenants.demo import demo_seed as tenants_seed
from tenants.models import AuditEvent, User
from tests.browser.conftest import ARTIFACTS

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

LANGUAGES = ["en", "zh-hans"]


@pytest.fixture
def demo():
    # Transactional tests flush the database after each test, taking the
    # reference data the migrations seeded with it: put it back first.
    from django.apps import apps

    from tenants.services import regions_sync

    regions_sync()
    import_module("valuechain.migrations.0002_append_only_and_tiers").seed_tiers(apps, None)
    tenants_seed()
    import_module("annotation.demo").demo_seed()
    import_module("compute.demo").demo_seed()


@pytest.fixture
def kpi_history(demo):
    import_module("kpireports.demo").demo_seed()


@pytest.fixture
def in_language(browser, live_server, request):
    """A page in the given language whose console errors and page errors are collected."""

    def open_page(language):
        context = browser.new_context(
            base_url=live_server.url, locale="en-US", accept_downloads=True
        )
        context.add_cookies(
            [{"name": "django_language", "value": language, "url": live_server.url}]
        )
        page = context.new_page()
        page.set_default_timeout(15_000)
        expect.set_options(timeout=15_000)
        page.errors = []
        page.on(
            "console",
            lambda message: message.type == "error" and page.errors.append(message.text),
        )
        page.on("pageerror", lambda error: page.errors.append(str(error)))
        opened.append(page)
        return page

    opened = []
    yield open_page
    for page in opened:
        page.context.close()


def log_in(page, username):
    page.goto("/accounts/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", DEMO_PASSWORD)
    page.click("#login-button")
    page.wait_for_url("**/")


def shot(page, name, language):
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}-{language}.png"), full_page=True)


def make_token(page, *, name, role, language):
    page.click("[data-role] a[data-link=api-tokens]")
    page.wait_for_url("**/tokens/")
    expect(page.locator("select[name=organization]")).to_have_count(0)  # one organization
    page.fill("#id_name", name)
    page.check(f"input[name=roles][value={role}]")
    page.click("#create-token")
    expect(page.locator("#new-token-secret")).to_contain_text("tw_")
    shot(page, f"tokens-{role}", language)
    secret = page.text_content("#new-token-secret").strip()
    page.goto("/tokens/")
    assert secret not in page.content()  # shown once
    expect(page.locator("#token-table")).to_contain_text(name)
    return secret


@pytest.mark.parametrize("language", LANGUAGES)
def test_a_client_makes_a_token_and_reads_progress_and_the_statement(in_language, demo, language):
    page = in_language(language)
    log_in(page, "client")
    expect(page.locator("html")).to_have_attribute("lang", language)
    shot(page, "home-client", language)
    make_token(page, name="CI pipeline", role="client_developer", language=language)

    page.goto("/")
    page.click("[data-role=client_developer] a[data-link=statements]")
    page.wait_for_url("**/statements/")
    rows = page.locator("#statement-projects tbody tr[data-project]")
    assert rows.count() >= 3
    shot(page, "statements-client", language)
    rows.first.locator("a[data-statement]").click()
    page.wait_for_url("**/statements/*/")
    expect(page.locator("#statement-progress")).to_be_visible()
    expect(page.locator("#statement-lines")).to_be_visible()
    page.click("#previous-month")
    page.wait_for_url("**month=*")
    shot(page, "statement-client", language)
    with page.expect_download() as download:
        page.click("#statement-csv")
    assert download.value.suggested_filename.endswith(".csv")
    if language == "zh-hans":
        assert "对账单" in page.text_content("h1")
    assert page.errors == []


@pytest.mark.parametrize("language", LANGUAGES)
def test_a_city_office_makes_a_token_and_downloads_its_report(
    in_language, kpi_history, language, live_server
):
    page = in_language(language)
    log_in(page, "official-city")
    shot(page, "home-official", language)
    secret = make_token(page, name="KPI importer", role="official", language=language)
    page.goto("/")
    page.click("[data-role=official] a[data-link=reports]")
    page.wait_for_url("**/reports/520100/")
    page.wait_for_selector("#chart-vci[data-rendered=true] canvas")
    shot(page, "reports-official", language)
    with page.expect_download() as download:
        page.click("#export-pdf")
    assert download.value.suggested_filename.endswith(".pdf")
    # The token reads the same office's figures over REST.
    response = page.request.get(
        "/api/v1/reports/regions/", headers={"Authorization": f"Bearer {secret}"}
    )
    assert [r["code"] for r in response.json()] == ["520100"]
    assert page.errors == []


@pytest.mark.parametrize("language", LANGUAGES)
def test_a_manager_changes_a_tier_with_a_reason(in_language, demo, language):
    page = in_language(language)
    log_in(page, "manager")
    shot(page, "home-manager", language)
    page.click("[data-role=project_manager] a[data-link=people]")
    page.wait_for_url("**/people/")
    expect(page.locator("#people-table")).to_contain_text("annotator2")
    shot(page, "people-manager", language)
    page.click("a[data-open=annotator2]")
    page.wait_for_url("**/people/*/*/")
    page.select_option("#id_to_level", "3")
    page.click("#change-tier")  # no reason: refused, nothing changed
    expect(page.locator("#field-reason .error")).to_be_visible()
    assert User.objects.get(username="annotator2").skill_tier == 1
    # The refusal is a 400 on purpose, which Chromium reports as a failed load.
    assert page.errors == [
        "Failed to load resource: the server responded with a status of 400 (Bad Request)"
    ]
    page.errors.clear()
    page.fill("#id_reason", "通过了医疗术语测试 Passed the medical-terms test")
    page.click("#change-tier")
    expect(page.locator("#current-tier")).to_contain_text("T3")
    expect(page.locator("#tier-history")).to_contain_text("Passed the medical-terms test")
    shot(page, "person-manager", language)
    assert AuditEvent.objects.filter(
        event_type="tier.changed", actor_user__username="manager"
    ).exists()

    page.click("#nav-backends")
    page.wait_for_url("**/compute/backends/")
    expect(page.locator("#backend-table")).to_be_visible()
    shot(page, "backends-manager", language)
    if language == "zh-hans":
        assert "推理后端" in page.text_content("#backends-title")
    assert page.errors == []
