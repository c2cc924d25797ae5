"""Posting to the token ledger, exactly once per unit of work; the rollups follow.

Posting appends the entry (and its idempotency key) and nothing else: no
rollup row is written in the poster's transaction, so concurrent posters never
queue on a shared row. rollups_catch_up, run every few seconds by beat, adds
the entries above each rollup's watermark to it.
"""

import logging
import time
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

from . import partitions
from .models import (
    BackendRollup,
    LedgerEntry,
    LedgerKey,
    LedgerRollup,
    RegionMonthRollup,
    RollupWatermark,
    SkillTier,
    TierChange,
    WorkerMonthRollup,
)
from .permissions import require_can_change_tier
from .quality import quality_record, tier_meets
from .selectors import month_add, month_bounds

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


def _rollups_add(entries: list[LedgerEntry], *, specs=ROLLUPS) -> None:
    """Add entries to every rollup that counts them, one statement per table."""
    for spec in specs:
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
    if connection.vendor == "postgresql":
        # One statement: the key, then the entry if the key was new.
        inserted = _insert_rows([_row_of(entry)])
        if not inserted:
            return Posted(ledger_entry_for_key(idempotency_key), False)
        entry.pk, entry.created_at = inserted[0]
        return Posted(entry, True)
    existing = ledger_entry_for_key(idempotency_key)
    if existing is not None:
        return Posted(existing, False)
    try:
        with transaction.atomic():  # a savepoint: a lost race must not spoil the caller
            entry.save()
            _keys_record([entry])
    except IntegrityError:
        winner = ledger_entry_for_key(idempotency_key)
        if winner is None:
            raise
        return Posted(winner, False)
    return Posted(entry, True)


def ledger_entry_for_key(key: str) -> LedgerEntry | None:
    """The entry posted under this key, read from its own partition."""
    found = LedgerKey.objects.filter(pk=key).values_list("entry_id", "occurred_at").first()
    if found is None:
        return None
    entry_id, occurred_at = found
    return LedgerEntry.objects.filter(pk=entry_id, occurred_at=occurred_at).first()


def _keys_record(entries: list[LedgerEntry]) -> None:
    LedgerKey.objects.bulk_create(
        [
            LedgerKey(idempotency_key=e.idempotency_key, entry_id=e.pk, occurred_at=e.occurred_at)
            for e in entries
        ],
        batch_size=500,
    )


def _row_of(entry: LedgerEntry) -> dict:
    return {name: getattr(entry, name) for name in (*ENTRY_FIELDS, "reverses_id")}


@transaction.atomic
def ledger_reverse(*, entry: LedgerEntry, reason_key: str) -> Posted:
    """Cancel an entry with its mirror image; the original is never touched."""
    key = f"reversal:{entry.idempotency_key}:{reason_key}"
    # Two reversals of one entry (under different reasons) wait for each other
    # here: no unique constraint can span the partitions.
    LedgerKey.objects.select_for_update().filter(pk=entry.idempotency_key).first()
    existing = ledger_entry_for_key(key)
    if existing is not None:
        return Posted(existing, False)
    # A reversal shares its entry's occurred_at: one partition to look in.
    if LedgerEntry.objects.filter(reverses=entry, occurred_at=entry.occurred_at).exists():
        raise ValidationError({"entry": ["This entry has already been reversed."]})
    negated = ("tokens_input", "tokens_output", "gpu_ms", "revenue", "cost")
    mirror = LedgerEntry(
        **{
            name: -getattr(entry, name) if name in negated else getattr(entry, name)
            for name in ENTRY_FIELDS
            if name != "idempotency_key"
        },
        idempotency_key=key,
        reverses=entry,
    )
    if connection.vendor == "postgresql":
        ((mirror.pk, mirror.created_at),) = _insert_rows([_row_of(mirror)])
    else:
        mirror.save()
        _keys_record([mirror])
    return Posted(mirror, True)


