"""Who may do what: every role set of the platform, defined once, and tenants' own rules.

Each app keeps its rules in its own `permissions.py` (a plain function of
(user, object) returning bool per action, and a `require_…` that raises
PermissionDenied with the message people see). They build on the role sets
and helpers here, so a role set changes in one place.
"""

from collections.abc import Iterable

from django.core.exceptions import PermissionDenied

from .models import Membership, Organization, User
from .selectors import role_kinds_for_user, roles_for_user

Role = Membership.Role
Kind = Organization.Kind

# --- role sets -----------------------------------------------------------------------

# The client's people who define a project and own its data: settings, imports,
# exports, datasets and re-inference (a centre's manager may edit too).
PROJECT_EDITORS = frozenset({Role.CLIENT_DEVELOPER, Role.PROJECT_MANAGER, Role.ADMIN})
# Those at the staffing centre who judge other people's annotations.
REVIEWERS = frozenset({Role.REVIEWER, Role.PROJECT_MANAGER})
# Those at the staffing centre who label items (leases, submissions).
ANNOTATORS = frozenset({Role.ANNOTATOR})
# Everyone at the staffing centre who opens a project in the workspace.
WORKERS = ANNOTATORS | REVIEWERS
# The centre's people who may spend compute on a project their centre staffs.
CENTRE_RUN_MANAGERS = frozenset({Role.PROJECT_MANAGER})
# An organization's own inference backends are run by its admins and managers.
BACKEND_MANAGERS = frozenset({Role.ADMIN, Role.PROJECT_MANAGER})
# Whoever starts runs or connects systems sees what backends cost and how they answer.
BACKEND_OBSERVERS = frozenset({Role.ADMIN, Role.CLIENT_DEVELOPER, Role.PROJECT_MANAGER})
# API tokens and webhooks connect the organization's own systems: its admins,
# developers and managers set them up.
INTEGRATION_MANAGERS = frozenset({Role.ADMIN, Role.CLIENT_DEVELOPER, Role.PROJECT_MANAGER})
# A regional office's officials read its jurisdiction's KPIs.
OFFICIALS = frozenset({Role.OFFICIAL})
# Who belongs to an organization, and in which role, is its admins' decision.
MEMBER_MANAGERS = frozenset({Role.ADMIN})
# An organization's audit trail names its people and its changes: its admins only.
AUDIT_READERS = frozenset({Role.ADMIN})


# --- helpers -------------------------------------------------------------------------


def has_role(user: User, organization: Organization | None, roles: Iterable[str]) -> bool:
    """Whether user holds one of roles in organization (one query; never for no organization)."""
    if organization is None or not user or not user.is_authenticated:
        return False
    return bool(roles_for_user(user=user, organization=organization) & set(roles))


def roles_message(roles: Iterable[str], action: str) -> str:
    """'Only a <roles> of the organization may <action>.', the refusal people see."""
    names = ", ".join(sorted(Role(r).label.lower() for r in roles))
    return f"Only a {names} of the organization may {action}."


def require(allowed: bool, message: str) -> None:
    """Raise PermissionDenied(message) unless allowed; every require_… ends here."""
    if not allowed:
        raise PermissionDenied(message)


def require_roles(
    user: User, organization: Organization | None, roles: Iterable[str], action: str
) -> None:
    """Refuse unless user holds one of roles in organization, naming the roles."""
    require(has_role(user, organization, roles), roles_message(roles, action))


# --- tenants' rules ------------------------------------------------------------------


def can_manage_api_tokens(user: User, organization: Organization) -> bool:
    # Platform superusers operate the Django admin for every organization.
    if user.is_superuser:
        return True
    return has_role(user, organization, INTEGRATION_MANAGERS)


def require_can_manage_api_tokens(user: User, organization: Organization, *, verb: str) -> None:
    require(
        can_manage_api_tokens(user, organization),
        "Only an admin, client developer or project manager of the organization "
        f"may {verb} its API tokens.",
    )


def can_manage_members(user: User, organization: Organization) -> bool:
    if user and user.is_authenticated and user.is_superuser:
        return True
    return has_role(user, organization, MEMBER_MANAGERS)


def require_can_manage_members(user: User, organization: Organization) -> None:
    require(
        can_manage_members(user, organization),
        "Only an admin of the organization may change its members.",
    )


def can_read_audit_log(user: User, organization: Organization) -> bool:
    """An organization's audit trail is its admins' (and the platform superusers')."""
    if user and user.is_authenticated and user.is_superuser:
        return True
    return has_role(user, organization, AUDIT_READERS)


# --- pages: what the navigation offers -----------------------------------------------
# Each takes `held`, the (role, organization kind) pairs of role_kinds_for_user,
# so a page asks once for all its links; without it they look it up.


def _held(user: User, held: set[tuple[str, str]] | None) -> set[tuple[str, str]]:
    return role_kinds_for_user(user=user) if held is None else held


def can_open_workspace(user: User, *, held: set[tuple[str, str]] | None = None) -> bool:
    """Annotators, reviewers and managers of a centre (the workspace lists its projects)."""
    return any(role in WORKERS and kind == Kind.WORKFORCE for role, kind in _held(user, held))


def can_open_reports(user: User, *, held: set[tuple[str, str]] | None = None) -> bool:
    """Officials of a regional office; platform staff report on the whole country."""
    if user.is_authenticated and user.is_superuser:
        return True
    return any(role in OFFICIALS and kind == Kind.GOVERNMENT for role, kind in _held(user, held))


def can_open_backends(user: User, *, held: set[tuple[str, str]] | None = None) -> bool:
    """The backends page: BACKEND_OBSERVERS of any organization, and platform staff."""
    if user.is_authenticated and user.is_superuser:
        return True
    return any(role in BACKEND_OBSERVERS for role, _kind in _held(user, held))


def page_permissions(user: User) -> dict[str, bool]:
    """The links a page may offer user, from one query."""
    held = _held(user, None)
    return {
        "workspace": can_open_workspace(user, held=held),
        "reports": can_open_reports(user, held=held),
        "backends": can_open_backends(user, held=held),
    }
