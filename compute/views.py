"""Observability for managers: a web page and a Prometheus endpoint."""

import hmac
from decimal import Decimal

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.formats import number_format
from django.utils.translation import get_language
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily

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


class _BackendCollector:
    """Per-backend figures over the last 24 hours, read from the metered calls.

    One token scrapes every organization's backends, so no label names an
    organization or its backend: a backend is its id (what the REST API and the
    backends page use), its kind, and whether it is platform-wide or an
    organization's own. The figures an operator alerts on (calls, errors,
    latency, circuit) are all there per backend.
    """

    def collect(self):
        backends = list(Backend.objects.select_related("region"))
        scope = {
            backend.pk: "platform" if backend.organization_id is None else "organization"
            for backend in backends
        }
        rows = selectors.backend_metrics(backends=backends)
        labels = ["backend_id", "kind", "scope"]
        families = {
            "requests": GaugeMetricFamily(
                "tokenworks_backend_requests_24h",
                "Calls to the backend in the last 24 h",
                labels=labels,
            ),
            "errors": GaugeMetricFamily(
                "tokenworks_backend_errors_24h",
                "Calls the backend did not answer (429, 5xx, timeouts, connection errors, "
                "malformed replies) in the last 24 h",
                labels=labels,
            ),
            "outcomes": GaugeMetricFamily(
                "tokenworks_backend_calls_by_outcome_24h",
                "Calls (every HTTP attempt) by outcome in the last 24 h",
                labels=[*labels, "outcome"],
            ),
            "tokens": GaugeMetricFamily(
                "tokenworks_backend_tokens_24h",
                "Tokens in the last 24 h",
                labels=[*labels, "direction"],
            ),
            "cost": GaugeMetricFamily(
                "tokenworks_backend_cost_yuan_24h", "Cost in CNY in the last 24 h", labels=labels
            ),
            "latency": GaugeMetricFamily(
                "tokenworks_backend_latency_ms",
                "Latency percentiles of answered calls (24 h)",
                labels=[*labels, "quantile"],
            ),
            "up": GaugeMetricFamily(
                "tokenworks_backend_in_service",
                "1 when the circuit is closed or half-open",
                labels=labels,
            ),
        }
        for row in rows:
            key = [str(row["id"]), row["kind"], scope[row["id"]]]
            families["requests"].add_metric(key, row["requests"])
            families["errors"].add_metric(key, row["errors"])
            for outcome, count in row["outcomes"].items():
                families["outcomes"].add_metric([*key, outcome], count)
            families["tokens"].add_metric([*key, "input"], row["prompt_tokens"])
            families["tokens"].add_metric([*key, "output"], row["completion_tokens"])
            families["cost"].add_metric(key, float(row["cost"]))
            families["up"].add_metric(key, 0 if row["circuit"] == "open" else 1)
            for quantile, value in row["latency_ms"].items():
                if value is not None:
                    families["latency"].add_metric([*key, quantile], value)
        yield from families.values()


@require_GET
def prometheus_metrics(request):
    """Prometheus text format. With METRICS_TOKEN set (production requires it),
    scrapers send it as a bearer token."""
    token = settings.METRICS_TOKEN
    if token:
        sent = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        if not hmac.compare_digest(sent, token):
            return HttpResponse("unauthorized\n", status=401, content_type="text/plain")
    registry = CollectorRegistry()
    registry.register(_BackendCollector())
    return HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)