def ledger_post_many(entries: list[dict]) -> int:
    """Post many units at once (a pre-labeling chunk's calls); returns how many were new.

    Same guarantees as ledger_post: one entry per idempotency key (the first of
    a batch wins; keys already posted, by anyone, are skipped), in the caller's
    transaction. Any bad entry refuses the whole batch, naming its field.
    """
    if not entries:
        return 0
    rows = [_fields_checked(fields) for fields in entries]
    if connection.vendor == "postgresql":
        return len(_insert_rows([{**row, "reverses_id": None} for row in rows]))
    existing = set(
        LedgerKey.objects.filter(pk__in=[r["idempotency_key"] for r in rows]).values_list(
            "pk", flat=True
        )
    )
    fresh, seen = [], set()
    for row in rows:
        if row["idempotency_key"] not in existing | seen:
            seen.add(row["idempotency_key"])
            fresh.append(LedgerEntry(**row))
    with transaction.atomic():  # a savepoint
        LedgerEntry.objects.bulk_create(fresh, batch_size=500)
        _keys_record(fresh)
    return len(fresh)


# PostgreSQL: the batch goes as one array per column and one statement inserts
# the keys (ON CONFLICT DO NOTHING settles repeats and races with a concurrent
# poster) and then the entries whose key was new. Nothing else is written: the
# rollups are the batcher's. Python never builds a model instance.
_ARRAY_TYPES = {
    "idempotency_key": "text",
    "kind": "text",
    "occurred_at": "timestamptz",
    "skill_tier": "int2",
    "revenue": "numeric",
    "cost": "numeric",
}  # every other entry column: int8
_INSERT_FIELDS = (*ENTRY_FIELDS, "reverses_id")


def _insert_sql() -> str:
    columns = ", ".join(_INSERT_FIELDS)
    arrays = ", ".join(
        f"%(c{n})s::{_ARRAY_TYPES.get(name, 'int8')}[]" for n, name in enumerate(_INSERT_FIELDS)
    )
    ledger, keys = LedgerEntry._meta.db_table, LedgerKey._meta.db_table
    return f"""
        WITH input AS (
            SELECT DISTINCT ON (idempotency_key) *
            FROM unnest({arrays}) WITH ORDINALITY AS t({columns}, position)
            ORDER BY idempotency_key, position
        ),
        keys AS (
            INSERT INTO {keys} (idempotency_key, entry_id, occurred_at)
            -- The transaction id is taken before the entry id: the batcher's
            -- horizon (rollups_catch_up) relies on every id being drawn by a
            -- transaction that already has its xid.
            SELECT idempotency_key,
                   CASE WHEN pg_current_xact_id() IS NOT NULL
                        THEN nextval('{partitions.SEQUENCE}') END,
                   occurred_at
            FROM input ORDER BY position
            ON CONFLICT (idempotency_key) DO NOTHING
            RETURNING idempotency_key, entry_id
        )
        INSERT INTO {ledger} (id, {columns}, created_at)
        SELECT keys.entry_id, {", ".join(f"input.{c}" for c in _INSERT_FIELDS)}, now()
        FROM input JOIN keys USING (idempotency_key)
        RETURNING id, created_at"""  # noqa: S608 (table and column names only)


_INSERT_SQL = _insert_sql()


def _insert_rows(rows: list[dict]) -> list[tuple]:
    """Insert the rows whose key is new; (id, created_at) of each inserted."""
    params = {f"c{n}": [row[name] for row in rows] for n, name in enumerate(_INSERT_FIELDS)}
    with connection.cursor() as cursor:
        cursor.execute(_INSERT_SQL, params)
        return cursor.fetchall()


# --- the batcher: rollups brought up to date from the ledger ------------------------------

CATCH_UP_SPAN = 200_000  # ledger ids per transaction: a backlog is applied in steps
SETTLE_TRIES = 5
SETTLE_PAUSE = 0.05  # seconds


def _rollup_from_ledger_sql(spec: RollupSpec) -> str:
    """Add the ledger entries with lo < id <= hi to a rollup table, in one statement."""
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
        f"SELECT {', '.join((*keys, *sums))} FROM {LedgerEntry._meta.db_table} "
        "WHERE id > %(lo)s AND id <= %(hi)s "
        # spec.ledger_filter, as "no key column is NULL" (backend_id, worker_id).
        + "".join(f"AND {f} IS NOT NULL " for f in plain)
        + f"GROUP BY {by} ORDER BY {by} "
        f"ON CONFLICT ({', '.join(spec.key_fields)}) DO UPDATE SET {updates}"
    )


XID_SPACE = 2**32  # pg_stat_activity.backend_xid is 32 bits: compared modulo 2^32


