"""eventhooks.permissions: who may manage an organization's webhooks."""

import pytest
from django.core.exceptions import PermissionDenied

from eventhooks import permissions
from tenants.models import Membership
from tests.factories import OrganizationFactory, UserFactory, member

pytestmark = pytest.mark.django_db

Role = Membership.Role
MANAGERS = {Role.ADMIN, Role.CLIENT_DEVELOPER, Role.PROJECT_MANAGER}


@pytest.mark.parametrize("role", sorted(Role.values))
def test_admins_developers_and_managers_manage_webhooks(role):
    organization = OrganizationFactory()
    user = member(organization=organization, role=role)
    allowed = role in MANAGERS
    assert permissions.can_manage_webhooks(user, organization) is allowed
    if not allowed:
        with pytest.raises(PermissionDenied) as refused:
            permissions.require_can_manage_webhooks(user, organization)
        assert str(refused.value) == (
            "Only an admin, client developer or project manager of the organization "
            "may manage its webhooks."
        )


def test_a_manager_of_another_organization_may_not_manage_these_webhooks():
    assert not permissions.can_manage_webhooks(member(role=Role.ADMIN), OrganizationFactory())


def test_a_superuser_manages_every_organizations_webhooks():
    assert permissions.can_manage_webhooks(UserFactory(is_superuser=True), OrganizationFactory())
