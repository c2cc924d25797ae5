"""Who may manage an organization's webhooks.

A plain rule of (user, organization) returning bool, and its `require_…`
raising PermissionDenied with the message people see.
"""

from django.utils.translation import gettext as _

from tenants.models import Organization, User
from tenants.permissions import INTEGRATION_MANAGERS, has_role, is_platform_staff, require


def can_manage_webhooks(user: User, organization: Organization) -> bool:
    # Platform superusers operate every organization's integrations.
    if is_platform_staff(user):
        return True
    return has_role(user, organization, INTEGRATION_MANAGERS)


def require_can_manage_webhooks(user: User, organization: Organization) -> None:
    require(
        can_manage_webhooks(user, organization),
        _(
            "Only an admin, client developer or project manager of the "
            "organization may manage its webhooks."
        ),
    )