def _horizon() -> tuple[int, int | None]:
    """(ids drawn so far, a bound above the transactions that may still hold some).

    Ids are drawn in one order and committed in another: an entry with a lower
    id can become visible after a higher one, so "everything up to the highest
    id seen" would skip it for good. Every id is drawn by a transaction that
    already has its xid (see _insert_sql). So, reading the sequence first and
    then the database's running transactions, any transaction that drew an id
    up to the first figure has either ended or is in that list. The bound is
    one past the newest xid listed (None: none runs, the ids are settled now);
    once no transaction below it runs (_settled), every id up to the first
    figure is committed or rolled back for good and the range can be applied.
    The cost: rollups wait for the writing transactions that were open when
    the horizon was taken (a long import holds them back until it ends).
    (pg_snapshot_xmax would not do: it is one past the latest *completed*
    transaction, and a running one can be above it.)
    """
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT last_value, is_called FROM {partitions.SEQUENCE}")  # noqa: S608
        last_value, is_called = cursor.fetchone()
        # A separate statement, after the sequence was read. age(): the newest
        # xid is the one with the smallest age.
        cursor.execute(
            "SELECT pg_stat_clear_snapshot(), (SELECT backend_xid::text::bigint "
            "FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid() AND backend_xid IS NOT NULL "
            "ORDER BY age(backend_xid) LIMIT 1)"
        )
        newest = cursor.fetchone()[1]
        bound = None if newest is None else (newest + 1) % XID_SPACE
        return (last_value if is_called else 0), bound


def _settled(bound: int | None) -> bool:
    """No transaction of this database below the bound still runs, except the
    caller's own (whose entries it sees).

    Only this database's transactions can post to its ledger: a shared
    server's other databases are not waited for.
    """
    if bound is None:
        return True
    with connection.cursor() as cursor:
        # pg_stat_activity is read once per transaction unless cleared.
        cursor.execute(
            "SELECT pg_stat_clear_snapshot(), NOT EXISTS (SELECT 1 FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid() "
            "AND backend_xid IS NOT NULL AND (((%s - backend_xid::text::bigint) "
            "%% 4294967296 + 4294967296) %% 4294967296) BETWEEN 1 AND 2147483647)",
            [bound],
        )
        return cursor.fetchone()[1]


def _watermark_locked(table: str) -> RollupWatermark | None:
    RollupWatermark.objects.bulk_create([RollupWatermark(rollup=table)], ignore_conflicts=True)
    # One batcher at a time per table; another finds the row locked and moves on.
    return RollupWatermark.objects.select_for_update(skip_locked=True).filter(rollup=table).first()


def _rollup_apply(spec: RollupSpec, lo: int, hi: int) -> None:
    if connection.vendor == "postgresql":
        params = {"lo": lo, "hi": hi, "tz": timezone.get_current_timezone_name()}
        with connection.cursor() as cursor:
            cursor.execute(_rollup_from_ledger_sql(spec), params)
        return
    # SQLite (the demo): one writer at a time, so ids commit in order.
    entries = list(LedgerEntry.objects.filter(pk__gt=lo, pk__lte=hi).order_by("pk"))
    _rollups_add(entries, specs=(spec,))


def _goal(mark: RollupWatermark, horizon: int, bound: int | None, settled: bool, now):
    """How far this table may go now, as of when; records the next pending horizon."""
    if settled:
        mark.pending_id = mark.pending_bound = mark.pending_at = None
        return horizon, now
    goal = None
    if mark.pending_id is not None and _settled(mark.pending_bound):
        goal = (mark.pending_id, mark.pending_at)
        mark.pending_id = None
    if mark.pending_id is None:  # an older pending horizon is kept: it settles first
        mark.pending_id, mark.pending_bound, mark.pending_at = horizon, bound, now
    return goal or (None, None)


