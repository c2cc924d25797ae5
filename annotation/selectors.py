"""Reads for annotation jobs: progress, queues, quality and agreement."""

from collections.abc import Iterable

from django.core.exceptions import ValidationError
from django.db.models import Avg, Count, Q, QuerySet, Sum

from tenants.models import Organization, User
from tenants.permissions import ANNOTATORS, principal_for
from tenants.selectors import queryset_scope

from . import agreement
from .models import Annotation, Assignment, Item, ItemResult, Project, Review, ReviewLease
from .schemas import answer_key
from .task_types import task_type_spec


def centre_ids_for_worker(*, user: User, roles: Iterable[str]) -> list[int]:
    """Ids of the active centres where user holds one of roles (an API token: its
    own organization, with one of roles)."""
    return principal_for(user).organization_ids(roles=roles)


def projects_for_worker(*, user: User, roles: Iterable[str] = ANNOTATORS) -> QuerySet[Project]:
    """Active projects staffed by a centre where user holds one of roles."""
    return Project.objects.filter(
        workforce_id__in=centre_ids_for_worker(user=user, roles=roles),
        status=Project.Status.ACTIVE,
    ).order_by("name")


def projects_visible(*, organization_ids: list[int]) -> QuerySet[Project]:
    """Projects the given organizations own."""
    return queryset_scope(Project.objects.all(), organization_ids=organization_ids)


def client_organization_for_new_project(
    *, organization_ids: list[int], requested: Organization | None
) -> Organization:
    """The client organization a new project belongs to: the one asked for, which
    must be among the caller's, or the caller's only client organization."""
    client_orgs = Organization.objects.filter(
        pk__in=organization_ids, kind=Organization.Kind.CLIENT
    )
    if requested is not None:
        if not client_orgs.filter(pk=requested.pk).exists():
            raise ValidationError({"organization": ["Not one of your client organizations."]})
        return requested
    if client_orgs.count() != 1:
        raise ValidationError(
            {"organization": ["Say which of your client organizations owns the project."]}
        )
    return client_orgs.get()


def project_counts(*, project: Project) -> dict:
    """Cheap aggregate counts, one query (used by completion checks)."""
    return Item.objects.filter(project=project, is_gold=False).aggregate(
        total=Count("pk"),
        open=Count("pk", filter=Q(status=Item.Status.OPEN)),
        in_review=Count("pk", filter=Q(status=Item.Status.IN_REVIEW)),
        done=Count("pk", filter=Q(status=Item.Status.DONE)),
    )


def project_stats(*, project: Project) -> dict:
    items = Item.objects.filter(project=project).aggregate(
        total=Count("pk", filter=Q(is_gold=False)),
        gold=Count("pk", filter=Q(is_gold=True)),
        open=Count("pk", filter=Q(is_gold=False, status=Item.Status.OPEN)),
        in_review=Count("pk", filter=Q(status=Item.Status.IN_REVIEW)),
        done=Count("pk", filter=Q(is_gold=False, status=Item.Status.DONE)),
        item_tokens=Sum("token_count", filter=Q(is_gold=False)),
    )
    annotations = Annotation.objects.filter(project=project).aggregate(
        total=Count("pk"),
        rejected=Count("pk", filter=Q(status=Annotation.Status.REJECTED)),
        annotators=Count("annotator", distinct=True),
        time_spent_ms=Sum("time_spent_ms"),
        answer_tokens=Sum("answer_tokens"),
        gold_checked=Count("pk", filter=Q(gold_correct__isnull=False)),
        gold_correct=Count("pk", filter=Q(gold_correct=True)),
    )
    results = ItemResult.objects.filter(project=project).aggregate(
        total=Count("pk"),
        approved=Count("pk", filter=Q(approved=True)),
        mean_confidence=Avg("confidence"),
    )
    active_leases = Assignment.objects.filter(
        project=project, status=Assignment.Status.LEASED
    ).count()
    total = items["total"] or 0
    return {
        "items": {key: items[key] or 0 for key in ("total", "gold", "open", "in_review", "done")},
        "progress": round(items["done"] / total, 4) if total else 0.0,
        "annotations": {
            "total": annotations["total"],
            "rejected": annotations["rejected"],
            "annotators": annotations["annotators"],
            "mean_seconds": round(
                (annotations["time_spent_ms"] or 0) / 1000 / annotations["total"], 2
            )
            if annotations["total"]
            else None,
        },
        "gold_accuracy": round(annotations["gold_correct"] / annotations["gold_checked"], 4)
        if annotations["gold_checked"]
        else None,
        "results": {
            "total": results["total"],
            "approved": results["approved"],
            "mean_confidence": results["mean_confidence"],
        },
        "active_leases": active_leases,
        "tokens": {
            "items": items["item_tokens"] or 0,
            "answers": annotations["answer_tokens"] or 0,
        },
    }


def review_queue(*, project: Project, reviewer: User) -> QuerySet[Item]:
    """Items waiting for review that the reviewer did not annotate, least sure first.

    A listing (for managers and the API); reviewers take items one at a time
    through their lease (services.review_lease_take), never from this list.
    """
    return (
        Item.objects.filter(project=project, status=Item.Status.IN_REVIEW)
        .exclude(annotations__annotator=reviewer)
        .select_related("result")
        .order_by("result__confidence", "pk")
    )


def review_waiting_count(*, project: Project, reviewer: User) -> int:
    """Items the reviewer could review now: in review, not their own work, not
    held by another reviewer (their own held item counts)."""
    return (
        review_queue(project=project, reviewer=reviewer)
        .exclude(
            pk__in=ReviewLease.objects.filter(project=project, status=ReviewLease.Status.LEASED)
            .exclude(reviewer=reviewer)
            .values("item_id")
        )
        .count()
    )


