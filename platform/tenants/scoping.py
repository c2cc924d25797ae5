"""Tenant isolation for API views: the one place querysets get scoped."""

from .selectors import organization_ids_for_request, queryset_scope


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
