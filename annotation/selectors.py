"""Reads for annotation jobs: progress, queues, quality and agreement."""

import hashlib
from collections.abc import Iterable
from datetime import timedelta
from decimal import Decimal

import numpy as np
from django.core.exceptions import ValidationError
from django.db.models import Avg, Count, Q, QuerySet, Sum

from tenants.models import Organization, User
from tenants.permissions import ANNOTATORS, CENTRE_RUN_MANAGERS, PROJECT_EDITORS, principal_for
from tenants.selectors import queryset_scope

from . import agreement, quality
from .models import (
    Annotation,
    AnnotatorTally,
    Assignment,
    Item,
    ItemResult,
    Project,
    ProjectQuality,
    Review,
    ReviewLease,
)
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


def projects_for_quality(*, user: User, organization_ids: list[int]) -> QuerySet[Project]:
    """Projects whose quality figures the caller may read: their organization's own,
    and those their centre staffs where they are a project manager (within the
    organizations the request may see, so a token stays inside its own)."""
    managed = centre_ids_for_worker(user=user, roles=CENTRE_RUN_MANAGERS)
    return Project.objects.filter(
        Q(organization_id__in=organization_ids)
        | (Q(workforce_id__in=organization_ids) & Q(workforce_id__in=managed))
    ).select_related("organization", "workforce")


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


# --- the quality engine ---------------------------------------------------------

# A deterministic share of regular items on which the model does not vote: the
# humans decide them alone, so they measure the model on real work without its
# own vote in the reference (gold measures it too, but gold may be easier).
MODEL_AUDIT_RATE = 0.03


class QualityContext:
    """What an adaptive decision needs about its project, loaded once per call."""

    def __init__(self, project: Project):
        spec = task_type_spec(project.task_type)
        self.project = project
        self.spec = spec
        keys = spec.answer_keys(project.label_schema) or []
        self.classes = list(keys)
        self.index = {agreement.stable_key(k): i for i, k in enumerate(keys)}
        k = len(keys)
        state = ProjectQuality.objects.filter(project=project).first()
        same_classes = state is not None and state.classes == self.classes
        if same_classes and state.priors:
            self.priors = np.asarray(state.priors, dtype=float)
            self.errors = np.asarray(state.errors, dtype=float)
        else:
            self.priors = np.full(k, 1.0 / k) if k else np.zeros(0)
            self.errors = quality.uniform_errors(k)
        self.model_name = state.model_name if same_classes else ""
        self.model_bands = (
            quality.model_band_accuracy(state.model_bins)
            if same_classes and state.model_bins
            else None
        )

    def class_of(self, answer) -> int | None:
        try:
            return self.index.get(agreement.stable_key(self.spec.answer_key(answer)))
        except (KeyError, TypeError):
            return None

    def model_vote(self, item: Item, kept: dict | None = None) -> tuple[int, float] | None:
        """The model's (class, measured precision) on the item, or None when it has
        no say: the project does not let it vote, its predictions are not the
        calibrated model's, it says no more than the class's base rate, or the
        item is an audit item.

        `kept` is the model's vote as the item's result recorded it when it was
        decided ({"class", "precision"}). It counts when the item carries no
        prediction of the current model: retraining re-predicts only open
        items, so without it every item a model helped decide would lose that
        vote with the next model and be reopened for answers it does not need.
        """
        if not self.project.model_votes:
            return None
        suggestion = (item.metadata or {}).get("suggestion")
        current = (
            self.model_bands is not None
            and isinstance(suggestion, dict)
            and suggestion.get("model") == self.model_name
        )
        if not current:
            return self._kept_vote(kept)
        if model_audit_item(self.project.pk, item.pk):
            return None
        cls = self.class_of(suggestion.get("answer") or {})
        confidence = suggestion.get("confidence")
        if cls is None or not isinstance(confidence, int | float):
            return None
        precision = self.model_bands[quality.model_band(float(confidence))]
        if not quality.model_informative(cls, precision, self.priors):
            return None
        return cls, precision

    def _kept_vote(self, kept: dict | None) -> tuple[int, float] | None:
        if not isinstance(kept, dict) or not isinstance(kept.get("precision"), int | float):
            return None
        try:
            cls = self.index.get(agreement.stable_key(kept.get("class")))
        except TypeError:
            return None
        precision = float(kept["precision"])
        if cls is None or not quality.model_informative(cls, precision, self.priors):
            return None
        return cls, precision


