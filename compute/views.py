"""Observability for managers: the backends page (/metrics is config.metrics)."""

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.shortcuts import render
from django.utils.translation import gettext as _

from tenants.selectors import organization_ids_for_user

from . import selectors
from .permissions import can_manage_backend, can_view_backend_metrics


@login_required
def backends_page(request):
    if not can_view_backend_metrics(request.user):
        raise PermissionDenied(_("Only those who run models or connect systems see the backends."))
    backends = {
        b.pk: b for b in selectors.backends_visible(organization_ids_for_user(user=request.user))
    }
    rows = selectors.backend_metrics(backends=backends.values())
    for row in rows:
        backend = backends[row["id"]]
        row["models"] = backend.models_served
        # The address is its managers' business: observers see name, models and health.
        row["base_url"] = (
            backend.base_url if can_manage_backend(request.user, backend.organization) else None
        )
    return render(request, "compute/backends.html", {"rows": rows})
