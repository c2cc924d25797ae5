"""Writes for annotation jobs: projects, leases, submissions, reviews, results."""

import hashlib
import json
import logging
from array import array
from datetime import timedelta
from decimal import Decimal

import numpy as np
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import connection, transaction
from django.db.models import Case, Exists, F, OuterRef, Q, Value, When
from django.db.models.functions import Greatest
from django.utils import timezone

from eventhooks.models import Event
from eventhooks.services import webhook_event_emit
from tenants.models import AuditEvent, Organization, User
from tenants.rawrows import RowInserter, RowLoader
from tenants.services import audit_changes, audit_event_record, audit_snapshot
from valuechain import postings

from . import agreement, metrics, permissions, quality
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
from .schemas import (
    SchemaError,
    answer_key,
    answer_text,
    answer_validate,
    item_text,
    label_schema_validate,
)
from .selectors import (
    QualityContext,
    annotator_accuracy_weight,
    model_audit_item,
    project_counts,
)
from .task_types import task_type_spec, task_types_where
from .token_estimate import estimate_tokens

# An annotator holds the task on screen and the prefetched next one.
MAX_ACTIVE_LEASES = 2

# The quality engine (project_quality_refresh, item_adaptive_decide).
# An item's decision is re-opened by a refresh only when its posterior fell this
# far under the target: estimates move a little with every refresh, and an item
# must not flap between decided and open on noise.
REOPEN_MARGIN = 0.05
# Quarantine needs this many checked answers (gold, or decided items weighed by
# their posterior): a few unlucky answers must not shut a new annotator out.
QUARANTINE_MIN_EVIDENCE = 8
# A quarantined annotator is served at most this many gold items to earn their
# way back, and is released once, over at least PROBATION_MIN of them, the lower
# bound of their accuracy clears the bar.
PROBATION_GOLD = 10
PROBATION_MIN = 5

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
    if (
        project.decision == Project.Decision.ADAPTIVE
        and task_type_spec(project.task_type).answer_keys(project.label_schema) is None
    ):
        raise ValidationError(
            {
                "decision": [
                    "Adaptive decisions need answers from a closed set (classification, "
                    "preference, rating); use fixed overlap for this task type."
                ]
            }
        )
    if project.workforce_id and project.workforce.kind != Organization.Kind.WORKFORCE:
        raise ValidationError({"workforce": ["Expected an annotation centre (workforce)."]})
    project.full_clean()


