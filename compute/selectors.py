"""Reads for compute: runs' items and totals, backend observability, suggestion acceptance."""

from datetime import timedelta
from decimal import Decimal

from django.db.models import Count, Q, QuerySet, Sum
from django.utils import timezone

from annotation.models import Item, ItemResult, Project
from annotation.schemas import answer_key

from .models import Backend, InferenceCall, Prediction, PrelabelRun

FEN = Decimal("0.000001")
MAX_LATENCY_SAMPLES = 200_000
# Beat asks every 30 s; a backend checked within 25 s is skipped so that two
# overlapping beats do not probe it twice.
HEALTH_CHECK_INTERVAL = timedelta(seconds=25)
IN_FLIGHT = InferenceCall.Outcome.IN_FLIGHT


def prelabel_run_items(*, run: PrelabelRun):
    """The items a run labels, from its item_filter (open, unlabeled, non-gold by default).

    include_gold: gold items too. The quality engine measures the model on gold,
    so a run that changes the project's model must predict the (forever open)
    gold items as well.
    """
    filters = run.item_filter or {}
    items = Item.objects.filter(project=run.project)
    if not filters.get("include_gold", False):
        items = items.filter(is_gold=False)
    statuses = filters.get("status") or [Item.Status.OPEN]
    items = items.filter(status__in=statuses)
    if filters.get("only_unlabeled", True):
        items = items.filter(annotation_count=0)
    if filters.get("external_ids"):
        items = items.filter(external_id__in=filters["external_ids"])
    if filters.get("item_ids"):
        items = items.filter(pk__in=filters["item_ids"])
    return items


def approved_results_count(*, project: Project) -> int:
    """Decided items whose answer may be trained on: what automatic retraining counts."""
    return ItemResult.objects.filter(project=project, approved=True).count()


def run_totals(*, run: PrelabelRun) -> dict:
    """Progress, tokens and cost so far, straight from the metered rows (calls in
    flight not yet: their figures are the write-ahead's estimate)."""
    calls = (
        InferenceCall.objects.filter(run=run)
        .exclude(outcome=IN_FLIGHT)
        .aggregate(
            prompt_tokens=Sum("prompt_tokens"),
            completion_tokens=Sum("completion_tokens"),
            cost=Sum("cost"),
            calls=Count("pk"),
            failed_calls=Count("pk", filter=~Q(outcome=InferenceCall.Outcome.OK)),
        )
    )
    predicted = Prediction.objects.filter(run=run).count()
    # Failed: ended without an answer (a recorded final failure), not merely
    # failed once and still being retried.
    failed_items = (
        InferenceCall.objects.filter(run=run, final=True)
        .exclude(item__predictions__run=run)
        .values("item_id")
        .distinct()
        .count()
    )
    return {
        "done_items": predicted,
        "failed_items": failed_items,
        "prompt_tokens": calls["prompt_tokens"] or 0,
        "completion_tokens": calls["completion_tokens"] or 0,
        "cost": (calls["cost"] or Decimal(0)).quantize(FEN),
        "calls": calls["calls"],
        "failed_calls": calls["failed_calls"],
    }


def run_failures(*, run: PrelabelRun) -> dict:
    """Failed items by the outcome of their last call, each with an example error."""
    rows = (
        InferenceCall.objects.filter(run=run, final=True)
        .exclude(item__predictions__run=run)
        .order_by("outcome", "-pk")
        .values_list("outcome", "error")
    )
    failures: dict[str, dict] = {}
    for outcome, error in rows:
        entry = failures.setdefault(outcome, {"items": 0, "example": error[:200]})
        entry["items"] += 1
    return failures


def backends_due_for_health_check(*, now=None):
    now = now or timezone.now()
    return Backend.objects.filter(is_active=True).filter(
        Q(last_checked_at__isnull=True) | Q(last_checked_at__lte=now - HEALTH_CHECK_INTERVAL)
    )


def projects_owned_or_staffed(*, organization_ids: list[int]) -> QuerySet[Project]:
    """Projects these organizations own (client) or staff (centre): where compute
    may be spent, subject to compute.permissions.can_run_on_project."""
    return Project.objects.filter(
        Q(organization_id__in=organization_ids) | Q(workforce_id__in=organization_ids)
    )


def project_rows(queryset: QuerySet, *, organization_ids: list[int]) -> QuerySet:
    """Rows of queryset (a model with a project) of projects_owned_or_staffed."""
    return queryset.filter(
        Q(project__organization_id__in=organization_ids)
        | Q(project__workforce_id__in=organization_ids)
    )


def _percentile(sorted_values: list[float], share: float) -> float | None:
    if not sorted_values:
        return None
    index = min(len(sorted_values) - 1, max(0, round(share * (len(sorted_values) - 1))))
    return round(sorted_values[index], 2)


