"""Observability for managers: the backends page (/metrics is config.metrics)."""

from decimal import Decimal

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.formats import number_format
from django.utils.translation import get_language
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from tenants.selectors import organization_ids_for_user

from . import selectors, services
from .models import Backend
from .permissions import can_manage_backend, can_view_backend_metrics, require_can_manage_backend


def money_text(amount: Decimal) -> str:
    """Yuan as people read them, in the request's locale: two places from ¥1 up,
    below that the ledger's significant places (at most six), never 18 zeros."""
    amount = amount.quantize(Decimal("0.000001"))
    places = 2
    if 0 < abs(amount) < 1:
        places = min(6, max(2, -amount.normalize().as_tuple().exponent))
    return number_format(amount, decimal_pos=places, use_l10n=True, force_grouping=True)


# What "unknown" health means, in words (a dead backend is not a mystery).
def _health_text(backend: Backend) -> str:
    if not backend.is_active:
        return _("Out of service: not checked")
    if backend.last_checked_at is None:
        return _("Not checked yet: the first check runs within a minute")
    return backend.get_health_display()


@login_required
def backends_page(request):
    if not can_view_backend_metrics(request.user):
        raise PermissionDenied(_("Only those who run models or connect systems see the backends."))
    show_all = request.GET.get("show") == "all"
    visible = list(selectors.backends_visible(organization_ids_for_user(user=request.user)))
    retired = sum(1 for b in visible if not b.is_active)
    if not show_all:
        # Out-of-service backends (the seeded history's GPU pools) only on request.
        visible = [b for b in visible if b.is_active]
    backends = {b.pk: b for b in visible}
    rows = selectors.backend_metrics(backends=backends.values())
    history = selectors.backend_hourly_history(backends=backends.values())
    for row in rows:
        backend = backends[row["id"]]
        manages = can_manage_backend(request.user, backend.organization)
        row["backend"] = backend
        row["models"] = backend.models_served
        # The address is its managers' business: observers see name, models and health.
        row["base_url"] = backend.base_url if manages else None
        row["can_manage"] = manages
        row["health_text"] = _health_text(backend)
        row["circuit_text"] = backend.get_circuit_display()
        row["kind_text"] = backend.get_kind_display()
        if backend.region_id:
            chinese = (get_language() or "").startswith("zh")
            row["region"] = backend.region.name_zh if chinese else backend.region.name_en
        row["cost_text"] = money_text(Decimal(row["cost"]))
        row["history"] = history[backend.pk]
    return render(
        request,
        "compute/backends.html",
        {"rows": rows, "show_all": show_all, "retired": retired},
    )


BACKEND_ACTIONS = ("check", "enable", "disable", "retire")


@login_required
@require_POST
def backend_action(request, pk: int, action: str):
    """Check health now, take out of or return to service, or retire (delete) a
    backend: the services the REST API uses, refused unless the rule allows."""
    if action not in BACKEND_ACTIONS:
        raise Http404("no such action")
    backend = get_object_or_404(
        selectors.backends_visible(organization_ids_for_user(user=request.user)), pk=pk
    )
    if action == "check":
        # The same rule as changing it: probing spends the backend's quota.
        require_can_manage_backend(request.user, backend.organization)
        backend = services.backend_health_check(backend=backend)
        messages.success(
            request,
            _("%(name)s checked: %(health)s.")
            % {"name": backend.name, "health": backend.get_health_display()},
        )
    elif action in ("enable", "disable"):
        services.backend_save(
            user=request.user,
            organization=backend.organization,
            backend=backend,
            is_active=action == "enable",
        )
        messages.success(
            request,
            (
                _("%(name)s is back in service.")
                if action == "enable"
                else _("%(name)s is out of service: no runs are routed to it.")
            )
            % {"name": backend.name},
        )
    else:
        name = backend.name
        services.backend_delete(backend=backend, user=request.user)
        messages.success(
            request, _("%(name)s retired: its metered calls keep its name.") % {"name": name}
        )
    target = reverse("compute-backends")
    return redirect(f"{target}?show=all" if request.POST.get("show") == "all" else target)
