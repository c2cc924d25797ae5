"""annotation.permissions: who may manage, annotate and review a project."""

import pytest
from django.core.exceptions import PermissionDenied

from annotation import permissions, services
from annotation.models import Item, Project
from tenants.models import Membership, Organization
from tests.factories import (
    OrganizationFactory,
    UserFactory,
    annotation_project,
    items,
    member,
    worker,
)

pytestmark = pytest.mark.django_db

Role = Membership.Role
ALL_ROLES = set(Role.values)
EDITORS = {Role.CLIENT_DEVELOPER, Role.PROJECT_MANAGER, Role.ADMIN}
REVIEWERS = {Role.REVIEWER, Role.PROJECT_MANAGER}


# --- managing a project (the client's side) -------------------------------------------


@pytest.mark.parametrize("role", sorted(EDITORS))
def test_client_editors_may_create_and_manage_projects(role):
    project = annotation_project()
    user = member(organization=project.organization, role=role)
    assert permissions.can_create_project(user, project.organization)
    assert permissions.can_manage_project(user, project)
    permissions.require_can_manage_project(user, project, "export data")


@pytest.mark.parametrize("role", sorted(ALL_ROLES - EDITORS))
def test_other_client_roles_may_not_manage_projects(role):
    project = annotation_project()
    user = member(organization=project.organization, role=role)
    assert not permissions.can_create_project(user, project.organization)
    assert not permissions.can_manage_project(user, project)
    with pytest.raises(PermissionDenied) as refused:
        permissions.require_can_manage_project(user, project, "export data")
    assert str(refused.value) == (
        "Only a administrator, client developer, project manager of the organization "
        "may export data."
    )


def test_the_staffing_centres_manager_runs_the_project_day_to_day():
    project = annotation_project()
    manager = worker(project, role=Role.PROJECT_MANAGER)
    assert permissions.can_manage_project(manager, project)
    permissions.require_can_manage_project(manager, project, "export data")


@pytest.mark.parametrize("role", sorted(ALL_ROLES - {Role.PROJECT_MANAGER}))
def test_the_staffing_centres_other_roles_may_not_manage_the_project(role):
    project = annotation_project()
    assert not permissions.can_manage_project(worker(project, role=role), project)


def test_a_centre_manager_creates_projects_only_for_a_client_the_centre_serves():
    project = annotation_project()
    manager = worker(project, role=Role.PROJECT_MANAGER)
    assert permissions.can_create_project(manager, project.organization, project.workforce)
    stranger = OrganizationFactory(kind=Organization.Kind.CLIENT)
    assert not permissions.can_create_project(manager, stranger, project.workforce)
    # Not for a centre they do not manage, nor without saying which centre.
    other_centre = OrganizationFactory(kind=Organization.Kind.WORKFORCE)
    assert not permissions.can_create_project(manager, project.organization, other_centre)
    assert not permissions.can_create_project(manager, project.organization)
    with pytest.raises(PermissionDenied, match="or a project manager of a centre working for it"):
        permissions.require_can_create_project(manager, stranger, project.workforce)


def test_a_centre_manager_staffs_the_project_only_with_a_centre_they_manage():
    project = annotation_project()
    manager = worker(project, role=Role.PROJECT_MANAGER)
    other_centre = OrganizationFactory(kind=Organization.Kind.WORKFORCE)
    assert permissions.can_staff_project_with(manager, project, project.workforce)
    assert not permissions.can_staff_project_with(manager, project, other_centre)
    with pytest.raises(PermissionDenied, match="only with a centre they manage"):
        services.project_update(project=project, updated_by=manager, workforce=other_centre)
    client = member(organization=project.organization, role=Role.CLIENT_DEVELOPER)
    assert permissions.can_staff_project_with(client, project, other_centre)


def test_an_editor_of_another_organization_may_not_manage_the_project():
    project = annotation_project()
    outsider = member(role=Role.CLIENT_DEVELOPER)
    assert not permissions.can_manage_project(outsider, project)
    with pytest.raises(PermissionDenied, match="may create projects"):
        permissions.require_can_create_project(outsider, project.organization)


def test_nobody_creates_projects_for_no_organization():
    with pytest.raises(PermissionDenied, match="may create projects"):
        permissions.require_can_create_project(UserFactory(is_superuser=True), None)


