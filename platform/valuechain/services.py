"""Posting to the token ledger, exactly once per unit of work, with rollups in step."""

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from django.db.models import Count, F, Sum
from django.utils import timezone

from .models import LedgerEntry, LedgerRollup

SIX_PLACES = Decimal("0.000001")
ROLLUP_FIELDS = ("entries", "tokens_input", "tokens_output", "revenue", "cost")


def money(value) -> Decimal:
    """Exact CNY to six places; floats are refused, they are not money."""
    if isinstance(value, float):
        raise TypeError("money must be Decimal or int, never float")
    return Decimal(value).quantize(SIX_PLACES, rounding=ROUND_HALF_UP)


def _rollup_add(entry: LedgerEntry, sign: int = 1) -> None:
    key = {
        "day": timezone.localdate(entry.occurred_at),
        "region_id": entry.region_id,
        "skill_tier": entry.skill_tier or 0,
        "kind": entry.kind,
        "client_id": entry.client_id,
    }
    deltas = {
        "entries": sign,
        "tokens_input": entry.tokens_input,
        "tokens_output": entry.tokens_output,
        "revenue": entry.revenue,
        "cost": entry.cost,
    }
    if connection.vendor == "postgresql":
        table = LedgerRollup._meta.db_table
        # One statement, no read: concurrent posters add to the same row safely.
        with connection.cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {table} (day, region_id, skill_tier, kind, client_id, entries, "  # noqa: S608
                "tokens_input, tokens_output, revenue, cost) "
                "VALUES (%(day)s, %(region_id)s, %(skill_tier)s, %(kind)s, %(client_id)s, "
                "%(entries)s, %(tokens_input)s, %(tokens_output)s, %(revenue)s, %(cost)s) "
                "ON CONFLICT (day, region_id, skill_tier, kind, client_id) DO UPDATE SET "
                + ", ".join(f"{f} = {table}.{f} + EXCLUDED.{f}" for f in ROLLUP_FIELDS),
                {**key, **deltas},
            )
        return
    rollup, _ = LedgerRollup.objects.select_for_update().get_or_create(**key)
    LedgerRollup.objects.filter(pk=rollup.pk).update(
        **{name: F(name) + value for name, value in deltas.items()}
    )


@dataclass(frozen=True)
class Posted:
    entry: LedgerEntry
    created: bool


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
    if kind not in LedgerEntry.Kind.values:
        raise ValidationError({"kind": [f"Expected one of {LedgerEntry.Kind.values}."]})
    revenue, cost = money(revenue), money(cost)
    for name, value in (
        ("revenue", revenue),
        ("cost", cost),
        ("tokens_input", tokens_input),
        ("tokens_output", tokens_output),
    ):
        if value < 0:
            raise ValidationError({name: ["Must not be negative; post a reversal instead."]})
    if not idempotency_key:
        raise ValidationError({"idempotency_key": ["Required."]})
    existing = LedgerEntry.objects.filter(idempotency_key=idempotency_key).first()
    if existing is not None:
        return Posted(existing, False)
    entry = LedgerEntry(
        idempotency_key=idempotency_key,
        kind=kind,
        occurred_at=occurred_at,
        tokens_input=tokens_input,
        tokens_output=tokens_output,
        skill_tier=skill_tier,
        region_id=region_id,
        client_id=client_id,
        workforce_id=workforce_id,
        project_id=project_id,
        worker_id=worker_id,
        backend_id=backend_id,
        revenue=revenue,
        cost=cost,
    )
    try:
        with transaction.atomic():  # a savepoint: a lost race must not spoil the caller
            entry.save()
            _rollup_add(entry)
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
    mirror = LedgerEntry.objects.create(
        idempotency_key=key,
        kind=entry.kind,
        occurred_at=entry.occurred_at,
        tokens_input=-entry.tokens_input,
        tokens_output=-entry.tokens_output,
        skill_tier=entry.skill_tier,
        region_id=entry.region_id,
        client_id=entry.client_id,
        workforce_id=entry.workforce_id,
        project_id=entry.project_id,
        worker_id=entry.worker_id,
        backend_id=entry.backend_id,
        revenue=-entry.revenue,
        cost=-entry.cost,
        reverses=entry,
    )
    _rollup_add(mirror, sign=-1)
    return Posted(mirror, True)