def model_audit_item(project_id: int, item_id: int) -> bool:
    digest = hashlib.sha256(f"model-audit:{project_id}:{item_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < MODEL_AUDIT_RATE


def annotator_accuracy_weight(tally: AnnotatorTally | None) -> float:
    """The accuracy a vote is weighed by: the engine's estimate, or until the first
    refresh what the annotator's gold says (the prior alone for a newcomer)."""
    if tally is None:
        return quality.beta_interval(0, 0)[0]
    if tally.accuracy is not None:
        return tally.accuracy
    return quality.beta_interval(tally.gold_correct, tally.gold)[0]


def _gold_replay(project: Project, context: QualityContext) -> tuple[int, int, int]:
    """Held-out check of the decision rule on gold: each gold item's answers, in
    the order they came, decided as a regular item would be (adaptive: one
    answer at a time until the target or the cap; fixed: majority of the first
    `overlap`), against its gold answer. Gold is never in a training set, so
    this measures what clients receive. Returns (right, decided, sent to review)."""
    tallies = {t.annotator_id: t for t in AnnotatorTally.objects.filter(project=project).order_by()}
    rows = (
        Annotation.objects.filter(project=project, item__is_gold=True)
        .exclude(status=Annotation.Status.REJECTED)
        .values_list("item_id", "annotator_id", "answer", "item__gold_answer", "item__metadata")
        .order_by("item_id", "pk")
    )
    right = decided = reviewed = 0
    target, cap = float(project.target_confidence), project.max_annotations
    current = None
    votes: list[tuple[int, float]] = []
    keys: list = []
    done = False

    def finish_majority():
        nonlocal right, decided
        if keys and not done and project.decision == Project.Decision.FIXED:
            winner, _ = agreement.majority_vote(keys)
            decided += 1
            right += winner == gold_key

    gold_key = None
    for item_id, annotator_id, answer, gold_answer, metadata in rows.iterator(chunk_size=5000):
        if item_id != current:
            finish_majority()
            current, votes, keys, done = item_id, [], [], False
            gold_key = context.class_of(gold_answer or {})
            model_vote = context.model_vote(Item(pk=-1, metadata=metadata or {}))
        if done or gold_key is None:
            continue
        cls = context.class_of(answer)
        if cls is None:
            continue
        if project.decision == Project.Decision.FIXED:
            if len(keys) < project.overlap:
                keys.append(cls)
            continue
        votes.append((cls, annotator_accuracy_weight(tallies.get(annotator_id))))
        outcome = quality.decide(
            quality.posterior(context.priors, context.errors, votes, model_vote),
            annotations=len(votes),
            target=target,
            cap=cap,
        )
        if outcome.action == "decide":
            decided += 1
            right += outcome.best == gold_key
            done = True
        elif outcome.action == "review":
            reviewed += 1
            done = True
    finish_majority()
    return right, decided, reviewed


def project_quality_figures(*, project: Project, with_annotators: bool = False) -> dict:
    """Where the money goes: human actions and charges per decided item, the
    estimated accuracy with its interval, how many answers items needed, and
    the worker model (named annotators only `with_annotators`, for their
    managers; clients get counts)."""
    from valuechain.selectors import project_charges

    counts = project_counts(project=project)
    regular = counts["total"]
    annotations = Annotation.objects.filter(project=project).aggregate(
        regular=Count("pk", filter=Q(item__is_gold=False)),
        gold=Count("pk", filter=Q(item__is_gold=True)),
        rejected=Count("pk", filter=Q(status=Annotation.Status.REJECTED)),
    )
    reviews = Review.objects.filter(project=project).count()
    actions = annotations["regular"] + annotations["gold"] + reviews
    decided = counts["done"]
    per_decided = (
        Item.objects.filter(project=project, is_gold=False, status=Item.Status.DONE)
        .values("annotation_count")
        .annotate(n=Count("pk"))
        .order_by("annotation_count")
    )
    results = ItemResult.objects.filter(project=project, item__status=Item.Status.DONE).aggregate(
        mean=Avg("confidence"), reviewed=Count("pk", filter=Q(reviewed_by__isnull=False))
    )
    charges = project_charges(project=project)
    charged = sum(charges.values(), start=Decimal(0))
    context = QualityContext(project)
    if len(context.classes) >= 2:
        right, checked, gold_reviewed = _gold_replay(project, context)
    else:
        right = checked = gold_reviewed = 0
    low, high = quality.wilson(right, checked)
    tallies = AnnotatorTally.objects.filter(project=project).select_related("annotator")
    estimated = [t for t in tallies if t.accuracy is not None]
    quarantined = [t for t in tallies if t.quarantined]
    state = ProjectQuality.objects.filter(project=project).first()
    figures = {
        "project": project.pk,
        "decision": project.decision,
        "target_confidence": project.target_confidence,
        "max_annotations": project.max_annotations,
        "overlap": project.overlap,
        "quarantine_below": project.quarantine_below,
        "items": {
            "total": regular,
            "decided": decided,
            "in_review": counts["in_review"],
            "open": counts["open"],
        },
        "human_actions": {
            "annotations": annotations["regular"],
            "gold_annotations": annotations["gold"],
            "reviews": reviews,
            "rejected_annotations": annotations["rejected"],
            "per_item": round(actions / regular, 4) if regular else None,
            "per_decided_item": round(actions / decided, 4) if decided else None,
        },
        "decided_by_annotations": {str(row["annotation_count"]): row["n"] for row in per_decided},
        "charges": {
            "currency": "CNY",
            "total": charged,
            "by_kind": charges,
            "per_decided_item": (
                (charged / decided).quantize(Decimal("0.000001")) if decided else None
            ),
        },
        "accuracy": {
            # The engine's own estimate: the mean posterior of the delivered answers.
            "expected": round(results["mean"], 4) if results["mean"] is not None else None,
            # Measured: the decision rule replayed on gold, with a Wilson 95 % interval.
            "gold_check": {
                "items": checked,
                "right": right,
                "accuracy": round(right / checked, 4) if checked else None,
                "low": round(low, 4) if checked else None,
                "high": round(high, 4) if checked else None,
                "sent_to_review": gold_reviewed,
            },
            "reviewed_items": results["reviewed"],
        },
        "model": {
            "name": context.model_name or None,
            "votes": bool(project.model_votes and context.model_bands is not None),
            "accuracy": (
                round(state.model_accuracy, 4)
                if state is not None and state.model_accuracy is not None
                else None
            ),
            "checked": state.model_checked if state is not None else 0,
        },
        "annotators": {
            "estimated": len(estimated),
            "quarantined": len(quarantined),
            "all_quarantined": bool(estimated) and len(quarantined) == len(estimated),
        },
        "estimated_at": state.estimated_at if state is not None else None,
    }
    if with_annotators:
        figures["annotators"]["people"] = [
            annotator_record(t)
            for t in sorted(tallies, key=lambda t: (not t.quarantined, t.accuracy or 0, t.pk))
        ]
    return figures


def annotator_record(tally: AnnotatorTally) -> dict:
    """One annotator's quality record in a project, for their managers."""
    return {
        "id": tally.annotator_id,
        "username": tally.annotator.username,
        "tasks": tally.tasks,
        "gold": tally.gold,
        "gold_correct": tally.gold_correct,
        "accuracy": tally.accuracy,
        "accuracy_low": tally.accuracy_low,
        "accuracy_high": tally.accuracy_high,
        "evidence": tally.evidence,
        "quarantined": tally.quarantined,
        "quarantined_at": tally.quarantined_at,
        "reason": tally.quarantine_reason,
    }


def annotator_project_records(*, annotator: User, workforce_id: int) -> list[dict]:
    """An annotator's record per project the centre staffs: tasks served, gold
    answered and right, the engine's accuracy estimate and quarantine."""
    tallies = (
        AnnotatorTally.objects.filter(annotator=annotator, project__workforce_id=workforce_id)
        .select_related("project")
        .order_by("project__name")
    )
    done = dict(
        Annotation.objects.filter(annotator=annotator, project__workforce_id=workforce_id)
        .values("project_id")
        .annotate(n=Count("pk"))
        .values_list("project_id", "n")
    )
    return [
        {
            "project": tally.project,
            "tasks": tally.tasks,
            "annotations": done.get(tally.project_id, 0),
            "gold": tally.gold,
            "gold_correct": tally.gold_correct,
            "accuracy": tally.accuracy,
            "accuracy_low": tally.accuracy_low,
            "accuracy_high": tally.accuracy_high,
            "quarantined": tally.quarantined,
            "quarantine_reason": tally.quarantine_reason,
        }
        for tally in tallies
    ]


# --- the managers' project pages ---------------------------------------------------


def projects_managed(*, user: User) -> QuerySet[Project]:
    """Projects user runs: their client organization's (as one of its editors) and
    those their centre staffs (as its project manager). Archived ones included; the
    page says so."""
    principal = principal_for(user)
    owned = principal.organization_ids(roles=PROJECT_EDITORS)
    staffed = principal.organization_ids(roles=CENTRE_RUN_MANAGERS)
    return (
        Project.objects.filter(Q(organization_id__in=owned) | Q(workforce_id__in=staffed))
        .select_related("organization", "workforce")
        .order_by("name", "pk")
    )


def client_organizations_for_new_project(*, user: User) -> QuerySet[Organization]:
    """The clients user may create a project for: those where they are an editor, and
    those their managed centres already work for."""
    principal = principal_for(user)
    owned = principal.organization_ids(roles=PROJECT_EDITORS)
    staffed = principal.organization_ids(roles=CENTRE_RUN_MANAGERS)
    served = Project.objects.filter(workforce_id__in=staffed).values("organization_id")
    return Organization.objects.filter(
        Q(pk__in=owned) | Q(pk__in=served), kind=Organization.Kind.CLIENT, is_active=True
    ).order_by("name")


def workforces_for_new_project(*, user: User) -> QuerySet[Organization]:
    """The centres user may staff a project with: any active centre for a client's
    editor, their own centres for a centre's project manager."""
    principal = principal_for(user)
    centres = Organization.objects.filter(kind=Organization.Kind.WORKFORCE, is_active=True)
    if principal.organization_ids(roles=PROJECT_EDITORS):
        return centres.order_by("name")
    return centres.filter(pk__in=principal.organization_ids(roles=CENTRE_RUN_MANAGERS)).order_by(
        "name"
    )


def project_throughput(*, project: Project, days: int = 14, today=None) -> list[dict]:
    """Per day of the last `days` (the platform's time zone), oldest first: answers
    submitted, reviews made and items whose final answer was last settled that day."""
    from django.db.models.functions import TruncDate
    from django.utils import timezone

    today = today or timezone.localdate()
    first = today - timedelta(days=days - 1)
    tz = timezone.get_current_timezone()

    def per_day(queryset, field):
        rows = (
            queryset.filter(**{f"{field}__date__gte": first})
            .annotate(day=TruncDate(field, tzinfo=tz))
            .values("day")
            .annotate(n=Count("pk"))
            .order_by()
        )
        return {row["day"]: row["n"] for row in rows}

    annotations = per_day(Annotation.objects.filter(project=project), "created_at")
    reviews = per_day(Review.objects.filter(project=project), "created_at")
    done = per_day(
        ItemResult.objects.filter(project=project, item__status=Item.Status.DONE), "updated_at"
    )
    return [
        {
            "day": day,
            "annotations": annotations.get(day, 0),
            "reviews": reviews.get(day, 0),
            "done": done.get(day, 0),
        }
        for day in (first + timedelta(days=n) for n in range(days))
    ]


def gold_confusion(*, project: Project) -> dict | None:
    """Annotators' answers on gold items against the known answer, for task types
    whose answers are a closed set: {"classes": [...], "rows": [[count, ...], ...]},
    rows the gold answer, columns the given one. None for other task types."""
    spec = task_type_spec(project.task_type)
    classes = spec.answer_keys(project.label_schema)
    if not classes:
        return None
    index = {key: n for n, key in enumerate(classes)}
    matrix = [[0] * len(classes) for _ in classes]
    rows = Annotation.objects.filter(project=project, item__is_gold=True).values_list(
        "answer", "item__gold_answer"
    )
    for answer, gold in rows.iterator(chunk_size=2000):
        try:
            given, truth = index.get(spec.answer_key(answer)), index.get(spec.answer_key(gold))
        except (KeyError, TypeError, ValueError):
            continue  # a malformed stored answer is no evidence either way
        if given is not None and truth is not None:
            matrix[truth][given] += 1
    return {"classes": [str(c) for c in classes], "rows": matrix}


def project_jobs(*, project: Project, limit: int = 10) -> dict:
    """The project's latest imports and exports and its dataset versions."""
    from .models import DatasetVersion, ExportJob, ImportJob

    return {
        "imports": list(ImportJob.objects.filter(project=project).order_by("-created_at")[:limit]),
        "exports": list(ExportJob.objects.filter(project=project).order_by("-created_at")[:limit]),
        "datasets": list(DatasetVersion.objects.filter(project=project).order_by("-version")),
    }
