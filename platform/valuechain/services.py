"""Posting to the token ledger, exactly once per unit of work, with rollups in step."""

import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from django.db.models import Case, DateField, F, Q, Sum, Value, When
from django.db.models.functions import Coalesce, TruncDate, TruncMonth
from django.utils import timezone
from django.utils.translation import gettext as _

from tenants.models import AuditEvent, Membership, Organization, User
from tenants.services import (
    audit_changes,
    audit_event_record,
    audit_snapshot,
    users_skill_tier_set,
)

from .models import (
    BackendRollup,
    LedgerEntry,
    LedgerRollup,
    RegionMonthRollup,
    SkillTier,
    TierChange,
    WorkerMonthRollup,
)
from .permissions import require_can_change_tier
from .quality import quality_record, tier_meets

logger = logging.getLogger(__name__)

SIX_PLACES = Decimal("0.000001")
RECONCILE_WORK_MEM = "256MB"


def money(value) -> Decimal:
    """Exact CNY to six places; floats are refused, they are not money."""
    if isinstance(value, float):
        raise TypeError("money must be Decimal or int, never float")
    return Decimal(value).quantize(SIX_PLACES, rounding=ROUND_HALF_UP)


@dataclass(frozen=True)
class RollupSpec:
    """One rollup table: which entries it counts, its key, and what it sums.

    Posting and reconciling both read these, so the two can never disagree on
    what a rollup means.
    """

    model: type
    key_fields: tuple[str, ...]
    sums: tuple[str, ...]
    applies: Callable[[LedgerEntry], bool]
    key: Callable[[LedgerEntry], tuple]
    # The same key and filter as ORM expressions over the ledger, for reconcile.
    key_exprs: dict
    ledger_filter: Q
    # Key fields that are not plain ledger columns, as SQL over inserted rows,
    # for the one-statement batch post (reconcile proves it agrees with key_exprs).
    key_sql: dict


def _day(entry):
    return timezone.localdate(entry.occurred_at)


def _month(entry):
    return _day(entry).replace(day=1)


DAY_SQL = "(occurred_at AT TIME ZONE %(tz)s)::date"
MONTH_SQL = "date_trunc('month', occurred_at AT TIME ZONE %(tz)s)::date"
TIER_SQL = "coalesce(skill_tier, 0)"

ROLLUPS = (
    RollupSpec(
        model=LedgerRollup,
        key_fields=("day", "region_id", "skill_tier", "kind", "client_id"),
        sums=("entries", "tokens_input", "tokens_output", "revenue", "cost"),
        applies=lambda e: True,
        key=lambda e: (_day(e), e.region_id, e.skill_tier or 0, e.kind, e.client_id),
        key_exprs={
            "day": TruncDate("occurred_at"),
            "region_id": F("region_id"),
            "skill_tier": Coalesce("skill_tier", 0),
            "kind": F("kind"),
            "client_id": F("client_id"),
        },
        ledger_filter=Q(),
        key_sql={"day": DAY_SQL, "skill_tier": TIER_SQL},
    ),
    RollupSpec(
        model=RegionMonthRollup,
        key_fields=("month", "region_id", "skill_tier", "kind"),
        sums=("entries", "tokens_input", "tokens_output", "revenue", "cost"),
        applies=lambda e: True,
        key=lambda e: (_month(e), e.region_id, e.skill_tier or 0, e.kind),
        key_exprs={
            "month": TruncMonth("occurred_at", output_field=DateField()),
            "region_id": F("region_id"),
            "skill_tier": Coalesce("skill_tier", 0),
            "kind": F("kind"),
        },
        ledger_filter=Q(),
        key_sql={"month": MONTH_SQL, "skill_tier": TIER_SQL},
    ),
    RollupSpec(
        model=BackendRollup,
        key_fields=("month", "backend_id", "region_id", "kind"),
        sums=("entries", "tokens_input", "tokens_output", "revenue", "cost", "gpu_ms"),
        applies=lambda e: e.backend_id is not None,
        key=lambda e: (_month(e), e.backend_id, e.region_id, e.kind),
        key_exprs={
            "month": TruncMonth("occurred_at", output_field=DateField()),
            "backend_id": F("backend_id"),
            "region_id": F("region_id"),
            "kind": F("kind"),
        },
        ledger_filter=Q(backend_id__isnull=False),
        key_sql={"month": MONTH_SQL},
    ),
    RollupSpec(
        model=WorkerMonthRollup,
        key_fields=("month", "region_id", "worker_id"),
        sums=("entries", "tokens_input", "tokens_output", "revenue", "cost"),
        applies=lambda e: e.worker_id is not None,
        key=lambda e: (_month(e), e.region_id, e.worker_id),
        key_exprs={
            "month": TruncMonth("occurred_at", output_field=DateField()),
            "region_id": F("region_id"),
            "worker_id": F("worker_id"),
        },
        ledger_filter=Q(worker_id__isnull=False),
        key_sql={"month": MONTH_SQL},
    ),
)


