"""The role sets and tenants' own rules: API tokens and what the navigation offers."""

import pytest
from django.core.exceptions import PermissionDenied
from django.test import Client

from tenants import permissions
from tenants.models import Membership, Organization
from tests.factories import OrganizationFactory, UserFactory, member

pytestmark = pytest.mark.django_db

Role = Membership.Role


def test_role_sets_are_frozen_and_name_only_real_roles():
    sets = [value for name, value in vars(permissions).items() if name.isupper() and name != "Role"]
    assert sets and all(isinstance(roles, frozenset) for roles in sets)
    assert set().union(*sets) <= set(Role.values)


def test_refusal_names_the_roles_the_way_the_tests_of_each_app_read_it():
    message = permissions.roles_message(permissions.PROJECT_EDITORS, "create projects")
    assert message == (
        "Only a administrator, client developer, project manager of the organization "
        "may create projects."
    )


def test_has_role_is_false_without_an_organization_or_a_login():
    organization = OrganizationFactory()
    user = member(organization=organization, role=Role.ADMIN)
    assert permissions.has_role(user, organization, {Role.ADMIN})
    assert not permissions.has_role(user, None, {Role.ADMIN})
    from django.contrib.auth.models import AnonymousUser

    assert not permissions.has_role(AnonymousUser(), organization, {Role.ADMIN})


@pytest.mark.parametrize("role", sorted(permissions.TOKEN_MANAGERS))
def test_token_managers_may_manage_api_tokens(role):
    organization = OrganizationFactory()
    user = member(organization=organization, role=role)
    assert permissions.can_manage_api_tokens(user, organization)
    permissions.require_can_manage_api_tokens(user, organization, verb="create")


@pytest.mark.parametrize("role", sorted(set(Role.values) - permissions.TOKEN_MANAGERS))
def test_other_roles_may_not_manage_api_tokens(role):
    organization = OrganizationFactory()
    user = member(organization=organization, role=role)
    assert not permissions.can_manage_api_tokens(user, organization)
    with pytest.raises(PermissionDenied, match="may revoke its API tokens"):
        permissions.require_can_manage_api_tokens(user, organization, verb="revoke")


def test_an_admin_of_another_organization_may_not_manage_these_api_tokens():
    user = member(role=Role.ADMIN)
    assert not permissions.can_manage_api_tokens(user, OrganizationFactory())


def test_a_superuser_may_manage_every_organizations_api_tokens():
    assert permissions.can_manage_api_tokens(UserFactory(is_superuser=True), OrganizationFactory())


@pytest.mark.parametrize(
    ("role", "kind", "expected"),
    [
        (Role.ANNOTATOR, Organization.Kind.WORKFORCE, {"workspace"}),
        (Role.REVIEWER, Organization.Kind.WORKFORCE, {"workspace"}),
        (
            Role.PROJECT_MANAGER,
            Organization.Kind.WORKFORCE,
            {"workspace", "backends", "api_tokens", "projects"},
        ),
        (Role.PROJECT_MANAGER, Organization.Kind.CLIENT, {"backends", "api_tokens", "projects"}),
        (Role.CLIENT_DEVELOPER, Organization.Kind.CLIENT, {"backends", "api_tokens", "projects"}),
        (Role.ADMIN, Organization.Kind.CLIENT, {"backends", "api_tokens", "projects"}),
        (Role.ADMIN, Organization.Kind.WORKFORCE, {"backends", "api_tokens"}),
        (Role.OFFICIAL, Organization.Kind.GOVERNMENT, {"reports", "api_tokens"}),
        (Role.OFFICIAL, Organization.Kind.CLIENT, {"api_tokens"}),
    ],
)
def test_page_permissions_follow_the_roles(role, kind, expected):
    user = member(organization=OrganizationFactory(kind=kind), role=role)
    allowed = {page for page, ok in permissions.page_permissions(user).items() if ok}
    assert allowed == expected


def test_an_inactive_organization_opens_no_page():
    organization = OrganizationFactory(kind=Organization.Kind.GOVERNMENT, is_active=False)
    user = member(organization=organization, role=Role.OFFICIAL)
    assert not any(permissions.page_permissions(user).values())


def test_a_superuser_may_open_reports_and_backends():
    can = permissions.page_permissions(UserFactory(is_superuser=True))
    # Not the tokens page: a superuser gives a token only roles held in its organization.
    assert can == {
        "workspace": False,
        "reports": True,
        "backends": True,
        "api_tokens": False,
        "projects": False,
    }


def test_page_permissions_cost_one_query(django_assert_num_queries):
    user = member(role=Role.ADMIN)
    with django_assert_num_queries(1):
        permissions.page_permissions(user)


def test_the_navigation_offers_only_the_pages_the_rules_allow():
    official = member(
        organization=OrganizationFactory(kind=Organization.Kind.GOVERNMENT), role=Role.OFFICIAL
    )
    client = Client()
    client.force_login(official)
    html = client.get("/").content.decode()
    assert 'id="nav-reports"' in html
    assert 'id="nav-workspace"' not in html and 'id="nav-backends"' not in html
    assert 'data-link="reports"' in html
