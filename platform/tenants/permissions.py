"""Who may do what: every role set of the platform, defined once, and tenants' own rules.

Each app keeps its rules in its own `permissions.py` (a plain function of
(user, object) returning bool per action, and a `require_…` that raises
PermissionDenied with the message people see). They build on the role sets
and helpers here, so a role set changes in one place.

The rules ask a `Principal`, never `user.is_superuser` or the memberships
directly: a person in a browser session acts with their memberships (and a
superuser as platform staff), an API token with its own organization and
roles only. So a token can never do more than it was given, whoever made it.
"""

from collections.abc import Iterable

from django.core.exceptions import PermissionDenied
from django.utils.translation import gettext as _

from .models import ApiToken, Membership, Organization, User
from .request_context import api_token_current
from .role_cache import principal_held

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
# Officials connect their office's systems to the reports with tokens too
# (they have no webhooks: nothing of a project happens in an office).
TOKEN_MANAGERS = INTEGRATION_MANAGERS | OFFICIALS
# Who belongs to an organization, and in which role, is its admins' decision.
MEMBER_MANAGERS = frozenset({Role.ADMIN})
# A centre's managers see its people's records and answer for a tier they set
# by hand (the daily review sets the rest); its admins too.
PEOPLE_MANAGERS = frozenset({Role.PROJECT_MANAGER, Role.ADMIN})
# An organization's audit trail names its people and its changes: its admins only.
AUDIT_READERS = frozenset({Role.ADMIN})


# A centre's admins and managers follow their annotators' tiers (and pay).
TIER_HISTORY_READERS = frozenset({Role.ADMIN, Role.PROJECT_MANAGER})
# An organization's ledger entries: a client's charges, a centre's work. Its
# admins, and those who run its projects or connect its systems.
LEDGER_READERS = frozenset({Role.ADMIN, Role.CLIENT_DEVELOPER, Role.PROJECT_MANAGER})


# Who may give an API token any role: those who decide people's roles. Anyone
# else gives a token only roles they hold themselves.
TOKEN_ROLE_GRANTERS = MEMBER_MANAGERS


# --- principals: who a request acts as -----------------------------------------------


class Principal:
    """A person in a browser session, or an API token acting for its organization.

    A token's principal is (its organization, its roles), where its roles are
    those it was given that its creator may still grant there, looked up on
    every request: a creator who loses the role, the membership or the account
    takes the token's powers with them. It never has the creator's superuser
    status or their roles in other organizations.
    """

    def __init__(self, user: User | None, token: ApiToken | None = None):
        self.user = user
        self.token = token
        self._token_roles: frozenset[str] | None = None

    def held(self) -> tuple[tuple[int, str, str], ...]:
        """The person's own (organization id, organization kind, role), cached."""
        return principal_held(self.user.pk)

    @property
    def is_authenticated(self) -> bool:
        return bool(self.user and self.user.is_authenticated)

    @property
    def is_token(self) -> bool:
        return self.token is not None

    @property
    def is_platform_staff(self) -> bool:
        """Platform superusers, in a browser session: a token never inherits it."""
        return self.token is None and self.is_authenticated and self.user.is_superuser

    def token_roles(self) -> frozenset[str]:
        """The roles this token may use now (once per request: the principal is per request)."""
        if self._token_roles is None:
            given = frozenset(self.token.roles or ())
            creator = Principal(self.user)
            self._token_roles = given & grantable_roles(creator, self.token.organization)
        return self._token_roles

    def roles_in(self, organization: Organization | None) -> set[str]:
        if organization is None or not self.is_authenticated:
            return set()
        if self.token is not None:
            if organization.pk != self.token.organization_id:
                return set()
            return set(self.token_roles())
        return {role for org, _kind, role in self.held() if org == organization.pk}

    def role_kinds(self) -> set[tuple[str, str]]:
        """(role, organization kind) pairs, for the navigation."""
        if not self.is_authenticated:
            return set()
        if self.token is not None:
            kind = self.token.organization.kind
            return {(role, kind) for role in self.token_roles()}
        return {(role, kind) for _org, kind, role in self.held()}

    def organization_ids(self, *, roles: Iterable[str] | None = None) -> list[int]:
        """The active organizations the principal acts for (with one of roles, if given)."""
        if not self.is_authenticated:
            return []
        if self.token is not None:
            held = self.token_roles()
            usable = held & set(roles) if roles is not None else held
            return [self.token.organization_id] if usable else []
        wanted = None if roles is None else set(roles)
        return sorted({org for org, _kind, role in self.held() if wanted is None or role in wanted})


_principal_attribute = "_tenants_principal"


def principal_attach(user: User, token: ApiToken) -> Principal:
    """Make user (the token's creator, loaded for this request) act as the token."""
    principal = Principal(user, token)
    setattr(user, _principal_attribute, principal)
    return principal


def principal_for(user) -> Principal:
    """Who user acts as in this request.

    ApiTokenAuthentication attaches the token's principal to request.user. A
    copy of the same person loaded afresh during a token's request acts as
    the token too (the request's bound token), so no code path falls back to
    the person's own powers.
    """
    if isinstance(user, Principal):
        return user
    attached = getattr(user, _principal_attribute, None)
    if attached is not None:
        return attached
    token = api_token_current()
    if token is not None and user is not None and getattr(user, "pk", None) == token.created_by_id:
        return principal_attach(user, token)
    return Principal(user)


def grantable_roles(user, organization: Organization | None) -> frozenset[str]:
    """The roles user may give an API token of organization: any role for its
    admins, otherwise the roles they hold there. Never by superuser status."""
    held = principal_for(user).roles_in(organization)
    if held & TOKEN_ROLE_GRANTERS:
        return frozenset(Role.values)
    return frozenset(held)