def _deltas(entry: LedgerEntry, sums: tuple[str, ...]) -> dict:
    # A reversal takes its entry back out of the count as well as the amounts.
    return {
        name: (-1 if entry.reverses_id else 1) if name == "entries" else getattr(entry, name)
        for name in sums
    }


def _rollups_add(entries: list[LedgerEntry]) -> None:
    """Add entries to every rollup that counts them, one statement per table."""
    for spec in ROLLUPS:
        totals: dict[tuple, dict] = {}
        for entry in entries:
            if not spec.applies(entry):
                continue
            bucket = totals.setdefault(spec.key(entry), dict.fromkeys(spec.sums, 0))
            for name, value in _deltas(entry, spec.sums).items():
                bucket[name] += value
        if totals:
            _rollup_upsert(spec, totals)


def _rollup_upsert(spec: RollupSpec, totals: dict[tuple, dict]) -> None:
    # sorted() is intentional: every poster locks rollup rows in the same
    # order, so two concurrent batches cannot deadlock on them.
    keys = sorted(totals, key=lambda k: tuple(str(part) for part in k))
    columns = (*spec.key_fields, *spec.sums)
    if connection.vendor in ("postgresql", "sqlite"):  # both speak INSERT … ON CONFLICT
        table = spec.model._meta.db_table
        conflict = ", ".join(spec.key_fields)
        updates = ", ".join(f"{f} = {table}.{f} + EXCLUDED.{f}" for f in spec.sums)
        placeholders = "(" + ", ".join(["%s"] * len(columns)) + ")"
        for start in range(0, len(keys), 1000):
            chunk = keys[start : start + 1000]
            params = [v for k in chunk for v in (*k, *(totals[k][f] for f in spec.sums))]
            # One statement, no read: concurrent posters add to the same row safely.
            with connection.cursor() as cursor:
                cursor.execute(
                    f"INSERT INTO {table} ({', '.join(columns)}) VALUES "  # noqa: S608
                    + ", ".join([placeholders] * len(chunk))
                    + f" ON CONFLICT ({conflict}) DO UPDATE SET {updates}",
                    params,
                )
        return
    for key in keys:
        lookup = dict(zip(spec.key_fields, key, strict=True))
        row, _ = spec.model.objects.select_for_update().get_or_create(**lookup)
        spec.model.objects.filter(pk=row.pk).update(
            **{name: F(name) + value for name, value in totals[key].items()}
        )


@dataclass(frozen=True)
class Posted:
    entry: LedgerEntry
    created: bool


ENTRY_FIELDS = (
    "idempotency_key",
    "kind",
    "occurred_at",
    "tokens_input",
    "tokens_output",
    "gpu_ms",
    "skill_tier",
    "region_id",
    "client_id",
    "workforce_id",
    "project_id",
    "worker_id",
    "backend_id",
    "revenue",
    "cost",
)


