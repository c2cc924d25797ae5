"""Which backends a pre-labeling run may use, best first.

Policies: the cheapest healthy backend, the lowest latency, or any backend
inside a region (data residency: a province's data stays in the province).
Backends whose circuit is open are left out until their cool-down passes;
then one probe is let through (half-open).
"""

from datetime import timedelta
from decimal import Decimal

from django.db.models import Q
from django.utils import timezone

from annotation.models import Project
from tenants.selectors import region_descendant_ids

from .models import Backend, PrelabelRun, RoutingPolicy

CIRCUIT_COOLDOWN = timedelta(seconds=60)


def backends_for_project(project: Project):
    """Backends the project's client or centre owns, and the platform-wide ones."""
    owners = [project.organization_id]
    if project.workforce_id:
        owners.append(project.workforce_id)
    return Backend.objects.filter(
        Q(organization__isnull=True) | Q(organization_id__in=owners), is_active=True
    ).select_related("region")


def _usable(backend: Backend, now) -> bool:
    if backend.circuit != Backend.Circuit.OPEN:
        return True
    return bool(backend.circuit_opened_at and now - backend.circuit_opened_at >= CIRCUIT_COOLDOWN)


def backends_ranked(run: PrelabelRun, *, model: str | None = None, now=None) -> list[Backend]:
    now = now or timezone.now()
    model = run.model if model is None else model
    candidates = [b for b in backends_for_project(run.project) if _usable(b, now)]
    if model:
        candidates = [b for b in candidates if not b.models_served or model in b.models_served]
    if run.region_id:
        allowed = set(region_descendant_ids(region=run.region))
        candidates = [b for b in candidates if b.region_id in allowed]

    def price(b: Backend) -> Decimal:
        return b.price_input_per_million + b.price_output_per_million

    def latency(b: Backend) -> float:
        return b.last_latency_ms if b.last_latency_ms is not None else float("inf")

    if run.policy == RoutingPolicy.LOWEST_LATENCY:
        candidates.sort(key=lambda b: (latency(b), price(b), b.pk))
    else:  # cheapest; the region policy also prefers the cheapest inside the region
        candidates.sort(key=lambda b: (price(b), latency(b), b.pk))
    # Half-open backends go last: they only get traffic when nothing else answers.
    candidates.sort(key=lambda b: b.circuit != Backend.Circuit.CLOSED)
    if run.backend_id:
        candidates.sort(key=lambda b: b.pk != run.backend_id)
    return candidates