@transaction.atomic
def rollups_reconcile(*, repair: bool = False) -> dict:
    """Compare every rollup with the ledger, to the fen (and below); optionally repair.

    Returns the number of rollup keys checked and the differences found.
    """
    truth = {}
    rows = (
        LedgerEntry.objects.values(
            "occurred_at__date", "region_id", "skill_tier", "kind", "client_id"
        )
        .annotate(
            entries=Count("pk"),
            tokens_input=Sum("tokens_input"),
            tokens_output=Sum("tokens_output"),
            revenue=Sum("revenue"),
            cost=Sum("cost"),
        )
        .order_by()
    )
    for row in rows.iterator(chunk_size=10_000):
        key = (
            row["occurred_at__date"],
            row["region_id"],
            row["skill_tier"] or 0,
            row["kind"],
            row["client_id"],
        )
        bucket = truth.setdefault(key, dict.fromkeys(ROLLUP_FIELDS, 0))
        # Reversals count −1 entry: sign by whether the amounts are negative.
        for name in ROLLUP_FIELDS:
            bucket[name] += row[name] or 0
    # Entries counted with reversals subtracted, as _rollup_add does.
    reversals = (
        LedgerEntry.objects.filter(reverses__isnull=False)
        .values("occurred_at__date", "region_id", "skill_tier", "kind", "client_id")
        .annotate(n=Count("pk"))
        .order_by()
    )
    for row in reversals:
        key = (
            row["occurred_at__date"],
            row["region_id"],
            row["skill_tier"] or 0,
            row["kind"],
            row["client_id"],
        )
        truth[key]["entries"] -= 2 * row["n"]
    stored = {
        (r.day, r.region_id, r.skill_tier, r.kind, r.client_id): r
        for r in LedgerRollup.objects.select_for_update().order_by("pk")
    }
    differences = []
    for key in set(truth) | set(stored):
        expected = truth.get(key, dict.fromkeys(ROLLUP_FIELDS, 0))
        row = stored.get(key)
        actual = {name: getattr(row, name) if row else 0 for name in ROLLUP_FIELDS}
        if any(Decimal(expected[n]) != Decimal(actual[n]) for n in ROLLUP_FIELDS):
            differences.append(
                {"key": [str(k) for k in key], "expected": expected, "actual": actual}
            )
            if repair:
                day, region_id, tier, kind, client_id = key
                LedgerRollup.objects.update_or_create(
                    day=day,
                    region_id=region_id,
                    skill_tier=tier,
                    kind=kind,
                    client_id=client_id,
                    defaults=expected,
                )
    return {
        "keys": len(set(truth) | set(stored)),
        "differences": differences,
        "repaired": repair and bool(differences),
    }


def ledger_post_many(entries: list[dict]) -> int:
    """Post many units at once (a pre-labeling chunk's calls); returns how many were new.

    Same guarantees as ledger_post: one entry per idempotency key, rollups in
    step, in the caller's transaction; only the entries actually inserted
    reach the rollups.
    """
    if not entries:
        return 0
    rows = []
    for fields in entries:
        revenue, cost = money(fields["revenue"]), money(fields["cost"])
        if revenue < 0 or cost < 0:
            raise ValidationError({"revenue": ["Must not be negative."]})
        rows.append(LedgerEntry(**{**fields, "revenue": revenue, "cost": cost}))
    keys = [row.idempotency_key for row in rows]
    existing = set(
        LedgerEntry.objects.filter(idempotency_key__in=keys).values_list(
            "idempotency_key", flat=True
        )
    )
    fresh = [row for row in rows if row.idempotency_key not in existing]
    try:
        with transaction.atomic():  # a savepoint
            LedgerEntry.objects.bulk_create(fresh, batch_size=1000)
            for row in fresh:
                _rollup_add(row)
        return len(fresh)
    except IntegrityError:
        # A concurrent poster took some key between our check and our insert
        # (a redelivered chunk): go one by one, each exactly once.
        fields = [
            {
                f: getattr(row, f)
                for f in (
                    "idempotency_key",
                    "kind",
                    "occurred_at",
                    "tokens_input",
                    "tokens_output",
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
            }
            for row in fresh
        ]
        return sum(ledger_post(**entry).created for entry in fields)


# --- promotion and demotion -----------------------------------------------------------

MIN_EVIDENCE = 20  # gold checks or reviews before a bar is judged


def _meets(tier, record: dict) -> tuple[bool, list[str]]:
    """Whether a quality record clears a tier's bars, and which ones it misses."""
    misses = []
    for name, bar, value, evidence in (
        ("gold accuracy", tier.min_gold_accuracy, record["gold_accuracy"], record["gold_checked"]),
        (
            "review acceptance",
            tier.min_review_acceptance,
            record["review_acceptance"],
            record["reviewed"],
        ),
    ):
        if bar > 0 and (value is None or evidence < MIN_EVIDENCE or Decimal(str(value)) < bar):
            shown = "no evidence" if value is None or evidence < MIN_EVIDENCE else f"{value:.3f}"
            misses.append(f"{name} {shown} < {bar}")
    if record["tokens"] < tier.min_volume_tokens:
        misses.append(f"volume {record['tokens']:,} < {tier.min_volume_tokens:,} tokens")
    return not misses, misses


@transaction.atomic
def tiers_review(*, today=None) -> dict:
    """Daily: promote annotators who clear the next tier's bars, demote those who fall
    below their own, one step at a time, recording why. Safe to run twice a day."""
    from annotation.selectors import annotator_quality
    from tenants.models import Membership, User

    from .models import SkillTier, TierChange

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
    for user in users:
        record = annotator_quality(annotator=user)
        current = tiers.get(user.skill_tier)
        upper = tiers.get(user.skill_tier + 1)
        target, reason = user.skill_tier, ""
        if current is not None and user.skill_tier > 1:
            ok, misses = _meets(current, record)
            if not ok:
                target, reason = (
                    user.skill_tier - 1,
                    f"below T{user.skill_tier}: " + "; ".join(misses),
                )
        if target == user.skill_tier and upper is not None:
            ok, _ = _meets(upper, record)
            if ok:
                target, reason = upper.level, f"cleared every T{upper.level} bar"
        if target == user.skill_tier:
            changed["unchanged"] += 1
            continue
        TierChange.objects.create(
            user=user,
            day=today,
            from_level=user.skill_tier,
            to_level=target,
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
        User.objects.filter(pk=user.pk).update(skill_tier=target)
    return changed