NO_NEGATIVES = ("revenue", "cost", "tokens_input", "tokens_output", "gpu_ms")


def _fields_checked(fields: dict) -> dict:
    """An entry's columns, defaults filled, refused with the field named if any is wrong."""
    unknown = set(fields) - set(ENTRY_FIELDS)
    if unknown:
        raise ValidationError({name: ["Not a ledger field."] for name in sorted(unknown)})
    if not fields.get("idempotency_key"):
        raise ValidationError({"idempotency_key": ["Required."]})
    if fields.get("kind") not in LedgerEntry.Kind.values:
        raise ValidationError({"kind": [f"Expected one of {LedgerEntry.Kind.values}."]})
    row = {
        name: fields.get(name, 0 if name in ("tokens_input", "tokens_output", "gpu_ms") else None)
        for name in ENTRY_FIELDS
    }
    row["revenue"], row["cost"] = money(fields["revenue"]), money(fields["cost"])
    for name in NO_NEGATIVES:
        if row[name] < 0:
            raise ValidationError(
                {name: [f"Must not be negative (got {row[name]}); post a reversal instead."]}
            )
    return row


def _entry_checked(fields: dict) -> LedgerEntry:
    return LedgerEntry(**_fields_checked(fields))


def ledger_post(
    *,
    idempotency_key: str,
    kind: str,
    occurred_at,
    region_id: int,
    client_id: int,
    revenue,
    cost,
    tokens_input: int = 0,
    tokens_output: int = 0,
    gpu_ms: int = 0,
    skill_tier: int | None = None,
    workforce_id: int | None = None,
    project_id: int | None = None,
    worker_id: int | None = None,
    backend_id: int | None = None,
) -> Posted:
    """Record one unit of work. Posting the same key again returns the first entry.

    Call it inside the transaction that does the work, so the work and its
    entry commit or roll back together.
    """
    entry = _entry_checked(
        {
            "idempotency_key": idempotency_key,
            "kind": kind,
            "occurred_at": occurred_at,
            "tokens_input": tokens_input,
            "tokens_output": tokens_output,
            "gpu_ms": gpu_ms,
            "skill_tier": skill_tier,
            "region_id": region_id,
            "client_id": client_id,
            "workforce_id": workforce_id,
            "project_id": project_id,
            "worker_id": worker_id,
            "backend_id": backend_id,
            "revenue": revenue,
            "cost": cost,
        }
    )
    existing = LedgerEntry.objects.filter(idempotency_key=idempotency_key).first()
    if existing is not None:
        return Posted(existing, False)
    try:
        with transaction.atomic():  # a savepoint: a lost race must not spoil the caller
            entry.save()
            _rollups_add([entry])
    except IntegrityError:
        winner = LedgerEntry.objects.filter(idempotency_key=idempotency_key).first()
        if winner is None:
            raise
        return Posted(winner, False)
    return Posted(entry, True)


@transaction.atomic
def ledger_reverse(*, entry: LedgerEntry, reason_key: str) -> Posted:
    """Cancel an entry with its mirror image; the original is never touched."""
    key = f"reversal:{entry.idempotency_key}:{reason_key}"
    existing = LedgerEntry.objects.filter(idempotency_key=key).first()
    if existing is not None:
        return Posted(existing, False)
    if LedgerEntry.objects.filter(reverses=entry).exists():
        raise ValidationError({"entry": ["This entry has already been reversed."]})
    negated = ("tokens_input", "tokens_output", "gpu_ms", "revenue", "cost")
    mirror = LedgerEntry.objects.create(
        **{
            name: -getattr(entry, name) if name in negated else getattr(entry, name)
            for name in ENTRY_FIELDS
            if name != "idempotency_key"
        },
        idempotency_key=key,
        reverses=entry,
    )
    _rollups_add([mirror])
    return Posted(mirror, True)


