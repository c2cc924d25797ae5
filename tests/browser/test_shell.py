import pytest
from playwright.sync_api import expect

from tenants.models import Membership
from tests.factories import DEFAULT_PASSWORD, OrganizationFactory, member

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def log_in(page, user):
    page.goto("/accounts/login/")
    page.fill("#id_username", user.username)
    page.fill("#id_password", DEFAULT_PASSWORD)
    page.click("#login-button")
    page.wait_for_url("**/")


def test_login_shows_the_home_page_for_the_users_roles(page):
    organization = OrganizationFactory(name="Guiyang Data Annotation Centre")
    user = member(organization=organization, role=Membership.Role.ANNOTATOR, display_name="王小丽")
    Membership.objects.create(user=user, organization=organization, role="reviewer")

    log_in(page, user)

    assert page.text_content("#welcome") == "Welcome, 王小丽"
    roles = page.locator(".card").evaluate_all("cards => cards.map(c => c.dataset.role)")
    assert roles == ["annotator", "reviewer"]
    assert "Guiyang Data Annotation Centre" in page.text_content(".role-annotator")


def test_wrong_password_is_refused_with_a_message(page):
    user = member()
    page.goto("/accounts/login/")
    page.fill("#id_username", user.username)
    page.fill("#id_password", "not the password")
    page.click("#login-button")
    assert "didn't match" in page.text_content("[role=alert]")
    assert page.url.endswith("/accounts/login/")


def test_logout_ends_the_session(page):
    log_in(page, member())
    page.click("#logout-button")
    page.wait_for_url("**/accounts/login/")
    page.goto("/")
    assert "/accounts/login/" in page.url  # home needs a login again


def test_language_switch_to_simplified_chinese_and_back(page):
    log_in(page, member(role=Membership.Role.OFFICIAL))
    assert page.text_content("#logout-button") == "Log out"

    page.select_option("#language-select", "zh-hans")
    page.wait_for_load_state("load")
    expect(page.locator("html")).to_have_attribute("lang", "zh-hans")
    assert page.text_content("#logout-button") == "退出登录"
    assert page.text_content(".role-official h2") == "政府官员"

    # The choice sticks across pages.
    page.goto("/accounts/login/")
    page.goto("/")
    assert page.text_content("#logout-button") == "退出登录"

    page.select_option("#language-select", "en")
    expect(page.locator("html")).to_have_attribute("lang", "en")
    assert page.text_content("#logout-button") == "Log out"


def test_static_files_are_served_locally(page):
    requests = []
    page.on("request", lambda r: requests.append(r.url))
    page.goto("/accounts/login/")
    assert any("/static/css/tokenworks.css" in url for url in requests)
    foreign = [url for url in requests if not url.startswith(page.url.split("/accounts")[0])]
    assert not foreign
    color = page.evaluate(
        "getComputedStyle(document.querySelector('#login-button')).backgroundColor"
    )
    assert color == "rgb(31, 111, 235)"  # the stylesheet really loaded
