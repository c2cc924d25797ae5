"""The 403, 404 and 500 pages (config.error_pages): styled, in both languages,
never a traceback or Django's debug pages outside development; JSON under /api/."""

import pytest
from django.test import Client

from tenants.models import Membership, Organization, Region
from tests.factories import OrganizationFactory, member

pytestmark = pytest.mark.django_db

DEBUG_MARKS = ("Traceback", "URLconf", "DEBUG = True", "technical", "postgres://", "Request Method")


def official_of(code):
    office = OrganizationFactory(
        kind=Organization.Kind.GOVERNMENT, region=Region.objects.get(code=code)
    )
    return member(organization=office, role=Membership.Role.OFFICIAL)


def assert_styled(response, status):
    page = response.content.decode()
    assert response.status_code == status
    assert f'data-status="{status}"' in page and "css/tokenworks.css" in page
    for mark in DEBUG_MARKS:
        assert mark not in page
    return page


def test_a_region_outside_the_jurisdiction_is_the_styled_404(client, settings):
    settings.DEBUG = False
    client.force_login(official_of("520100"))  # Guiyang's office
    page = assert_styled(client.get("/reports/410000/"), 404)  # Henan
    assert "Page not found" in page
    assert "Henan" not in page and "河南" not in page


def test_a_client_on_the_reports_gets_the_styled_403_saying_who_they_are_for(client, settings):
    settings.DEBUG = False
    client.force_login(member(role=Membership.Role.CLIENT_DEVELOPER))
    page = assert_styled(client.get("/reports/"), 403)
    assert "Regional reports are for officials of a regional office." in page
    assert 'href="/"' in page  # and the way back


def test_the_error_pages_speak_simplified_chinese(client, settings):
    settings.DEBUG = False
    client.force_login(official_of("520100"))
    client.cookies["django_language"] = "zh-hans"
    assert "页面不存在" in assert_styled(client.get("/reports/410000/"), 404)
    assert "页面不存在" in assert_styled(client.get("/no-such-page/"), 404)


def test_an_anonymous_404_is_styled_too(client, settings):
    settings.DEBUG = False
    assert_styled(client.get("/no-such-page/"), 404)


@pytest.mark.urls("tests.config.error_urls")
def test_a_failing_page_is_the_styled_500_without_the_database(settings, django_assert_num_queries):
    settings.DEBUG = False
    client = Client(raise_request_exception=False)
    with django_assert_num_queries(0):
        response = client.get("/boom/")
    page = assert_styled(response, 500)
    assert "Something went wrong" in page


@pytest.mark.urls("tests.config.error_urls")
def test_the_500_page_speaks_simplified_chinese(settings):
    settings.DEBUG = False
    client = Client(raise_request_exception=False)
    client.cookies["django_language"] = "zh-hans"
    assert "出错了" in assert_styled(client.get("/boom/"), 500)


@pytest.mark.urls("tests.config.error_urls")
def test_api_addresses_keep_the_json_error_body(settings):
    settings.DEBUG = False
    client = Client(raise_request_exception=False)
    failed = client.get("/api/v1/boom/")
    assert failed.status_code == 500
    assert failed.json()["type"] == "server_error"
    assert "postgres://" not in failed.content.decode()
    missing = client.get("/api/v1/nothing-here/")
    assert missing.status_code == 404 and missing.json()["errors"][0]["code"] == "not_found"


def test_api_handlers_answer_json(rf):
    from django.core.exceptions import PermissionDenied
    from django.http import Http404

    from config.error_pages import page_not_found, permission_denied

    denied = permission_denied(rf.get("/api/v1/x/"), PermissionDenied("Only admins."))
    assert denied.status_code == 403
    assert denied.content == (
        b'{"type": "client_error", "errors": [{"code": "permission_denied", '
        b'"detail": "Only admins.", "attr": null}]}'
    )
    missing = page_not_found(rf.get("/api/v1/x/"), Http404("No Region matches the given query."))
    assert missing.status_code == 404 and b"Region" not in missing.content
