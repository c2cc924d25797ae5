"""Reads of the value chain: an annotator's standing and a client's monthly statement."""

from datetime import date, datetime
from decimal import ROUND_DOWN, Decimal
from types import SimpleNamespace

from django.db.models import Case, Sum, Value, When
from django.utils import timezone

from .models import LedgerEntry, SkillTier, TierChange, WorkerMonthRollup
from .quality import MIN_EVIDENCE, QualityRecord, quality_record, tier_meets

ZERO = Decimal("0.000000")
EARNINGS_MONTHS = 12
# (bar, the SkillTier field, the record's value, the record's evidence count)
BARS = (
    ("gold_accuracy", "min_gold_accuracy", "gold_accuracy", "gold_checked"),
    ("review_acceptance", "min_review_acceptance", "review_acceptance", "reviewed"),
    ("volume_tokens", "min_volume_tokens", "tokens", None),
)
NO_BARS = {"min_gold_accuracy": 0, "min_review_acceptance": 0, "min_volume_tokens": 0}


def month_start(day: date) -> date:
    return day.replace(day=1)


def month_add(month: date, months: int) -> date:
    index = month.year * 12 + month.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


# --- the annotator's own standing ----------------------------------------------------------


def _tier_summary(tier: SkillTier) -> dict:
    return {
        "level": tier.level,
        "name_en": tier.name_en,
        "name_zh": tier.name_zh,
        "pay_per_1k_tokens": tier.pay_per_1k_tokens,
    }


def _fraction(done, needed) -> Decimal:
    if needed <= 0:
        return Decimal(1)
    return min(Decimal(done) / Decimal(needed), Decimal(1))


def _requirement(
    tier: SkillTier, record: QualityRecord, bar: str, field: str, value_key, evidence_key
):
    required = getattr(tier, field)
    measured = record[value_key]
    evidence = record[evidence_key] if evidence_key else None
    # Judged by the tier review's own rule, one bar at a time, so the page can
    # never promise a promotion the review would refuse.
    cleared, _ = tier_meets(SimpleNamespace(**{**NO_BARS, field: required}), record)
    if cleared:
        progress = Decimal(1)
    elif evidence_key is None:
        progress = _fraction(measured, required)
    else:
        # A quality bar fills only as both the share and the evidence behind it grow.
        share = Decimal(0) if measured is None else _fraction(Decimal(str(measured)), required)
        progress = min(share, _fraction(evidence, MIN_EVIDENCE))
    return {
        "bar": bar,
        "required": required,
        "measured": measured,
        "evidence": evidence,
        "evidence_required": MIN_EVIDENCE if evidence_key else None,
        "cleared": cleared,
        # Rounded down: a bar not cleared never shows as full.
        "progress": float(progress.quantize(Decimal("0.0001"), rounding=ROUND_DOWN)),
    }


def _earnings(user, today: date) -> dict:
    this_month = month_start(today)
    first = month_add(this_month, -(EARNINGS_MONTHS - 1))
    rollups = WorkerMonthRollup.objects.filter(worker=user)
    # A month can hold rows of several regions (work for two centres): add them up.
    by_month = {
        row["month"]: row
        for row in rollups.filter(month__gte=first, month__lte=this_month)
        .values("month")
        .annotate(
            entries=Sum("entries"),
            tokens_input=Sum("tokens_input"),
            tokens_output=Sum("tokens_output"),
            earnings=Sum("cost"),
        )
        .order_by()
    }
    months = []
    for back in range(EARNINGS_MONTHS):
        month = month_add(this_month, -back)
        row = by_month.get(month, {})
        months.append(
            {
                "month": month,
                "entries": row.get("entries") or 0,
                "tokens": (row.get("tokens_input") or 0) + (row.get("tokens_output") or 0),
                "earnings": row.get("earnings") or ZERO,
            }
        )
    return {
        "this_month": months[0],
        "last_month": months[1],
        "months": months,  # newest first
        "total_12_months": sum((m["earnings"] for m in months), ZERO),
        "total": rollups.aggregate(total=Sum("cost"))["total"] or ZERO,
    }