def backend_metrics(*, backends, since=None) -> list[dict]:
    """Per backend since `since` (24 h by default), from every metered attempt:
    requests by outcome, the error share (attempts the backend did not answer:
    429, 5xx, timeouts, connection errors, malformed replies), latency
    percentiles of answered attempts (the backend's own time), tokens and cost.
    Attempts whose worker stopped before their answer was recorded count as
    requests of outcome `interrupted` (unknown), not as the backend's errors;
    attempts still in flight are not counted yet."""
    since = since or timezone.now() - timedelta(hours=24)
    backends = list(backends)
    rows: dict[int, dict] = {}
    for row in (
        InferenceCall.objects.filter(backend__in=backends, created_at__gte=since)
        .exclude(outcome=IN_FLIGHT)
        .values("backend_id", "outcome")
        .annotate(
            requests=Count("pk"),
            prompt_tokens=Sum("prompt_tokens"),
            completion_tokens=Sum("completion_tokens"),
            cost=Sum("cost"),
        )
        .order_by()
    ):
        entry = rows.setdefault(
            row["backend_id"],
            {"outcomes": {}, "prompt_tokens": 0, "completion_tokens": 0, "cost": Decimal(0)},
        )
        entry["outcomes"][row["outcome"]] = row["requests"]
        entry["prompt_tokens"] += row["prompt_tokens"] or 0
        entry["completion_tokens"] += row["completion_tokens"] or 0
        entry["cost"] += row["cost"] or Decimal(0)
    result = []
    for backend in backends:
        latencies = sorted(
            InferenceCall.objects.filter(
                backend=backend,
                created_at__gte=since,
                outcome__in=[InferenceCall.Outcome.OK, InferenceCall.Outcome.INVALID],
            )
            .order_by("-created_at")
            .values_list("latency_ms", flat=True)[:MAX_LATENCY_SAMPLES]
        )
        row = rows.get(backend.pk, {})
        outcomes = {value: 0 for value in InferenceCall.Outcome.values if value != IN_FLIGHT}
        outcomes.update(row.get("outcomes", {}))
        requests = sum(outcomes.values())
        errors = sum(outcomes[o] for o in InferenceCall.BACKEND_ERRORS)
        result.append(
            {
                "id": backend.pk,
                "name": backend.name,
                "kind": backend.kind,
                "region": backend.region.name_en if backend.region_id else None,
                "health": backend.health,
                "circuit": backend.circuit,
                "since": since.isoformat(),
                "requests": requests,
                "errors": errors,
                "error_share": round(errors / requests, 4) if requests else None,
                "invalid_answers": outcomes[InferenceCall.Outcome.INVALID],
                "outcomes": outcomes,
                "latency_ms": {
                    "p50": _percentile(latencies, 0.5),
                    "p95": _percentile(latencies, 0.95),
                    "p99": _percentile(latencies, 0.99),
                },
                "prompt_tokens": row.get("prompt_tokens") or 0,
                "completion_tokens": row.get("completion_tokens") or 0,
                "cost": str(row.get("cost") or 0),
            }
        )
    return result


def suggestion_acceptance(*, project: Project) -> list[dict]:
    """How often humans' final answers agree with each model and prompt version.

    This is the model's quality as the people who check it see it.
    """
    results = dict(ItemResult.objects.filter(project=project).values_list("item_id", "answer"))
    counts: dict[tuple[str, int], list[int]] = {}
    for item_id, model, version, answer in (
        Prediction.objects.filter(
            project=project, run__purpose="prelabel", item_id__in=list(results)
        )
        .values_list("item_id", "model", "prompt_version", "answer")
        .iterator(chunk_size=5000)
    ):
        agreed = answer_key(project.task_type, answer) == answer_key(
            project.task_type, results[item_id]
        )
        tally = counts.setdefault((model, version), [0, 0])
        tally[0] += agreed
        tally[1] += 1
    return [
        {
            "model": model,
            "prompt_version": version,
            "compared": total,
            "accepted": accepted,
            "acceptance_rate": round(accepted / total, 4),
        }
        for (model, version), (accepted, total) in sorted(counts.items())
    ]


def backends_visible(organization_ids: list[int]):
    return Backend.objects.filter(
        Q(organization__isnull=True) | Q(organization_id__in=organization_ids)
    ).select_related("region")


def backend_hourly_history(*, backends, hours: int = 24, now=None) -> dict[int, list[dict]]:
    """Per backend, the last `hours` hours oldest first: calls and the calls the
    backend did not answer, so a page can show when it was up and when it was not."""
    from django.db.models.functions import TruncHour

    now = now or timezone.now()
    end = now.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    start = end - timedelta(hours=hours)
    ids = [b.pk for b in backends]
    counts: dict[tuple[int, object], dict] = {}
    for row in (
        InferenceCall.objects.filter(backend_id__in=ids, created_at__gte=start)
        .exclude(outcome=IN_FLIGHT)
        .annotate(hour=TruncHour("created_at"))
        .values("backend_id", "hour")
        .annotate(
            calls=Count("pk"),
            errors=Count("pk", filter=Q(outcome__in=InferenceCall.BACKEND_ERRORS)),
        )
        .order_by()
    ):
        counts[(row["backend_id"], row["hour"])] = row
    history = {}
    for backend_id in ids:
        cells = []
        for n in range(hours):
            hour = start + timedelta(hours=n)
            row = counts.get((backend_id, hour), {})
            calls, errors = row.get("calls", 0), row.get("errors", 0)
            if not calls:
                state = "idle"
            elif errors == 0:
                state = "ok"
            elif errors / calls <= 0.5:
                state = "degraded"
            else:
                state = "down"
            cells.append({"hour": hour, "calls": calls, "errors": errors, "state": state})
        history[backend_id] = cells
    return history


def prelabel_runs_for_project(*, project: Project, limit: int = 20) -> list[PrelabelRun]:
    return list(PrelabelRun.objects.filter(project=project).order_by("-created_at", "-pk")[:limit])


def finetune_runs_for_project(*, project: Project, limit: int = 20) -> list:
    from .models import FineTuneRun

    return list(
        FineTuneRun.objects.filter(project=project)
        .select_related("dataset", "backend")
        .order_by("-created_at", "-pk")[:limit]
    )