def test_superusers_get_no_client_role_by_being_superusers():
    project = annotation_project()
    assert not permissions.can_manage_project(UserFactory(is_superuser=True), project)


def test_services_refuse_with_the_rule_and_its_message():
    project = annotation_project()
    annotator = worker(project)
    with pytest.raises(PermissionDenied, match="may change projects"):
        services.project_update(project=project, updated_by=annotator, name="x")
    with pytest.raises(PermissionDenied, match="may change projects"):
        services.project_archive(project=project, archived_by=annotator)
    with pytest.raises(PermissionDenied, match="may re-infer answers"):
        services.project_results_reinfer(project=project, requested_by=annotator)


def test_archiving_keeps_the_project_and_its_items():
    project = annotation_project()
    items(project, 2)
    editor = member(organization=project.organization, role=Role.CLIENT_DEVELOPER)
    services.project_archive(project=project, archived_by=editor)
    project.refresh_from_db()
    assert project.status == Project.Status.ARCHIVED and project.items.count() == 2


# --- annotating and reviewing (the centre's side) -------------------------------------


@pytest.mark.parametrize("role", sorted(ALL_ROLES))
def test_only_the_centres_annotators_may_annotate(role):
    project = annotation_project()
    user = worker(project, role=role)
    assert permissions.can_annotate_project(user, project) is (role == Role.ANNOTATOR)


def test_an_annotator_of_another_centre_or_the_client_may_not_annotate():
    project = annotation_project()
    other_centre = member(
        organization=OrganizationFactory(kind=Organization.Kind.WORKFORCE), role=Role.ANNOTATOR
    )
    at_client = member(organization=project.organization, role=Role.ANNOTATOR)
    for user in (other_centre, at_client):
        assert not permissions.can_annotate_project(user, project)
        with pytest.raises(PermissionDenied, match="not an annotator of the centre"):
            permissions.require_can_annotate_project(user, project)


def test_nobody_annotates_a_project_without_a_centre():
    project = annotation_project()
    annotator = worker(project)
    project.workforce = None
    assert not permissions.can_annotate_project(annotator, project)


@pytest.mark.parametrize("role", sorted(ALL_ROLES))
def test_the_centres_reviewers_and_managers_may_review(role):
    project = annotation_project()
    (item,) = items(project, 1)
    user = worker(project, role=role)
    allowed = role in REVIEWERS
    assert permissions.can_review_project(user, project) is allowed
    assert permissions.can_review_item(user, Item.objects.get(pk=item.pk)) is allowed
    if not allowed:
        with pytest.raises(PermissionDenied) as refused:
            permissions.require_can_review_project(user, project)
        assert str(refused.value) == (
            "Only a project manager, reviewer of the organization may review this project."
        )


def test_a_reviewer_of_another_centre_or_the_client_may_not_review():
    project = annotation_project()
    other_centre = member(
        organization=OrganizationFactory(kind=Organization.Kind.WORKFORCE), role=Role.REVIEWER
    )
    at_client = member(organization=project.organization, role=Role.PROJECT_MANAGER)
    assert not permissions.can_review_project(other_centre, project)
    assert not permissions.can_review_project(at_client, project)


# --- the hot path stays cheap ----------------------------------------------------------


def test_checking_an_annotator_costs_one_query(django_assert_num_queries):
    project = Project.objects.select_related("workforce").get(pk=annotation_project().pk)
    annotator = worker(project)
    with django_assert_num_queries(1):
        services.annotator_check(project=project, annotator=annotator)


def test_a_lease_makes_no_more_queries_than_before_the_rules(django_assert_max_num_queries):
    # 6 on main before annotation.permissions existed: the rule adds none.
    project = Project.objects.select_related("workforce").get(pk=annotation_project().pk)
    items(project, 3)
    annotator = worker(project)
    with django_assert_max_num_queries(6):
        assert services.assignment_lease(project=project, annotator=annotator)


def test_the_required_tier_is_the_users_skill_tier_or_more():
    project = annotation_project(required_tier=3)
    assert not permissions.has_required_tier(worker(project, tier=2), project)
    assert permissions.has_required_tier(worker(project, tier=3), project)
    assert permissions.has_required_tier(worker(project, tier=5), project)