def annotator_standing(
    *, user, record: QualityRecord | None = None, today: date | None = None
) -> dict:
    """The person's tier, how far they are from the next one, their earnings and tier history.

    `record` is the person's quality record when the caller already has it.
    Earnings are the worker-month rollups of the ledger (pay, net of reversals).
    """
    record = record if record is not None else quality_record(annotator=user)
    today = today or timezone.localdate()
    tiers = {tier.level: tier for tier in SkillTier.objects.all()}
    current = tiers.get(user.skill_tier)
    upper = tiers.get(user.skill_tier + 1)
    next_tier = None
    if upper is not None:
        eligible, _ = tier_meets(upper, record)
        next_tier = {
            **_tier_summary(upper),
            "eligible": eligible,
            "requirements": [_requirement(upper, record, *bar) for bar in BARS],
        }
    history = [
        {
            "day": change.day,
            "from_level": change.from_level,
            "to_level": change.to_level,
            "promoted": change.to_level > change.from_level,
            "reason": change.reason,
        }
        for change in TierChange.objects.filter(user=user).order_by("-day", "-pk")
    ]
    return {
        "tier": _tier_summary(current) if current else None,
        "next_tier": next_tier,
        "earnings": _earnings(user, today),
        "history": history,
    }


# --- client statements ------------------------------------------------------------------

KIND_ORDER = {kind: n for n, kind in enumerate(LedgerEntry.Kind.values)}


def month_bounds(month: date) -> tuple[datetime, datetime]:
    """The month in the current time zone (the project's TIME_ZONE), as TruncDate sees days."""
    first = month_start(month)
    start = timezone.make_aware(datetime(first.year, first.month, 1))
    following = month_add(first, 1)
    return start, timezone.make_aware(datetime(following.year, following.month, 1))


def project_statement(*, project, month: date) -> dict:
    """A project's month from the ledger: tokens and charges by kind and tier.

    Only what the client is charged: no pay, no cost, no worker. Sums are the
    database's exact decimal sums; a reversal counts as -1 entry with its
    negated tokens and amounts, so a rejected unit nets to nothing.
    """
    start, end = month_bounds(month)
    rows = (
        LedgerEntry.objects.filter(project=project, occurred_at__gte=start, occurred_at__lt=end)
        .values("kind", "skill_tier")
        .annotate(
            entries=Sum(Case(When(reverses__isnull=True, then=Value(1)), default=Value(-1))),
            tokens_input=Sum("tokens_input"),
            tokens_output=Sum("tokens_output"),
            revenue=Sum("revenue"),
        )
        .order_by()
    )
    lines = sorted(
        (
            {
                "kind": row["kind"],
                "skill_tier": row["skill_tier"],
                "entries": row["entries"],
                "tokens_input": row["tokens_input"],
                "tokens_output": row["tokens_output"],
                "revenue": row["revenue"],
            }
            for row in rows
        ),
        key=lambda line: (KIND_ORDER.get(line["kind"], 99), line["skill_tier"] or 0),
    )
    totals = {
        "entries": sum(line["entries"] for line in lines),
        "tokens_input": sum(line["tokens_input"] for line in lines),
        "tokens_output": sum(line["tokens_output"] for line in lines),
        "revenue": sum((line["revenue"] for line in lines), ZERO),
    }
    return {
        "project": project.pk,
        "month": month_start(month),
        "currency": "CNY",
        "time_zone": timezone.get_current_timezone_name(),
        "period_start": start,
        "period_end": end,
        "lines": lines,
        "totals": totals,
    }


def project_charges(*, project) -> dict:
    """What the client was charged for a project so far, by kind (exact decimal
    sums from the ledger; reversals net out)."""
    rows = (
        LedgerEntry.objects.filter(project=project)
        .values("kind")
        .annotate(revenue=Sum("revenue"))
        .order_by()
    )
    return {row["kind"]: row["revenue"] or ZERO for row in rows}


def tier_list_prices() -> dict[int, Decimal]:
    """Each skill tier's list price per 1,000 tokens (CNY): what a new project of that
    tier is priced at unless its maker says otherwise."""
    return dict(SkillTier.objects.values_list("level", "price_per_1k_tokens"))
