"""Who may do what, where a rule is more than a role check inline."""

from .models import Membership, Organization
from .selectors import roles_for_user


def can_read_audit_log(user, organization: Organization) -> bool:
    """An organization's audit trail is its admins' (and the platform superusers')."""
    if not user or not user.is_authenticated:
        return False
    if user.is_superuser:
        return True
    return Membership.Role.ADMIN in roles_for_user(user=user, organization=organization)