def ledger_post_many(entries: list[dict]) -> int:
    """Post many units at once (a pre-labeling chunk's calls); returns how many were new.

    Same guarantees as ledger_post: one entry per idempotency key (the first of
    a batch wins; keys already posted, by anyone, are skipped), rollups in step,
    in the caller's transaction; only the entries actually inserted reach the
    rollups. Any bad entry refuses the whole batch, naming its field.
    """
    if not entries:
        return 0
    rows = [_fields_checked(fields) for fields in entries]
    if connection.vendor == "postgresql":
        return _post_many_in_one_statement(rows)
    existing = set(
        LedgerEntry.objects.filter(
            idempotency_key__in=[r["idempotency_key"] for r in rows]
        ).values_list("idempotency_key", flat=True)
    )
    fresh, seen = [], set()
    for row in rows:
        if row["idempotency_key"] not in existing | seen:
            seen.add(row["idempotency_key"])
            fresh.append(LedgerEntry(**row))
    with transaction.atomic():  # a savepoint
        LedgerEntry.objects.bulk_create(fresh, batch_size=500)
        _rollups_add(fresh)
    return len(fresh)


# PostgreSQL: the batch goes as one array per column; one statement inserts the
# entries (ON CONFLICT DO NOTHING settles repeats and races with a concurrent
# poster) and adds exactly the inserted rows to every rollup table. Python
# never builds a model instance or aggregates: 2-3x the rows per second.
_ARRAY_TYPES = {
    "idempotency_key": "text",
    "kind": "text",
    "occurred_at": "timestamptz",
    "skill_tier": "int2",
    "revenue": "numeric",
    "cost": "numeric",
}  # every other entry column: int8


def _rollup_add_sql(spec: RollupSpec) -> str:
    table = spec.model._meta.db_table
    keys = [spec.key_sql.get(f, f) for f in spec.key_fields]
    plain = [f for f in spec.key_fields if f not in spec.key_sql]
    sums = [
        "sum(CASE WHEN reverses_id IS NULL THEN 1 ELSE -1 END)" if f == "entries" else f"sum({f})"
        for f in spec.sums
    ]
    by = ", ".join(str(n) for n in range(1, len(keys) + 1))
    updates = ", ".join(f"{f} = {table}.{f} + EXCLUDED.{f}" for f in spec.sums)
    return (
        f"INSERT INTO {table} ({', '.join((*spec.key_fields, *spec.sums))}) "  # noqa: S608
        f"SELECT {', '.join((*keys, *sums))} FROM new "
        # spec.ledger_filter, as "no key column is NULL" (backend_id, worker_id).
        f"WHERE {' AND '.join(f'{f} IS NOT NULL' for f in plain)} "
        # ORDER BY is intentional: one lock order for every poster, no deadlocks.
        f"GROUP BY {by} ORDER BY {by} "
        f"ON CONFLICT ({', '.join(spec.key_fields)}) DO UPDATE SET {updates}"
    )


def _post_many_sql() -> str:
    columns = ", ".join(ENTRY_FIELDS)
    arrays = ", ".join(
        f"%(c{n})s::{_ARRAY_TYPES.get(name, 'int8')}[]" for n, name in enumerate(ENTRY_FIELDS)
    )
    adds = ",\n".join(f"r{n} AS ({_rollup_add_sql(spec)})" for n, spec in enumerate(ROLLUPS))
    return f"""
        WITH input AS (
            SELECT * FROM unnest({arrays}) WITH ORDINALITY AS t({columns}, position)
        ),
        new AS (
            INSERT INTO {LedgerEntry._meta.db_table} ({columns}, created_at)
            SELECT DISTINCT ON (idempotency_key) {columns}, now() FROM input
            ORDER BY idempotency_key, position
            ON CONFLICT (idempotency_key) DO NOTHING
            RETURNING {columns}, reverses_id
        ),
        {adds}
        SELECT count(*) FROM new"""  # noqa: S608 (table and column names only)


_POST_MANY_SQL = _post_many_sql()


