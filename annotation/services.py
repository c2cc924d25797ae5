"""Writes for annotation jobs: projects, leases, submissions, reviews, results."""

import hashlib
import json
import logging
from datetime import timedelta

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import connection, transaction
from django.db.models import Exists, F, OuterRef, Q
from django.db.models.functions import Greatest
from django.utils import timezone

from eventhooks.models import Event
from eventhooks.services import webhook_event_emit
from tenants.models import AuditEvent, Organization, User
from tenants.services import audit_changes, audit_event_record, audit_snapshot
from valuechain import postings

from . import agreement, permissions
from .models import (
    Annotation,
    Assignment,
    Item,
    ItemResult,
    Project,
    Review,
    ReviewLease,
)
from .schemas import (
    SchemaError,
    answer_key,
    answer_text,
    answer_validate,
    item_text,
    label_schema_validate,
)
from .selectors import project_counts
from .task_types import task_types_where
from .token_estimate import estimate_tokens

# An annotator holds the task on screen and the prefetched next one.
MAX_ACTIVE_LEASES = 2

logger = logging.getLogger(__name__)


def schema_error_to_validation(error: SchemaError) -> ValidationError:
    return ValidationError({error.field: [error.message]})


def _sampled(project_id: int, item_id: int, rate) -> bool:
    """Deterministic review sampling: the same item is always in or out."""
    if rate <= 0:
        return False
    digest = hashlib.sha256(f"review:{project_id}:{item_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < float(rate)


# --- projects -------------------------------------------------------------------


def _project_clean(project: Project) -> None:
    try:
        project.label_schema = label_schema_validate(project.task_type, project.label_schema)
    except SchemaError as error:
        raise schema_error_to_validation(error) from error
    if project.workforce_id and project.workforce.kind != Organization.Kind.WORKFORCE:
        raise ValidationError({"workforce": ["Expected an annotation centre (workforce)."]})
    project.full_clean()


@transaction.atomic
def project_create(*, organization: Organization, created_by: User, **fields) -> Project:
    permissions.require_can_create_project(created_by, organization)
    if organization.kind != Organization.Kind.CLIENT:
        raise ValidationError({"organization": ["Projects belong to a client organization."]})
    project = Project(organization=organization, created_by=created_by, **fields)
    _project_clean(project)
    project.save()
    audit_event_record(
        event_type=AuditEvent.EventType.PROJECT_CREATED,
        organization=organization,
        target=project,
        actor=created_by,
        extra={"task_type": project.task_type, "status": project.status},
    )
    logger.info(
        "project created",
        extra={"project_id": project.pk, "organization_id": organization.pk},
    )
    return project


@transaction.atomic
def project_update(*, project: Project, updated_by: User, **fields) -> Project:
    project = Project.objects.select_for_update().get(pk=project.pk)
    permissions.require_can_manage_project(updated_by, project, "change projects")
    has_items = project.items.exists()
    if "task_type" in fields and fields["task_type"] != project.task_type and has_items:
        raise ValidationError({"task_type": ["The task type cannot change once items exist."]})
    if (
        "label_schema" in fields
        and fields["label_schema"] != project.label_schema
        and project.annotations.exists()
    ):
        previous = project.label_schema
        project.label_schema = fields["label_schema"]
        try:
            new = label_schema_validate(project.task_type, fields["label_schema"])
        except SchemaError as error:
            raise schema_error_to_validation(error) from error
        removed = {lb["value"] for lb in previous.get("labels", [])} - {
            lb["value"] for lb in new.get("labels", [])
        }
        if removed:
            raise ValidationError(
                {
                    "label_schema": [
                        f"Labels already used in annotations cannot be removed: "
                        f"{', '.join(sorted(removed))}."
                    ]
                }
            )
    before = audit_snapshot(project, fields)
    for name, value in fields.items():
        setattr(project, name, value)
    _project_clean(project)
    project.save()
    changes = audit_changes(before, audit_snapshot(project, fields))
    _project_changes_record(project, updated_by, changes)
    if "overlap" in fields:
        # Open items follow the new overlap, but never below what is already
        # reserved: leases in flight stay valid.
        project.items.filter(is_gold=False, status=Item.Status.OPEN).update(
            target_annotations=Greatest(F("reserved_count"), project.overlap)
        )
    return project


def _project_changes_record(project: Project, actor: User, changes: dict) -> None:
    """A status transition is its own event (it is what people look for); the rest is an update."""
    status = changes.pop("status", None)
    if status is not None:
        audit_event_record(
            event_type=AuditEvent.EventType.PROJECT_STATUS_CHANGED,
            organization=project.organization,
            target=project,
            actor=actor,
            changes={"status": status},
        )
        logger.info(
            "project status changed",
            extra={"project_id": project.pk, "from": status[0], "to": status[1]},
        )
    if changes:
        audit_event_record(
            event_type=AuditEvent.EventType.PROJECT_UPDATED,
            organization=project.organization,
            target=project,
            actor=actor,
            changes=changes,
        )


def project_archive(*, project: Project, archived_by: User) -> Project:
    """Archiving keeps the project's data; it only leaves the work queues."""
    return project_update(project=project, updated_by=archived_by, status=Project.Status.ARCHIVED)


def project_results_reinfer(*, project: Project, requested_by: User) -> None:
    """Queue a Dawid–Skene re-inference of the project's answers (after commit)."""
    permissions.require_can_manage_project(requested_by, project, "re-infer answers")
    from .tasks import project_results_infer_task

    project_results_infer_task.delay_on_commit(project.pk)


# --- distribution ---------------------------------------------------------------


def _gold_due(*, project: Project, annotator: User) -> bool:
    """Serve gold at the project's ratio: on the task that crosses each 1/ratio step."""
    if project.gold_ratio <= 0:
        return False
    served = Assignment.objects.filter(project=project, annotator=annotator).count()
    ratio = float(project.gold_ratio)
    return int((served + 1) * ratio) > int(served * ratio)


_LEASE_SQL = """
WITH picked AS (
    SELECT i.id
    FROM {item} AS i
    WHERE i.project_id = %(project)s
      AND i.is_gold = %(gold)s
      AND i.status = 'open'
      AND i.reserved_count < i.target_annotations
      AND NOT EXISTS (
          SELECT 1 FROM {assignment} AS a
          WHERE a.item_id = i.id AND a.annotator_id = %(annotator)s
      )
    ORDER BY i.priority DESC, i.id
    LIMIT 1
    FOR UPDATE SKIP LOCKED
), reserved AS (
    UPDATE {item} AS i
    SET reserved_count = i.reserved_count + 1
    FROM picked
    WHERE i.id = picked.id
    RETURNING i.id
)
INSERT INTO {assignment} (project_id, item_id, annotator_id, status, leased_at, expires_at)
SELECT %(project)s, reserved.id, %(annotator)s, 'leased', %(now)s, %(expires)s
FROM reserved
RETURNING id
"""
_LEASE_SQL_WAITING = _LEASE_SQL.replace("FOR UPDATE SKIP LOCKED", "FOR UPDATE")
assert _LEASE_SQL_WAITING != _LEASE_SQL


def _lease_one_postgresql(*, project, annotator, gold, now, expires) -> int | None:
    """Pick and lease in one statement: SKIP LOCKED lets concurrent annotators
    pass over each other's candidate rows instead of queueing behind them.

    SKIP LOCKED also passes over the last candidates while other leases or
    submits hold them, so "nothing found" can be momentary near a project's
    end. Only then is the pick repeated waiting for those locks (each held for
    one short transaction); PostgreSQL re-checks the row once it is free, so an
    item filled in the meantime is passed over. Without this an annotator was
    told "no more tasks" while items they could do remained.
    """
    params = {
        "project": project.pk,
        "gold": gold,
        "annotator": annotator.pk,
        "now": now,
        "expires": expires,
    }
    tables = {"item": Item._meta.db_table, "assignment": Assignment._meta.db_table}
    with connection.cursor() as cursor:
        cursor.execute(_LEASE_SQL.format(**tables), params)
        row = cursor.fetchone()
        if row is None:
            cursor.execute(_LEASE_SQL_WAITING.format(**tables), params)
            row = cursor.fetchone()
    return row[0] if row else None


def _lease_one_portable(*, project, annotator, gold, now, expires) -> int | None:
    # SQLite (make run) has one writer at a time and IMMEDIATE transactions,
    # so select-then-update cannot race there.
    item = (
        Item.objects.filter(
            project=project,
            is_gold=gold,
            status=Item.Status.OPEN,
            reserved_count__lt=F("target_annotations"),
        )
        .exclude(assignments__annotator=annotator)
        .order_by("-priority", "pk")
        .first()
    )
    if item is None:
        return None
    updated = Item.objects.filter(pk=item.pk, reserved_count__lt=F("target_annotations")).update(
        reserved_count=F("reserved_count") + 1
    )
    if not updated:
        return None
    return Assignment.objects.create(
        project=project, item=item, annotator=annotator, leased_at=now, expires_at=expires
    ).pk


def annotator_check(*, project: Project, annotator: User) -> None:
    if project.status != Project.Status.ACTIVE:
        raise ValidationError({"project": [f"The project is {project.status}, not active."]})
    permissions.require_can_annotate_project(annotator, project)
    if not permissions.has_required_tier(annotator, project):
        raise PermissionDenied(
            f"This project needs skill tier T{project.required_tier}; yours is "
            f"T{annotator.skill_tier}."
        )


@transaction.atomic
def assignment_lease(
    *, project: Project, annotator: User, holding: list[int] | tuple = (), now=None
) -> Assignment | None:
    """The annotator's next task, or None when nothing is left for them.

    An active lease the caller is not already showing (`holding`) comes back
    first, so a page reload never strands a lease until it expires; a new item
    is leased only while the annotator holds fewer than MAX_ACTIVE_LEASES.
    """
    annotator_check(project=project, annotator=annotator)
    now = now or timezone.now()
    active = list(
        Assignment.objects.filter(
            project=project,
            annotator=annotator,
            status=Assignment.Status.LEASED,
            expires_at__gt=now,
        )
        .select_related("item")
        .order_by("leased_at", "pk")
    )
    held = set(holding)
    unheld = [a for a in active if a.pk not in held]
    if unheld:
        return unheld[0]
    if len(active) >= MAX_ACTIVE_LEASES:
        return active[0]
    expires = now + timedelta(seconds=project.lease_seconds)
    lease_one = _lease_one_postgresql if connection.vendor == "postgresql" else _lease_one_portable
    gold_first = _gold_due(project=project, annotator=annotator)
    for gold in (gold_first, not gold_first) if project.gold_ratio > 0 else (False,):
        assignment_id = lease_one(
            project=project, annotator=annotator, gold=gold, now=now, expires=expires
        )
        if assignment_id is not None:
            return Assignment.objects.select_related("item").get(pk=assignment_id)
    return None


def _release(assignment: Assignment, status: str, now) -> None:
    assignment.status = status
    assignment.finished_at = now
    assignment.save(update_fields=["status", "finished_at"])
    Item.objects.filter(pk=assignment.item_id).update(reserved_count=F("reserved_count") - 1)


@transaction.atomic
def assignment_skip(*, assignment_id: int, annotator: User) -> Assignment:
    assignment = _assignment_for_update(assignment_id, annotator)
    if assignment.status != Assignment.Status.LEASED:
        raise ValidationError({"assignment": [f"This task is already {assignment.status}."]})
    _release(assignment, Assignment.Status.SKIPPED, timezone.now())
    return assignment


@transaction.atomic
def assignment_expire_stale(*, now=None, limit: int = 5000) -> int:
    """Return abandoned leases to the pool. Run from beat; safe to run twice."""
    now = now or timezone.now()
    # order_by("pk") is intentional: a consistent lock order prevents deadlocks.
    stale = list(
        Assignment.objects.select_for_update(skip_locked=True)
        .filter(status=Assignment.Status.LEASED, expires_at__lte=now)
        .order_by("pk")
        .values_list("pk", "item_id")[:limit]
    )
    if not stale:
        return 0
    Assignment.objects.filter(pk__in=[pk for pk, _ in stale]).update(
        status=Assignment.Status.EXPIRED, finished_at=now
    )
    per_item: dict[int, int] = {}
    for _, item_id in stale:
        per_item[item_id] = per_item.get(item_id, 0) + 1
    for item_id, count in sorted(per_item.items()):
        Item.objects.filter(pk=item_id).update(reserved_count=F("reserved_count") - count)
    logger.info("stale leases expired", extra={"count": len(stale), "items": len(per_item)})
    return len(stale)


def _assignment_for_update(assignment_id: int, annotator: User) -> Assignment:
    assignment = (
        # of=("self",): lock the lease only; locking the joined project row
        # too would serialize (and deadlock) every submit in the project.
        Assignment.objects.select_for_update(of=("self",))
        .select_related("project__organization", "project__workforce")
        .filter(pk=assignment_id)
        .first()
    )
    if assignment is None or assignment.annotator_id != annotator.pk:
        # Someone else's lease is not disclosed: it is simply not yours.
        raise PermissionDenied("This task is not leased to you.")
    return assignment


# --- submissions ----------------------------------------------------------------


@transaction.atomic
def annotation_submit(
    *, assignment_id: int, annotator: User, answer, time_spent_ms: int = 0, now=None
) -> tuple[Annotation, bool]:
    """Record the answer for a lease; a retried submit returns the first one."""
    now = now or timezone.now()
    assignment = _assignment_for_update(assignment_id, annotator)
    if assignment.status == Assignment.Status.SUBMITTED:
        return assignment.annotation, False
    if assignment.status != Assignment.Status.LEASED:
        raise ValidationError(
            {"assignment": [f"This task was {assignment.status}; take the next task."]}
        )
    if assignment.expires_at <= now:
        raise ValidationError(
            {
                "assignment": [
                    f"The lease expired at {assignment.expires_at.isoformat()}; take the next task."
                ]
            }
        )
    project = assignment.project
    item = Item.objects.select_for_update().get(pk=assignment.item_id)
    try:
        answer = answer_validate(
            project.task_type, project.label_schema, answer, item_data=item.data
        )
    except SchemaError as error:
        raise schema_error_to_validation(error) from error
    if not isinstance(time_spent_ms, int) or time_spent_ms < 0:
        raise ValidationError({"time_spent_ms": ["Expected a whole number of milliseconds."]})
    gold_correct = None
    if item.is_gold:
        gold_correct = answer_key(project.task_type, answer) == answer_key(
            project.task_type, item.gold_answer
        )
    annotation = Annotation.objects.create(
        project=project,
        item=item,
        annotator=annotator,
        assignment=assignment,
        answer=answer,
        gold_correct=gold_correct,
        time_spent_ms=min(time_spent_ms, 24 * 3600 * 1000),
        item_tokens=item.token_count or estimate_tokens(item_text(project.task_type, item.data)),
        answer_tokens=estimate_tokens(answer_text(project.task_type, answer)),
    )
    assignment.status = Assignment.Status.SUBMITTED
    assignment.finished_at = now
    assignment.save(update_fields=["status", "finished_at"])
    item.annotation_count += 1
    item.save(update_fields=["annotation_count", "updated_at"])
    annotation.project = project
    postings.annotation_posted(annotation)
    if not item.is_gold and item.annotation_count >= item.target_annotations:
        item_result_decide(item=item, project=project)
    return annotation, True


# --- results --------------------------------------------------------------------


def _live_annotations(item: Item) -> list[Annotation]:
    return list(item.annotations.exclude(status=Annotation.Status.REJECTED).order_by("pk"))


def item_result_decide(*, item: Item, project: Project) -> ItemResult:
    """Vote on a complete item and decide whether a reviewer must look at it."""
    annotations = _live_annotations(item)
    keys = [answer_key(project.task_type, a.answer) for a in annotations]
    winner_key, confidence = agreement.majority_vote(keys)
    answer = next(a.answer for a, k in zip(annotations, keys, strict=True) if k == winner_key)
    pairwise = agreement.pairwise_agreement([keys]) if len(keys) > 1 else None
    single = len(annotations) == 1
    disputed = not single and sum(k == winner_key for k in keys) * 2 <= len(keys)
    needs_review = (
        disputed
        or (not single and confidence < float(project.agreement_threshold))
        or _sampled(project.pk, item.pk, project.review_rate)
    )
    result, _ = ItemResult.objects.update_or_create(
        item=item,
        defaults={
            "project": project,
            "answer": answer,
            "confidence": confidence,
            "method": ItemResult.Method.SINGLE if single else ItemResult.Method.MAJORITY,
            "agreement": pairwise,
            "approved": not needs_review,
            "reviewed_by": None,
            "provenance": {
                "annotations": [a.pk for a in annotations],
                "annotators": [a.annotator_id for a in annotations],
            },
        },
    )
    item.status = Item.Status.IN_REVIEW if needs_review else Item.Status.DONE
    item.save(update_fields=["status", "updated_at"])
    if item.status == Item.Status.DONE:
        project_completion_check(project=project)
    return result


def project_completion_check(*, project: Project) -> bool:
    """Mark the project completed when its last item is done; tell the client once."""
    if (
        Item.objects.filter(project=project, is_gold=False)
        .exclude(status=Item.Status.DONE)
        .exists()
    ):
        return False
    # The conditional UPDATE is the once-only guard under concurrency.
    now = timezone.now()
    if not Project.objects.filter(pk=project.pk, completed_at__isnull=True).update(
        completed_at=now
    ):
        return False
    stats = project_counts(project=project)
    logger.info("project completed", extra={"project_id": project.pk, "items": stats["total"]})
    webhook_event_emit(
        organization_id=project.organization_id,
        event=Event.PROJECT_COMPLETED,
        payload={
            "project": project.pk,
            "name": project.name,
            "items": stats["total"],
            "completed_at": now.isoformat(),
        },
    )
    return True


# Task types whose answers are votes Dawid–Skene may weigh (see annotation/task_types/).
VOTABLE_TYPES = task_types_where(lambda spec: spec.votable)


@transaction.atomic
def project_results_infer(*, project: Project) -> dict:
    """Re-decide unreviewed results with Dawid–Skene over the whole project.

    Dawid–Skene weighs each annotator by their estimated confusion matrix, so
    a careless annotator counts less than a careful one. Items whose inferred
    confidence falls under the threshold go to review. Safe to run twice.
    """
    if project.task_type not in VOTABLE_TYPES:
        return {"items": 0, "changed": 0, "to_review": 0}
    rows = list(
        Annotation.objects.filter(project=project, item__is_gold=False)
        .exclude(status=Annotation.Status.REJECTED)
        .exclude(item__status=Item.Status.OPEN)
        .values_list("item_id", "annotator_id", "answer", "pk")
        .order_by("item_id", "pk")
    )
    if not rows:
        return {"items": 0, "changed": 0, "to_review": 0}
    triples = [(i, a, answer_key(project.task_type, ans)) for i, a, ans, _ in rows]
    answers = {}
    for item_id, _, ans, _ in rows:
        answers.setdefault((item_id, answer_key(project.task_type, ans)), ans)
    inferred = agreement.dawid_skene(triples)
    threshold = float(project.agreement_threshold)
    changed, to_review = [], 0
    status_of: dict[str, list[int]] = {Item.Status.IN_REVIEW: [], Item.Status.DONE: []}
    results = (
        ItemResult.objects.select_for_update()
        .filter(project=project, reviewed_by__isnull=True)
        .exclude(method=ItemResult.Method.REVIEW)
        .order_by("pk")  # consistent lock order with other writers
    )
    now = timezone.now()
    for result in results.iterator(chunk_size=5000):
        if result.item_id not in inferred.labels:
            continue
        key = inferred.labels[result.item_id]
        confidence = inferred.confidence[result.item_id]
        needs_review = confidence < threshold or _sampled(
            project.pk, result.item_id, project.review_rate
        )
        answer = answers[(result.item_id, key)]
        if (result.answer, result.confidence, result.approved, result.method) == (
            answer,
            confidence,
            not needs_review,
            ItemResult.Method.DAWID_SKENE,
        ):
            continue  # a second run changes nothing
        if result.approved and needs_review:
            to_review += 1
        result.answer, result.confidence = answer, confidence
        result.method, result.approved, result.updated_at = (
            ItemResult.Method.DAWID_SKENE,
            not needs_review,
            now,
        )
        changed.append(result)
        status_of[Item.Status.IN_REVIEW if needs_review else Item.Status.DONE].append(
            result.item_id
        )
    ItemResult.objects.bulk_update(
        changed, ["answer", "confidence", "method", "approved", "updated_at"], batch_size=2000
    )
    for status, item_ids in status_of.items():
        for start in range(0, len(item_ids), 5000):
            Item.objects.filter(pk__in=item_ids[start : start + 5000]).exclude(
                status=Item.Status.OPEN
            ).update(status=status, updated_at=now)
    return {
        "items": len(inferred.labels),
        "changed": len(changed),
        "to_review": to_review,
        "iterations": inferred.iterations,
    }


# --- review ---------------------------------------------------------------------


class ReviewLeaseError(ValidationError):
    """A review sent without a live lease on the item; the API answers 409 Conflict."""

    def __init__(self, message: str, code: str):
        super().__init__({"lease": [ValidationError(message, code=code)]})
        self.code = code


_REVIEW_LEASE_SQL = """
WITH picked AS (
    SELECT i.id
    FROM {item} AS i
    LEFT JOIN {result} AS r ON r.item_id = i.id
    WHERE i.project_id = %(project)s
      AND i.status = 'in_review'
      AND NOT EXISTS (
          SELECT 1 FROM {annotation} AS a
          WHERE a.item_id = i.id AND a.annotator_id = %(reviewer)s
      )
      AND NOT EXISTS (
          SELECT 1 FROM {lease} AS l
          WHERE l.item_id = i.id AND l.status = 'leased'
      )
    ORDER BY
      EXISTS (
          SELECT 1 FROM {lease} AS l
          WHERE l.item_id = i.id AND l.reviewer_id = %(reviewer)s AND l.status = 'released'
      ),
      r.confidence,
      i.id
    LIMIT 1
    FOR UPDATE OF i SKIP LOCKED
), leased AS (
    INSERT INTO {lease} (project_id, item_id, reviewer_id, status, leased_at, expires_at)
    SELECT %(project)s, picked.id, %(reviewer)s, 'leased', %(now)s, %(expires)s
    FROM picked
    ON CONFLICT DO NOTHING
    RETURNING id
)
SELECT picked.id, leased.id FROM picked LEFT JOIN leased ON TRUE
"""
_REVIEW_LEASE_SQL_WAITING = _REVIEW_LEASE_SQL.replace(
    "FOR UPDATE OF i SKIP LOCKED", "FOR UPDATE OF i"
)
assert _REVIEW_LEASE_SQL_WAITING != _REVIEW_LEASE_SQL
# Each lost race means another lease committed, which the next statement sees.
_REVIEW_LEASE_ATTEMPTS = 5


def _review_lease_one_postgresql(*, project, reviewer, now, expires, waiting) -> tuple:
    """(picked item id or None, new lease id or None) from one statement.

    A row lock alone does not change the item, so a statement whose snapshot
    predates another reviewer's committed lease can still pick that item; the
    partial unique indexes then refuse the insert (ON CONFLICT DO NOTHING) and
    the caller picks again. The pick is least confident first; items this
    reviewer put off ("later") come after the rest.
    """
    tables = {
        "item": Item._meta.db_table,
        "result": ItemResult._meta.db_table,
        "annotation": Annotation._meta.db_table,
        "lease": ReviewLease._meta.db_table,
    }
    sql = _REVIEW_LEASE_SQL_WAITING if waiting else _REVIEW_LEASE_SQL
    params = {
        "project": project.pk,
        "reviewer": reviewer.pk,
        "now": now,
        "expires": expires,
    }
    with connection.cursor() as cursor:
        cursor.execute(sql.format(**tables), params)
        row = cursor.fetchone()
    return (row[0], row[1]) if row else (None, None)


def _review_lease_one_portable(*, project, reviewer, now, expires, waiting) -> tuple:
    # SQLite (make run) has one writer at a time, so select-then-insert cannot race.
    item = (
        Item.objects.filter(project=project, status=Item.Status.IN_REVIEW)
        .exclude(annotations__annotator=reviewer)
        .exclude(review_leases__status=ReviewLease.Status.LEASED)
        .annotate(
            put_off=Exists(
                ReviewLease.objects.filter(
                    item=OuterRef("pk"), reviewer=reviewer, status=ReviewLease.Status.RELEASED
                )
            )
        )
        .order_by("put_off", F("result__confidence").asc(nulls_last=True), "pk")
        .first()
    )
    if item is None:
        return None, None
    lease = ReviewLease.objects.create(
        project=project, item=item, reviewer=reviewer, leased_at=now, expires_at=expires
    )
    return item.pk, lease.pk


def reviewer_check(*, project: Project, reviewer: User) -> None:
    if project.status != Project.Status.ACTIVE:
        raise ValidationError({"project": [f"The project is {project.status}, not active."]})
    permissions.require_can_review_project(reviewer, project)


def _review_leases_close(queryset, now) -> tuple[int, int]:
    """End the live leases of queryset that expired or whose item left review.

    Returns (expired, withdrawn). queryset must keep to status=leased, so a
    lease is counted once.
    """
    expired = queryset.filter(expires_at__lte=now).update(
        status=ReviewLease.Status.EXPIRED, finished_at=now
    )
    withdrawn = queryset.exclude(item__status=Item.Status.IN_REVIEW).update(
        status=ReviewLease.Status.WITHDRAWN, finished_at=now
    )
    return expired, withdrawn


@transaction.atomic
def review_lease_take(*, project: Project, reviewer: User, now=None) -> ReviewLease | None:
    """The reviewer's item to review, or None when nothing is waiting for them.

    The reviewer's live lease comes back first (a reload strands nothing);
    otherwise the least confident item in review that they did not annotate
    and no other reviewer holds is leased for the project's lease_seconds.
    """
    reviewer_check(project=project, reviewer=reviewer)
    now = now or timezone.now()
    # Their own lease that lapsed (or whose item left review) must not block a
    # new one until the beat expiry task runs.
    _review_leases_close(
        ReviewLease.objects.filter(
            project=project, reviewer=reviewer, status=ReviewLease.Status.LEASED
        ),
        now,
    )
    expires = now + timedelta(seconds=project.lease_seconds)
    lease_one = (
        _review_lease_one_postgresql
        if connection.vendor == "postgresql"
        else _review_lease_one_portable
    )
    waiting = False
    for _attempt in range(_REVIEW_LEASE_ATTEMPTS):
        held = (
            ReviewLease.objects.filter(
                project=project, reviewer=reviewer, status=ReviewLease.Status.LEASED
            )
            .select_related("item__result")
            .first()
        )
        if held is not None:
            return held
        picked, lease_id = lease_one(
            project=project, reviewer=reviewer, now=now, expires=expires, waiting=waiting
        )
        if lease_id is not None:
            logger.info(
                "review lease taken",
                extra={
                    "review_lease_id": lease_id,
                    "item_id": picked,
                    "project_id": project.pk,
                    "reviewer_id": reviewer.pk,
                },
            )
            return ReviewLease.objects.select_related("item__result").get(pk=lease_id)
        if picked is None:
            if waiting:
                return None
            # SKIP LOCKED passes over items others lock for a moment (a
            # submit, a re-inference): before saying "nothing left", pick
            # once more waiting for those locks, as the annotators' lease does.
            waiting = True
    return None


@transaction.atomic
def review_lease_release(*, item_id: int, reviewer: User, now=None) -> ReviewLease:
    """Put an item back for other reviewers ("later"); it comes back to this one last."""
    now = now or timezone.now()
    lease = (
        ReviewLease.objects.select_for_update(of=("self",))
        .filter(item_id=item_id, reviewer=reviewer, status=ReviewLease.Status.LEASED)
        .first()
    )
    if lease is None:
        raise ReviewLeaseError(
            "You hold no review lease on this item; take your next item.",
            code="review_lease_not_held",
        )
    lease.status = ReviewLease.Status.RELEASED
    lease.finished_at = now
    lease.save(update_fields=["status", "finished_at"])
    return lease


@transaction.atomic
def review_lease_expire_stale(*, now=None, limit: int = 5000) -> int:
    """Return lapsed review leases (and those whose item left review) to the pool.

    Run from beat with assignment_expire_stale; safe to run twice.
    """
    now = now or timezone.now()
    # of=("self",) with SKIP LOCKED: a lease being reviewed right now is left alone.
    stale = list(
        ReviewLease.objects.select_for_update(skip_locked=True, of=("self",))
        .filter(status=ReviewLease.Status.LEASED)
        .filter(Q(expires_at__lte=now) | ~Q(item__status=Item.Status.IN_REVIEW))
        .order_by("pk")
        .values_list("pk", flat=True)[:limit]
    )
    if not stale:
        return 0
    expired, withdrawn = _review_leases_close(
        ReviewLease.objects.filter(pk__in=stale, status=ReviewLease.Status.LEASED), now
    )
    logger.info("stale review leases ended", extra={"expired": expired, "withdrawn": withdrawn})
    return expired + withdrawn


def _review_lease_check(lease: ReviewLease | None, item_id: int, reviewer: User, now) -> None:
    """Refuse a review unless `lease` (the reviewer's latest on the item) is live."""
    if lease is None or lease.status != ReviewLease.Status.LEASED:
        holder = ReviewLease.objects.filter(item_id=item_id, status=ReviewLease.Status.LEASED)
        if holder.exclude(reviewer=reviewer).exists():
            raise ReviewLeaseError(
                "Another reviewer holds this item; take your next item.",
                code="review_lease_held_by_another",
            )
        if lease is not None and lease.status != ReviewLease.Status.REVIEWED:
            raise ReviewLeaseError(
                f"Your lease on this item was {lease.status}; take your next item.",
                code="review_lease_ended",
            )
        raise ReviewLeaseError(
            "You hold no review lease on this item; take it with review-next first.",
            code="review_lease_not_held",
        )
    if lease.expires_at <= now:
        raise ReviewLeaseError(
            f"Your lease on this item expired at {lease.expires_at.isoformat()}; "
            f"take your next item.",
            code="review_lease_expired",
        )


@transaction.atomic
def review_submit(
    *,
    item_id: int,
    reviewer: User,
    verdict: str,
    reason: str = "",
    corrected_answer=None,
    annotation_id: int | None = None,
    now=None,
) -> Review:
    """Record a reviewer's verdict on an item whose review lease they hold.

    Nobody else is served the item while the lease is live, so reviewers no
    longer race each other to it; the review ends the lease.
    """
    now = now or timezone.now()
    # Lease before item: the lease service locks in that order too.
    lease = (
        ReviewLease.objects.select_for_update(of=("self",))
        .filter(item_id=item_id, reviewer=reviewer)
        .order_by("-pk")
        .first()
    )
    item = (
        Item.objects.select_for_update(of=("self",))
        .select_related("project")
        .filter(pk=item_id)
        .first()
    )
    if item is None:
        raise ValidationError({"item": ["No such item."]})
    project = item.project
    permissions.require_can_review_project(reviewer, project)
    annotations = _live_annotations(item)
    if (
        any(a.annotator_id == reviewer.pk for a in annotations)
        or item.annotations.filter(annotator=reviewer).exists()
    ):
        raise PermissionDenied("You annotated this item; another reviewer must review it.")
    if item.status == Item.Status.OPEN or not annotations:
        raise ValidationError({"item": ["This item is still being annotated."]})
    if item.status != Item.Status.IN_REVIEW:
        # A stale queue must not undo another reviewer's decision.
        raise ValidationError({"item": ["This item has already been reviewed."]})
    _review_lease_check(lease, item.pk, reviewer, now)
    if verdict not in Review.Verdict.values:
        raise ValidationError({"verdict": [f"Expected one of {', '.join(Review.Verdict.values)}."]})
    reason = (reason or "").strip()
    review = Review(project=project, item=item, reviewer=reviewer, verdict=verdict, reason=reason)

    if verdict == Review.Verdict.ACCEPT:
        ItemResult.objects.filter(item=item).update(
            approved=True, reviewed_by=reviewer, updated_at=now
        )
        Annotation.objects.filter(pk__in=[a.pk for a in annotations]).update(
            status=Annotation.Status.ACCEPTED
        )
        item.status = Item.Status.DONE

    elif verdict == Review.Verdict.REJECT:
        if not reason:
            raise ValidationError({"reason": ["Say why the annotation is rejected."]})
        if annotation_id is None and len(annotations) == 1:
            annotation_id = annotations[0].pk
        rejected = next((a for a in annotations if a.pk == annotation_id), None)
        if rejected is None:
            raise ValidationError(
                {"annotation": ["Name which of the item's annotations is rejected."]}
            )
        rejected.status = Annotation.Status.REJECTED
        rejected.save(update_fields=["status"])
        Assignment.objects.filter(pk=rejected.assignment_id).update(
            status=Assignment.Status.RETURNED, finished_at=now
        )
        # The item goes back to the pool for one more (different) annotator.
        item.annotation_count -= 1
        item.reserved_count -= 1
        item.status = Item.Status.OPEN
        ItemResult.objects.filter(item=item).delete()
        review.annotation = rejected

    else:  # correct
        try:
            corrected = answer_validate(
                project.task_type,
                project.label_schema,
                corrected_answer,
                item_data=item.data,
                field="corrected_answer",
            )
        except SchemaError as error:
            raise schema_error_to_validation(error) from error
        review.corrected_answer = corrected
        ItemResult.objects.update_or_create(
            item=item,
            defaults={
                "project": project,
                "answer": corrected,
                "confidence": 1.0,
                "method": ItemResult.Method.REVIEW,
                "approved": True,
                "reviewed_by": reviewer,
                "provenance": {
                    "annotations": [a.pk for a in annotations],
                    "annotators": [a.annotator_id for a in annotations],
                    "corrected_by": reviewer.pk,
                },
            },
        )
        item.status = Item.Status.DONE

    item.save(update_fields=["status", "annotation_count", "reserved_count", "updated_at"])
    review.full_clean(exclude=["project", "item", "reviewer", "annotation"])
    review.save()
    lease.status, lease.review, lease.finished_at = ReviewLease.Status.REVIEWED, review, now
    lease.save(update_fields=["status", "review", "finished_at"])
    postings.review_posted(review, item)
    if review.annotation is not None:
        postings.annotation_rejected(review.annotation, review_id=review.pk)
    logger.info(
        "item reviewed",
        extra={
            "review_id": review.pk,
            "item_id": item.pk,
            "project_id": project.pk,
            "verdict": verdict,
            "reviewer_id": reviewer.pk,
            "annotation_id": review.annotation_id,
        },
    )
    if item.status == Item.Status.DONE:
        project_completion_check(project=project)
    return review


@transaction.atomic
def item_results_send_to_review(*, item_ids: list[int]) -> int:
    """Put unreviewed results back in front of a reviewer (e.g. where a fine-tuned
    model disagrees with the humans). Reviewed results stand. Returns items moved."""
    ItemResult.objects.filter(item_id__in=item_ids, reviewed_by__isnull=True).update(approved=False)
    return Item.objects.filter(pk__in=item_ids, result__reviewed_by__isnull=True).update(
        status=Item.Status.IN_REVIEW
    )


@transaction.atomic
def item_suggestions_apply(*, suggestions: dict[int, tuple[dict, float]]) -> None:
    """Show model suggestions to annotators and set the items' lease priority.

    `suggestions` maps item id to (suggestion, priority). Pre-labeling calls this
    for hundreds of items a second, hence the raw SQL on PostgreSQL.
    """
    if not suggestions:
        return
    if connection.vendor == "postgresql":
        # One UPDATE … FROM (VALUES …) per batch: bulk_update's CASE chains are
        # several times slower, and the JSON merge keeps the client's metadata.
        table = Item._meta.db_table
        ids = sorted(suggestions)  # consistent lock order with other item writers
        with connection.cursor() as cursor:
            for start in range(0, len(ids), 1000):
                batch = ids[start : start + 1000]
                values = ", ".join(["(%s, %s::jsonb, %s)"] * len(batch))
                params = []
                for item_id in batch:
                    suggestion, priority = suggestions[item_id]
                    params += [item_id, json.dumps(suggestion, ensure_ascii=False), priority]
                cursor.execute(
                    f"UPDATE {table} AS i SET metadata = i.metadata || "  # noqa: S608
                    f"jsonb_build_object('suggestion', v.s), priority = v.p "
                    f"FROM (VALUES {values}) AS v(id, s, p) WHERE i.id = v.id",
                    params,
                )
        return
    items = list(Item.objects.filter(pk__in=list(suggestions)).order_by("pk"))
    for item in items:
        suggestion, priority = suggestions[item.pk]
        item.metadata = {**item.metadata, "suggestion": suggestion}
        item.priority = priority
    Item.objects.bulk_update(items, ["metadata", "priority"], batch_size=1000)
