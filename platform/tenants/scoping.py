"""Tenant isolation for API views: the one place querysets get scoped."""

from .selectors import organization_ids_for_request, queryset_scope


class TenantScopedMixin:
    """Restrict a view's queryset to the caller's organizations.

    Objects of other organizations are simply not in the queryset, so detail
    routes answer 404 for them: their existence is not disclosed.
    """

    def get_queryset(self):
        return queryset_scope(
            super().get_queryset(),
            organization_ids=organization_ids_for_request(self.request),
        )

    def tenant_organization_ids(self) -> list[int]:
        return organization_ids_for_request(self.request)
