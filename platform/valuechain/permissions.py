"""Who may read which parts of the value chain over the API.

Role sets live in tenants.permissions; these say which organizations' rows a
principal reaches with them.
"""

from tenants.models import Organization
from tenants.permissions import LEDGER_READERS, TIER_HISTORY_READERS, Principal


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