def _post_many_in_one_statement(rows: list[dict]) -> int:
    params = {f"c{n}": [row[name] for row in rows] for n, name in enumerate(ENTRY_FIELDS)}
    params["tz"] = timezone.get_current_timezone_name()
    with connection.cursor() as cursor:
        cursor.execute(_POST_MANY_SQL, params)
        return cursor.fetchone()[0]


def _exact(name: str, value):
    # SQLite (the demo database) sums decimals as floats; PostgreSQL exactly.
    if name in ("revenue", "cost"):
        return Decimal(value or 0).quantize(SIX_PLACES, rounding=ROUND_HALF_UP)
    return value or 0


def _rollup_truth(spec: RollupSpec) -> dict[tuple, dict]:
    """What a rollup table should hold, summed from the ledger by the database."""
    sums = {
        name: Sum(Case(When(reverses__isnull=True, then=Value(1)), default=Value(-1)))
        if name == "entries"
        else Sum(name)
        for name in spec.sums
    }
    rows = (
        LedgerEntry.objects.filter(spec.ledger_filter)
        .annotate(**{f"k_{name}": expr for name, expr in spec.key_exprs.items()})
        .values(*(f"k_{name}" for name in spec.key_fields))
        .annotate(**{f"s_{name}": expr for name, expr in sums.items()})
        .order_by()
    )
    truth = {}
    for row in rows.iterator(chunk_size=20_000):
        key = tuple(row[f"k_{name}"] for name in spec.key_fields)
        truth[key] = {name: _exact(name, row[f"s_{name}"]) for name in spec.sums}
    return truth


def _rollup_reconcile(spec: RollupSpec, *, repair: bool) -> tuple[int, list[dict]]:
    truth = _rollup_truth(spec)
    stored = {}
    for row in (
        spec.model.objects.select_for_update()
        .order_by("pk")
        .values("pk", *spec.key_fields, *spec.sums)
        .iterator(chunk_size=20_000)
    ):
        stored[tuple(row[f] for f in spec.key_fields)] = row
    differences, zero = [], dict.fromkeys(spec.sums, 0)
    for key in truth.keys() | stored.keys():
        expected = truth.get(key, zero)
        row = stored.get(key)
        actual = {name: row[name] for name in spec.sums} if row else zero
        if all(Decimal(expected[n]) == Decimal(actual[n]) for n in spec.sums):
            continue
        differences.append(
            {
                "table": spec.model._meta.db_table,
                "key": dict(zip(spec.key_fields, (str(k) for k in key), strict=True)),
                "expected": expected,
                "actual": actual,
            }
        )
        if repair:
            spec.model.objects.update_or_create(
                **dict(zip(spec.key_fields, key, strict=True)), defaults=expected
            )
    return len(truth.keys() | stored.keys()), differences


@transaction.atomic
def rollups_reconcile(
    *, repair: bool = False, actor=None, actor_label: str = "system:reconcile"
) -> dict:
    """Compare every rollup table with the ledger, to the fen (and below); optionally
    repair. Returns the number of rollup keys checked and the differences found."""
    if connection.vendor == "postgresql":
        # The planner guesses one rollup key per ledger row, so at the default
        # 4 MB it sorts the whole ledger on disk once per table; with room for a
        # hash table it aggregates in one pass (10M rows: 36 s -> 19 s).
        with connection.cursor() as cursor:
            cursor.execute("SELECT set_config('work_mem', %s, true)", [RECONCILE_WORK_MEM])
    keys, differences = 0, []
    for spec in ROLLUPS:
        checked, found = _rollup_reconcile(spec, repair=repair)
        keys += checked
        differences += found
    per_table = dict(sorted(Counter(d["table"] for d in differences).items()))
    if differences:
        logger.warning(
            "ledger rollups differ from the ledger%s",
            ", repaired" if repair else "",
            extra={"keys": keys, "differences": len(differences), "tables": per_table},
        )
    if repair and differences:
        # Platform-wide: rollups mix every organization's work.
        audit_event_record(
            event_type=AuditEvent.EventType.LEDGER_REPAIRED,
            organization=None,
            actor=actor,
            actor_label="" if actor is not None else actor_label,
            extra={"keys_checked": keys, "rows_repaired": per_table},
        )
    return {"keys": keys, "differences": differences, "repaired": repair and bool(differences)}