def rollups_catch_up(*, span: int = CATCH_UP_SPAN, step=None) -> dict:
    """Bring every rollup table up to date from the ledger; returns the ids applied per table.

    Each step adds one range of ledger ids (at most `span`) to one table and
    moves that table's watermark in the same transaction: a crash between
    steps leaves each table exactly at its watermark, and the next run goes on
    from there, in id order, never adding an entry twice. `step(spec, id)` is
    called after each step (tests crash the batcher there).
    """
    now = timezone.now()
    if connection.vendor == "postgresql":
        horizon, bound = _horizon()
        # Submits are short: most horizons settle within a few pauses.
        settled = False
        for attempt in range(SETTLE_TRIES):
            if attempt:
                time.sleep(SETTLE_PAUSE)
            if _settled(bound):
                settled = True
                break
    else:
        horizon = LedgerEntry.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
        bound, settled = None, True
    applied = {}
    for spec in ROLLUPS:
        table = spec.model._meta.db_table
        applied[table] = 0
        goal = as_of = None
        while True:
            with transaction.atomic():
                mark = _watermark_locked(table)
                if mark is None:
                    break
                if goal is None:
                    goal, as_of = _goal(mark, horizon, bound, settled, now)
                if goal is None or goal <= mark.applied_id:
                    if goal is not None and (
                        mark.applied_as_of is None or as_of > mark.applied_as_of
                    ):
                        mark.applied_as_of = as_of
                    mark.save()
                    break
                # Ranges with no entry (ids drawn by rolled-back transactions, or
                # by other tables' tests sharing the sequence) are skipped in one
                # step rather than walked `span` ids at a time.
                first = (
                    LedgerEntry.objects.filter(pk__gt=mark.applied_id, pk__lte=goal)
                    .order_by("pk")
                    .values_list("pk", flat=True)
                    .first()
                )
                hi = goal if first is None else min(goal, first - 1 + span)
                _rollup_apply(spec, mark.applied_id, hi)
                applied[table] += hi - mark.applied_id
                mark.applied_id = hi
                if hi == goal:
                    mark.applied_as_of = as_of
                mark.save()
            if step is not None:
                step(spec, hi)
    if any(applied.values()):
        logger.info("rollups caught up", extra={"ids": applied})
    return applied


def _exact(name: str, value):
    # SQLite (the demo database) sums decimals as floats; PostgreSQL exactly.
    if name in ("revenue", "cost"):
        return Decimal(value or 0).quantize(SIX_PLACES, rounding=ROUND_HALF_UP)
    return value or 0