def annotator_quality(*, annotator: User, project: Project | None = None) -> dict:
    """An annotator's record: volume, gold accuracy, review outcomes."""
    annotations = Annotation.objects.filter(annotator=annotator)
    if project is not None:
        annotations = annotations.filter(project=project)
    counts = annotations.aggregate(
        total=Count("pk"),
        accepted=Count("pk", filter=Q(status=Annotation.Status.ACCEPTED)),
        rejected=Count("pk", filter=Q(status=Annotation.Status.REJECTED)),
        gold_checked=Count("pk", filter=Q(gold_correct__isnull=False)),
        gold_correct=Count("pk", filter=Q(gold_correct=True)),
        tokens=Sum("item_tokens"),
        answer_tokens=Sum("answer_tokens"),
        time_spent_ms=Sum("time_spent_ms"),
    )
    reviewed = counts["accepted"] + counts["rejected"]
    rejections = list(
        Review.objects.filter(verdict=Review.Verdict.REJECT, annotation__annotator=annotator)
        .order_by("-created_at")
        .values("item_id", "reason", "created_at")[:20]
    )
    return {
        "annotations": counts["total"],
        "gold_checked": counts["gold_checked"],
        "gold_accuracy": round(counts["gold_correct"] / counts["gold_checked"], 4)
        if counts["gold_checked"]
        else None,
        "reviewed": reviewed,
        "review_acceptance": round(counts["accepted"] / reviewed, 4) if reviewed else None,
        "rejected": counts["rejected"],
        "tokens": (counts["tokens"] or 0) + (counts["answer_tokens"] or 0),
        "hours": round((counts["time_spent_ms"] or 0) / 3_600_000, 2),
        "recent_rejections": rejections,
    }


def gold_accuracy_by_annotator(*, project: Project) -> list[dict]:
    rows = (
        Annotation.objects.filter(project=project, gold_correct__isnull=False)
        .values("annotator_id")
        .annotate(checked=Count("pk"), correct=Count("pk", filter=Q(gold_correct=True)))
        .order_by("annotator_id")
    )
    return [
        {
            "annotator": row["annotator_id"],
            "checked": row["checked"],
            "accuracy": round(row["correct"] / row["checked"], 4),
        }
        for row in rows
    ]


def agreement_report(*, project: Project, max_items: int = 100_000) -> dict:
    """Project-level agreement with the measures that fit its task type.

    Computed over the most recent max_items items with two or more live
    annotations, so the report stays bounded on huge projects.
    """
    rows = (
        Annotation.objects.filter(project=project, item__is_gold=False)
        .exclude(status=Annotation.Status.REJECTED)
        .order_by("-item_id", "pk")
        .values_list("item_id", "annotator_id", "answer")
    )
    units: dict[int, list] = {}
    for item_id, annotator_id, answer in rows.iterator(chunk_size=5000):
        if item_id not in units and len(units) >= max_items:
            break
        units.setdefault(item_id, []).append((annotator_id, answer))
    multi = {i: u for i, u in units.items() if len(u) >= 2}
    task_type = project.task_type
    report = {
        "task_type": task_type,
        "items_with_overlap": len(multi),
        "annotations": sum(len(u) for u in multi.values()),
        "gold_accuracy_by_annotator": gold_accuracy_by_annotator(project=project),
    }
    measure = _AGREEMENT_MEASURES[task_type_spec(task_type).agreement]
    report.update(measure(task_type, multi))
    return report


def _nominal_agreement(task_type: str, multi: dict) -> dict:
    keyed = [[answer_key(task_type, ans) for _, ans in u] for u in multi.values()]
    report = {
        "krippendorff_alpha_nominal": agreement.krippendorff_alpha(keyed, level="nominal"),
        "pairwise_agreement": agreement.pairwise_agreement(keyed),
        "fleiss_kappa": agreement.fleiss_kappa_from_units(keyed),
    }
    annotators = sorted({a for u in multi.values() for a, _ in u})
    if len(annotators) == 2:
        by_annotator = [{a: answer_key(task_type, ans) for a, ans in u} for u in multi.values()]
        report["cohen_kappa"] = agreement.cohen_kappa(
            [u.get(annotators[0]) for u in by_annotator],
            [u.get(annotators[1]) for u in by_annotator],
        )
    return report


def _interval_agreement(task_type: str, multi: dict) -> dict:
    keyed = [[answer_key(task_type, ans) for _, ans in u] for u in multi.values()]
    return {
        "krippendorff_alpha_interval": agreement.krippendorff_alpha(keyed, level="interval"),
        "krippendorff_alpha_ordinal": agreement.krippendorff_alpha(keyed, level="ordinal"),
        "pairwise_agreement": agreement.pairwise_agreement(keyed),
    }


def _span_agreement(task_type: str, multi: dict) -> dict:
    spans = [[ans["spans"] for _, ans in u] for u in multi.values()]
    return {"pairwise_span_f1": agreement.pairwise_span_f1(spans)}


def _exact_agreement(task_type: str, multi: dict) -> dict:
    # Free text: exact agreement is all that is meaningful without a model.
    keyed = [[answer_key(task_type, ans) for _, ans in u] for u in multi.values()]
    return {"pairwise_exact_agreement": agreement.pairwise_agreement(keyed)}


# The measures a task type's spec names in its `agreement` attribute.
_AGREEMENT_MEASURES = {
    "nominal": _nominal_agreement,
    "interval": _interval_agreement,
    "span_f1": _span_agreement,
    "exact": _exact_agreement,
}
