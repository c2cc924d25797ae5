"""The API tokens page: people create, list and revoke their organization's tokens."""

import re

import pytest
from django.test import Client
from django.urls import reverse

from tenants import permissions, services
from tenants.models import ApiToken, AuditEvent, Membership, Organization, Region
from tests.factories import OrganizationFactory, UserFactory, api_token, member

pytestmark = pytest.mark.django_db

Role = Membership.Role
PAGE = reverse("api-tokens")
SECRET = re.compile(r"tw_[A-Za-z0-9_-]{40,}")


def signed_in(user, **kwargs) -> Client:
    client = Client(**kwargs)
    client.force_login(user)
    return client


@pytest.fixture
def city_office():
    return OrganizationFactory(
        kind=Organization.Kind.GOVERNMENT,
        name="Guiyang Office",
        region=Region.objects.get(code="520100"),
    )


def test_an_official_creates_a_token_sees_the_secret_once_and_it_reads_the_city(city_office):
    official = member(organization=city_office, role=Role.OFFICIAL)
    client = signed_in(official)
    page = client.get(PAGE)
    assert page.status_code == 200
    html = page.content.decode()
    # The only organization is chosen already; only the roles the official holds are offered.
    assert f'<option value="{city_office.pk}" selected>' in html
    assert 'value="official"' in html and 'value="admin"' not in html

    created = client.post(
        PAGE,
        {
            "organization": city_office.pk,
            "name": "KPI importer",
            "roles": [Role.OFFICIAL],
            "expires_in_days": "90",
        },
    )
    assert created.status_code == 201
    (secret,) = set(SECRET.findall(created.content.decode()))
    token = ApiToken.objects.get()
    assert token.digest == services.api_token_digest(secret)
    assert token.roles == [Role.OFFICIAL] and token.expires_at is not None
    assert AuditEvent.objects.filter(event_type="api_token.created", actor_user=official).exists()

    again = client.get(PAGE).content.decode()
    assert secret not in again and token.prefix in again and "KPI importer" in again

    api = Client(HTTP_AUTHORIZATION=f"Bearer {secret}")
    assert [r["code"] for r in api.get("/api/v1/reports/regions/").json()] == ["520100"]


def test_revoking_on_the_page_stops_the_token_and_is_audited(city_office):
    official = member(organization=city_office, role=Role.OFFICIAL)
    token, secret = api_token(organization=city_office, user=official)
    client = signed_in(official)
    response = client.post(reverse("api-token-revoke", args=[token.pk]), follow=True)
    assert response.status_code == 200
    assert "revoked" in response.content.decode()
    assert ApiToken.objects.get().revoked_at is not None
    assert AuditEvent.objects.filter(event_type="api_token.revoked").count() == 1
    api = Client(HTTP_AUTHORIZATION=f"Bearer {secret}")
    assert api.get("/api/v1/me/").status_code == 401
    # Revoking is a POST: a link cannot do it.
    assert client.get(reverse("api-token-revoke", args=[token.pk])).status_code == 405


def test_the_forms_need_the_csrf_token(city_office):
    official = member(organization=city_office, role=Role.OFFICIAL)
    token, _ = api_token(organization=city_office, user=official)
    client = signed_in(official, enforce_csrf_checks=True)
    create = client.post(PAGE, {"organization": city_office.pk, "name": "x", "roles": ["official"]})
    revoke = client.post(reverse("api-token-revoke", args=[token.pk]))
    assert (create.status_code, revoke.status_code) == (403, 403)
    assert ApiToken.objects.count() == 1 and ApiToken.objects.get().revoked_at is None


@pytest.mark.parametrize("role", Role.values)
def test_the_page_offers_only_roles_the_person_may_give(role):
    organization = OrganizationFactory()
    person = member(organization=organization, role=role)
    client = signed_in(person)
    page = client.get(PAGE)
    if role not in permissions.TOKEN_MANAGERS:
        assert page.status_code == 403
        return
    beyond = sorted(set(Role.values) - {role})
    response = client.post(PAGE, {"organization": organization.pk, "name": "x", "roles": beyond})
    if role == Role.ADMIN:
        assert response.status_code == 201
        assert ApiToken.objects.get().roles == beyond
    else:
        assert response.status_code == 400
        assert 'class="error"' in response.content.decode()
        assert not ApiToken.objects.exists()


def test_a_token_of_another_organization_cannot_be_revoked_from_the_page(city_office):
    official = member(organization=city_office, role=Role.OFFICIAL)
    theirs, _ = api_token(organization=OrganizationFactory())
    response = signed_in(official).post(reverse("api-token-revoke", args=[theirs.pk]))
    assert response.status_code == 404
    assert ApiToken.objects.get().revoked_at is None


def test_a_superuser_with_no_membership_gets_no_page():
    assert signed_in(UserFactory(is_superuser=True)).get(PAGE).status_code == 403


def test_errors_name_the_field_and_nothing_is_created(city_office):
    client = signed_in(member(organization=city_office, role=Role.OFFICIAL))
    response = client.post(PAGE, {"organization": city_office.pk, "name": "", "roles": []})
    assert response.status_code == 400
    html = response.content.decode()
    assert re.search(r'id="field-name".*?class="error"', html, re.S)
    assert re.search(r'id="field-roles".*?class="error"', html, re.S)
    assert not ApiToken.objects.exists()


def test_the_page_has_no_inline_script_or_style_and_speaks_chinese(city_office):
    official = member(organization=city_office, role=Role.OFFICIAL)
    api_token(organization=city_office, user=official)
    client = signed_in(official)
    client.cookies["django_language"] = "zh-hans"
    html = client.get(PAGE).content.decode()
    page = html.split("<main", 1)[1]
    assert "<style" not in page and "<script" not in page and "style=" not in page
    assert "API 令牌" in html and "创建令牌" in html


def test_the_navigation_and_home_link_to_the_page(city_office):
    official = member(organization=city_office, role=Role.OFFICIAL)
    html = signed_in(official).get("/").content.decode()
    assert 'id="nav-api-tokens"' in html and 'data-link="api-tokens"' in html
    annotator = member(organization=OrganizationFactory(), role=Role.ANNOTATOR)
    html = signed_in(annotator).get("/").content.decode()
    assert "nav-api-tokens" not in html and 'data-link="api-tokens"' not in html
