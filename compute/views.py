"""Observability for managers: a web page and a Prometheus endpoint."""

import hmac

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpResponse
from django.shortcuts import render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily

from tenants.selectors import organization_ids_for_user

from . import selectors
from .models import Backend
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
