"""compute.permissions: who may run models on a project and manage or watch backends."""

import pytest
from django.core.exceptions import PermissionDenied
from django.test import Client

from compute import permissions
from tenants.models import Membership, Organization
from tests.factories import OrganizationFactory, UserFactory, annotation_project, member, worker

pytestmark = pytest.mark.django_db

Role = Membership.Role
ALL_ROLES = set(Role.values)
CLIENT_RUNNERS = {Role.CLIENT_DEVELOPER, Role.PROJECT_MANAGER, Role.ADMIN}
BACKEND_MANAGERS = {Role.ADMIN, Role.PROJECT_MANAGER}
OBSERVERS = {Role.ADMIN, Role.CLIENT_DEVELOPER, Role.PROJECT_MANAGER}
RUN_REFUSAL = (
    "Only the client's developers and managers, or the centre's project managers, "
    "may run models on this project."
)


@pytest.mark.parametrize("role", sorted(ALL_ROLES))
def test_the_clients_editors_may_run_models(role):
    project = annotation_project()
    user = member(organization=project.organization, role=role)
    assert permissions.can_run_on_project(user, project) is (role in CLIENT_RUNNERS)


@pytest.mark.parametrize("role", sorted(ALL_ROLES))
def test_only_the_centres_project_managers_may_run_models(role):
    project = annotation_project()
    user = worker(project, role=role)
    allowed = role == Role.PROJECT_MANAGER
    assert permissions.can_run_on_project(user, project) is allowed
    if not allowed:
        with pytest.raises(PermissionDenied) as refused:
            permissions.require_can_run_on_project(user, project)
        assert str(refused.value) == RUN_REFUSAL


def test_another_organizations_manager_may_not_run_models():
    project = annotation_project()
    outsider = member(
        organization=OrganizationFactory(kind=Organization.Kind.WORKFORCE),
        role=Role.PROJECT_MANAGER,
    )
    assert not permissions.can_run_on_project(outsider, project)


def test_a_superuser_may_run_models_anywhere():
    assert permissions.can_run_on_project(UserFactory(is_superuser=True), annotation_project())


def test_fine_tuning_asks_the_public_rule():
    from compute import finetuning

    assert finetuning.require_can_run_on_project is permissions.require_can_run_on_project


@pytest.mark.parametrize("role", sorted(ALL_ROLES))
def test_admins_and_managers_manage_their_organizations_backends(role):
    organization = OrganizationFactory(kind=Organization.Kind.WORKFORCE)
    user = member(organization=organization, role=role)
    allowed = role in BACKEND_MANAGERS
    assert permissions.can_manage_backend(user, organization) is allowed
    if not allowed:
        with pytest.raises(PermissionDenied, match="admin or project manager"):
            permissions.require_can_manage_backend(user, organization)


def test_an_admin_of_another_organization_may_not_manage_these_backends():
    admin = member(role=Role.ADMIN)
    assert not permissions.can_manage_backend(admin, OrganizationFactory())


def test_platform_wide_backends_are_for_superusers_only():
    admin = member(role=Role.ADMIN)
    assert not permissions.can_manage_backend(admin, None)
    with pytest.raises(PermissionDenied, match="platform administrators"):
        permissions.require_can_manage_backend(admin, None)
    superuser = UserFactory(is_superuser=True)
    assert permissions.can_manage_backend(superuser, None)
    assert permissions.can_manage_backend(superuser, OrganizationFactory())


@pytest.mark.parametrize("role", sorted(ALL_ROLES))
def test_the_backends_page_is_for_observers(role):
    user = member(role=role)
    allowed = role in OBSERVERS
    assert permissions.can_view_backend_metrics(user) is allowed
    client = Client()
    client.force_login(user)
    assert client.get("/compute/backends/").status_code == (200 if allowed else 403)


def test_a_superuser_sees_the_backends_page():
    assert permissions.can_view_backend_metrics(UserFactory(is_superuser=True))
