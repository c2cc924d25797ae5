"""Twelve months of value-chain history for `make run`, so every chart has something true.

Deterministic from SEED and today's date: six annotation centres, inland and
coastal. Guiyang climbs the tiers, Zunyi follows more slowly, Chengdu climbs
moderately, Zhengzhou stays in cheap labeling (the low-end trap), Hangzhou and
Shenzhen already do expert and model work. Every figure is posted through the
ledger service, so rollups and `reconcile` agree with it like with live work.
"""

import random
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from decimal import Decimal

from django.db import transaction
from django.utils import timezone

from compute.demo import history_backend_ensure
from tenants.models import Membership, Organization, Region, User
from tenants.services import annotators_create, organization_get_or_create, users_skill_tier_set
from valuechain.models import LedgerKey, SkillTier
from valuechain.selectors import month_add
from valuechain.services import ledger_post_many, rollups_catch_up, tier_changes_record

SEED = 20261122
DEMO_ANNOTATORS = ("annotator", "annotator2")
KEY_PREFIX = "demo-history:"


@dataclass(frozen=True)
class Centre:
    slug: str
    name: str
    city: str  # GB/T 2260 code
    people: int
    start_tiers: tuple[float, ...]  # share of people starting at T1..T5
    monthly_promotion: float  # chance a person below T4 is promoted each month
    machine_tokens_per_day: int  # pre-labeling volume run from the centre's region


CENTRES = (
    Centre(
        "guiyang-data-centre",
        "Guiyang Data Annotation Centre",
        "520100",
        30,
        (0.6, 0.3, 0.1, 0, 0),
        0.12,
        30_000_000,
    ),
    Centre(
        "zunyi-annotation-park",
        "Zunyi Annotation Park",
        "520300",
        16,
        (0.5, 0.4, 0.1, 0, 0),
        0.08,
        5_000_000,
    ),
    Centre(
        "zhengzhou-annotation-base",
        "Zhengzhou Annotation Base",
        "410100",
        30,
        (0.85, 0.15, 0, 0, 0),
        0.0,
        8_000_000,
    ),
    Centre(
        "chengdu-ai-data-centre",
        "Chengdu AI Data Centre",
        "510100",
        24,
        (0.5, 0.35, 0.15, 0, 0),
        0.07,
        20_000_000,
    ),
    Centre(
        "hangzhou-expert-studio",
        "Hangzhou Expert Data Studio",
        "330100",
        14,
        (0, 0.2, 0.4, 0.3, 0.1),
        0.05,
        40_000_000,
    ),
    Centre(
        "shenzhen-model-ops",
        "Shenzhen Model Operations",
        "440300",
        10,
        (0, 0, 0.3, 0.4, 0.3),
        0.04,
        90_000_000,
    ),
)
CLIENTS = (
    ("qianfan-ai", "Qianfan AI (Hangzhou)", "330100"),
    ("zhiyuan-models", "Zhiyuan Models (Beijing)", "110000"),
    ("haiyan-robotics", "Haiyan Robotics (Shanghai)", "310000"),
)
# Tokens a person handles in a working day at each tier: harder work, fewer tokens.
TOKENS_PER_DAY = {1: 300_000, 2: 220_000, 3: 150_000, 4: 90_000, 5: 60_000}
# Machine work: price per million tokens and GPU seconds per million tokens.
MACHINE_PRICE_PER_MILLION = Decimal("0.80")
GPU_SECONDS_PER_MILLION = 40


def _history_months(today) -> list:
    last = month_add(today.replace(day=1), -1)
    return [month_add(last, -n) for n in range(11, -1, -1)]


def _working_days(month) -> list:
    days, day = [], month
    while day.month == month.month:
        if day.weekday() < 5:
            days.append(day)
        day += timedelta(days=1)
    return days


def _at(day, hour) -> datetime:
    return timezone.make_aware(datetime.combine(day, time(hour, 0)))


