"""Who may do what with people's skill tiers, and read which parts of the value
chain over the API.

Rules are plain functions of (user, object) returning bool; each `require_…`
raises PermissionDenied with the message people see. Role sets live in
tenants.permissions; the API readers below say which organizations' rows a
principal reaches with them.
"""

from django.utils.translation import gettext as _

from tenants.models import Membership, Organization, User
from tenants.permissions import (
    LEDGER_READERS,
    PEOPLE_MANAGERS,
    TIER_HISTORY_READERS,
    Principal,
    has_role,
    is_platform_staff,
    require,
)


def can_manage_people(user: User, organization: Organization) -> bool:
    """See a centre's members, their records and tier history: its managers and admins."""
    if organization.kind != Organization.Kind.WORKFORCE:
        return False
    if is_platform_staff(user):
        return True
    return has_role(user, organization, PEOPLE_MANAGERS)


def can_change_tier(user: User, organization: Organization, annotator: User) -> bool:
    """Set an annotator's tier by hand: a manager of a centre the annotator works for.

    Never one's own: a manager who also annotates is moved by someone else.
    """
    if annotator.pk == getattr(user, "pk", None) and not is_platform_staff(user):
        return False
    works_there = Membership.objects.filter(
        user=annotator, organization=organization, role=Membership.Role.ANNOTATOR
    ).exists()
    return works_there and can_manage_people(user, organization)


def require_can_change_tier(user: User, organization: Organization, annotator: User) -> None:
    require(
        can_change_tier(user, organization, annotator),
        _(
            "Only a project manager or admin of a centre the annotator works for may "
            "change their tier, and never their own."
        ),
    )


def tier_history_centre_ids(principal: Principal) -> list[int]:
    """The centres whose annotators' tier history the principal reads (as their
    admin or manager)."""
    ids = principal.organization_ids(roles=TIER_HISTORY_READERS)
    return list(
        Organization.objects.filter(pk__in=ids, kind=Organization.Kind.WORKFORCE).values_list(
            "pk", flat=True
        )
    )


def reads_own_tier_history(principal: Principal) -> bool:
    """A person reads their own history; an API token acts for an organization, not
    for the person who made it."""
    return principal.is_authenticated and not principal.is_token


def ledger_organization_ids(principal: Principal) -> list[int]:
    """The organizations whose ledger entries the principal reads: a client's
    charges, a centre's work."""
    return principal.organization_ids(roles=LEDGER_READERS)
