"""Tenant isolation for API views: the one place querysets get scoped.

Selectors never see a request; the helpers here turn one into the plain
arguments they take.
"""

from .permissions import Principal, principal_for
from .selectors import queryset_scope


def principal_for_request(request) -> Principal:
    """Who the request acts as: the signed-in person, or the API token it carries."""
    return principal_for(request.user)


def organization_ids_for_request(request) -> list[int]:
    """The organizations this request may see, looked up once per request.

    An API token sees its one organization, and only while it still carries
    a role there; a browser session all of the person's organizations.
    """
    cached = getattr(request, "_tenant_organization_ids", None)
    if cached is None:
        cached = principal_for_request(request).organization_ids()
        request._tenant_organization_ids = cached
    return cached


class TenantScopedMixin:
    """Restrict a view's queryset to the caller's organizations.

    Objects of other organizations are simply not in the queryset, so detail
    routes answer 404 for them: their existence is not disclosed. A view whose
    callers reach rows through another organization than the model's owner
    sets `tenant_path` (e.g. "workforce" for the centre staffing a project).
    """

    tenant_path: str | None = None

    def get_queryset(self):
        return queryset_scope(
            super().get_queryset(),
            organization_ids=organization_ids_for_request(self.request),
            path=self.tenant_path,
        )

    def tenant_organization_ids(self) -> list[int]:
        return organization_ids_for_request(self.request)
