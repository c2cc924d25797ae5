"""Regional KPIs, read from the value-chain rollups only (never the ledger).

A report is one dict built by `region_report`; the dashboard, the REST API
and the CSV/XLSX/PDF files all render that same dict, so their figures agree.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_UP, Decimal

from django.conf import settings
from django.db import connection
from django.db.models import Count, F, Q, Sum
from django.db.models.functions import TruncMonth

from tenants.models import Organization, Region
from tenants.permissions import OFFICIALS, principal_for
from tenants.selectors import region_descendant_ids
from valuechain.models import BackendRollup, RegionMonthRollup, TierChange, WorkerMonthRollup
from valuechain.selectors import month_add, rollups_fresh_as_of

from .definitions import definitions

HUMAN_KINDS = ("annotation", "review")
MACHINE_KINDS = ("inference", "fine_tuning")
HIGH_TIERS = (3, 4, 5)
TIERS = (1, 2, 3, 4, 5)
FEN = Decimal("0.01")
RATE = Decimal("0.0001")


# --- jurisdiction -------------------------------------------------------------------


def jurisdiction_roots(*, user) -> list[Region]:
    """The regions a caller may report on: its offices' regions (each with the
    regions under it). Platform staff (signed in) see the country.

    The caller is who user acts as (tenants.permissions.principal_for): a
    person reports for the offices where they are an official, an API token
    for its own office, and only with the official role.
    """
    principal = principal_for(user)
    if not principal.is_authenticated:
        return []
    if principal.is_platform_staff:
        return list(Region.objects.filter(level=Region.Level.COUNTRY))
    offices = Organization.objects.filter(
        kind=Organization.Kind.GOVERNMENT,
        is_active=True,
        pk__in=principal.organization_ids(roles=OFFICIALS),
    )
    return list(Region.objects.filter(pk__in=offices.values("region_id")).order_by("level", "code"))


def jurisdiction_regions(roots: list[Region]) -> list[Region]:
    ids = {pk for root in roots for pk in region_descendant_ids(region=root)}
    return list(Region.objects.filter(pk__in=ids).order_by("code"))


def region_in_jurisdiction(*, code: str, roots: list[Region]) -> Region | None:
    """The region with this code, or None when it is outside the jurisdiction
    (whether or not it exists: callers answer 404 either way, so other
    regions are not disclosed)."""
    region = Region.objects.select_related("parent").filter(code=code).first()
    if region is None or not region_within_roots(region, roots):
        return None
    return region


def region_within_roots(region: Region, roots: list[Region]) -> bool:
    """Whether region is one of roots or under one (the country holds every region)."""
    return any(
        root.level == Region.Level.COUNTRY or region.pk == root.pk or region.parent_id == root.pk
        for root in roots
    )


# --- periods -----------------------------------------------------------------------


@dataclass(frozen=True)
class Period:
    start: date  # first day of the first month
    end: date  # first day of the last month (inclusive)

    @property
    def months(self) -> list[date]:
        return month_range(self.start, self.end)

    def shifted(self, months: int) -> Period:
        return Period(month_add(self.start, months), month_add(self.end, months))

    def __str__(self):
        return f"{self.start:%Y-%m} – {self.end:%Y-%m}"


def month_range(start: date, end: date) -> list[date]:
    months, month = [], start
    while month <= end:
        months.append(month)
        month = month_add(month, 1)
    return months


def comparison_period(period: Period, compare: str) -> Period | None:
    length = len(period.months)
    if compare == "previous":
        return period.shifted(-length)
    if compare == "year":
        return period.shifted(-12)
    return None


# --- arithmetic ----------------------------------------------------------------------


def _ratio(numerator, denominator, places=RATE) -> Decimal | None:
    if not denominator:
        return None
    return (Decimal(numerator) / Decimal(denominator)).quantize(places, rounding=ROUND_HALF_UP)


def _fen(amount) -> Decimal:
    return Decimal(amount or 0).quantize(FEN, rounding=ROUND_HALF_UP)


def _per_1k(revenue, tokens) -> Decimal | None:
    if not tokens:
        return None
    return (Decimal(revenue) * 1000 / Decimal(tokens)).quantize(RATE, rounding=ROUND_HALF_UP)


@dataclass
class Totals:
    tokens_human: int = 0
    tokens_machine: int = 0
    revenue: Decimal = Decimal(0)
    cost: Decimal = Decimal(0)
    revenue_high: Decimal = Decimal(0)  # T3+
    revenue_tiered: Decimal = Decimal(0)  # T1–T5

    def add(self, row: dict) -> None:
        tokens = (row["tokens_input"] or 0) + (row["tokens_output"] or 0)
        if row["kind"] in HUMAN_KINDS:
            self.tokens_human += tokens
        else:
            self.tokens_machine += tokens
        self.revenue += row["revenue"] or 0
        self.cost += row["cost"] or 0
        if row["skill_tier"] in TIERS:
            self.revenue_tiered += row["revenue"] or 0
        if row["skill_tier"] in HIGH_TIERS:
            self.revenue_high += row["revenue"] or 0

    @property
    def value_chain_index(self) -> Decimal | None:
        return _ratio(self.revenue_high, self.revenue_tiered)

    def summary(self) -> dict:
        tokens = self.tokens_human + self.tokens_machine
        margin = self.revenue - self.cost
        return {
            "tokens_total": tokens,
            "tokens_human": self.tokens_human,
            "tokens_machine": self.tokens_machine,
            "human_share": _ratio(self.tokens_human, tokens),
            "revenue": _fen(self.revenue),
            "cost": _fen(self.cost),
            "margin": _fen(margin),
            "margin_rate": _ratio(margin, self.revenue),
            "revenue_per_1k": _per_1k(self.revenue, tokens),
            "value_chain_index": self.value_chain_index,
        }


# --- the report ----------------------------------------------------------------------


def _rollup_rows(region_ids, months: list[date], *, kind=None, tier=None):
    rows = RegionMonthRollup.objects.filter(
        region_id__in=region_ids, month__gte=months[0], month__lte=months[-1]
    )
    if kind == "human":
        rows = rows.filter(kind__in=HUMAN_KINDS)
    elif kind == "machine":
        rows = rows.filter(kind__in=MACHINE_KINDS)
    if tier is not None:
        rows = rows.filter(skill_tier=tier)
    return list(
        rows.values("month", "region_id", "skill_tier", "kind")
        .annotate(
            tokens_input=Sum("tokens_input"),
            tokens_output=Sum("tokens_output"),
            revenue=Sum("revenue"),
            cost=Sum("cost"),
        )
        .order_by()
    )


def _trap(monthly_vci: dict[date, Decimal | None], end: date, threshold, months_required):
    streak, month = 0, end
    while True:
        vci = monthly_vci.get(month)
        if vci is None or vci >= threshold:
            break
        streak += 1
        month = month_add(month, -1)
    return {
        "threshold": threshold,
        "months_required": months_required,
        "streak": streak,
        "warning": streak >= months_required,
        "since": month_add(end, -streak + 1) if streak else None,
    }


def _monthly_vci(rows) -> dict[date, Decimal | None]:
    by_month: dict[date, Totals] = defaultdict(Totals)
    for row in rows:
        by_month[row["month"]].add(row)
    return {month: totals.value_chain_index for month, totals in by_month.items()}


def _vci_trend(rows, months: list[date]) -> Decimal | None:
    """Last month's index minus the first's, over the months with tiered revenue."""
    vci = _monthly_vci([r for r in rows if months[0] <= r["month"] <= months[-1]])
    points = [vci[m] for m in months if vci.get(m) is not None]
    return points[-1] - points[0] if len(points) >= 2 else None


def _children(region: Region) -> list[Region]:
    if region.level == Region.Level.COUNTRY:
        return list(Region.objects.filter(level=Region.Level.PROVINCE).order_by("code"))
    if region.level == Region.Level.PROVINCE:
        return list(Region.objects.filter(parent=region).order_by("code"))
    return []


def _region_label(region: Region) -> dict:
    return {
        "code": region.code,
        "name_en": region.name_en,
        "name_zh": region.name_zh,
        "level": region.level,
    }


def _employment(region_ids, period: Period) -> dict:
    workers = WorkerMonthRollup.objects.filter(
        region_id__in=region_ids, month__gte=period.start, month__lte=period.end, entries__gt=0
    )
    monthly = {month: {"active_annotators": 0, "median_earnings": None} for month in period.months}
    if connection.vendor == "postgresql":
        # A person works in one region a month, but may in two: sum per person first.
        sql, params = (
            workers.values("month", "worker_id").annotate(earned=Sum("cost")).order_by().query
        ).sql_with_params()
        with connection.cursor() as cursor:
            cursor.execute(
                # The inner query is Django's own SQL with its parameters bound apart.
                "SELECT month, count(*), percentile_cont(0.5) WITHIN GROUP (ORDER BY earned) "  # noqa: S608
                f"FROM ({sql}) AS per_person GROUP BY month",
                params,
            )
            for month, active, median in cursor.fetchall():
                monthly[month] = {
                    "active_annotators": active,
                    "median_earnings": _fen(median),
                }
    else:
        earned: dict[date, dict[int, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
        for row in workers.values("month", "worker_id", "cost"):
            earned[row["month"]][row["worker_id"]] += row["cost"]
        for month, people in earned.items():
            monthly[month] = {
                "active_annotators": len(people),
                "median_earnings": _fen(statistics.median(people.values())),
            }
    changes = (
        TierChange.objects.filter(
            region_id__in=region_ids, day__gte=period.start, day__lt=month_add(period.end, 1)
        )
        .annotate(month=TruncMonth("day"))
        .values("month")
        .annotate(
            promotions=Count("pk", filter=Q(to_level__gt=F("from_level"))),
            demotions=Count("pk", filter=Q(to_level__lt=F("from_level"))),
        )
        .order_by()
    )
    for row in changes:
        monthly.setdefault(row["month"], {"active_annotators": 0, "median_earnings": None})
        monthly[row["month"]].update(promotions=row["promotions"], demotions=row["demotions"])
    rows = [
        {"month": month, "promotions": 0, "demotions": 0, **values}
        for month, values in sorted(monthly.items())
    ]
    medians = [r["median_earnings"] for r in rows if r["median_earnings"] is not None]
    active = [r["active_annotators"] for r in rows]
    return {
        "monthly": rows,
        "active_annotators": round(sum(active) / len(active)) if active else 0,
        "median_earnings": _fen(statistics.median(medians)) if medians else None,
        "promotions": sum(r["promotions"] for r in rows),
        "demotions": sum(r["demotions"] for r in rows),
    }


def _compute(region_ids, period: Period) -> list[dict]:
    from compute.models import Backend

    rows = list(
        BackendRollup.objects.filter(
            region_id__in=region_ids, month__gte=period.start, month__lte=period.end
        )
        .values("backend_id", "region_id")
        .annotate(
            tokens_input=Sum("tokens_input"),
            tokens_output=Sum("tokens_output"),
            cost=Sum("cost"),
            gpu_ms=Sum("gpu_ms"),
        )
        .order_by()
    )
    names = dict(
        Backend.objects.filter(pk__in={r["backend_id"] for r in rows}).values_list("pk", "name")
    )
    regions = {r.pk: r for r in Region.objects.filter(pk__in={r["region_id"] for r in rows})}
    table = []
    for row in rows:
        tokens = (row["tokens_input"] or 0) + (row["tokens_output"] or 0)
        gpu_hours = Decimal(row["gpu_ms"] or 0) / Decimal(3_600_000)
        region = regions[row["region_id"]]
        table.append(
            {
                "backend_id": row["backend_id"],
                "backend": names.get(row["backend_id"], f"#{row['backend_id']}"),
                "region_code": region.code,
                "region_en": region.name_en,
                "region_zh": region.name_zh,
                "tokens": tokens,
                "gpu_hours": gpu_hours.quantize(RATE, rounding=ROUND_HALF_UP),
                "tokens_per_gpu_hour": round(tokens / gpu_hours) if gpu_hours else None,
                "cost": _fen(row["cost"]),
                "cost_per_million": (Decimal(row["cost"]) * 1_000_000 / tokens).quantize(
                    RATE, rounding=ROUND_HALF_UP
                )
                if tokens
                else None,
            }
        )
    return sorted(table, key=lambda r: (-r["tokens"], r["backend"]))


def region_report(
    *,
    region: Region,
    period: Period,
    compare: str = "none",
    kind: str | None = None,
    tier: int | None = None,
    trap_threshold: Decimal | None = None,
    trap_months: int | None = None,
) -> dict:
    """Every KPI of one region (with the regions under it) for one period."""
    threshold = Decimal(
        str(trap_threshold if trap_threshold is not None else settings.KPI_TRAP_THRESHOLD)
    )
    months_required = trap_months or settings.KPI_TRAP_MONTHS
    region_ids = region_descendant_ids(region=region)
    children = _children(region)
    other = comparison_period(period, compare)

    # One read covers the period, the comparison and the trap's look-back.
    first = min(
        period.start,
        month_add(period.end, -months_required + 1),
        other.start if other else period.start,
    )
    rows = _rollup_rows(region_ids, month_range(first, period.end), kind=kind, tier=tier)
    in_period = [r for r in rows if period.start <= r["month"] <= period.end]

    totals = Totals()
    monthly = {m: Totals() for m in period.months}
    by_tier: dict[int, Totals] = defaultdict(Totals)
    per_child: dict[int, Totals] = defaultdict(Totals)
    child_of = _child_index(children)
    for row in in_period:
        totals.add(row)
        monthly[row["month"]].add(row)
        by_tier[row["skill_tier"]].add(row)
        child = child_of.get(row["region_id"])
        if child is not None:
            per_child[child].add(row)

    compare_totals = None
    if other:
        compare_totals = Totals()
        compare_by_tier: dict[int, Totals] = defaultdict(Totals)
        for row in rows:
            if other.start <= row["month"] <= other.end:
                compare_totals.add(row)
                compare_by_tier[row["skill_tier"]].add(row)

    # The streak is counted back through the period, or N months if that is longer.
    trap_start = min(period.start, month_add(period.end, -months_required + 1))
    trap_rows = [r for r in rows if r["month"] >= trap_start]
    summary = totals.summary()
    summary["value_chain_trend"] = _vci_trend(rows, period.months)
    compare_summary = None
    if compare_totals:
        compare_summary = compare_totals.summary()
        compare_summary["value_chain_trend"] = _vci_trend(rows, other.months)

    tier_rows = []
    for level in (*TIERS, 0):
        t = by_tier.get(level, Totals())
        tokens = t.tokens_human + t.tokens_machine
        previous = compare_by_tier.get(level) if other else None
        tier_rows.append(
            {
                "tier": level,
                "tokens": tokens,
                "revenue": _fen(t.revenue),
                "revenue_per_1k": _per_1k(t.revenue, tokens),
                "compare_revenue_per_1k": _per_1k(
                    previous.revenue, previous.tokens_human + previous.tokens_machine
                )
                if previous
                else None,
            }
        )

    league = []
    child_trap_rows: dict[int, list] = defaultdict(list)
    for row in trap_rows:
        child = child_of.get(row["region_id"])
        if child is not None:
            child_trap_rows[child].append(row)
    for child in children:
        t = per_child.get(child.pk, Totals())
        child_summary = t.summary()
        league.append(
            {
                **_region_label(child),
                "tokens_total": child_summary["tokens_total"],
                "revenue": child_summary["revenue"],
                "revenue_per_1k": child_summary["revenue_per_1k"],
                "value_chain_index": child_summary["value_chain_index"],
                "trap_warning": _trap(
                    _monthly_vci(child_trap_rows.get(child.pk, [])),
                    period.end,
                    threshold,
                    months_required,
                )["warning"],
            }
        )
    league.sort(key=lambda r: (-r["tokens_total"], r["code"]))

    return {
        "region": _region_label(region),
        # The rollups follow the ledger within seconds: the figures count every
        # entry committed before this moment.
        "fresh_as_of": rollups_fresh_as_of(),
        "period": {"start": period.start, "end": period.end, "months": period.months},
        "compare": compare,
        "compare_period": {"start": other.start, "end": other.end} if other else None,
        "filters": {"kind": kind, "tier": tier},
        "has_data": bool(in_period),
        "summary": summary,
        "compare_summary": compare_summary,
        "change": _changes(summary, compare_summary) if compare_summary else None,
        "by_tier": tier_rows,
        "monthly": [
            {
                "month": month,
                "tokens_human": t.tokens_human,
                "tokens_machine": t.tokens_machine,
                "revenue": _fen(t.revenue),
                "value_chain_index": t.value_chain_index,
                "revenue_by_tier": _by_tier_of_month(in_period, month),
            }
            for month, t in monthly.items()
        ],
        "trap": _trap(_monthly_vci(trap_rows), period.end, threshold, months_required),
        "league": league,
        "employment": _employment(region_ids, period),
        "compute": _compute(region_ids, period),
        "definitions": definitions(),
    }


def _child_index(children: list[Region]) -> dict[int, int]:
    """Every region id under each child (a province's cities count for it)."""
    index = {child.pk: child.pk for child in children}
    provinces = [c.pk for c in children if c.level == Region.Level.PROVINCE]
    for pk, parent_id in Region.objects.filter(parent_id__in=provinces).values_list(
        "pk", "parent_id"
    ):
        index[pk] = parent_id
    return index


def _by_tier_of_month(rows, month: date) -> dict[str, dict]:
    result = {}
    for level in (*TIERS, 0):
        t = Totals()
        for row in rows:
            if row["month"] == month and row["skill_tier"] == level:
                t.add(row)
        tokens = t.tokens_human + t.tokens_machine
        result[str(level)] = {
            "revenue": _fen(t.revenue),
            "revenue_per_1k": _per_1k(t.revenue, tokens),
        }
    return result


def _changes(now: dict, before: dict) -> dict:
    changes = {}
    for key in ("tokens_total", "tokens_human", "tokens_machine", "revenue", "cost", "margin"):
        changes[key] = _ratio(Decimal(now[key]) - Decimal(before[key]), before[key])
    for key in (
        "value_chain_index",
        "value_chain_trend",
        "revenue_per_1k",
        "human_share",
        "margin_rate",
    ):
        # A rate's change is in points, not a ratio of ratios.
        changes[key] = (
            now[key] - before[key] if now[key] is not None and before[key] is not None else None
        )
    return changes


def provinces_map(*, roots: list[Region], period: Period) -> list[dict]:
    """Tokens by province for the map: only provinces within the jurisdiction."""
    visible = {r.pk for r in jurisdiction_regions(roots)}
    province_of = {}
    for region in Region.objects.exclude(level=Region.Level.COUNTRY).select_related("parent"):
        if region.pk in visible:
            province_of[region.pk] = (
                region if region.level == Region.Level.PROVINCE else region.parent
            )
    totals: dict[int, int] = defaultdict(int)
    rows = (
        RegionMonthRollup.objects.filter(
            region_id__in=province_of, month__gte=period.start, month__lte=period.end
        )
        .values("region_id")
        .annotate(tokens=Sum("tokens_input") + Sum("tokens_output"))
        .order_by()
    )
    for row in rows:
        totals[province_of[row["region_id"]].pk] += row["tokens"] or 0
    provinces = {p.pk: p for p in province_of.values()}
    return [
        {**_region_label(provinces[pk]), "tokens_total": tokens}
        for pk, tokens in sorted(totals.items(), key=lambda kv: -kv[1])
    ]
