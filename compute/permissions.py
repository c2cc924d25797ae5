"""Who may do what with compute: running models on projects, backends, their metrics.

Rules are plain functions of (user, object) returning bool; each `require_…`
raises PermissionDenied with the message people see.
"""

from django.utils.translation import gettext as _

from annotation.models import Project
from tenants.models import Organization, User
from tenants.permissions import (
    BACKEND_MANAGERS,
    CENTRE_RUN_MANAGERS,
    PROJECT_EDITORS,
    can_open_backends,
    has_role,
    is_platform_staff,
    require,
)


def can_run_on_project(user: User, project: Project) -> bool:
    """Prompts, pre-labeling and fine-tuning: the client's editors, or the staffing
    centre's managers (they spend compute on the project either way)."""
    if is_platform_staff(user):
        return True
    if has_role(user, project.organization, PROJECT_EDITORS):
        return True
    return project.workforce_id is not None and has_role(
        user, project.workforce, CENTRE_RUN_MANAGERS
    )


def require_can_run_on_project(user: User, project: Project) -> None:
    require(
        can_run_on_project(user, project),
        _(
            "Only the client's developers and managers, or the centre's "
            "project managers, may run models on this project."
        ),
    )


def can_manage_backend(user: User, organization: Organization | None) -> bool:
    """Platform-wide backends (organization None) are the platform's; an
    organization's are its admins' and managers' (an API token's too, with those roles)."""
    if is_platform_staff(user):
        return True
    return has_role(user, organization, BACKEND_MANAGERS)


def require_can_manage_backend(user: User, organization: Organization | None) -> None:
    require(
        can_manage_backend(user, organization),
        _("Only platform administrators manage platform-wide backends.")
        if organization is None
        else _("Only an admin or project manager of the organization may manage its backends."),
    )


def can_view_backend_metrics(user: User) -> bool:
    """The backends page: for whoever starts runs or connects systems, anywhere (the
    same rule the navigation uses to offer the page)."""
    return can_open_backends(user)