@transaction.atomic
def project_create(*, organization: Organization, created_by: User, **fields) -> Project:
    permissions.require_can_create_project(created_by, organization, fields.get("workforce"))
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
    if "workforce" in fields and fields["workforce"] != project.workforce:
        permissions.require_can_staff_project_with(updated_by, project, fields["workforce"])
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
    if "overlap" in fields or "decision" in fields:
        # Open items follow the new overlap (adaptive: one more at a time), but
        # never below what is already reserved: leases in flight stay valid.
        # Adaptive items that already have answers are decided by the next
        # quality refresh.
        project.items.filter(is_gold=False, status=Item.Status.OPEN).update(
            target_annotations=Greatest(F("reserved_count"), project.initial_target)
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


def _gold_due(*, tasks: int, gold: int, ratio: Decimal) -> bool:
    """Whether the annotator's next task is gold: when their gold stays within
    the ratio of all the tasks they were served, this one included, rounded to
    the nearest whole task. Rounding (gold at tasks 25, 75, 125… at 0.02), not
    flooring (50, 100…), keeps the share right across annotators: flooring
    lost half a gold task per annotator on average, a fifth of the gold for
    annotators doing 125 tasks at 0.02. _LEASE_SQL asks the same in SQL."""
    return gold + Decimal("0.5") <= ratio * (tasks + 1)


# The pick rules of every lease, in one place: _LEASE_SQL and _QUICK_LEASE_SQL
# are both built from _pick_rules_sql, so a rule changed here changes both.
# Gold comes first when it is due (see _gold_due; the annotator's tally is read
# here, not counted) and the annotator still has regular work: gold measures
# the work, so none is served once the regular pool is exhausted for them
# (except in an all-gold project, gold_ratio 1). Otherwise, or when no gold is
# left for them, a regular item. A quarantined annotator gets probation gold
# only, never regular work. The tally is read from the statement's snapshot
# without a lock: only the same annotator's simultaneous leases race on it, at
# worst one gold early, which the ratio check then makes up for. Each pick is
# FOR UPDATE SKIP LOCKED; the reservation re-reads the row under that lock, and
# the (item, annotator) NOT EXISTS keeps one lease per item and annotator (the
# unique constraint on assignments backs it).
def _pick_rules_sql(*, ratio: str, all_gold: str, gate: str, returning: str) -> str:
    """The CTEs due, gold_pick, regular_pick, picked, reserved and tallied.

    ratio and all_gold are SQL expressions for the project's gold ratio and
    "gold_ratio >= 1"; gate is a condition both picks must meet (the quick
    statement's project gate and held lease); returning lists what reserved
    gives back of the leased item (alias i). Table names are formatted in.
    """
    return f"""
due AS (
    SELECT COALESCE(MAX(t.gold), 0) + 0.5 <= {ratio} * (COALESCE(MAX(t.tasks), 0) + 1) AS gold,
           COALESCE(BOOL_OR(t.quarantined), FALSE) AS quarantined,
           COALESCE(BOOL_OR(t.quarantined AND t.gold - t.gold_at_quarantine < %(probation)s),
                    FALSE) AS probation
    FROM {_TALLY} AS t
    WHERE t.project_id = %(project)s AND t.annotator_id = %(annotator)s
), gold_pick AS (
    SELECT i.id
    FROM {_ITEM} AS i
    WHERE {gate}
      AND ((SELECT gold AND NOT quarantined FROM due) OR (SELECT probation FROM due))
      AND i.project_id = %(project)s
      AND i.is_gold
      AND i.status = 'open'
      AND NOT EXISTS (
          SELECT 1 FROM {_ASSIGNMENT} AS a
          WHERE a.item_id = i.id AND a.annotator_id = %(annotator)s
      )
      AND ({all_gold} OR (SELECT probation FROM due) OR EXISTS (
          SELECT 1
          FROM {_ITEM} AS r
          WHERE r.project_id = %(project)s
            AND NOT r.is_gold
            AND r.status = 'open'
            AND r.reserved_count < r.target_annotations
            AND NOT EXISTS (
                SELECT 1 FROM {_ASSIGNMENT} AS a
                WHERE a.item_id = r.id AND a.annotator_id = %(annotator)s
            )
      ))
    ORDER BY i.priority DESC, i.id
    LIMIT 1
    FOR UPDATE SKIP LOCKED
), regular_pick AS (
    SELECT i.id
    FROM {_ITEM} AS i
    WHERE {gate}
      AND NOT EXISTS (SELECT 1 FROM gold_pick)
      AND NOT (SELECT quarantined FROM due)
      AND i.project_id = %(project)s
      AND NOT i.is_gold
      AND i.status = 'open'
      AND i.reserved_count < i.target_annotations
      AND NOT EXISTS (
          SELECT 1 FROM {_ASSIGNMENT} AS a
          WHERE a.item_id = i.id AND a.annotator_id = %(annotator)s
      )
    ORDER BY i.priority DESC, i.id
    LIMIT 1
    FOR UPDATE SKIP LOCKED
), picked AS (
    SELECT id FROM gold_pick
    UNION ALL
    SELECT id FROM regular_pick
), reserved AS (
    UPDATE {_ITEM} AS i
    SET reserved_count = i.reserved_count + 1
    FROM picked
    WHERE i.id = picked.id
    RETURNING {returning}
), tallied AS (
    INSERT INTO {_TALLY} AS t (project_id, annotator_id, tasks, gold)
    SELECT %(project)s, %(annotator)s, 1, reserved.is_gold::int
    FROM reserved
    ON CONFLICT (project_id, annotator_id)
    DO UPDATE SET tasks = t.tasks + 1, gold = t.gold + EXCLUDED.gold
)"""  # noqa: S608 (table names and the callers' fixed SQL only)


_ITEM = Item._meta.db_table
_ASSIGNMENT = Assignment._meta.db_table
_TALLY = AnnotatorTally._meta.db_table
_PROJECT = Project._meta.db_table

# One statement picks, reserves, tallies and leases (see _pick_rules_sql).
_LEASE_SQL = (
    "WITH"
    + _pick_rules_sql(
        ratio="%(ratio)s", all_gold="%(all_gold)s", gate="TRUE", returning="i.id, i.is_gold"
    )
    + f"""
INSERT INTO {_ASSIGNMENT} (project_id, item_id, annotator_id, status, leased_at, expires_at)
SELECT %(project)s, reserved.id, %(annotator)s, 'leased', %(now)s, %(expires)s
FROM reserved
RETURNING id
"""  # noqa: S608 (table names only)
)
_LEASE_SQL_WAITING = _LEASE_SQL.replace("FOR UPDATE SKIP LOCKED", "FOR UPDATE")
assert _LEASE_SQL_WAITING.count("FOR UPDATE\n") == 2


def _lease_one_postgresql(*, project, annotator, now, expires) -> int | None:
    """Pick and lease in one statement: SKIP LOCKED lets concurrent annotators
    pass over each other's candidate rows instead of queueing behind them.

    SKIP LOCKED also passes over the last candidates while other leases or
    submits hold them, so "nothing found" can be momentary near a project's
    end. Only then is the pick repeated waiting for those locks (each held for
    one short transaction); PostgreSQL re-checks the row once it is free, so an
    item filled in the meantime is passed over. Without this an annotator was
    told "no more tasks" while items they could do remained.
    """
    ratio = Decimal(project.gold_ratio)
    params = {
        "project": project.pk,
        "annotator": annotator.pk,
        "ratio": ratio,
        "all_gold": ratio >= 1,
        "probation": PROBATION_GOLD,
        "now": now,
        "expires": expires,
    }
    with connection.cursor() as cursor:
        cursor.execute(_LEASE_SQL, params)
        row = cursor.fetchone()
        if row is None:
            cursor.execute(_LEASE_SQL_WAITING, params)
            row = cursor.fetchone()
    return row[0] if row else None


# The annotator's hot path in one statement (PostgreSQL): the project gate (active,
# staffed by a centre where the caller annotates, tier), the lease they already
# hold and do not show (or the first when they hold MAX_ACTIVE_LEASES), else
# _LEASE_SQL's pick and lease (the same _pick_rules_sql, gated on the project
# and on no lease kept), and the item the page shows. It answers only when it
# has a lease to give; every other case (a refusal to explain, nothing left,
# candidates locked for a moment) goes the careful way, assignment_lease.
# Sent as one line: psycopg caches the parsing of a statement's placeholders
# only under 4 KiB, and indented this one was over (re-parsed on every next).
_QUICK_LEASE_SQL = " ".join(
    (
        f"""
WITH proj AS (
    SELECT p.id, p.gold_ratio, p.lease_seconds
    FROM {_PROJECT} AS p
    WHERE p.id = %(project)s
      AND p.status = 'active'
      AND p.workforce_id = ANY(%(centres)s)
      AND p.required_tier <= %(tier)s
), active AS (
    SELECT a.id, a.item_id, a.status, a.leased_at, a.expires_at
    FROM {_ASSIGNMENT} AS a
    WHERE EXISTS (SELECT 1 FROM proj)
      AND a.project_id = %(project)s
      AND a.annotator_id = %(annotator)s
      AND a.status = 'leased'
      AND a.expires_at > %(now)s
), unheld AS (
    SELECT * FROM active WHERE NOT (id = ANY(%(holding)s)) ORDER BY leased_at, id LIMIT 1
), kept AS (
    SELECT * FROM unheld
    UNION ALL
    (SELECT * FROM active
     WHERE NOT EXISTS (SELECT 1 FROM unheld)
       AND (SELECT count(*) FROM active) >= %(max_active)s
     ORDER BY leased_at, id LIMIT 1)
),"""  # noqa: S608 (table names only)
        + _pick_rules_sql(
            ratio="(SELECT gold_ratio FROM proj)",
            all_gold="(SELECT gold_ratio >= 1 FROM proj)",
            gate="EXISTS (SELECT 1 FROM proj) AND NOT EXISTS (SELECT 1 FROM kept)",
            returning="i.id, i.is_gold, i.data, i.metadata -> 'suggestion' AS suggestion",
        )
        + f""", leased AS (
    INSERT INTO {_ASSIGNMENT} (project_id, item_id, annotator_id, status, leased_at, expires_at)
    SELECT %(project)s, reserved.id, %(annotator)s, 'leased', %(now)s,
           %(now)s + make_interval(secs => proj.lease_seconds)
    FROM reserved, proj
    RETURNING id, item_id, status, leased_at, expires_at
)
SELECT leased.id, leased.status, leased.leased_at, leased.expires_at,
       reserved.id, reserved.data, reserved.suggestion
FROM leased JOIN reserved ON reserved.id = leased.item_id
UNION ALL
SELECT kept.id, kept.status, kept.leased_at, kept.expires_at,
       i.id, i.data, i.metadata -> 'suggestion'
FROM kept JOIN {_ITEM} AS i ON i.id = kept.item_id
"""  # noqa: S608 (table names only)
    ).split()
)
assert "--" not in _QUICK_LEASE_SQL and len(_QUICK_LEASE_SQL.encode()) < 4096


def assignment_lease_quick(
    *, project_id: int, annotator: User, centre_ids: list[int], holding=(), now=None
) -> dict | None:
    """The annotator's next task as the page shows it, from one statement, or None:
    then ask assignment_lease, which explains a refusal or says nothing is left.

    centre_ids are the centres where the caller may annotate (their principal's
    annotator organizations): the same gate as annotator_check, in the statement.
    """
    if connection.vendor != "postgresql":
        return None
    now = now or timezone.now()
    params = {
        "project": project_id,
        "centres": list(centre_ids),
        "tier": annotator.skill_tier,
        "annotator": annotator.pk,
        "holding": [int(pk) for pk in holding],
        "max_active": MAX_ACTIVE_LEASES,
        "probation": PROBATION_GOLD,
        "now": now,
    }
    with connection.cursor() as cursor:
        cursor.execute(_QUICK_LEASE_SQL, params)
        row = cursor.fetchone()
    if row is None:
        return None
    pk, status, leased_at, expires_at, item_id, data, suggestion = row
    # Django has psycopg hand jsonb over as text (JSONField decodes it).
    data = json.loads(data) if isinstance(data, str) else data
    suggestion = json.loads(suggestion) if isinstance(suggestion, str) else suggestion
    return {
        "id": pk,
        "project": project_id,
        "status": status,
        "leased_at": leased_at,
        "expires_at": expires_at,
        "item": {"id": item_id, "data": data, "suggestion": suggestion},
    }


def _lease_one_portable(*, project, annotator, now, expires) -> int | None:
    # SQLite (make run) has one writer at a time and IMMEDIATE transactions,
    # so select-then-update cannot race there. Same choice as _LEASE_SQL.
    def first_open(gold: bool):
        candidates = Item.objects.filter(project=project, is_gold=gold, status=Item.Status.OPEN)
        if not gold:
            candidates = candidates.filter(reserved_count__lt=F("target_annotations"))
        return (
            candidates.exclude(assignments__annotator=annotator).order_by("-priority", "pk").first()
        )

    ratio = Decimal(project.gold_ratio)
    tally = AnnotatorTally.objects.filter(project=project, annotator=annotator).first()
    served = {"tasks": tally.tasks, "gold": tally.gold} if tally else {"tasks": 0, "gold": 0}
    if tally is not None and tally.quarantined:
        # Quarantine: probation gold only, never regular work.
        if tally.gold - tally.gold_at_quarantine >= PROBATION_GOLD:
            return None
        item = first_open(True)
        if item is None:
            return None
    else:
        regular = first_open(False)
        item = None
        if _gold_due(**served, ratio=ratio) and (ratio >= 1 or regular is not None):
            item = first_open(True)
        item = item or regular
    if item is None:
        return None
    room = Q(is_gold=True) | Q(reserved_count__lt=F("target_annotations"))
    if not Item.objects.filter(room, pk=item.pk).update(reserved_count=F("reserved_count") + 1):
        return None
    tally, _ = AnnotatorTally.objects.get_or_create(project=project, annotator=annotator)
    AnnotatorTally.objects.filter(pk=tally.pk).update(
        tasks=F("tasks") + 1, gold=F("gold") + int(item.is_gold)
    )
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
    Gold is mixed in at the project's gold_ratio of the tasks the annotator
    was served (never more than half a task above it) and never once no
    regular item is left for them (see _gold_due and _LEASE_SQL).
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
        metrics.LEASES.labels(project.task_type, "held").inc()
        return unheld[0]
    if len(active) >= MAX_ACTIVE_LEASES:
        metrics.LEASES.labels(project.task_type, "held").inc()
        return active[0]
    expires = now + timedelta(seconds=project.lease_seconds)
    lease_one = _lease_one_postgresql if connection.vendor == "postgresql" else _lease_one_portable
    assignment_id = lease_one(project=project, annotator=annotator, now=now, expires=expires)
    if assignment_id is None:
        metrics.LEASES.labels(project.task_type, "none").inc()
        return None
    metrics.LEASES.labels(project.task_type, "new").inc()
    return Assignment.objects.select_related("item").get(pk=assignment_id)


def _release(assignment: Assignment, status: str, now) -> None:
    assignment.status = status
    assignment.finished_at = now
    assignment.save(update_fields=["status", "finished_at"])
    Item.objects.filter(pk=assignment.item_id).update(reserved_count=F("reserved_count") - 1)


@transaction.atomic
def assignment_skip(
    *, assignment_id: int, annotator: User, centre_ids: list[int] | None = None
) -> Assignment:
    assignment = _assignment_for_update(assignment_id, annotator, centre_ids)
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


class LeaseNotYours(PermissionDenied):
    """No such lease of this annotator (in these centres); the API answers 404."""


# The lease a submit or skip acts on, in one statement: locked (the lease, then
# its item, the order every writer takes; the joined project and centres are
# not locked, or every submit in a project would queue behind each other),
# scoped to the caller and, from the API, to their centres, with the project,
# the item and the centres' regions (for the ledger). Written as SQL because
# building it through the ORM (select_related of four tables) cost more CPU
# than the rest of the submit.
_LEASE_ROWS = (
    RowLoader(Assignment, "a"),
    RowLoader(Project, "p"),
    RowLoader(Item, "i"),
    RowLoader(Organization, "o", ["id", "region_id"]),
    RowLoader(Organization, "w", ["id", "region_id"]),
)
_LEASE_FOR_UPDATE_SQL = f"""
SELECT {", ".join(rows.columns for rows in _LEASE_ROWS)}
FROM {_ASSIGNMENT} AS a
JOIN {_PROJECT} AS p ON p.id = a.project_id
JOIN {_ITEM} AS i ON i.id = a.item_id
JOIN {Organization._meta.db_table} AS o ON o.id = p.organization_id
LEFT JOIN {Organization._meta.db_table} AS w ON w.id = p.workforce_id
WHERE a.id = %(assignment)s AND a.annotator_id = %(annotator)s {{scope}}
FOR UPDATE OF a, i
"""  # noqa: S608 (table and column names only)
_LEASE_FOR_UPDATE = {
    False: _LEASE_FOR_UPDATE_SQL.format(scope=""),
    True: _LEASE_FOR_UPDATE_SQL.format(scope="AND p.workforce_id = ANY(%(centres)s)"),
}


def _assignment_for_update_portable(assignment_id, annotator, centre_ids) -> Assignment:
    # SQLite (make run): one writer at a time, so no row locks to take.
    leases = Assignment.objects.filter(pk=assignment_id, annotator=annotator)
    if centre_ids is not None:
        leases = leases.filter(project__workforce_id__in=centre_ids)
    related = ("project__organization", "project__workforce", "item")
    assignment = leases.select_related(*related).first()
    if assignment is None:
        raise LeaseNotYours("This task is not leased to you.")
    return assignment


def _assignment_for_update(
    assignment_id: int, annotator: User, centre_ids: list[int] | None = None
) -> Assignment:
    """The caller's lease, locked with its item, with .project (and its
    organization and workforce, id and region only) and .item loaded."""
    if connection.vendor != "postgresql":
        return _assignment_for_update_portable(assignment_id, annotator, centre_ids)
    params = {"assignment": assignment_id, "annotator": annotator.pk}
    if centre_ids is not None:
        # The caller's tenant scope, in the same read (the API's 404 otherwise).
        params["centres"] = [int(pk) for pk in centre_ids]
    with connection.cursor() as cursor:
        cursor.execute(_LEASE_FOR_UPDATE[centre_ids is not None], params)
        row = cursor.fetchone()
    if row is None:
        # Someone else's lease is not disclosed: it is simply not yours.
        raise LeaseNotYours("This task is not leased to you.")
    loaded, offset = [], 0
    for rows in _LEASE_ROWS:
        values = row[offset : offset + len(rows)]
        loaded.append(None if values[0] is None else rows.load(values))
        offset += len(rows)
    assignment, project, item, organization, workforce = loaded
    Project.organization.field.set_cached_value(project, organization)
    Project.workforce.field.set_cached_value(project, workforce)
    Assignment.project.field.set_cached_value(assignment, project)
    Assignment.item.field.set_cached_value(assignment, item)
    Assignment.annotator.field.set_cached_value(assignment, annotator)
    return assignment


# --- submissions ----------------------------------------------------------------

_ANNOTATION_INSERT = RowInserter(Annotation)
_SUBMIT_WRITE_SQL = f"""
WITH annotation AS ({_ANNOTATION_INSERT.sql}),
ended AS (UPDATE {_ASSIGNMENT} SET status = %s, finished_at = %s WHERE id = %s),
counted AS (UPDATE {_ITEM} SET annotation_count = %s, updated_at = %s WHERE id = %s)
SELECT * FROM annotation
"""  # noqa: S608 (table and column names only)


def _submit_write(annotation: Annotation, assignment: Assignment, item: Item, now) -> None:
    """The annotation, the lease's end and the item's count in one statement."""
    with connection.cursor() as cursor:
        cursor.execute(
            _SUBMIT_WRITE_SQL,
            [
                *_ANNOTATION_INSERT.params(annotation),
                assignment.status,
                now,
                assignment.pk,
                item.annotation_count,
                now,
                item.pk,
            ],
        )
        RowInserter.saved(annotation, cursor.fetchone()[0])


@transaction.atomic
def annotation_submit(
    *,
    assignment_id: int,
    annotator: User,
    answer,
    time_spent_ms: int = 0,
    now=None,
    centre_ids: list[int] | None = None,
) -> tuple[Annotation, bool]:
    """Record the answer for a lease; a retried submit returns the first one.

    centre_ids, when given, scope the lease to the caller's centres (LeaseNotYours).
    """
    now = now or timezone.now()
    assignment = _assignment_for_update(assignment_id, annotator, centre_ids)
    if assignment.status == Assignment.Status.SUBMITTED:
        metrics.SUBMITS.labels(assignment.project.task_type, "repeated").inc()
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
    item = assignment.item  # locked with the lease
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
    annotation = Annotation(
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
    item.annotation_count += 1
    item.updated_at = now
    if connection.vendor != "postgresql":
        annotation.save()
        assignment.save(update_fields=["status", "finished_at"])
        item.save(update_fields=["annotation_count", "updated_at"])
    else:
        _submit_write(annotation, assignment, item, now)
    annotation.project = project
    postings.annotation_posted(annotation)
    if item.is_gold:
        if gold_correct:
            # The annotator's own tally row: no other annotator's submit touches it.
            AnnotatorTally.objects.filter(project=project, annotator=annotator).update(
                gold_correct=F("gold_correct") + 1
            )
    elif project.decision == Project.Decision.ADAPTIVE:
        # A late answer to an item already decided (a second lease was out) is
        # paid and counts for the worker model; the decision stands until the
        # next refresh weighs it.
        if item.status == Item.Status.OPEN:
            item_adaptive_decide(item=item, project=project, now=now)
    elif item.annotation_count >= item.target_annotations:
        item_result_decide(item=item, project=project)
    metrics.SUBMITS.labels(project.task_type, "accepted").inc()
    metrics.TOKENS.labels(project.task_type, "input").inc(annotation.item_tokens)
    metrics.TOKENS.labels(project.task_type, "output").inc(annotation.answer_tokens)
    return annotation, True


# --- results --------------------------------------------------------------------


# Read by every submit that decides its item: hand-written (see tenants.rawrows).
_ANNOTATION_ROWS = RowLoader(Annotation, "a")
_LIVE_ANNOTATIONS_SQL = (
    f"SELECT {_ANNOTATION_ROWS.columns} FROM {Annotation._meta.db_table} AS a "  # noqa: S608
    f"WHERE a.item_id = %s AND a.status <> '{Annotation.Status.REJECTED}' ORDER BY a.id"
)


def _live_annotations(item: Item) -> list[Annotation]:
    with connection.cursor() as cursor:
        cursor.execute(_LIVE_ANNOTATIONS_SQL, [item.pk])
        return [_ANNOTATION_ROWS.load(row) for row in cursor.fetchall()]


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
    # One INSERT … ON CONFLICT (update_or_create took two savepoints and a read).
    (result,) = ItemResult.objects.bulk_create(
        [
            ItemResult(
                item=item,
                project=project,
                answer=answer,
                confidence=confidence,
                method=ItemResult.Method.SINGLE if single else ItemResult.Method.MAJORITY,
                agreement=pairwise,
                approved=not needs_review,
                reviewed_by=None,
                provenance={
                    "annotations": [a.pk for a in annotations],
                    "annotators": [a.annotator_id for a in annotations],
                },
            )
        ],
        update_conflicts=True,
        unique_fields=["item"],
        update_fields=[
            "project",
            "answer",
            "confidence",
            "method",
            "agreement",
            "approved",
            "reviewed_by",
            "provenance",
            "updated_at",
        ],
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


_INFER_CHUNK = 2000


@transaction.atomic
def project_results_infer(*, project: Project) -> dict:
    """Re-decide unreviewed results with Dawid–Skene over the whole project.

    Dawid–Skene weighs each annotator by their estimated confusion matrix, so
    a careless annotator counts less than a careful one. Items whose inferred
    confidence falls under the threshold go to review. Safe to run twice: a
    second run finds every result as the first left it and writes nothing.

    The inference may pick a label none of the item's annotators gave (their
    known confusions all point to it): a legitimate outcome, not an error. Its
    answer is built from the key by the task type (``answer_from_key``) and
    stored with its posterior as confidence, and the item goes to review
    whatever that confidence, because no human gave that answer. When the
    label was given, the result keeps its answer if it already has that key,
    or takes the first live annotation with it (a preference keeps its
    rationale that way).

    Memory stays bounded on big projects: annotations are streamed and kept
    as integer codes (item, annotator, label) in numpy arrays, results are
    read and written in chunks, and only the answers a changed result needs
    are fetched.
    """
    summary = {"items": 0, "changed": 0, "to_review": 0, "unseen": 0}
    if project.task_type not in VOTABLE_TYPES or project.decision == Project.Decision.ADAPTIVE:
        # Adaptive projects: project_quality_refresh is their Dawid–Skene, with
        # gold anchoring and the model's vote.
        return summary
    spec = task_type_spec(project.task_type)
    item_buf, annotator_buf, label_buf = array("q"), array("q"), array("q")
    label_code: dict = {}
    rows = (
        Annotation.objects.filter(project=project, item__is_gold=False)
        .exclude(status=Annotation.Status.REJECTED)
        .exclude(item__status=Item.Status.OPEN)
        .values_list("item_id", "annotator_id", "answer")
        # A fixed order keeps the floating-point sums, and so a rerun's results, equal.
        .order_by("item_id", "pk")
    )
    for item_id, annotator_id, answer in rows.iterator(chunk_size=5000):
        key = spec.answer_key(answer)
        item_buf.append(item_id)
        annotator_buf.append(annotator_id)
        label_buf.append(label_code.setdefault(key, len(label_code)))
    if not item_buf:
        return summary
    item_ids, item_of = np.unique(np.frombuffer(item_buf, dtype=np.int64), return_inverse=True)
    _, annotator_of = np.unique(np.frombuffer(annotator_buf, dtype=np.int64), return_inverse=True)
    del item_buf, annotator_buf
    classes = agreement.class_order(label_code)
    remap = np.empty(len(label_code), dtype=np.intp)
    for key, code in label_code.items():
        remap[code] = classes.index(key)
    class_of = remap[np.frombuffer(label_buf, dtype=np.int64)]
    del label_buf
    inferred = agreement.dawid_skene_coded(
        item_of,
        annotator_of,
        class_of,
        n_items=len(item_ids),
        n_annotators=int(annotator_of.max()) + 1,
        n_classes=len(classes),
    )
    given = np.zeros((len(item_ids), len(classes)), dtype=bool)
    given[item_of, class_of] = True
    del item_of, annotator_of, class_of
    winners = inferred.winners
    unseen = ~given[np.arange(len(item_ids)), winners]
    del given

    results = (
        ItemResult.objects.select_for_update()
        .filter(project=project, reviewed_by__isnull=True)
        .exclude(method=ItemResult.Method.REVIEW)
        .order_by("pk")  # consistent lock order with other writers
    )
    context = {
        "project": project,
        "spec": spec,
        "item_ids": item_ids,
        "classes": classes,
        "inferred": inferred,
        "unseen": unseen,
        "threshold": float(project.agreement_threshold),
        "now": timezone.now(),
    }
    chunk: list[ItemResult] = []
    for result in results.iterator(chunk_size=_INFER_CHUNK):
        chunk.append(result)
        if len(chunk) == _INFER_CHUNK:
            _infer_chunk_apply(chunk, context, summary)
            chunk = []
    _infer_chunk_apply(chunk, context, summary)
    summary["items"] = len(item_ids)
    summary["iterations"] = inferred.iterations
    logger.info(
        "results inferred",
        extra={
            "project_id": project.pk,
            "items": summary["items"],
            "changed": summary["changed"],
            "unseen": summary["unseen"],
        },
    )
    return summary


def _infer_chunk_apply(chunk: list[ItemResult], context: dict, summary: dict) -> None:
    """Apply the inference to one chunk of locked results (see project_results_infer)."""
    if not chunk:
        return
    project, spec, item_ids = context["project"], context["spec"], context["item_ids"]
    inferred, classes, threshold = context["inferred"], context["classes"], context["threshold"]
    decided = []  # (result, key, confidence, unseen, answer or None when it must be fetched)
    for result in chunk:
        index = int(np.searchsorted(item_ids, result.item_id))
        if index == len(item_ids) or item_ids[index] != result.item_id:
            continue  # not inferred: its item is open again
        key = classes[inferred.winners[index]]
        confidence = float(inferred.confidence[index])
        unseen = bool(context["unseen"][index])
        if unseen:
            answer = spec.answer_from_key(key)
        elif spec.answer_key(result.answer) == key:
            answer = result.answer
        else:
            answer = None
        decided.append((result, key, confidence, unseen, answer))
    wanted = {result.item_id: key for result, key, _, _, answer in decided if answer is None}
    fetched: dict[int, dict] = {}
    if wanted:
        for item_id, answer in (
            Annotation.objects.filter(item_id__in=list(wanted))
            .exclude(status=Annotation.Status.REJECTED)
            .values_list("item_id", "answer")
            .order_by("item_id", "pk")
        ):
            if item_id not in fetched and spec.answer_key(answer) == wanted[item_id]:
                fetched[item_id] = answer
    changed = []
    status_of: dict[str, list[int]] = {Item.Status.IN_REVIEW: [], Item.Status.DONE: []}
    for result, key, confidence, unseen, answer in decided:
        if answer is None and result.item_id not in fetched:
            # Its annotation was rejected since the rows were read: nobody gives it now.
            unseen, answer = True, spec.answer_from_key(key)
        elif answer is None:
            answer = fetched[result.item_id]
        needs_review = (
            unseen
            or confidence < threshold
            or _sampled(project.pk, result.item_id, project.review_rate)
        )
        if unseen:
            summary["unseen"] += 1
        if (result.answer, result.confidence, result.approved, result.method) == (
            answer,
            confidence,
            not needs_review,
            ItemResult.Method.DAWID_SKENE,
        ):
            continue  # a second run changes nothing
        if result.approved and needs_review:
            summary["to_review"] += 1
        result.answer, result.confidence = answer, confidence
        result.method, result.approved, result.updated_at = (
            ItemResult.Method.DAWID_SKENE,
            not needs_review,
            context["now"],
        )
        changed.append(result)
        status_of[Item.Status.IN_REVIEW if needs_review else Item.Status.DONE].append(
            result.item_id
        )
    ItemResult.objects.bulk_update(
        changed, ["answer", "confidence", "method", "approved", "updated_at"], batch_size=2000
    )
    for status, item_ids_changed in status_of.items():
        if item_ids_changed:
            Item.objects.filter(pk__in=item_ids_changed).exclude(status=Item.Status.OPEN).update(
                status=status, updated_at=context["now"]
            )
    summary["changed"] += len(changed)


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
    # new one until the beat expiry task runs: one UPDATE for both cases.
    ReviewLease.objects.filter(
        Q(expires_at__lte=now) | ~Q(item__status=Item.Status.IN_REVIEW),
        project=project,
        reviewer=reviewer,
        status=ReviewLease.Status.LEASED,
    ).update(
        status=Case(
            When(expires_at__lte=now, then=Value(ReviewLease.Status.EXPIRED)),
            default=Value(ReviewLease.Status.WITHDRAWN),
        ),
        finished_at=now,
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
    # Rejected annotations count too: a reviewer never judges their own work.
    every = list(item.annotations.order_by("pk"))
    annotations = [a for a in every if a.status != Annotation.Status.REJECTED]
    if any(a.annotator_id == reviewer.pk for a in every):
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


def suggestion_priority(*, project: Project, item_id: int, confidence: float) -> float:
    """The lease priority of an item the model predicted with `confidence`.

    Where the model only pre-fills, the least certain items come first: the
    humans' answers teach the next fine-tune most there. Where it votes
    (adaptive decisions), items come in a fixed pseudo-random order instead:
    the model is retrained on the items decided so far, and any order by its
    own confidence makes them a skewed sample. Measured on topics10 with a
    first model after 30 labels and most-certain first: 223 of the first 294
    decided items were in one class, the next model said that class for
    everything (0.03 right on the open items) and every model after it too.
    Least-certain first skews the sample the other way; this order does not.
    """
    if project.decision == Project.Decision.ADAPTIVE and project.model_votes:
        digest = hashlib.sha256(f"serve-order:{project.pk}:{item_id}".encode()).digest()
        return round(int.from_bytes(digest[:6], "big") / 2**48, 6)
    return round(1.0 - float(confidence), 6)


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


# --- the quality engine (annotation/quality.py has the arithmetic) ---------------


def _adaptive_apply(
    *,
    item: Item,
    project: Project,
    context: QualityContext,
    annotations: list[Annotation],
    decision: quality.Decision,
    model_vote: tuple[int, float] | None,
    now,
) -> str:
    """Carry out an adaptive decision on a locked item: decide it, send it to
    review, or ask for one more annotation. Returns the action taken."""
    if decision.action == "more":
        wanted = len(annotations) + 1
        if item.target_annotations < wanted or item.status != Item.Status.OPEN:
            item.target_annotations = max(item.target_annotations, wanted, item.reserved_count)
            item.status = Item.Status.OPEN
            item.save(update_fields=["target_annotations", "status", "updated_at"])
        ItemResult.objects.filter(item=item, reviewed_by__isnull=True).exclude(
            method=ItemResult.Method.REVIEW
        ).delete()
        return "more"
    key = context.classes[decision.best]
    answer = next(
        (a.answer for a in annotations if context.class_of(a.answer) == decision.best), None
    )
    unseen = answer is None  # only the model said it: a human must confirm
    if unseen:
        answer = context.spec.answer_from_key(key)
    needs_review = (
        decision.action == "review" or unseen or _sampled(project.pk, item.pk, project.review_rate)
    )
    keys = [context.class_of(a.answer) for a in annotations]
    ItemResult.objects.update_or_create(
        item=item,
        defaults={
            "project": project,
            "answer": answer,
            "confidence": decision.confidence,
            "method": ItemResult.Method.POSTERIOR,
            "agreement": agreement.pairwise_agreement([keys]) if len(keys) > 1 else None,
            "approved": not needs_review,
            "reviewed_by": None,
            "provenance": {
                "annotations": [a.pk for a in annotations],
                "annotators": [a.annotator_id for a in annotations],
                "model": (
                    {"class": context.classes[model_vote[0]], "precision": round(model_vote[1], 4)}
                    if model_vote
                    else None
                ),
                "decided_at": now.isoformat(),
            },
        },
    )
    item.status = Item.Status.IN_REVIEW if needs_review else Item.Status.DONE
    item.save(update_fields=["status", "updated_at"])
    if item.status == Item.Status.DONE:
        project_completion_check(project=project)
    return "review" if needs_review else "decide"


def item_adaptive_decide(
    *, item: Item, project: Project, context: QualityContext | None = None, now=None
) -> str:
    """Weigh a locked open item's answers (and the model's) and act on the posterior.

    Called by annotation_submit in the submit's transaction. Each vote weighs
    by its annotator's estimated accuracy (AnnotatorTally), the model's by its
    accuracy at the stated confidence on gold; see annotation.quality.
    """
    context = context or QualityContext(project)
    now = now or timezone.now()
    annotations = _live_annotations(item)
    tallies = {
        t.annotator_id: t
        for t in AnnotatorTally.objects.filter(
            project=project, annotator_id__in=[a.annotator_id for a in annotations]
        )
    }
    votes = []
    for annotation in annotations:
        cls = context.class_of(annotation.answer)
        if cls is not None:
            votes.append((cls, annotator_accuracy_weight(tallies.get(annotation.annotator_id))))
    model_vote = context.model_vote(item)
    if model_vote is None and context.project.model_votes:
        # A vote the model gave when the item was decided still counts (see model_vote).
        kept = (
            ItemResult.objects.filter(item=item, method=ItemResult.Method.POSTERIOR)
            .values_list("provenance__model", flat=True)
            .first()
        )
        model_vote = context.model_vote(item, kept=kept)
    post = quality.posterior(context.priors, context.errors, votes, model_vote)
    decision = quality.decide(
        post,
        annotations=len(annotations),
        target=float(project.target_confidence),
        cap=project.max_annotations,
    )
    return _adaptive_apply(
        item=item,
        project=project,
        context=context,
        annotations=annotations,
        decision=decision,
        model_vote=model_vote,
        now=now,
    )


def _model_calibration(
    project: Project, context: QualityContext, gold_class: dict[int, int]
) -> tuple[str, list, int]:
    """The current model (the one behind most open items' suggestions) and its
    accuracy by confidence band, on gold items and on audit items the humans
    decided alone. Returns (model name, bins, predictions checked)."""
    open_models = (
        Item.objects.filter(
            project=project, status=Item.Status.OPEN, metadata__has_key="suggestion"
        )
        .values_list("metadata__suggestion__model", flat=True)
        .order_by()
    )
    counts: dict[str, int] = {}
    for name in open_models.iterator(chunk_size=5000):
        if isinstance(name, str):
            counts[name] = counts.get(name, 0) + 1
    if not counts:
        return "", [], 0
    model_name = max(sorted(counts), key=lambda name: counts[name])
    pairs = []
    rows = (
        Item.objects.filter(project=project, metadata__suggestion__model=model_name)
        .exclude(status=Item.Status.OPEN, is_gold=False)
        .values_list("pk", "is_gold", "metadata__suggestion", "result__answer", "result__method")
        .order_by("pk")
    )
    for item_id, is_gold, suggestion, result_answer, method in rows.iterator(chunk_size=5000):
        if not isinstance(suggestion, dict) or not isinstance(
            suggestion.get("confidence"), int | float
        ):
            continue
        predicted = context.class_of(suggestion.get("answer") or {})
        if is_gold:
            reference = gold_class.get(item_id)
        elif model_audit_item(project.pk, item_id) or method == ItemResult.Method.REVIEW:
            # Reviewed items count too: a reviewer's verdict is not the model's.
            reference = context.class_of(result_answer) if result_answer else None
        else:
            continue
        if reference is None or predicted is None:
            continue
        pairs.append((float(suggestion["confidence"]), predicted == reference))
    return model_name, quality.model_bins_count(pairs), len(pairs)


@transaction.atomic
def project_quality_refresh(*, project: Project, now=None) -> dict:
    """Re-estimate the project's worker model and act on it.

    1. The model's accuracy by confidence band, on gold and audit items.
    2. Annotator accuracies, the shared error pattern and class priors by EM
       over every live answer (annotation.quality.estimate), gold clamped;
       only items with a second opinion (another answer, gold or the model)
       are evidence about the people who answered them.
    3. Quarantine: an annotator whose accuracy is surely under the project's
       bar (the interval's upper bound) gets only gold from now on; one whose
       probation gold clears the bar (the lower bound) is released. Both are
       audited, with the figures, for their manager.
    4. Decisions follow the estimates: open items whose posterior now reaches
       the target are decided (or sent to review at the cap); decided items
       that lost it (e.g. they leaned on an annotator now quarantined) are
       opened again for one more answer. Reviewed results stand.

    Run by beat for active adaptive projects and after each burst of submits;
    safe to run twice (a second run with no new answers changes nothing).
    """
    now = now or timezone.now()
    summary = {
        "answers": 0,
        "annotators": 0,
        "quarantined": [],
        "released": [],
        "decided": 0,
        "to_review": 0,
        "reopened": 0,
        "model": "",
    }
    context = QualityContext(project)
    k = len(context.classes)
    if k < 2:
        return summary
    # Lock the project's quality row first: two refreshes of one project queue
    # here instead of interleaving their writes.
    state, _ = ProjectQuality.objects.get_or_create(project=project)
    state = ProjectQuality.objects.select_for_update().get(pk=state.pk)

    gold_class: dict[int, int] = {}
    for item_id, gold_answer in Item.objects.filter(project=project, is_gold=True).values_list(
        "pk", "gold_answer"
    ):
        cls = context.class_of(gold_answer or {})
        if cls is not None:
            gold_class[item_id] = cls

    model_name, bins, checked = _model_calibration(project, context, gold_class)
    state.classes = context.classes
    state.model_name, state.model_bins, state.model_checked = model_name, bins, checked
    context.model_name = model_name
    context.model_bands = quality.model_band_accuracy(bins) if bins else None
    state.model_accuracy = (sum(row[1] for row in bins) / checked) if checked else None

    # Every live answer, as integer codes (as project_results_infer does).
    item_codes: dict[int, int] = {}
    worker_codes: dict[int, int] = {}
    item_buf, worker_buf, class_buf = array("q"), array("q"), array("q")
    rows = (
        Annotation.objects.filter(project=project)
        .exclude(status=Annotation.Status.REJECTED)
        .values_list("item_id", "annotator_id", "answer")
        .order_by("item_id", "pk")
    )
    for item_id, annotator_id, answer in rows.iterator(chunk_size=5000):
        cls = context.class_of(answer)
        if cls is None:
            continue
        item_buf.append(item_codes.setdefault(item_id, len(item_codes)))
        worker_buf.append(worker_codes.setdefault(annotator_id, len(worker_codes)))
        class_buf.append(cls)
    summary["answers"] = len(class_buf)
    if not class_buf:
        state.estimated_at = now
        state.save()
        return summary
    item_of = np.frombuffer(item_buf, dtype=np.int64)
    worker_of = np.frombuffer(worker_buf, dtype=np.int64)
    class_of = np.frombuffer(class_buf, dtype=np.int64)

    model_votes: dict[int, tuple[int, float]] = {}
    item_meta = dict(
        Item.objects.filter(pk__in=list(item_codes), is_gold=False, metadata__has_key="suggestion")
        .values_list("pk", "metadata")
        .iterator(chunk_size=5000)
    )
    if project.model_votes:
        kept_votes = dict(
            ItemResult.objects.filter(
                project=project, method=ItemResult.Method.POSTERIOR, provenance__model__isnull=False
            )
            .values_list("item_id", "provenance__model")
            .iterator(chunk_size=5000)
        )
        for item_id, metadata in item_meta.items():
            vote = context.model_vote(
                Item(pk=item_id, metadata=metadata), kept=kept_votes.get(item_id)
            )
            if vote is not None:
                model_votes[item_codes[item_id]] = vote
    estimate = quality.estimate(
        item_of=item_of,
        worker_of=worker_of,
        class_of=class_of,
        n_items=len(item_codes),
        n_workers=len(worker_codes),
        n_classes=k,
        gold={item_codes[i]: c for i, c in gold_class.items() if i in item_codes},
        model_votes=model_votes,
        fit_mask=_second_opinion_mask(item_of, model_votes, gold_class, item_codes),
    )
    state.priors = estimate.priors.tolist()
    state.errors = estimate.errors.tolist()
    state.estimated_at = now
    state.save()
    context.priors, context.errors = estimate.priors, estimate.errors

    _tallies_update(project, worker_codes, estimate, gold_class, now, summary)
    _decisions_follow(project, context, item_codes, estimate, model_votes, now, summary)
    summary["annotators"] = len(worker_codes)
    summary["model"] = model_name
    logger.info(
        "project quality refreshed",
        extra={
            "project_id": project.pk,
            "answers": summary["answers"],
            "quarantined": len(summary["quarantined"]),
            "released": len(summary["released"]),
            "decided": summary["decided"],
            "reopened": summary["reopened"],
            "model": model_name,
        },
    )
    return summary


def _second_opinion_mask(item_of, model_votes, gold_class, item_codes) -> np.ndarray:
    """Answers that say something about the person who gave them: on gold, on an
    item with another answer, or on an item the model voted on. A lone answer
    would only confirm itself."""
    per_item = np.bincount(item_of, minlength=len(item_codes))
    checked = per_item >= 2
    for code in model_votes:
        checked[code] = True
    for item_id in gold_class:
        code = item_codes.get(item_id)
        if code is not None:
            checked[code] = True
    return checked[item_of]


def _tallies_update(project, worker_codes, estimate, gold_class, now, summary) -> None:
    bar = float(project.quarantine_below)
    # order_by("pk") is intentional: the lease statement locks tallies too.
    tallies = list(
        AnnotatorTally.objects.select_for_update()
        .filter(project=project, annotator_id__in=list(worker_codes))
        .select_related("annotator")
        .order_by("pk")
    )
    probation = _probation_gold(project, [t for t in tallies if t.quarantined], gold_class)
    for tally in tallies:
        w = worker_codes[tally.annotator_id]
        tally.accuracy = round(float(estimate.accuracy[w]), 6)
        tally.accuracy_low = round(float(estimate.low[w]), 6)
        tally.accuracy_high = round(float(estimate.high[w]), 6)
        tally.evidence = round(float(estimate.evidence[w]), 3)
        tally.estimated_at = now
        if bar <= 0:
            continue
        if (
            not tally.quarantined
            and tally.evidence >= QUARANTINE_MIN_EVIDENCE
            and tally.accuracy_high < bar
        ):
            tally.quarantined, tally.quarantined_at = True, now
            tally.gold_at_quarantine = tally.gold
            tally.quarantine_reason = (
                f"Estimated accuracy {tally.accuracy:.0%} (95 % interval "
                f"{tally.accuracy_low:.0%}–{tally.accuracy_high:.0%}) over "
                f"{tally.evidence:.0f} checked answers is under the project's bar of {bar:.0%}."
            )
            _quarantine_audit(project, tally, AuditEvent.EventType.ANNOTATOR_QUARANTINED)
            summary["quarantined"].append(tally.annotator_id)
        elif tally.quarantined:
            right, answered = probation.get(tally.annotator_id, (0, 0))
            if answered >= PROBATION_MIN:
                _, low, _ = quality.beta_interval(right, answered, prior=(1.0, 1.0))
                if low >= bar:
                    tally.quarantined = False
                    tally.quarantine_reason = (
                        f"Released: {right} of {answered} gold answers right on probation "
                        f"(lower bound {low:.0%}, bar {bar:.0%})."
                    )
                    _quarantine_audit(project, tally, AuditEvent.EventType.ANNOTATOR_RELEASED)
                    summary["released"].append(tally.annotator_id)
    AnnotatorTally.objects.bulk_update(
        tallies,
        [
            "accuracy",
            "accuracy_low",
            "accuracy_high",
            "evidence",
            "estimated_at",
            "quarantined",
            "quarantined_at",
            "quarantine_reason",
            "gold_at_quarantine",
        ],
    )


def _probation_gold(project, quarantined, gold_class) -> dict[int, tuple[int, int]]:
    """(right, answered) gold answers each quarantined annotator gave since quarantine."""
    result: dict[int, tuple[int, int]] = {}
    for tally in quarantined:
        rows = Annotation.objects.filter(
            project=project,
            annotator_id=tally.annotator_id,
            item__is_gold=True,
            created_at__gte=tally.quarantined_at,
        ).values_list("gold_correct", flat=True)
        answers = list(rows)
        result[tally.annotator_id] = (sum(1 for r in answers if r), len(answers))
    return result


def _quarantine_audit(project, tally, event_type) -> None:
    audit_event_record(
        event_type=event_type,
        organization=project.workforce or project.organization,
        target=tally.annotator,
        actor=None,
        actor_label="system:quality-engine",
        extra={
            "project": project.pk,
            "reason": tally.quarantine_reason,
            "accuracy": tally.accuracy,
            "accuracy_low": tally.accuracy_low,
            "accuracy_high": tally.accuracy_high,
            "evidence": tally.evidence,
        },
    )
    logger.warning(
        "annotator quarantine changed",
        extra={
            "project_id": project.pk,
            "annotator_id": tally.annotator_id,
            "event": event_type,
            "reason": tally.quarantine_reason,
        },
    )


def _decisions_follow(project, context, item_codes, estimate, model_votes, now, summary) -> None:
    """Decide open items the estimates now settle; reopen decided ones they no longer do."""
    if project.decision != Project.Decision.ADAPTIVE:
        return
    target = float(project.target_confidence)
    candidates = []
    for item_id, status, count, method, reviewed_by in (
        Item.objects.filter(project=project, is_gold=False, pk__in=list(item_codes))
        .values_list(
            "pk",
            "status",
            "annotation_count",
            "result__method",
            "result__reviewed_by",
        )
        .order_by("pk")
        .iterator(chunk_size=5000)
    ):
        post = estimate.posterior[item_codes[item_id]]
        best = float(post.max())
        settled = status == Item.Status.OPEN and (
            best >= target or count >= project.max_annotations
        )
        unsettled = (
            status == Item.Status.DONE
            and method == ItemResult.Method.POSTERIOR
            and reviewed_by is None
            and best < target - REOPEN_MARGIN
        )
        if settled or unsettled:
            candidates.append(item_id)
    # order_by("pk") is intentional: consistent lock order with submits and leases.
    locked = Item.objects.select_for_update(skip_locked=True).filter(pk__in=candidates)
    for item in locked.order_by("pk"):
        if item.status == Item.Status.IN_REVIEW:
            continue
        was_open = item.status == Item.Status.OPEN
        action = item_adaptive_decide(item=item, project=project, context=context, now=now)
        if action == "decide":
            summary["decided"] += 1
        elif action == "review":
            summary["to_review"] += 1
        elif not was_open:
            summary["reopened"] += 1


@transaction.atomic
def annotator_quarantine_release(
    *, project: Project, annotator_id: int, released_by: User, reason: str
) -> AnnotatorTally:
    """A manager lets a quarantined annotator back to regular work (after a talk
    or retraining). Their estimate is unchanged: if they keep erring, the next
    refresh quarantines them again."""
    permissions.require_can_manage_annotator_quality(released_by, project)
    if not reason.strip():
        raise ValidationError({"reason": ["Say why the annotator may work again."]})
    tally = (
        AnnotatorTally.objects.select_for_update()
        .select_related("annotator")
        .filter(project=project, annotator_id=annotator_id)
        .first()
    )
    if tally is None:
        raise ValidationError({"annotator": ["This person has not worked on the project."]})
    if not tally.quarantined:
        raise ValidationError({"annotator": ["This annotator is not quarantined."]})
    tally.quarantined = False
    tally.quarantine_reason = f"Released by {released_by.get_username()}: {reason.strip()}"
    tally.save(update_fields=["quarantined", "quarantine_reason"])
    audit_event_record(
        event_type=AuditEvent.EventType.ANNOTATOR_RELEASED,
        organization=project.workforce or project.organization,
        target=tally.annotator,
        actor=released_by,
        extra={"project": project.pk, "reason": tally.quarantine_reason},
    )
    logger.info(
        "annotator released from quarantine",
        extra={"project_id": project.pk, "annotator_id": annotator_id, "by": released_by.pk},
    )
    return tally