# --- helpers -------------------------------------------------------------------------


def is_platform_staff(user) -> bool:
    """A platform superuser signed in (never through an API token)."""
    return principal_for(user).is_platform_staff


def has_role(user: User, organization: Organization | None, roles: Iterable[str]) -> bool:
    """Whether user (as the request's principal) holds one of roles in organization
    (one query; never for no organization)."""
    return bool(principal_for(user).roles_in(organization) & set(roles))


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
    """List and revoke an organization's tokens (creating also needs roles to give)."""
    # Platform superusers operate the Django admin for every organization.
    if is_platform_staff(user):
        return True
    return has_role(user, organization, TOKEN_MANAGERS)


def require_can_manage_api_tokens(user: User, organization: Organization, *, verb: str) -> None:
    require(
        can_manage_api_tokens(user, organization),
        "Only an admin, client developer, official or project manager of the organization "
        f"may {verb} its API tokens.",
    )


def can_create_api_tokens(user: User, organization: Organization) -> bool:
    """People who manage the organization's tokens and hold a role there to give.

    Not a token: a token that could mint tokens would outlive its own revocation.
    """
    principal = principal_for(user)
    if principal.is_token:
        return False
    return has_role(user, organization, TOKEN_MANAGERS)


def require_can_create_api_tokens(user: User, organization: Organization) -> None:
    if principal_for(user).is_token:
        raise PermissionDenied(_("API tokens are created by a signed-in person, not by a token."))
    require(
        can_create_api_tokens(user, organization),
        _(
            "Only an admin, client developer, official or project manager of the "
            "organization may create its API tokens."
        ),
    )


def api_token_organizations(user: User) -> list[Organization]:
    """The organizations whose tokens user manages, among those they act for (a
    superuser reaches the others' in the admin)."""
    own = Organization.objects.filter(pk__in=principal_for(user).organization_ids())
    return [o for o in own.order_by("name") if can_manage_api_tokens(user, o)]


def can_manage_members(user: User, organization: Organization) -> bool:
    if is_platform_staff(user):
        return True
    return has_role(user, organization, MEMBER_MANAGERS)


def require_can_manage_members(user: User, organization: Organization) -> None:
    require(
        can_manage_members(user, organization),
        _("Only an admin of the organization may change its members."),
    )


def can_read_audit_log(user: User, organization: Organization) -> bool:
    """An organization's audit trail is its admins' (and the platform superusers')."""
    if is_platform_staff(user):
        return True
    return has_role(user, organization, AUDIT_READERS)


# --- pages: what the navigation offers -----------------------------------------------
# Each takes `held`, the (role, organization kind) pairs of role_kinds_for_user,
# so a page asks once for all its links; without it they look it up.


def _held(user: User, held: set[tuple[str, str]] | None) -> set[tuple[str, str]]:
    return principal_for(user).role_kinds() if held is None else held


def can_open_workspace(user: User, *, held: set[tuple[str, str]] | None = None) -> bool:
    """Annotators, reviewers and managers of a centre (the workspace lists its projects)."""
    return any(role in WORKERS and kind == Kind.WORKFORCE for role, kind in _held(user, held))


def can_open_reports(user: User, *, held: set[tuple[str, str]] | None = None) -> bool:
    """Officials of a regional office; platform staff report on the whole country."""
    if is_platform_staff(user):
        return True
    return any(role in OFFICIALS and kind == Kind.GOVERNMENT for role, kind in _held(user, held))


def can_open_backends(user: User, *, held: set[tuple[str, str]] | None = None) -> bool:
    """The backends page: BACKEND_OBSERVERS of any organization, and platform staff."""
    if is_platform_staff(user):
        return True
    return any(role in BACKEND_OBSERVERS for role, _kind in _held(user, held))


def can_open_api_tokens(user: User, *, held: set[tuple[str, str]] | None = None) -> bool:
    """The API tokens page: whoever may create their organization's tokens."""
    return any(role in TOKEN_MANAGERS for role, _kind in _held(user, held))


def can_open_people(user: User, *, held: set[tuple[str, str]] | None = None) -> bool:
    """The people page: a centre's managers and admins (whose annotators it lists)."""
    return any(
        role in PEOPLE_MANAGERS and kind == Kind.WORKFORCE for role, kind in _held(user, held)
    )


def can_open_statements(user: User, *, held: set[tuple[str, str]] | None = None) -> bool:
    """A client's projects and statements: its project editors."""
    return any(role in PROJECT_EDITORS and kind == Kind.CLIENT for role, kind in _held(user, held))


def can_open_projects(user: User, *, held: set[tuple[str, str]] | None = None) -> bool:
    """The project pages: a client's editors and a centre's project managers (each
    sees the projects annotation.selectors.projects_managed gives them)."""
    return any(
        (role in PROJECT_EDITORS and kind == Kind.CLIENT)
        or (role in CENTRE_RUN_MANAGERS and kind == Kind.WORKFORCE)
        for role, kind in _held(user, held)
    )


def page_permissions(user: User) -> dict[str, bool]:
    """The links a page may offer user, from one query."""
    held = _held(user, None)
    return {
        "people": can_open_people(user, held=held),
        "statements": can_open_statements(user, held=held),
        "workspace": can_open_workspace(user, held=held),
        "reports": can_open_reports(user, held=held),
        "backends": can_open_backends(user, held=held),
        "api_tokens": can_open_api_tokens(user, held=held),
        "projects": can_open_projects(user, held=held),
    }