# --- promotion and demotion -----------------------------------------------------------


@transaction.atomic
def tiers_review(*, today=None) -> dict:
    """Daily: promote annotators who clear the next tier's bars, demote those who fall
    below their own, one step at a time, recording why. Safe to run twice a day."""
    today = today or timezone.localdate()
    tiers = {t.level: t for t in SkillTier.objects.all()}
    changed = {"promoted": 0, "demoted": 0, "unchanged": 0}
    annotator_ids = (
        Membership.objects.filter(role=Membership.Role.ANNOTATOR, organization__is_active=True)
        .values_list("user_id", flat=True)
        .distinct()
    )
    users = (
        User.objects.select_for_update()
        .filter(pk__in=annotator_ids, is_active=True)
        .exclude(tier_changes__day=today)
        .order_by("pk")
    )
    centres = {
        user_id: (organization_id, region_id)
        for user_id, organization_id, region_id in Membership.objects.filter(
            role=Membership.Role.ANNOTATOR, organization__kind=Organization.Kind.WORKFORCE
        )
        .order_by("user_id", "pk")
        .values_list("user_id", "organization_id", "organization__region_id")
    }
    centre_region = {user_id: region_id for user_id, (_, region_id) in centres.items()}
    organizations = Organization.objects.in_bulk({org for org, _ in centres.values()})
    for user in users:
        record = quality_record(annotator=user)
        current = tiers.get(user.skill_tier)
        upper = tiers.get(user.skill_tier + 1)
        target, reason = user.skill_tier, ""
        if current is not None and user.skill_tier > 1:
            ok, misses = tier_meets(current, record)
            if not ok:
                target, reason = (
                    user.skill_tier - 1,
                    f"below T{user.skill_tier}: " + "; ".join(misses),
                )
        if target == user.skill_tier and upper is not None:
            ok, _ = tier_meets(upper, record)
            if ok:
                target, reason = upper.level, f"cleared every T{upper.level} bar"
        if target == user.skill_tier:
            changed["unchanged"] += 1
            continue
        change = TierChange.objects.create(
            user=user,
            day=today,
            from_level=user.skill_tier,
            to_level=target,
            region_id=centre_region.get(user.pk),
            reason=reason,
            measured={
                k: record[k]
                for k in (
                    "gold_accuracy",
                    "gold_checked",
                    "review_acceptance",
                    "reviewed",
                    "tokens",
                )
            },
        )
        changed["promoted" if target > user.skill_tier else "demoted"] += 1
        users_skill_tier_set(levels={user.pk: target})
        # The centre the annotator works for sees it; no centre: platform-wide.
        centre = centres.get(user.pk)
        audit_event_record(
            event_type=AuditEvent.EventType.TIER_CHANGED,
            organization=organizations.get(centre[0]) if centre else None,
            target=user,
            actor=None,
            actor_label="system:tier-review",
            changes={"skill_tier": [user.skill_tier, target]},
            extra={"reason": reason, "tier_change": change.pk, "day": today},
        )
        logger.info(
            "skill tier changed",
            extra={
                "user_id": user.pk,
                "tier_from": user.skill_tier,
                "tier_to": target,
                "tier_change_id": change.pk,
            },
        )
    logger.info("tier review done", extra={"day": str(today), **changed})
    return changed


@transaction.atomic
def tier_changes_record(*, changes: list[dict]) -> int:
    """Record tier changes decided elsewhere (e.g. a seeded history), all at once.

    Each dict holds TierChange's fields (user or user_id, day, from_level,
    to_level, region or region_id, reason, measured); people's own tiers are
    tenants' to set.
    """
    created = TierChange.objects.bulk_create([TierChange(**change) for change in changes])
    return len(created)