@transaction.atomic
def demo_seed() -> int:
    """Post the history once; returns how many rows it created (0 the second time).

    The rollups are brought up to date before returning (reports reads them),
    including the work other apps' demo data posted before this one.
    """
    if LedgerKey.objects.filter(pk__startswith=KEY_PREFIX).exists():
        rollups_catch_up()
        return 0
    rng = random.Random(SEED)
    tiers = {t.level: t for t in SkillTier.objects.all()}
    regions = {r.code: r for r in Region.objects.filter(level__in=["city", "province"])}
    created = 0
    clients = []
    for slug, name, code in CLIENTS:
        client, was_created = organization_get_or_create(
            slug=slug, name=name, kind=Organization.Kind.CLIENT, region=regions[code]
        )
        clients.append(client)
        created += was_created
    backends = _backends()
    created += len(backends)
    months = _history_months(timezone.localdate())
    entries, changes, final_tiers = [], [], {}
    for centre in CENTRES:
        org, was_created = organization_get_or_create(
            slug=centre.slug,
            name=centre.name,
            kind=Organization.Kind.WORKFORCE,
            region=regions[centre.city],
        )
        created += was_created
        region = regions[centre.city]
        # History only: nobody logs in as them (no usable password).
        users = annotators_create(
            organization=org,
            people=[
                (f"demo-{centre.city}-{n:03d}", f"{centre.city}-{n:03d}")
                for n in range(centre.people)
            ],
        )
        people = [[user, rng.choices(range(1, 6), weights=centre.start_tiers)[0]] for user in users]
        created += 2 * len(people)
        # The demo annotators' logins have a year of work behind them too, at
        # their own tier (their earnings show on their personal page).
        logins = list(
            User.objects.filter(
                memberships__organization=org,
                memberships__role=Membership.Role.ANNOTATOR,
                username__in=DEMO_ANNOTATORS,
            ).distinct()
        )
        people += [[user, user.skill_tier] for user in logins]
        for month_index, month in enumerate(months):
            for person in people:
                user, level = person
                promotable = user.username not in DEMO_ANNOTATORS and level < 4
                if month_index and promotable and rng.random() < centre.monthly_promotion:
                    changes.append(
                        {
                            "user": user,
                            "day": month,
                            "from_level": level,
                            "to_level": level + 1,
                            "region": region,
                            "reason": f"cleared every T{level + 1} bar",
                            "measured": {"demo": True},
                        }
                    )
                    person[1] = level = level + 1
                entries += _human_month(
                    rng, centre, org, region, user, level, month, clients, tiers
                )
            entries += _machine_month(rng, centre, region, month, clients, backends)
        for user, level in people:
            if user.username not in DEMO_ANNOTATORS:
                final_tiers[user.pk] = level
    for start in range(0, len(entries), 2000):
        created += ledger_post_many(entries[start : start + 2000])
    tier_changes_record(changes=changes)
    # People end the history at the tier they reached.
    users_skill_tier_set(levels=final_tiers)
    rollups_catch_up()
    return created + len(changes)


def _human_month(rng, centre, org, region, user, level, month, clients, tiers) -> list[dict]:
    entries = []
    tier = tiers[level]
    for day in _working_days(month):
        # Reviews earn the centre nothing from the client; the reviewer is paid.
        kind = "review" if level >= 3 and rng.random() < 0.3 else "annotation"
        if rng.random() < 0.1:  # leave, sickness, training
            continue
        tokens = int(TOKENS_PER_DAY[level] * rng.uniform(0.7, 1.3))
        output = tokens // 20
        client = clients[rng.randrange(len(clients))]
        entries.append(
            {
                "idempotency_key": f"{KEY_PREFIX}{user.username}:{day:%Y%m%d}",
                "kind": kind,
                "occurred_at": _at(day, 9 + rng.randrange(9)),
                "region_id": region.pk,
                "client_id": client.pk,
                "workforce_id": org.pk,
                "worker_id": user.pk,
                "skill_tier": level,
                "tokens_input": tokens - output,
                "tokens_output": output,
                "revenue": 0 if kind == "review" else tier.price_per_1k_tokens * tokens / 1000,
                "cost": tier.pay_per_1k_tokens * tokens / 1000,
            }
        )
    return entries


def _machine_month(rng, centre, region, month, clients, backends) -> list[dict]:
    backend = backends[centre.city]
    entries = []
    for day in _working_days(month):
        tokens = int(centre.machine_tokens_per_day * rng.uniform(0.6, 1.4))
        output = tokens // 10
        price = MACHINE_PRICE_PER_MILLION * tokens / 1_000_000
        entries.append(
            {
                "idempotency_key": f"{KEY_PREFIX}machine:{centre.city}:{day:%Y%m%d}",
                "kind": "inference",
                "occurred_at": _at(day, 2),
                "region_id": region.pk,
                "client_id": clients[rng.randrange(len(clients))].pk,
                "backend_id": backend.pk,
                "tokens_input": tokens - output,
                "tokens_output": output,
                "gpu_ms": tokens * GPU_SECONDS_PER_MILLION // 1000,
                "revenue": price * Decimal("1.3"),
                "cost": price,
            }
        )
    return entries


def _backends() -> dict:
    return {
        centre.city: history_backend_ensure(
            name=f"{centre.name} GPU pool (history)",
            region=Region.objects.get(code=centre.city),
        )
        for centre in CENTRES
    }
