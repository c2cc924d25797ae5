"""Who may do what with annotation jobs: one rule per action.

Rules are plain functions of (user, object) returning bool; each `require_…`
raises PermissionDenied with the message people see. Views, services and
templates all ask these, so a page never offers what the API would refuse.
A rule costs at most one query (the caller's roles in one organization).
"""

from django.utils.translation import gettext as _

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
)

from .models import Item, Project

# --- the client's side: defining a project and owning its data -----------------------


def can_create_project(user: User, organization: Organization | None) -> bool:
    return has_role(user, organization, PROJECT_EDITORS)


def can_manage_project(user: User, project: Project) -> bool:
    """Change settings, import, export, freeze datasets, re-infer answers."""
    return has_role(user, project.organization, PROJECT_EDITORS)


def require_can_create_project(user: User, organization: Organization | None) -> None:
    require_roles(user, organization, PROJECT_EDITORS, "create projects")


def require_can_manage_project(user: User, project: Project, action: str) -> None:
    """action completes the refusal: 'Only a … of the organization may <action>.'"""
    require_roles(user, project.organization, PROJECT_EDITORS, action)


# --- the centre's side: annotating and reviewing -------------------------------------


def can_annotate_project(user: User, project: Project) -> bool:
    """An annotator of the centre staffing the project (tier is checked with the lease)."""
    return project.workforce_id is not None and has_role(user, project.workforce, ANNOTATORS)


def require_can_annotate_project(user: User, project: Project) -> None:
    require(
        can_annotate_project(user, project),
        _("You are not an annotator of the centre staffing this project."),
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
        _(
            "Only the staffing centre's project managers may see and change annotators' "
            "quality records."
        ),
    )