def _rollup_truth(spec: RollupSpec, within: Q) -> dict[tuple, dict]:
    """What a rollup table should hold, summed from the ledger by the database."""
    sums = {
        name: Sum(Case(When(reverses__isnull=True, then=Value(1)), default=Value(-1)))
        if name == "entries"
        else Sum(name)
        for name in spec.sums
    }
    rows = (
        LedgerEntry.objects.filter(spec.ledger_filter, within)
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


def _rollup_reconcile(
    spec: RollupSpec, *, repair: bool, within: Q, stored_within: Q
) -> tuple[int, list[dict]]:
    truth = _rollup_truth(spec, within)
    stored = {}
    for row in (
        spec.model.objects.select_for_update()
        .filter(stored_within)
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


def _months_touched(lo: int, hi: int) -> list:
    """The months (first days, local time) of the ledger entries with lo < id <= hi."""
    return sorted(
        LedgerEntry.objects.filter(pk__gt=lo, pk__lte=hi)
        .annotate(m=TruncMonth("occurred_at", output_field=DateField()))
        .values_list("m", flat=True)
        .distinct()
        .order_by()
    )


def _months_q(months, *, field: str, kind: str) -> Q:
    q = Q(pk__in=[])
    for month in months:
        if kind == "moment":
            start, end = month_bounds(month)
            q |= Q(**{f"{field}__gte": start, f"{field}__lt": end})
        elif kind == "day":
            q |= Q(**{f"{field}__gte": month, f"{field}__lt": month_add(month, 1)})
        else:
            q |= Q(**{field: month})
    return q


@transaction.atomic
def rollups_reconcile(
    *,
    repair: bool = False,
    full: bool = False,
    actor=None,
    actor_label: str = "system:reconcile",
) -> dict:
    """Compare the rollup tables with the ledger, to the fen (and below); optionally
    repair. Returns the number of rollup keys checked and the differences found.

    Each table is compared with the ledger up to its watermark (what the
    batcher has added so far; the batcher waits while this runs). Routine runs
    check only the months of the entries added since the last clean check (a
    rollup key changes only when an entry of its month is added): one or two
    partitions instead of the whole ledger. `full` checks every month, for
    audits (it also finds a rollup row changed by hand in an old month).
    """
    if connection.vendor == "postgresql":
        # The planner guesses one rollup key per ledger row, so at the default
        # 4 MB it sorts the whole ledger on disk once per table; with room for a
        # hash table it aggregates in one pass (10M rows: 36 s -> 19 s).
        with connection.cursor() as cursor:
            cursor.execute("SELECT set_config('work_mem', %s, true)", [RECONCILE_WORK_MEM])
    keys, differences, clean = 0, [], []
    for spec in ROLLUPS:
        table = spec.model._meta.db_table
        RollupWatermark.objects.bulk_create([RollupWatermark(rollup=table)], ignore_conflicts=True)
        mark = RollupWatermark.objects.select_for_update().get(rollup=table)
        within, stored_within = Q(pk__lte=mark.applied_id), Q()
        if not full:
            months = _months_touched(mark.reconciled_id, mark.applied_id)
            within &= _months_q(months, field="occurred_at", kind="moment")
            key_field = "day" if "day" in spec.key_fields else "month"
            stored_within = _months_q(months, field=key_field, kind=key_field)
        checked, found = _rollup_reconcile(
            spec, repair=repair, within=within, stored_within=stored_within
        )
        keys += checked
        differences += found
        if repair or not found:
            clean.append(mark)
    for mark in clean:
        mark.reconciled_id, mark.reconciled_at = mark.applied_id, timezone.now()
        mark.save(update_fields=["reconciled_id", "reconciled_at"])
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
    return {
        "keys": keys,
        "differences": differences,
        "repaired": repair and bool(differences),
        "full": full,
    }


# --- the ledger's monthly partitions (PostgreSQL) ---------------------------------------

PARTITION_MONTHS_AHEAD = 3


def ledger_partitions_ensure(*, months_ahead: int = PARTITION_MONTHS_AHEAD, today=None) -> list:
    """Create the ledger's partitions from this month to `months_ahead` ahead
    (beat, hourly; idempotent). Returns the names created. SQLite: nothing.

    A month whose entries already sit in the DEFAULT partition (posted before
    its partition existed) is left there and logged: moving them would need a
    DELETE the append-only trigger refuses; they are counted, only not pruned.
    """
    if connection.vendor != "postgresql":
        return []
    tz = timezone.get_current_timezone_name()
    first = (today or timezone.localdate()).replace(day=1)
    created = []
    with transaction.atomic(), connection.cursor() as cursor:
        existing = set(partitions.partitions(cursor))
        for n in range(months_ahead + 1):
            month = month_add(first, n)
            name = partitions.partition_name(month)
            if name in existing:
                continue
            if partitions.default_holds(cursor, month, tz):
                logger.warning(
                    "ledger month stays in the default partition", extra={"month": str(month)}
                )
                continue
            cursor.execute(partitions.partition_create_sql(month, tz))
            created.append(name)
    if created:
        logger.info("ledger partitions created", extra={"partitions": created})
    return created


def ledger_partition_detach(*, month) -> str:
    """Detach a month from the ledger for archiving (its table stays, append-only,
    until an operator dumps and drops it). Refused while the month is in the
    rollups' future or the batcher has not yet counted it."""
    if connection.vendor != "postgresql":
        raise ValidationError({"month": ["Only a PostgreSQL ledger is partitioned."]})
    month = month.replace(day=1)
    name = partitions.partition_name(month)
    with transaction.atomic(), connection.cursor() as cursor:
        if name not in partitions.partitions(cursor):
            raise ValidationError({"month": [f"No partition for {month:%Y-%m}."]})
        start, end = month_bounds(month)
        pending = (
            RollupWatermark.objects.order_by("applied_id")
            .values_list("applied_id", flat=True)
            .first()
            or 0
        )
        if LedgerEntry.objects.filter(
            occurred_at__gte=start, occurred_at__lt=end, pk__gt=pending
        ).exists():
            raise ValidationError({"month": ["Entries of this month are not in the rollups yet."]})
        cursor.execute(f"ALTER TABLE {partitions.LEDGER} DETACH PARTITION {name}")
        # The trigger was the partitioned table's: the detached month keeps its own.
        cursor.execute(partitions.append_only_trigger_sql(name))
    logger.info("ledger month detached", extra={"partition": name, "month": str(month)})
    return name


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
