"""Who may do what with annotation jobs: one rule per action.

Rules are plain functions of (user, object) returning bool; each `require_…`
raises PermissionDenied with the message people see. Views, services and
templates all ask these, so a page never offers what the API would refuse.
A rule costs at most one query (the caller's roles in one organization).
"""

from tenants.models import Organization, User
from tenants.permissions import (
    ANNOTATORS,
    CENTRE_RUN_MANAGERS,
    PROJECT_EDITORS,
    REVIEWERS,
    has_role,
    is_platform_staff,
    require,
    require_roles,
    roles_message,
)

from .models import Item, Project

# --- the client's side: defining a project and owning its data -----------------------


def _centre_manager(user: User, project: Project) -> bool:
    return project.workforce_id is not None and has_role(
        user, project.workforce, CENTRE_RUN_MANAGERS
    )


def centre_serves_client(workforce: Organization | None, organization: Organization | None) -> bool:
    """Whether the centre already staffs a project of the client: the engagement
    that lets the centre's managers set up the client's next project."""
    if workforce is None or organization is None:
        return False
    return Project.objects.filter(organization=organization, workforce=workforce).exists()


def can_create_project(
    user: User, organization: Organization | None, workforce: Organization | None = None
) -> bool:
    """The client's editors; or a project manager of a centre that already works for
    the client, for a project their centre staffs."""
    if has_role(user, organization, PROJECT_EDITORS):
        return True
    return (
        workforce is not None
        and has_role(user, workforce, CENTRE_RUN_MANAGERS)
        and centre_serves_client(workforce, organization)
    )


def can_manage_project(user: User, project: Project) -> bool:
    """Change settings, import, export, freeze datasets, re-infer answers: the
    client's editors, and the staffing centre's project managers, who run the
    project day to day."""
    return has_role(user, project.organization, PROJECT_EDITORS) or _centre_manager(user, project)


def can_staff_project_with(user: User, project: Project, workforce: Organization | None) -> bool:
    """Who picks the centre: the client's editors any centre; a centre's manager
    only a centre they manage (never handing the client's project elsewhere)."""
    if has_role(user, project.organization, PROJECT_EDITORS):
        return True
    return workforce is not None and has_role(user, workforce, CENTRE_RUN_MANAGERS)


def require_can_create_project(
    user: User, organization: Organization | None, workforce: Organization | None = None
) -> None:
    require(
        can_create_project(user, organization, workforce),
        roles_message(PROJECT_EDITORS, "create projects")[:-1]
        + ", or a project manager of a centre working for it.",
    )


def require_can_manage_project(user: User, project: Project, action: str) -> None:
    """action completes the refusal: 'Only a … of the organization may <action>.'"""
    if _centre_manager(user, project):
        return
    require_roles(user, project.organization, PROJECT_EDITORS, action)


def require_can_staff_project_with(
    user: User, project: Project, workforce: Organization | None
) -> None:
    require(
        can_staff_project_with(user, project, workforce),
        "A centre's project manager may staff the project only with a centre they manage.",
    )


# --- the centre's side: annotating and reviewing -------------------------------------


def can_annotate_project(user: User, project: Project) -> bool:
    """An annotator of the centre staffing the project (tier is checked with the lease)."""
    return project.workforce_id is not None and has_role(user, project.workforce, ANNOTATORS)


def require_can_annotate_project(user: User, project: Project) -> None:
    require(
        can_annotate_project(user, project),
        "You are not an annotator of the centre staffing this project.",
    )


def has_required_tier(user: User, project: Project) -> bool:
    """The project's skill tier: checked on every lease, shown beside each project."""
    return user.skill_tier >= project.required_tier


def can_review_project(user: User, project: Project) -> bool:
    return has_role(user, project.workforce, REVIEWERS)


def can_review_item(user: User, item: Item) -> bool:
    # Whether the reviewer annotated the item is checked on the locked row by
    # review_submit, with its own message.
    return can_review_project(user, item.project)


def require_can_review_project(user: User, project: Project) -> None:
    require_roles(user, project.workforce, REVIEWERS, "review this project")


# --- the quality engine's record of people ---------------------------------------


def can_manage_annotator_quality(user: User, project: Project) -> bool:
    """Named annotators' estimates, quarantine reasons and releases: the staffing
    centre's project managers (clients see counts, never people)."""
    if is_platform_staff(user):
        return True
    return project.workforce_id is not None and has_role(
        user, project.workforce, CENTRE_RUN_MANAGERS
    )


def require_can_manage_annotator_quality(user: User, project: Project) -> None:
    require(
        can_manage_annotator_quality(user, project),
        "Only the staffing centre's project managers may see and change annotators' "
        "quality records.",
    )