@transaction.atomic
def skill_tier_update(*, level: int, actor=None, **changes):
    """Change a tier's pay, price or entry bars; refused, with the field named and
    nothing written, when the ladder would contradict itself."""
    # Every tier locked, in level order: two edits of neighbours cannot both pass.
    tiers = {t.level: t for t in SkillTier.objects.select_for_update().order_by("level")}
    if level not in tiers:
        raise ValidationError({"level": [f"No tier T{level}; expected 1 to 5."]})
    tier = tiers[level]
    editable = {"name_en", "name_zh", "description", *SkillTier.RISING}
    unknown = set(changes) - editable
    if unknown:
        raise ValidationError({name: ["Not editable."] for name in sorted(unknown)})
    before = audit_snapshot(tier, changes)
    for name, value in changes.items():
        if isinstance(value, float):
            raise ValidationError({name: ["Give an exact decimal, not a float."]})
        setattr(tier, name, value)
    tier.full_clean()
    tier.save()
    diff = audit_changes(before, audit_snapshot(tier, changes))
    if diff:
        # The ladder is the platform's: no organization.
        audit_event_record(
            event_type=AuditEvent.EventType.SKILL_TIER_UPDATED,
            organization=None,
            target=tier,
            actor=actor,
            actor_label="" if actor is not None else "system",
            changes=diff,
        )
        logger.info("skill tier ladder updated", extra={"level": level, "fields": sorted(diff)})
    return tier


REASON_MAX_LENGTH = 2000


@transaction.atomic
def tier_change_manual(
    *, organization: Organization, annotator: User, to_level: int, reason: str, actor: User
) -> TierChange:
    """A manager moves an annotator to another tier, saying why.

    Recorded in the tier history (with who did it) and the audit trail in the
    same transaction; the daily review leaves the person alone for the rest
    of the day, so the decision is not undone within hours.
    """
    require_can_change_tier(actor, organization, annotator)
    reason = (reason or "").strip()
    if not reason:
        raise ValidationError({"reason": [_("Say why the tier changes.")]})
    if len(reason) > REASON_MAX_LENGTH:
        raise ValidationError(
            {"reason": [_("At most %(n)s characters.") % {"n": REASON_MAX_LENGTH}]}
        )
    levels = set(SkillTier.objects.values_list("level", flat=True))
    if to_level not in levels:
        raise ValidationError(
            {
                "to_level": [
                    _("No tier T%(level)s; choose one of the ladder's.") % {"level": to_level}
                ]
            }
        )
    # Locked, so two managers' changes of one person queue rather than both
    # reading the same "from" level.
    person = User.objects.select_for_update().get(pk=annotator.pk)
    if person.skill_tier == to_level:
        raise ValidationError(
            {"to_level": [_("The annotator is already at T%(level)s.") % {"level": to_level}]}
        )
    record = quality_record(annotator=person)
    change = TierChange.objects.create(
        user=person,
        day=timezone.localdate(),
        from_level=person.skill_tier,
        to_level=to_level,
        region_id=organization.region_id,
        reason=reason,
        measured={
            k: record[k]
            for k in ("gold_accuracy", "gold_checked", "review_acceptance", "reviewed", "tokens")
        },
        changed_by=actor,
    )
    users_skill_tier_set(levels={person.pk: to_level})
    audit_event_record(
        event_type=AuditEvent.EventType.TIER_CHANGED,
        organization=organization,
        target=person,
        actor=actor,
        changes={"skill_tier": [person.skill_tier, to_level]},
        extra={"reason": reason, "tier_change": change.pk, "day": change.day, "manual": True},
    )
    logger.info(
        "skill tier changed by hand",
        extra={
            "user_id": person.pk,
            "actor_id": actor.pk,
            "organization_id": organization.pk,
            "tier_from": person.skill_tier,
            "tier_to": to_level,
            "tier_change_id": change.pk,
        },
    )
    return change
