"""API tokens act as (organization, roles), never as the person who made them.

The escalations found from outside: a token made by a superuser read every
region and answered /me/ as `admin`; a client's token patched a platform-wide
backend. Each case below is asked over HTTP, as a client system would.
"""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from compute.models import Backend
from tenants import permissions, services
from tenants.models import ApiToken, AuditEvent, Membership, Organization, Region
from tests.factories import OrganizationFactory, UserFactory, api_token, member

pytestmark = pytest.mark.django_db

Role = Membership.Role
TOKENS = reverse("v1:api-token-list")
ME = reverse("v1:me")
REPORTS = "/api/v1/reports/regions/"
# The kind of organization where each role belongs.
KIND = {
    Role.ANNOTATOR: Organization.Kind.WORKFORCE,
    Role.REVIEWER: Organization.Kind.WORKFORCE,
    Role.PROJECT_MANAGER: Organization.Kind.WORKFORCE,
    Role.CLIENT_DEVELOPER: Organization.Kind.CLIENT,
    Role.OFFICIAL: Organization.Kind.GOVERNMENT,
    Role.ADMIN: Organization.Kind.CLIENT,
}


def bearer(secret: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    return client


def session(user) -> APIClient:
    client = APIClient()
    client.force_login(user)
    return client


def office(code: str, name: str) -> Organization:
    return OrganizationFactory(
        kind=Organization.Kind.GOVERNMENT, name=name, region=Region.objects.get(code=code)
    )


def errors(response) -> dict:
    return {e["attr"]: e["detail"] for e in response.json()["errors"]}


# --- creation: never more than the creator may give --------------------------------


@pytest.mark.parametrize("is_superuser", [False, True], ids=["person", "superuser"])
@pytest.mark.parametrize("role", Role.values)
def test_rest_creation_gives_only_roles_the_creator_holds(role, is_superuser):
    organization = OrganizationFactory(kind=KIND[role])
    creator = member(organization=organization, role=role, is_superuser=is_superuser)
    # Powers elsewhere are not the organization's to give.
    Membership.objects.create(user=creator, organization=OrganizationFactory(), role=Role.ADMIN)
    client = session(creator)

    own = client.post(
        TOKENS, {"organization": organization.pk, "name": "own", "roles": [role]}, format="json"
    )
    if role not in permissions.TOKEN_MANAGERS:
        assert own.status_code == 403, own.content
        assert not ApiToken.objects.exists()
        return
    assert own.status_code == 201, own.content
    assert own.json()["roles"] == [role]

    for other in sorted(set(Role.values) - {role}):
        more = client.post(
            TOKENS,
            {"organization": organization.pk, "name": "more", "roles": [role, other]},
            format="json",
        )
        if role == Role.ADMIN:
            # An admin decides people's roles, so a token's too.
            assert more.status_code == 201, (other, more.content)
        else:
            assert more.status_code == 400, (other, more.content)
            assert "roles" in errors(more)
    if role != Role.ADMIN:
        assert ApiToken.objects.count() == 1


@pytest.mark.parametrize("role", Role.values)
def test_admin_site_creation_gives_a_superuser_only_the_roles_held_there(client, role):
    organization = OrganizationFactory(kind=KIND[role])
    superuser = member(organization=organization, role=role, is_superuser=True, is_staff=True)
    client.force_login(superuser)
    add = reverse("admin:tenants_apitoken_add")

    beyond = sorted(set(Role.values) - {role})
    response = client.post(add, {"organization": organization.pk, "name": "x", "roles": beyond})
    if role == Role.ADMIN:
        assert response.status_code == 302
        assert ApiToken.objects.get().roles == beyond
        return
    assert response.status_code == 200  # the form again, with the reason
    assert not ApiToken.objects.exists()
    response = client.post(add, {"organization": organization.pk, "name": "x", "roles": [role]})
    if role in permissions.TOKEN_MANAGERS:
        assert response.status_code == 302
        assert ApiToken.objects.get().roles == [role]
    else:
        assert "may create its API tokens" in response.content.decode()
        assert not ApiToken.objects.exists()


def test_a_superuser_who_is_no_member_creates_no_token_in_the_admin(client):
    """The issue's path: a superuser minting a city office's token in /admin/."""
    guiyang = office("520100", "Guiyang Office")
    client.force_login(UserFactory(is_superuser=True, is_staff=True))
    response = client.post(
        reverse("admin:tenants_apitoken_add"),
        {"organization": guiyang.pk, "name": "kpi", "roles": [Role.OFFICIAL]},
    )
    assert response.status_code == 200
    assert "may create its API tokens" in response.content.decode()
    assert not ApiToken.objects.exists()


def test_a_token_may_not_create_tokens():
    organization = OrganizationFactory()
    _, secret = api_token(organization=organization, roles=[Role.CLIENT_DEVELOPER])
    response = bearer(secret).post(
        TOKENS, {"name": "child", "roles": [Role.CLIENT_DEVELOPER]}, format="json"
    )
    assert response.status_code == 403
    assert "signed-in person" in errors(response)[None]
    assert ApiToken.objects.count() == 1


def test_the_organization_defaults_to_the_callers_only_one():
    only = OrganizationFactory(kind=Organization.Kind.GOVERNMENT)
    official = member(organization=only, role=Role.OFFICIAL)
    response = session(official).post(
        TOKENS, {"name": "kpi", "roles": [Role.OFFICIAL]}, format="json"
    )
    assert response.status_code == 201, response.content
    assert response.json()["organization"] == only.pk

    Membership.objects.create(user=official, organization=OrganizationFactory(), role=Role.ADMIN)
    response = session(official).post(
        TOKENS, {"name": "kpi", "roles": [Role.OFFICIAL]}, format="json"
    )
    assert response.status_code == 400
    assert "several organizations" in errors(response)["organization"]


def test_expiry_in_the_past_and_unknown_roles_are_refused_naming_the_field():
    organization = OrganizationFactory()
    client = session(member(organization=organization, role=Role.ADMIN))
    past = (timezone.now() - timedelta(minutes=1)).isoformat()
    response = client.post(
        TOKENS, {"name": "x", "roles": [Role.ADMIN], "expires_at": past}, format="json"
    )
    assert response.status_code == 400 and "expires_at" in errors(response)
    response = client.post(TOKENS, {"name": "x", "roles": ["root"]}, format="json")
    assert response.status_code == 400 and "roles.0" in errors(response)
    response = client.post(TOKENS, {"name": "x", "roles": "admin"}, format="json")
    assert response.status_code == 400 and "roles" in errors(response)
    assert not ApiToken.objects.exists()


def test_creating_and_revoking_over_rest_are_audited_and_the_secret_is_shown_once():
    organization = OrganizationFactory()
    developer = member(organization=organization, role=Role.CLIENT_DEVELOPER)
    client = session(developer)
    made = client.post(TOKENS, {"name": "ci", "roles": [Role.CLIENT_DEVELOPER]}, format="json")
    secret = made.json()["token"]
    token = ApiToken.objects.get()
    assert token.digest == services.api_token_digest(secret) and secret not in str(
        ApiToken.objects.values().get()
    )
    assert "token" not in client.get(reverse("v1:api-token-detail", args=[token.pk])).json()
    assert client.delete(reverse("v1:api-token-detail", args=[token.pk])).status_code == 204
    events = AuditEvent.objects.filter(target_id=str(token.pk)).order_by("pk")
    assert [e.event_type for e in events] == ["api_token.created", "api_token.revoked"]
    assert events[0].changes["roles"] == [None, [Role.CLIENT_DEVELOPER]]


def test_people_without_a_token_role_do_not_see_the_organizations_tokens():
    organization = OrganizationFactory(kind=Organization.Kind.WORKFORCE)
    token, _ = api_token(organization=organization)
    annotator = member(organization=organization, role=Role.ANNOTATOR)
    assert session(annotator).get(TOKENS).json()["results"] == []
    detail = reverse("v1:api-token-detail", args=[token.pk])
    assert session(annotator).delete(detail).status_code == 404
    assert ApiToken.objects.get().revoked_at is None


# --- what a token may do: its own roles, in its own organization ---------------------


@pytest.fixture
def offices():
    """The issue's world: Guizhou's and Guiyang's offices, Henan's, and a superuser
    who is an official of the Guiyang office and an admin of a client."""
    guiyang = office("520100", "Guiyang Office")
    guizhou = office("520000", "Guizhou Bureau")
    henan = office("410000", "Henan Bureau")
    superuser = member(organization=guiyang, role=Role.OFFICIAL, is_superuser=True)
    client_org = OrganizationFactory(kind=Organization.Kind.CLIENT, name="Client Co")
    Membership.objects.create(user=superuser, organization=client_org, role=Role.ADMIN)
    Membership.objects.create(user=superuser, organization=henan, role=Role.OFFICIAL)
    return {
        "guiyang": guiyang,
        "guizhou": guizhou,
        "henan": henan,
        "client": client_org,
        "superuser": superuser,
    }


def test_a_superusers_city_office_token_reads_its_city_only(offices):
    _, secret = api_token(organization=offices["guiyang"], user=offices["superuser"])
    client = bearer(secret)
    assert [r["code"] for r in client.get(REPORTS).json()] == ["520100"]
    assert client.get(f"{REPORTS}520100/").status_code == 200
    for code in ("520000", "520300", "410000", "410100", "CN"):
        assert client.get(f"{REPORTS}{code}/").status_code == 404, code
    organizations = client.get(reverse("v1:organization-list")).json()["results"]
    assert [o["id"] for o in organizations] == [offices["guiyang"].pk]
    # Not the platform's audit trail, not the client's.
    assert client.get(reverse("v1:audit-event-list")).status_code == 403
    # The same person signed in is platform staff and sees the country.
    assert "CN" in {r["code"] for r in session(offices["superuser"]).get(REPORTS).json()}


def test_me_under_a_token_describes_the_token_not_its_creator(offices):
    expires = timezone.now() + timedelta(days=30)
    token, secret = api_token(
        organization=offices["guiyang"],
        user=offices["superuser"],
        name="KPI importer",
        expires_at=expires,
    )
    me = bearer(secret).get(ME).json()
    assert me["principal"] == "api_token"
    assert (me["id"], me["username"], me["email"]) == (None, None, None)
    assert me["memberships"] == [
        {
            "organization": offices["guiyang"].pk,
            "organization_name": "Guiyang Office",
            "role": Role.OFFICIAL,
        }
    ]
    assert me["token"] == {
        "id": token.pk,
        "name": "KPI importer",
        "prefix": token.prefix,
        "organization": offices["guiyang"].pk,
        "organization_name": "Guiyang Office",
        "roles": [Role.OFFICIAL],
        "expires_at": timezone.localtime(expires).isoformat(),
        "created_by": offices["superuser"].username,
    }
    person = session(offices["superuser"]).get(ME).json()
    assert person["principal"] == "user" and person["token"] is None
    assert {m["organization"] for m in person["memberships"]} == {
        offices["guiyang"].pk,
        offices["client"].pk,
        offices["henan"].pk,
    }


def test_a_client_token_cannot_patch_a_platform_wide_backend(offices):
    platform_backend = Backend.objects.create(
        organization=None, name="Built-in", base_url="http://127.0.0.1:9/v1"
    )
    # Made by a superuser who is the client's admin: the token is the client's admin.
    _, secret = api_token(organization=offices["client"], user=offices["superuser"])
    url = reverse("v1:backend-detail", args=[platform_backend.pk])
    for method in ("patch", "delete"):
        response = getattr(bearer(secret), method)(
            url, {"name": "mine now", "base_url": "http://evil.example/v1"}, format="json"
        )
        assert response.status_code == 403, (method, response.status_code)
        assert "platform administrators" in errors(response)[None]
    platform_backend.refresh_from_db()
    assert platform_backend.name == "Built-in"
    # Signed in, the superuser may.
    response = session(offices["superuser"]).patch(url, {"name": "Renamed"}, format="json")
    assert response.status_code == 200, response.content


@pytest.mark.parametrize("role", Role.values)
def test_a_tokens_rules_follow_its_roles_never_the_creators_others(role):
    """Whatever one role a token carries, every rule sees that role, in that organization."""
    organization = OrganizationFactory(kind=KIND[role])
    elsewhere = OrganizationFactory(kind=KIND[role])
    creator = member(organization=organization, role=Role.ADMIN, is_superuser=True)
    Membership.objects.create(user=creator, organization=elsewhere, role=Role.ADMIN)
    token, secret = api_token(organization=organization, user=creator, roles=[role])
    me = bearer(secret).get(ME).json()
    assert [m["role"] for m in me["memberships"]] == [role]

    principal = permissions.principal_attach(creator, token)
    assert principal.roles_in(organization) == {role}
    assert principal.roles_in(elsewhere) == set()
    assert not permissions.is_platform_staff(creator)
    assert permissions.can_manage_members(creator, organization) == (role == Role.ADMIN)
    assert not permissions.can_manage_members(creator, elsewhere)
    assert not permissions.can_manage_api_tokens(creator, elsewhere)
    assert principal.organization_ids() == [organization.pk]


def test_a_fresh_copy_of_the_creator_during_a_token_request_still_acts_as_the_token():
    """A service that reloads the acting user cannot fall back to the person's powers."""
    from tenants.models import User
    from tenants.request_context import api_token_bind

    organization = OrganizationFactory()
    creator = member(organization=organization, role=Role.ADMIN, is_superuser=True)
    token, _ = api_token(organization=organization, user=creator, roles=[Role.CLIENT_DEVELOPER])
    api_token_bind(token)
    try:
        fresh = User.objects.get(pk=creator.pk)
        assert permissions.principal_for(fresh).is_token
        assert not permissions.is_platform_staff(fresh)
        assert not permissions.can_manage_members(fresh, organization)
    finally:
        api_token_bind(None)
    assert permissions.can_manage_members(User.objects.get(pk=creator.pk), organization)


# --- failing closed ---------------------------------------------------------------------


def _refused(secret, fragment):
    response = bearer(secret).get(ME)
    assert response.status_code == 401, response.content
    assert response["WWW-Authenticate"] == "Bearer"
    assert fragment in errors(response)[None]


def test_removing_the_creators_membership_kills_the_token():
    organization = OrganizationFactory()
    developer = member(organization=organization, role=Role.CLIENT_DEVELOPER)
    _, secret = api_token(organization=organization, user=developer)
    assert bearer(secret).get(ME).status_code == 200
    services.membership_delete(membership=developer.memberships.get(), actor=None)
    _refused(secret, "carries no role")


def test_changing_the_creators_role_kills_a_token_of_the_old_role():
    office_ = OrganizationFactory(kind=Organization.Kind.GOVERNMENT)
    official = member(organization=office_, role=Role.OFFICIAL)
    _, secret = api_token(organization=office_, user=official)
    services.membership_role_change(
        membership=official.memberships.get(), role=Role.ANNOTATOR, actor=None
    )
    _refused(secret, "carries no role")


def test_removing_the_creators_admin_role_narrows_the_token_to_what_they_still_hold():
    organization = OrganizationFactory()
    creator = member(organization=organization, role=Role.ADMIN)
    developer_role = Membership.objects.create(
        user=creator, organization=organization, role=Role.CLIENT_DEVELOPER
    )
    assert developer_role.pk
    _, secret = api_token(
        organization=organization, user=creator, roles=[Role.ADMIN, Role.CLIENT_DEVELOPER]
    )
    audit = reverse("v1:audit-event-list")
    assert bearer(secret).get(audit).status_code == 200
    services.membership_delete(membership=creator.memberships.get(role=Role.ADMIN), actor=None)
    assert bearer(secret).get(audit).status_code == 403
    me = bearer(secret).get(ME).json()
    assert me["token"]["roles"] == [Role.CLIENT_DEVELOPER]


def test_an_expired_token_is_refused_saying_so():
    organization = OrganizationFactory()
    token, secret = api_token(
        organization=organization, expires_at=timezone.now() + timedelta(hours=1)
    )
    assert bearer(secret).get(ME).status_code == 200
    ApiToken.objects.filter(pk=token.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    _refused(secret, "expired")
    assert not ApiToken.objects.get(pk=token.pk).is_active


def test_a_revoked_token_and_a_deactivated_creator_are_refused():
    organization = OrganizationFactory()
    token, secret = api_token(organization=organization)
    services.api_token_revoke(token=token, revoked_by=token.created_by)
    _refused(secret, "Invalid or revoked token.")
    _, other_secret = api_token(organization=organization)
    creator = ApiToken.objects.get(revoked_at__isnull=True).created_by
    creator.is_active = False
    creator.save(update_fields=["is_active"])
    _refused(other_secret, "Invalid or revoked token.")


def test_a_superuser_creators_token_never_falls_back_to_superuser_powers():
    """A superuser who leaves the organization takes the token's powers along."""
    organization = OrganizationFactory()
    superuser = member(organization=organization, role=Role.CLIENT_DEVELOPER, is_superuser=True)
    _, secret = api_token(organization=organization, user=superuser)
    superuser.memberships.all().delete()
    _refused(secret, "carries no role")


def test_a_token_with_a_role_the_creator_holds_no_more_reads_no_rows():
    """Rows are scoped by the principal too, not only the rules (fail closed)."""
    organization = OrganizationFactory()
    creator = member(organization=organization, role=Role.ADMIN)
    token, _ = api_token(organization=organization, user=creator, roles=[Role.OFFICIAL])
    # As the product changes a role (a bulk update() would bypass the forgetting
    # of cached roles, and nothing in the product makes one on memberships).
    from tenants.services import membership_role_change

    membership_role_change(membership=creator.memberships.get(), role=Role.ANNOTATOR, actor=None)
    principal = permissions.Principal(creator, token)
    assert principal.organization_ids() == []
    assert principal.roles_in(organization) == set()
