"""tenants.views: the API tokens page (people create, list and revoke their
organization's tokens) and the login page's throttling of wrong passwords (django-axes)."""

import re
from datetime import timedelta

import pytest
from axes.models import AccessAttempt
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from tenants import permissions, services
from tenants.models import ApiToken, AuditEvent, Membership, Organization, Region
from tests.factories import DEFAULT_PASSWORD, OrganizationFactory, UserFactory, api_token, member

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
    # The only organization needs no choosing (nor sending); only the roles the
    # official holds are offered.
    assert '<select name="organization"' not in html and city_office.name in html
    assert 'value="official"' in html and 'value="admin"' not in html

    created = client.post(
        PAGE,
        {
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


# --- login throttling ------------------------------------------------------------------

LOCKED = "Too many failed logins for this username from your address"


def log_in(client, username, password, address="203.0.113.7"):
    return client.post(
        "/accounts/login/",
        {"username": username, "password": password},
        REMOTE_ADDR=address,
    )


def fail(client, username, times, address="203.0.113.7"):
    for _ in range(times):
        response = log_in(client, username, "wrong password", address)
        assert response.status_code in {200, 429}


def test_right_password_after_the_limit_is_refused_with_the_lockout_message(client, settings):
    user = member()
    fail(client, user.username, settings.AXES_FAILURE_LIMIT)

    response = log_in(client, user.username, DEFAULT_PASSWORD)

    assert response.status_code == 429
    page = response.content.decode()
    assert LOCKED in page and "Try again in 15 minutes" in page
    assert "_auth_user_id" not in client.session


def test_wrong_passwords_under_the_limit_do_not_lock(client, settings):
    user = member()
    fail(client, user.username, settings.AXES_FAILURE_LIMIT - 1)
    response = log_in(client, user.username, DEFAULT_PASSWORD)
    assert response.status_code == 302
    assert client.session["_auth_user_id"] == str(user.pk)


def test_the_lock_ends_after_the_cool_off(client, settings):
    user = member()
    fail(client, user.username, settings.AXES_FAILURE_LIMIT)
    assert log_in(client, user.username, DEFAULT_PASSWORD).status_code == 429

    # The cool-off passes: the failures are now older than it.
    AccessAttempt.objects.update(
        attempt_time=timezone.now() - settings.AXES_COOLOFF_TIME - timedelta(seconds=1)
    )
    response = log_in(client, user.username, DEFAULT_PASSWORD)

    assert response.status_code == 302
    assert client.session["_auth_user_id"] == str(user.pk)


def test_another_user_from_the_same_address_is_unaffected(client, settings):
    victim, colleague = member(), member()
    fail(client, victim.username, settings.AXES_FAILURE_LIMIT + 3)

    response = log_in(client, colleague.username, DEFAULT_PASSWORD)

    assert response.status_code == 302
    assert client.session["_auth_user_id"] == str(colleague.pk)


def test_the_same_user_from_another_address_is_unaffected(client, settings):
    # An attacker elsewhere cannot lock the real user out of their own office.
    user = member()
    fail(client, user.username, settings.AXES_FAILURE_LIMIT, address="198.51.100.9")
    response = log_in(client, user.username, DEFAULT_PASSWORD, address="203.0.113.7")
    assert response.status_code == 302


def test_the_admin_login_is_throttled_too(client, settings):
    admin = member()
    admin.is_staff = admin.is_superuser = True
    admin.save()
    for _ in range(settings.AXES_FAILURE_LIMIT):
        client.post(
            "/admin/login/",
            {"username": admin.username, "password": "wrong"},
            REMOTE_ADDR="203.0.113.7",
        )
    response = client.post(
        "/admin/login/",
        {"username": admin.username, "password": DEFAULT_PASSWORD},
        REMOTE_ADDR="203.0.113.7",
    )
    assert response.status_code == 429 and LOCKED in response.content.decode()


def test_the_lockout_message_is_translated(client, settings):
    user = member()
    fail(client, user.username, settings.AXES_FAILURE_LIMIT)
    client.cookies["django_language"] = "zh-hans"
    page = log_in(client, user.username, DEFAULT_PASSWORD).content.decode()
    assert LOCKED not in page and "15 分钟" in page


def test_behind_trusted_proxies_the_client_is_counted_from_the_right(rf, settings):
    from config.client_address import client_address

    request = rf.get("/", HTTP_X_FORWARDED_FOR="6.6.6.6, 203.0.113.7, 10.0.0.2")
    request.META["REMOTE_ADDR"] = "10.0.0.3"
    settings.TRUSTED_PROXY_COUNT = 0
    assert client_address(request) == "10.0.0.3"
    settings.TRUSTED_PROXY_COUNT = 2
    # The spoofed left-most entry is never taken.
    assert client_address(request) == "203.0.113.7"
