"""Benchmark: the token ledger at scale — bulk load, full reconcile, sustained posting.

    .venv/bin/python bench/ledger_scale.py                    # 10M rows, loaded once then cached
    .venv/bin/python bench/ledger_scale.py --rows 200000      # quick mode
    .venv/bin/python bench/ledger_scale.py --reload           # regenerate even when cached
    .venv/bin/python bench/ledger_scale.py --skip-posting     # load + reconcile only

Runs against tokenworks_bench (created and migrated by the script when needed).

1. Load. A fixed fixture (30 client organizations with 2 projects each, 20
   annotation centres in 20 cities of 13 provinces, 3,000 workers with tiers
   T1-T5, 20 GPU backends in 10 cities) is created once through the ORM in bulk.
   Then --rows ledger rows are generated deterministically from --seed and
   written with one COPY (psycopg 3 cursor.copy) in one transaction: 12 months
   from --start, with a growth trend, a weekly and a daily rhythm; kinds about
   annotation 55 %, review 10 %, inference 33 %, fine_tuning 2 %; 1 % reversals
   of annotation rows (reverses_id, negated amounts, key "reversal:<key>:x").
   Money is micro-yuan integers formatted as exact six-place decimals. A forked
   generator process builds the COPY text in numpy-vectorised chunks while the
   main process streams the previous chunk. The ledger's secondary indexes,
   unique and foreign-key constraints are dropped for the COPY and recreated
   (and validated) before COMMIT, so a failed load leaves the table as it was.
   The rollups are then built in SQL (one INSERT ... SELECT ... GROUP BY per
   rollup table, compiled from valuechain.services.ROLLUPS). A marker table
   (bench_ledger_scale) records rows, seed, start and generator version: when
   it matches and the row count agrees, the load is skipped.
2. Reconcile. valuechain.services.rollups_reconcile() over the whole ledger,
   timed in-process (the call `manage.py reconcile` makes). It must find 0
   differences; the script exits 1 otherwise. --explain re-runs each GROUP BY
   it ran under EXPLAIN (ANALYZE, BUFFERS), with parallel workers off as under
   the server-side cursor iterator() uses. --sql-reconcile times a proposed
   alternative (one FULL JOIN of truth and rollup table per table, only the
   differing keys sent to Python) at the given work_mem values.
3. Posting. For --post-seconds per configuration, each of 1 or 2 forked
   processes (own connection) calls ledger_post_many() with batches of 500 or
   2,000 new entries (the same generator, occurred "now") inside
   transaction.atomic(). Reported: rows/s over the wall-clock window (entry
   generation, about 2 % of it, included), p50/p99/max batch latency (the
   atomic block, COMMIT included); CPU seconds of the posting processes and of
   all postgres processes on the machine. Then every rollup key of the touched
   day(s)/month is recomputed from the ledger and compared. Posted rows are
   removed afterwards (bench-only: session_replication_role = replica gets past
   the append-only trigger) and the rollup keys from the loaded window's end on
   rebuilt, so the cache stays valid; --keep-posted leaves them.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import random
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlparse, urlunparse
from zoneinfo import ZoneInfo

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common

GENERATOR_VERSION = 3
MARKER = "bench_ledger_scale"
TAG = "ledger-scale"
TIME_ZONE = "Asia/Shanghai"  # settings.TIME_ZONE in every mode; checked after setup
CHUNK = 100_000
LEDGER = "valuechain_ledgerentry"
KEYS = "valuechain_ledgerkey"
SEQUENCE = "valuechain_ledgerentry_id_seq"

KINDS = ("annotation", "review", "inference", "fine_tuning")
KIND_P = (0.55, 0.10, 0.33, 0.02)
KEY_PREFIX = ("annotation", "review", "inference", "finetune")
ANNOTATION, REVIEW, INFERENCE, FINE_TUNING = range(4)
REVIEW_TIER, FINE_TUNING_TIER = 3, 5  # as valuechain.postings posts them
REVERSAL_SHARE = 0.01
GOLD_SHARE = 0.02  # annotation of gold items: paid, not charged

# The fixture: fixed, whatever the seed (the seed drives the ledger rows only).
CENTRES = (  # city code, relative size
    ("520100", 9),  # Guiyang
    ("520300", 3),  # Zunyi
    ("520400", 2),  # Anshun
    ("410100", 8),  # Zhengzhou
    ("410300", 2),  # Luoyang
    ("510100", 8),  # Chengdu
    ("510700", 2),  # Mianyang
    ("500100", 5),  # Chongqing
    ("150100", 3),  # Hohhot
    ("150900", 2),  # Ulanqab
    ("620100", 3),  # Lanzhou
    ("621000", 1),  # Qingyang
    ("640100", 2),  # Yinchuan
    ("640500", 1),  # Zhongwei
    ("610100", 5),  # Xi'an
    ("430100", 4),  # Changsha
    ("420100", 4),  # Wuhan
    ("360100", 3),  # Nanchang
    ("530100", 3),  # Kunming
    ("140100", 2),  # Taiyuan
)
CLIENT_CITIES = ("110100", "310100", "440300", "330100", "440100", "320100")
BACKEND_CITIES = (
    "150900",
    "621000",
    "640500",
    "520100",
    "150100",
    "510100",
    "410100",
    "500100",
    "520400",
    "610100",
)
CLIENTS, PROJECTS_PER_CLIENT, WORKERS, BACKENDS = 30, 2, 3000, 20
TIER_P = (0.35, 0.30, 0.20, 0.10, 0.05)
LIST_PRICE_MICRO = {1: 800_000, 2: 1_800_000, 3: 3_600_000, 4: 8_000_000, 5: 16_000_000}
HOUR_PROFILE = np.array(  # local hours 0-11, 12-23
    [
        [0.15, 0.1, 0.08, 0.08, 0.1, 0.15, 0.3, 0.6, 0.9, 1.0, 1.0, 0.95],
        [0.7, 0.8, 1.0, 1.0, 0.95, 0.9, 0.7, 0.6, 0.6, 0.5, 0.35, 0.25],
    ]
).ravel()


# --- set-up ----------------------------------------------------------------------------


def ensure_database() -> float:
    """Create tokenworks_bench when missing and migrate it; returns seconds spent."""
    import psycopg

    started = time.perf_counter()
    env = _common.bench_env()
    url = urlparse(env["DATABASE_URL"])
    name = url.path.lstrip("/")
    with psycopg.connect(urlunparse(url._replace(path="/postgres")), autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')
    done = subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput"],
        cwd=_common.REPO,
        env=env,
        capture_output=True,
        text=True,
    )
    if done.returncode:
        sys.exit(f"migrate failed:\n{done.stdout}\n{done.stderr}")
    return time.perf_counter() - started


@dataclass
class Layout:
    """The fixture as arrays indexed 0..n-1 (database ids in *_id arrays)."""

    centre_id: np.ndarray
    centre_region: np.ndarray
    client_id: np.ndarray
    project_id: np.ndarray
    project_client: np.ndarray  # index into client_id
    project_centre: np.ndarray  # index into centre_id
    project_weight: np.ndarray
    project_price: np.ndarray  # micro-yuan per 1,000 tokens
    project_backends: np.ndarray  # (projects, 3) indexes into backend_id
    project_ft_backend: np.ndarray
    worker_id: np.ndarray
    worker_tier: np.ndarray
    eligible: np.ndarray  # worker indexes, grouped by project (required tier, or one above)
    eligible_start: np.ndarray
    eligible_count: np.ndarray
    reviewers: np.ndarray  # worker indexes with tier >= 3, grouped by centre
    reviewers_start: np.ndarray
    reviewers_count: np.ndarray
    backend_id: np.ndarray
    backend_region: np.ndarray
    backend_gpus: np.ndarray
    backend_concurrency: np.ndarray
    backend_price_in: np.ndarray  # micro-yuan per million tokens
    backend_price_out: np.ndarray
    backend_price_train: np.ndarray
    pay: np.ndarray  # micro-yuan per 1,000 tokens, indexed by tier (0 unused)


def ensure_fixture() -> Layout:
    """Create the fixed fixture where missing (matched by slug and username), return it."""
    from django.contrib.auth.hashers import make_password
    from django.db import transaction

    from annotation.models import Project
    from compute.models import Backend
    from tenants.models import Membership, Organization, Region, User
    from valuechain.models import SkillTier

    rnd = random.Random(2260)
    unusable = make_password(None)
    region = {r.code: r.pk for r in Region.objects.filter(level=Region.Level.CITY)}
    with transaction.atomic():
        orgs = {o.slug: o for o in Organization.objects.filter(slug__startswith=f"{TAG}-")}
        new = []
        for n, (code, _size) in enumerate(CENTRES):
            slug = f"{TAG}-centre-{n:02d}"
            if slug not in orgs:
                new.append(
                    Organization(
                        name=f"{TAG} centre {code}",
                        slug=slug,
                        kind="workforce",
                        region_id=region[code],
                    )
                )
        for n in range(CLIENTS):
            slug = f"{TAG}-client-{n:02d}"
            if slug not in orgs:
                code = CLIENT_CITIES[n % len(CLIENT_CITIES)]
                new.append(
                    Organization(
                        name=f"{TAG} client {n:02d}",
                        slug=slug,
                        kind="client",
                        region_id=region[code],
                    )
                )
        Organization.objects.bulk_create(new)
        orgs = {o.slug: o for o in Organization.objects.filter(slug__startswith=f"{TAG}-")}
        centres = [orgs[f"{TAG}-centre-{n:02d}"] for n in range(len(CENTRES))]
        clients = [orgs[f"{TAG}-client-{n:02d}"] for n in range(CLIENTS)]

        # Workers: each in one centre (by centre size), a tier; reviewers are T3+.
        sizes = np.array([size for _code, size in CENTRES], dtype=float)
        worker_centre = [rnd.choices(range(len(CENTRES)), weights=sizes)[0] for _ in range(WORKERS)]
        worker_tier = [rnd.choices(range(1, 6), weights=TIER_P)[0] for _ in range(WORKERS)]
        for c in range(len(CENTRES)):  # every centre has a reviewer (T3+)
            here = [n for n, w in enumerate(worker_centre) if w == c]
            if here and max(worker_tier[n] for n in here) < REVIEW_TIER:
                worker_tier[here[0]] = REVIEW_TIER
        users = {
            u.username: u
            for u in User.objects.filter(username__startswith=f"{TAG}-").only("pk", "username")
        }
        names = [f"{TAG}-w{n:04d}" for n in range(WORKERS)]
        owners = [f"{TAG}-owner-{n:02d}" for n in range(CLIENTS)]
        User.objects.bulk_create(
            [
                User(username=name, password=unusable, skill_tier=tier)
                for name, tier in zip(names, worker_tier, strict=True)
                if name not in users
            ]
            + [User(username=name, password=unusable) for name in owners if name not in users]
        )
        users = {
            u.username: u
            for u in User.objects.filter(username__startswith=f"{TAG}-").only("pk", "username")
        }
        memberships = []
        for name, c, tier in zip(names, worker_centre, worker_tier, strict=True):
            memberships.append(
                Membership(user=users[name], organization=centres[c], role="annotator")
            )
            if tier >= REVIEW_TIER:
                memberships.append(
                    Membership(user=users[name], organization=centres[c], role="reviewer")
                )
        for name, client in zip(owners, clients, strict=True):
            memberships.append(
                Membership(user=users[name], organization=client, role="client_developer")
            )
        Membership.objects.bulk_create(memberships, ignore_conflicts=True)

        backends = {b.name: b for b in Backend.objects.filter(name__startswith=f"{TAG}-")}
        new_backends, drawn = [], []
        for n in range(BACKENDS):
            name = f"{TAG}-b{n:02d}"
            # Drawn whether or not the row exists, so the layout never depends on it.
            gpus = rnd.choice((1, 2, 4, 8, 8))
            concurrency = rnd.choice((16, 32, 64))
            price_in = rnd.choice((400_000, 800_000, 1_200_000))
            price_out = rnd.choice((1_600_000, 2_000_000, 3_200_000))
            price_train = rnd.choice((24, 30, 40))
            drawn.append((gpus, concurrency, price_in, price_out, price_train))
            if name not in backends:
                new_backends.append(
                    Backend(
                        name=name,
                        kind="vllm",
                        base_url=f"http://10.20.{n}.1:8000/v1",
                        models_served=["qwen2.5-7b-instruct"],
                        region_id=region[BACKEND_CITIES[n % len(BACKEND_CITIES)]],
                        gpu_kind="H20",
                        gpu_count=gpus,
                        max_concurrency=concurrency,
                        price_input_per_million=Decimal(price_in) / 10**6,
                        price_output_per_million=Decimal(price_out) / 10**6,
                        price_training_per_million=Decimal(price_train),
                    )
                )
        Backend.objects.bulk_create(new_backends)
        backends = {b.name: b for b in Backend.objects.filter(name__startswith=f"{TAG}-")}
        backends = [backends[f"{TAG}-b{n:02d}"] for n in range(BACKENDS)]
        for n, (backend, values) in enumerate(zip(backends, drawn, strict=True)):
            backend.region_id = region[BACKEND_CITIES[n % len(BACKEND_CITIES)]]
            (
                backend.gpu_count,
                backend.max_concurrency,
                price_in,
                price_out,
                price_train,
            ) = values
            backend.price_input_per_million = Decimal(price_in) / 10**6
            backend.price_output_per_million = Decimal(price_out) / 10**6
            backend.price_training_per_million = Decimal(price_train)
        Backend.objects.bulk_update(
            backends,
            [
                "region",
                "gpu_count",
                "max_concurrency",
                "price_input_per_million",
                "price_output_per_million",
                "price_training_per_million",
            ],
        )

        projects = {p.name: p for p in Project.objects.filter(name__startswith=f"{TAG}-")}
        new_projects, spec = [], []
        for n in range(CLIENTS * PROJECTS_PER_CLIENT):
            c = n // PROJECTS_PER_CLIENT
            # Every centre staffs at least one project; the rest go by centre size.
            centre = n if n < len(CENTRES) else rnd.choices(range(len(CENTRES)), weights=sizes)[0]
            tier = rnd.choices(range(1, 5), weights=(4, 3, 2, 1))[0]
            price = LIST_PRICE_MICRO[tier] * rnd.choice((90, 100, 110, 125)) // 100
            spec.append((c, centre, tier, price))
            name = f"{TAG}-p{n:03d}"
            if name not in projects:
                new_projects.append(
                    Project(
                        organization=clients[c],
                        workforce=centres[centre],
                        name=name,
                        task_type="classification",
                        label_schema={
                            "labels": [
                                {"value": "positive", "title": "正面"},
                                {"value": "negative", "title": "负面"},
                            ]
                        },
                        required_tier=tier,
                        price_per_1k_tokens=Decimal(price) / 10**6,
                        status="active",
                        created_by=users[owners[c]],
                    )
                )
        Project.objects.bulk_create(new_projects)
        projects = {p.name: p for p in Project.objects.filter(name__startswith=f"{TAG}-")}
        project_rows = [projects[f"{TAG}-p{n:03d}"] for n in range(CLIENTS * PROJECTS_PER_CLIENT)]
        # Rows made by an earlier layout are brought in line (the ledger rows follow it).
        for project, (c, centre, tier, price) in zip(project_rows, spec, strict=True):
            project.organization_id = clients[c].pk
            project.workforce_id = centres[centre].pk
            project.required_tier = tier
            project.price_per_1k_tokens = Decimal(price) / 10**6
        Project.objects.bulk_update(
            project_rows, ["organization", "workforce", "required_tier", "price_per_1k_tokens"]
        )
        workers = [users[name] for name in names]
        for user, tier in zip(workers, worker_tier, strict=True):
            user.skill_tier = tier
        User.objects.bulk_update(workers, ["skill_tier"], batch_size=1000)

    # Client volume: Zipf-like, and one project of two takes most of it.
    client_weight = 1 / np.arange(1, CLIENTS + 1) ** 0.8
    project_weight = np.array(
        [client_weight[c] * (0.7 if n % 2 == 0 else 0.3) for n, (c, *_rest) in enumerate(spec)]
    )
    worker_centre_a = np.array(worker_centre)
    worker_tier_a = np.array(worker_tier)
    eligible, eligible_start, eligible_count = [], [], []
    for _c, centre, tier, _price in spec:
        # A project is staffed at its tier or one above (pay stays under the price).
        ok = np.flatnonzero(
            (worker_centre_a == centre) & (worker_tier_a >= tier) & (worker_tier_a <= tier + 1)
        )
        if not len(ok):  # nobody qualified: the centre's best take the work
            here = np.flatnonzero(worker_centre_a == centre)
            ok = here[worker_tier_a[here] == worker_tier_a[here].max()]
        eligible_start.append(len(eligible))
        eligible_count.append(len(ok))
        eligible.extend(ok.tolist())
    reviewers, reviewers_start, reviewers_count = [], [], []
    for c in range(len(CENTRES)):
        ok = np.flatnonzero((worker_centre_a == c) & (worker_tier_a >= REVIEW_TIER))
        reviewers_start.append(len(reviewers))
        reviewers_count.append(len(ok))
        reviewers.extend(ok.tolist())
    big = [n for n, b in enumerate(backends) if b.gpu_count >= 4]
    project_backends = np.array([rnd.sample(range(BACKENDS), 3) for _ in spec])
    pay = np.zeros(6, dtype=np.int64)
    for tier in SkillTier.objects.all():
        pay[tier.level] = int(tier.pay_per_1k_tokens * 10**6)

    def micro(value) -> int:
        return int(Decimal(value) * 10**6)

    return Layout(
        centre_id=np.array([o.pk for o in centres]),
        centre_region=np.array([o.region_id for o in centres]),
        client_id=np.array([o.pk for o in clients]),
        project_id=np.array([p.pk for p in project_rows]),
        project_client=np.array([s[0] for s in spec]),
        project_centre=np.array([s[1] for s in spec]),
        project_weight=project_weight / project_weight.sum(),
        project_price=np.array([s[3] for s in spec], dtype=np.int64),
        project_backends=project_backends,
        project_ft_backend=np.array([rnd.choice(big) for _ in spec]),
        worker_id=np.array([users[name].pk for name in names]),
        worker_tier=worker_tier_a,
        eligible=np.array(eligible),
        eligible_start=np.array(eligible_start),
        eligible_count=np.array(eligible_count),
        reviewers=np.array(reviewers),
        reviewers_start=np.array(reviewers_start),
        reviewers_count=np.array(reviewers_count),
        backend_id=np.array([b.pk for b in backends]),
        backend_region=np.array([b.region_id for b in backends]),
        backend_gpus=np.array([b.gpu_count for b in backends]),
        backend_concurrency=np.array([b.max_concurrency for b in backends]),
        backend_price_in=np.array([micro(b.price_input_per_million) for b in backends]),
        backend_price_out=np.array([micro(b.price_output_per_million) for b in backends]),
        backend_price_train=np.array([micro(b.price_training_per_million) for b in backends]),
        pay=pay,
    )


# --- generation ------------------------------------------------------------------------


def window(start: date) -> tuple[datetime, datetime]:
    tz = ZoneInfo(TIME_ZONE)
    year, month = start.year + 1, start.month
    return (
        datetime(start.year, start.month, 1, tzinfo=tz),
        datetime(year, month, 1, tzinfo=tz),
    )


def hour_cdf(start: date) -> tuple[int, np.ndarray]:
    """(window start in µs since the epoch, CDF over the window's hours) of ledger activity:
    a growth trend (0.6x to 1.4x over the year), quieter weekends, a working-day rhythm."""
    begin, end = window(start)
    hours = int((end - begin).total_seconds() // 3600)
    h = np.arange(hours)
    day = h // 24
    weekday = (begin.weekday() + day) % 7
    weight = (
        HOUR_PROFILE[h % 24]
        * np.where(weekday >= 5, 0.55, 1.0)
        * (0.6 + 0.8 * day / max(day.max(), 1))
    )
    cdf = np.concatenate([[0.0], np.cumsum(weight)]) / weight.sum()
    return int(begin.timestamp()) * 10**6, cdf


def half_up(numerator: np.ndarray, denominator: int) -> np.ndarray:
    """numerator / denominator rounded half up (numerator >= 0), as money() rounds."""
    return (numerator + denominator // 2) // denominator


def draw(layout: Layout, rng: np.random.Generator, n: int) -> dict:
    """n new (non-reversal) entries as index and amount arrays; times are the caller's."""
    kind = rng.choice(4, n, p=KIND_P)
    project = rng.choice(len(layout.project_id), n, p=layout.project_weight)
    centre = layout.project_centre[project]
    u = rng.random(n)

    worker = np.full(n, -1)
    ann = kind == ANNOTATION
    pick = layout.eligible_start[project] + (u * layout.eligible_count[project]).astype(int)
    worker[ann] = layout.eligible[pick[ann]]
    rev = kind == REVIEW
    pick = layout.reviewers_start[centre] + (u * layout.reviewers_count[centre]).astype(int)
    worker[rev] = layout.reviewers[pick[rev]]

    tier = np.zeros(n, dtype=np.int64)  # 0: no tier
    tier[ann] = layout.worker_tier[worker[ann]]
    tier[rev] = REVIEW_TIER
    ft = kind == FINE_TUNING
    tier[ft] = FINE_TUNING_TIER

    machine = (kind == INFERENCE) | ft
    inf = kind == INFERENCE
    backend = np.full(n, -1)
    backend[inf] = layout.project_backends[project[inf], rng.integers(0, 3, inf.sum())]
    backend[ft] = layout.project_ft_backend[project[ft]]
    region = layout.centre_region[centre]
    region[machine] = layout.backend_region[backend[machine]]

    def lognormal(median, sigma, low, high):
        return np.clip(rng.lognormal(np.log(median), sigma, n), low, high).astype(np.int64)

    tokens_in = np.where(
        machine,
        np.where(
            ft, lognormal(2_000_000, 1.0, 10_000, 200_000_000), lognormal(650, 0.7, 20, 32_000)
        ),
        lognormal(220, 0.9, 8, 16_000),
    )
    tokens_out = np.where(
        ann, lognormal(18, 1.2, 1, 4_000), np.where(inf, lognormal(80, 0.9, 1, 4_096), 0)
    )
    gpus = layout.backend_gpus[backend]
    latency_ms = 40 + tokens_out * 25 * rng.uniform(0.7, 1.3, n)
    ft_ms = lognormal(5_400_000, 0.6, 600_000, 172_800_000)
    gpu_ms = np.where(
        inf,
        np.rint(latency_ms * gpus / layout.backend_concurrency[backend]).astype(np.int64),
        np.where(ft, ft_ms * gpus, 0),
    )

    total = tokens_in + tokens_out
    revenue = np.zeros(n, dtype=np.int64)
    cost = np.zeros(n, dtype=np.int64)
    charged = ann & (rng.random(n) >= GOLD_SHARE)
    revenue[charged] = half_up(layout.project_price[project[charged]] * total[charged], 1000)
    cost[ann] = half_up(layout.pay[tier[ann]] * total[ann], 1000)
    cost[rev] = half_up(layout.pay[REVIEW_TIER] * tokens_in[rev], 1000)
    b = backend[inf]
    cost[inf] = half_up(
        layout.backend_price_in[b] * tokens_in[inf] + layout.backend_price_out[b] * tokens_out[inf],
        10**6,
    )
    cost[ft] = half_up(layout.backend_price_train[backend[ft]] * tokens_in[ft], 10**6)
    revenue[machine] = cost[machine]  # machine work passes through at cost
    return {
        "kind": kind,
        "project": project,
        "centre": centre,
        "worker": worker,
        "tier": tier,
        "backend": backend,
        "region": region,
        "tokens_in": tokens_in,
        "tokens_out": tokens_out,
        "gpu_ms": gpu_ms,
        "revenue": revenue,
        "cost": cost,
    }


@dataclass(frozen=True)
class LoadSpec:
    rows: int
    seed: int
    start: date
    id_base: int  # id of the first row


def chunk_plan(rows: int) -> list[tuple[int, int, int]]:
    """Per chunk: (first row, rows, first base row); 1 % of each chunk are reversals."""
    plan, first, base = [], 0, 0
    while first < rows:
        size = min(CHUNK, rows - first)
        plan.append((first, size, base))
        base += size - int(size * REVERSAL_SHARE)
        first += size
    return plan


_GEN: dict = {}  # set before the generator process forks: layout, spec, plan, cdf


def lookup(ids: np.ndarray) -> np.ndarray:
    """Database ids as COPY text by index, with index -1 giving NULL."""
    return np.array([str(int(i)) for i in ids] + ["\\N"], dtype=object)


def chunk_text(index: int) -> tuple[bytes, float]:
    """COPY text of one chunk, and the CPU seconds it took."""
    cpu = time.process_time()
    layout, spec, plan, (start_us, cdf), base_total = (
        _GEN["layout"],
        _GEN["spec"],
        _GEN["plan"],
        _GEN["cdf"],
        _GEN["base_total"],
    )
    first, size, base_first = plan[index]
    rng = np.random.default_rng([spec.seed, index])
    reversals = int(size * REVERSAL_SHARE)
    base = size - reversals
    a = draw(layout, rng, base)

    # Times: quantiles of the global base row number, so rows are in time order.
    q = (base_first + np.arange(base) + rng.random(base)) / base_total
    hour = np.clip(np.searchsorted(cdf, q, side="right") - 1, 0, len(cdf) - 2)
    frac = (q - cdf[hour]) / (cdf[hour + 1] - cdf[hour])
    occurred = start_us + ((hour + frac) * 3.6e9).astype(np.int64)
    created = occurred + rng.integers(50_000, 3_000_000, base)

    # Reversals: distinct annotation rows, reversed 20 min to ~6 h later; the
    # reversal keeps the original's occurred_at (as ledger_reverse does).
    candidates = np.flatnonzero(a["kind"] == ANNOTATION)
    orig = np.sort(rng.choice(candidates, min(reversals, len(candidates)), replace=False))
    reversals = len(orig)
    rev_created = created[orig] + rng.integers(1_200_000_000, 21_600_000_000, reversals)
    rev_pos = np.maximum(np.searchsorted(created, rev_created) - 0.5, orig + 0.5)
    position = np.concatenate([np.arange(base, dtype=float), rev_pos])
    order = np.argsort(position, kind="stable")  # new row -> source row
    where = np.empty_like(order)
    where[order] = np.arange(len(order))  # source row -> new row

    ids = spec.id_base + first + np.arange(len(order))
    cols = {}
    for name in ("kind", "worker", "tier", "backend", "region", "project", "centre"):
        cols[name] = np.concatenate([a[name], a[name][orig]])[order]
    for name in ("tokens_in", "tokens_out", "gpu_ms", "revenue", "cost"):
        cols[name] = np.concatenate([a[name], -a[name][orig]])[order]
    occurred_all = np.concatenate([occurred, occurred[orig]])[order]
    created_all = np.concatenate([created, rev_created])[order]
    reverses = np.concatenate([np.full(base, -1), ids[where[orig]]])[order]

    numbers = (base_first + np.arange(base) + 1).tolist()
    prefix = np.array(KEY_PREFIX, dtype=object)[a["kind"]].tolist()
    keys = [f"{p}:s{spec.seed}:{n}" for p, n in zip(prefix, numbers, strict=True)]
    keys += [f"reversal:{keys[o]}:x" for o in orig.tolist()]
    keys = np.array(keys, dtype=object)[order].tolist()

    kind_text = np.array(KINDS, dtype=object)[cols["kind"]].tolist()
    tier_text = np.array(["\\N", "1", "2", "3", "4", "5"], dtype=object)[cols["tier"]].tolist()
    region_text = _GEN["region_text"][cols["region"]].tolist()
    client_text = _GEN["client_text"][layout.project_client[cols["project"]]].tolist()
    centre_text = _GEN["centre_text"][cols["centre"]].tolist()
    project_text = _GEN["project_text"][cols["project"]].tolist()
    worker_text = _GEN["worker_text"][cols["worker"]].tolist()
    backend_text = _GEN["backend_text"][cols["backend"]].tolist()
    reverses_text = np.where(reverses < 0, "\\N", reverses.astype(str)).astype(object).tolist()
    occurred_text = np.datetime_as_string(occurred_all.astype("datetime64[us]"), unit="us").tolist()
    created_text = np.datetime_as_string(created_all.astype("datetime64[us]"), unit="us").tolist()
    text = "".join(
        [
            f"{i}\t{k}\t{kd}\t{o}Z\t{ti}\t{to}\t{t}\t{r}\t{c}\t{wf}\t{p}\t{w}\t{b}"
            f"\t{rv}e-6\t{co}e-6\t{g}\t{rs}\t{cr}Z\n"
            for i, k, kd, o, ti, to, t, r, c, wf, p, w, b, rv, co, g, rs, cr in zip(
                ids.tolist(),
                keys,
                kind_text,
                occurred_text,
                cols["tokens_in"].tolist(),
                cols["tokens_out"].tolist(),
                tier_text,
                region_text,
                client_text,
                centre_text,
                project_text,
                worker_text,
                backend_text,
                cols["revenue"].tolist(),
                cols["cost"].tolist(),
                cols["gpu_ms"].tolist(),
                reverses_text,
                created_text,
                strict=True,
            )
        ]
    )
    return text.encode(), time.process_time() - cpu


COPY_COLUMNS = (
    "id, idempotency_key, kind, occurred_at, tokens_input, tokens_output, skill_tier, "
    "region_id, client_id, workforce_id, project_id, worker_id, backend_id, revenue, cost, "
    "gpu_ms, reverses_id, created_at"
)


# --- load and rollups --------------------------------------------------------------------


def marker_ensure(cursor) -> None:
    cursor.execute(
        f"""CREATE TABLE IF NOT EXISTS {MARKER} (
            id int PRIMARY KEY DEFAULT 1 CHECK (id = 1),
            rows bigint NOT NULL, seed bigint NOT NULL, start date NOT NULL,
            generator int NOT NULL, loaded_at timestamptz NOT NULL, figures jsonb NOT NULL)"""
    )


def cached(layout: Layout, args) -> dict | None:
    """The marker's figures when the ledger already holds exactly this load, else None."""
    from django.db import connection

    with connection.cursor() as c:
        marker_ensure(c)
        c.execute(f"SELECT rows, seed, start, generator, figures FROM {MARKER}")
        row = c.fetchone()
        if row is None or tuple(row[:4]) != (args.rows, args.seed, args.start, GENERATOR_VERSION):
            return None
        begin, end = window(args.start)
        c.execute(
            f"SELECT count(*) FROM {LEDGER} WHERE client_id = ANY(%s) "
            "AND occurred_at >= %s AND occurred_at < %s",
            [layout.client_id.tolist(), begin, end],
        )
        if c.fetchone()[0] != args.rows:
            return None
    return json.loads(row[4]) if isinstance(row[4], str) else row[4]  # Django loads jsonb as text


def ledger_ddl(cursor) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(unique and foreign-key constraints, other secondary indexes): name, definition."""
    cursor.execute(
        """SELECT conname, pg_get_constraintdef(oid), contype FROM pg_constraint
           WHERE conrelid = %s::regclass AND contype IN ('u', 'f')
           ORDER BY contype DESC, conname""",  # 'u' before 'f' when re-adding
        [LEDGER],
    )
    constraints = [(name, definition) for name, definition, _ in cursor.fetchall()]
    cursor.execute(
        """SELECT c.relname, pg_get_indexdef(i.indexrelid) FROM pg_index i
           JOIN pg_class c ON c.oid = i.indexrelid
           WHERE i.indrelid = %s::regclass AND NOT i.indisprimary
             AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid)
           ORDER BY c.relname""",
        [LEDGER],
    )
    indexes = cursor.fetchall()
    return constraints, indexes


def partitions_for_window(cursor, start: date) -> bool:
    """The load's months (and the posting runs' months after it) each get their
    partition, as ledger_partitions_ensure makes them ahead; False on a plain ledger."""
    from django.conf import settings

    from valuechain import partitions

    if not partitions.is_partitioned(cursor):
        return False
    existing = set(partitions.partitions(cursor))
    month = start
    while month <= partitions.month_add(date.today().replace(day=1), 3):
        if partitions.partition_name(month) not in existing and not partitions.default_holds(
            cursor, month, settings.TIME_ZONE
        ):
            cursor.execute(partitions.partition_create_sql(month, settings.TIME_ZONE))
        month = partitions.month_add(month, 1)
    return True


def watermarks_at_end() -> None:
    """The rollups were just built from the whole ledger: the batcher starts from its end."""
    from django.utils import timezone

    from valuechain.models import LedgerEntry, RollupWatermark
    from valuechain.services import ROLLUPS

    last = LedgerEntry.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
    for spec in ROLLUPS:
        RollupWatermark.objects.update_or_create(
            rollup=spec.model._meta.db_table,
            defaults={
                "applied_id": last,
                "applied_as_of": timezone.now(),
                "pending_id": None,
                "pending_bound": None,
                "pending_at": None,
                "reconciled_id": 0,
            },
        )


def batcher(interval: float, stop, queue) -> None:
    """beat's job during a posting run: rollups_catch_up every `interval` seconds;
    samples the reports' staleness (now - fresh_as_of) every 0.5 s meanwhile, and
    how long after the posters stop the rollups hold every entry."""
    _common.django_setup()
    from config.celery_app import _forget_inherited_connections

    _forget_inherited_connections()
    from django.utils import timezone

    from valuechain.models import LedgerEntry
    from valuechain.selectors import rollups_fresh_as_of
    from valuechain.services import rollups_catch_up

    lags, runs, applied = [], [], 0
    next_run = time.perf_counter()
    while not stop.is_set():
        if time.perf_counter() >= next_run:
            t = time.perf_counter()
            applied += sum(rollups_catch_up().values())
            runs.append(time.perf_counter() - t)
            next_run = t + interval
        fresh = rollups_fresh_as_of()
        lags.append((timezone.now() - fresh).total_seconds() if fresh else float("nan"))
        time.sleep(0.5)
    stopped = time.perf_counter()
    last = LedgerEntry.objects.order_by("-pk").values_list("pk", flat=True).first()
    from valuechain.models import RollupWatermark

    while RollupWatermark.objects.filter(applied_id__lt=last).exists():
        applied += sum(rollups_catch_up().values())
        time.sleep(0.2)
    queue.put(
        {
            "lags": lags,
            "runs": runs,
            "applied_ids": applied,
            "drain_s": time.perf_counter() - stopped,
        }
    )


def load(layout: Layout, args, gen_procs: int) -> dict:
    """Replace this benchmark's ledger rows with a fresh deterministic load (one transaction)."""
    from django.db import connection, transaction

    figures: dict = {}
    mine = layout.client_id.tolist()
    started = time.perf_counter()
    with transaction.atomic(), connection.cursor() as c:
        c.execute("SET LOCAL maintenance_work_mem = '1GB'")
        c.execute("SET LOCAL max_parallel_maintenance_workers = 2")
        c.execute(f"LOCK TABLE {LEDGER} IN ACCESS EXCLUSIVE MODE")
        c.execute(f"SELECT EXISTS (SELECT 1 FROM {LEDGER} WHERE client_id <> ALL(%s))", [mine])
        others = c.fetchone()[0]
        t = time.perf_counter()
        if others:  # someone else's rows: delete ours only, keep theirs
            c.execute("SET LOCAL session_replication_role = replica")
            c.execute(f"DELETE FROM {LEDGER} WHERE client_id = ANY(%s)", [mine])
            c.execute("SET LOCAL session_replication_role = DEFAULT")
            c.execute(f"SELECT coalesce(max(id), 0) + 1 FROM {LEDGER}")
            id_base = c.fetchone()[0]
        else:
            c.execute(f"TRUNCATE {LEDGER}, {KEYS}")
            c.execute(f"ALTER SEQUENCE {SEQUENCE} RESTART")
            id_base = 1
        figures["clear_s"] = time.perf_counter() - t
        partitioned = partitions_for_window(c, args.start)

        constraints, indexes = ledger_ddl(c)
        t = time.perf_counter()
        for name, _definition in reversed(constraints):  # foreign keys first
            c.execute(f'ALTER TABLE {LEDGER} DROP CONSTRAINT "{name}"')
        for name, _definition in indexes:
            c.execute(f'DROP INDEX "{name}"')
        figures["drop_s"] = time.perf_counter() - t

        spec = LoadSpec(rows=args.rows, seed=args.seed, start=args.start, id_base=id_base)
        plan = chunk_plan(args.rows)
        _GEN.update(
            layout=layout,
            spec=spec,
            plan=plan,
            cdf=hour_cdf(args.start),
            base_total=sum(size - int(size * REVERSAL_SHARE) for _f, size, _b in plan),
            region_text=np.array(
                [
                    str(i)
                    for i in range(max(layout.centre_region.max(), layout.backend_region.max()) + 1)
                ],
                dtype=object,
            ),
            client_text=lookup(layout.client_id),
            centre_text=lookup(layout.centre_id),
            project_text=lookup(layout.project_id),
            worker_text=lookup(layout.worker_id),
            backend_text=lookup(layout.backend_id),
        )
        # Truncated in this transaction; PostgreSQL refuses FREEZE on a partitioned table.
        freeze = "" if others or partitioned else " (FREEZE)"
        t = time.perf_counter()
        gen_cpu = 0.0
        copied = 0
        with (
            multiprocessing.get_context("fork").Pool(gen_procs) as pool,
            c.copy(f"COPY {LEDGER} ({COPY_COLUMNS}) FROM STDIN{freeze}") as copy,
        ):
            for data, cpu in pool.imap(chunk_text, range(len(plan))):
                copy.write(data)
                gen_cpu += cpu
                copied += 1
                if copied % 10 == 0 or copied == len(plan):
                    done = min(copied * CHUNK, args.rows)
                    rate = done / (time.perf_counter() - t)
                    print(f"  copied {done:,} rows ({rate:,.0f} rows/s)", flush=True)
        figures["copy_s"] = time.perf_counter() - t
        figures["generate_cpu_s"] = gen_cpu
        # Every key once across the months, as posting writes it (valuechain_ledgerkey).
        t = time.perf_counter()
        c.execute(
            f"INSERT INTO {KEYS} (idempotency_key, entry_id, occurred_at) "
            f"SELECT idempotency_key, id, occurred_at FROM {LEDGER} WHERE id >= %s "
            "ON CONFLICT DO NOTHING",
            [id_base],
        )
        figures["keys_s"] = time.perf_counter() - t

        t = time.perf_counter()
        for _name, definition in indexes:
            c.execute(definition)
        figures["indexes_s"] = time.perf_counter() - t
        t = time.perf_counter()
        for name, definition in constraints:  # unique first, then foreign keys (validated)
            c.execute(f'ALTER TABLE {LEDGER} ADD CONSTRAINT "{name}" {definition}')
        figures["constraints_s"] = time.perf_counter() - t
        c.execute(f"SELECT setval('{SEQUENCE}', (SELECT max(id) FROM {LEDGER}))")
        t = time.perf_counter()
    figures["commit_s"] = time.perf_counter() - t
    figures["load_s"] = time.perf_counter() - started
    t = time.perf_counter()
    _common.vacuum_analyze(LEDGER)
    figures["vacuum_analyze_s"] = time.perf_counter() - t
    figures["id_base"] = id_base
    return figures


def truth_queryset(spec, extra=None):
    """The GROUP BY that valuechain.services._rollup_truth runs, as a queryset."""
    from django.db.models import Case, Q, Sum, Value, When

    from valuechain.models import LedgerEntry

    sums = {
        name: Sum(Case(When(reverses__isnull=True, then=Value(1)), default=Value(-1)))
        if name == "entries"
        else Sum(name)
        for name in spec.sums
    }
    return (
        LedgerEntry.objects.filter(spec.ledger_filter, extra or Q())
        .annotate(**{f"k_{name}": expr for name, expr in spec.key_exprs.items()})
        .values(*(f"k_{name}" for name in spec.key_fields))
        .annotate(**{f"s_{name}": expr for name, expr in sums.items()})
        .order_by()
    )


def since_filter(spec, since: date | None):
    """(ledger filter, rollup filter) for the rollup keys from `since` on (its month for a
    monthly table), or everything when since is None or the table has no time key."""
    from django.db.models import Q

    first = spec.key_fields[0]
    if since is None or first not in ("day", "month"):
        return Q(), Q()
    if first == "month":
        since = since.replace(day=1)
    moment = datetime(since.year, since.month, since.day, tzinfo=ZoneInfo(TIME_ZONE))
    return Q(occurred_at__gte=moment), Q(**{f"{first}__gte": since})


def rollups_build(since: date | None = None) -> dict:
    """Rollup rows rebuilt from the ledger, one DELETE and one INSERT ... SELECT ... GROUP BY
    per table of valuechain.services.ROLLUPS, writers to the ledger locked out meanwhile:
    every key, or the keys from `since` on."""
    from django.db import connection, transaction

    from valuechain.services import ROLLUPS

    figures = {}
    with transaction.atomic(), connection.cursor() as c:
        c.execute("SET LOCAL work_mem = '256MB'")
        c.execute(f"LOCK TABLE {LEDGER} IN SHARE MODE")
        for spec in ROLLUPS:
            table = spec.model._meta.db_table
            t = time.perf_counter()
            ledger_q, rollup_q = since_filter(spec, since)
            spec.model.objects.filter(rollup_q).delete()
            sql, params = truth_queryset(spec, ledger_q).query.sql_with_params()
            columns = (*spec.key_fields, *spec.sums)
            c.execute(
                f"INSERT INTO {table} ({', '.join(columns)}) SELECT "
                + ", ".join([f"t.k_{f}" for f in spec.key_fields] + [f"t.s_{f}" for f in spec.sums])
                + f" FROM ({sql}) AS t",
                params,
            )
            figures[table] = {"rows": c.rowcount, "s": time.perf_counter() - t}
    for spec in ROLLUPS:
        _common.vacuum_analyze(spec.model._meta.db_table)
    return figures


def marker_write(args, figures: dict) -> None:
    from django.db import connection

    with connection.cursor() as c:
        marker_ensure(c)
        c.execute(f"DELETE FROM {MARKER}")
        c.execute(
            f"INSERT INTO {MARKER} (rows, seed, start, generator, loaded_at, figures) "
            "VALUES (%s, %s, %s, %s, now(), %s)",
            [args.rows, args.seed, args.start, GENERATOR_VERSION, json.dumps(figures)],
        )


def marker_clear() -> None:
    from django.db import connection

    with connection.cursor() as c:
        marker_ensure(c)
        c.execute(f"DELETE FROM {MARKER}")


def ledger_stats(layout: Layout) -> dict:
    from django.db import connection

    with connection.cursor() as c:
        c.execute(
            f"""SELECT count(*), count(*) FILTER (WHERE reverses_id IS NOT NULL),
                       count(*) FILTER (WHERE kind = 'annotation'),
                       count(*) FILTER (WHERE kind = 'review'),
                       count(*) FILTER (WHERE kind = 'inference'),
                       count(*) FILTER (WHERE kind = 'fine_tuning'),
                       min(occurred_at), max(occurred_at), count(DISTINCT region_id)
                FROM {LEDGER}"""
        )
        total, reversals, ann, rev, inf, ft, first, last, regions = c.fetchone()
        c.execute(
            "SELECT pg_total_relation_size(%s), pg_relation_size(%s), "
            "pg_database_size(current_database())",
            [LEDGER, LEDGER],
        )
        total_bytes, heap_bytes, db_bytes = c.fetchone()
    return {
        "rows": total,
        "reversals": reversals,
        "mix": {"annotation": ann, "review": rev, "inference": inf, "fine_tuning": ft},
        "first": first.isoformat(),
        "last": last.isoformat(),
        "regions": regions,
        "table_gib": total_bytes / 2**30,
        "heap_gib": heap_bytes / 2**30,
        "database_gib": db_bytes / 2**30,
    }


# --- reconcile -------------------------------------------------------------------------


def reconcile_timed() -> dict:
    """rollups_reconcile(full=True) as `manage.py reconcile --full` calls it, with its SQL
    captured."""
    from django.db import connection

    from valuechain.services import rollups_reconcile

    queries = []

    def capture(execute, sql, params, many, context):
        # Server-side cursors (iterator()) run at fetch, not here: keep the SQL only.
        queries.append((sql, params))
        return execute(sql, params, many, context)

    rss = _common.peak_rss_mib()
    cpu = time.process_time()
    started = time.perf_counter()
    with connection.execute_wrapper(capture):
        result = rollups_reconcile(full=True)
    seconds = time.perf_counter() - started
    return {
        "seconds": seconds,
        "python_cpu_s": time.process_time() - cpu,
        "keys": result["keys"],
        "differences": len(result["differences"]),
        "sample": result["differences"][:5],
        "peak_rss_mib": _common.peak_rss_mib(),
        "rss_before_mib": rss,
        "queries": queries,
    }


def explain(queries) -> list[str]:
    """EXPLAIN (ANALYZE, BUFFERS) of the GROUP BY queries reconcile ran, parallel off."""
    from django.db import connection, transaction

    out = []
    for sql, params in queries:
        if "GROUP BY" not in sql:
            continue
        with transaction.atomic(), connection.cursor() as c:
            # As under iterator()'s server-side cursor, which cannot use parallel workers.
            c.execute("SET LOCAL max_parallel_workers_per_gather = 0")
            c.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql, params)
            plan = [row[0] for row in c.fetchall()]
        out.append(sql[:160] + " ...\n    " + "\n    ".join(plan))
    return out


def sql_reconcile(work_mem: str | None) -> dict:
    """The proposed reconcile: differences found by PostgreSQL (a plain, parallel-capable
    statement per table), only differing keys sent to Python."""
    from django.db import connection, transaction

    from valuechain.services import ROLLUPS

    figures = {"keys": 0, "differences": 0, "tables": {}}
    started = time.perf_counter()
    with transaction.atomic(), connection.cursor() as c:
        if work_mem:
            c.execute(f"SET LOCAL work_mem = '{work_mem}'")
        for spec in ROLLUPS:
            t = time.perf_counter()
            sql, params = differences_sql(spec)
            c.execute(sql, params)
            rows = c.fetchall()
            keys = rows[0][-1] if rows else 0
            differing = sum(1 for row in rows if row[0] is not None)
            figures["keys"] += keys
            figures["differences"] += differing
            figures["tables"][spec.model._meta.db_table] = time.perf_counter() - t
    figures["seconds"] = time.perf_counter() - started
    return figures


def differences_sql(spec) -> tuple[str, list]:
    """One statement: the ledger's truth FULL JOIN the rollup table, differing keys only,
    plus the number of keys compared (in every row; one all-NULL row when none differ)."""
    table = spec.model._meta.db_table
    truth, params = truth_queryset(spec).query.sql_with_params()
    on = " AND ".join(f"t.k_{f} = r.{f}" for f in spec.key_fields)
    differs = " OR ".join(
        f"coalesce(t.s_{f}, 0) <> coalesce(r.{f}, 0)" for f in spec.sums
    )  # a missing key is all zeros on its side, as _rollup_reconcile reads it
    keys = ", ".join(f"coalesce(t.k_{f}, r.{f}) AS {f}" for f in spec.key_fields)
    sums = ", ".join(f"t.s_{f} AS expected_{f}, r.{f} AS actual_{f}" for f in spec.sums)
    sql = f"""
        WITH t AS ({truth}),
             j AS (SELECT {keys}, {sums}, ({differs}) AS differs
                   FROM t FULL JOIN {table} r ON {on}),
             n AS (SELECT count(*) AS keys FROM j)
        SELECT d.*, n.keys FROM n LEFT JOIN (SELECT * FROM j WHERE differs) d ON true"""
    return sql, params


# --- posting ---------------------------------------------------------------------------


def entries(layout: Layout, rng: np.random.Generator, n: int, key: str) -> list[dict]:
    """n realistic new entries, occurred in the last minute, for ledger_post_many."""
    a = draw(layout, rng, n)
    now = datetime.now(UTC)
    ago = rng.integers(0, 60_000_000, n).tolist()
    kind = a["kind"].tolist()
    worker = a["worker"].tolist()
    backend = a["backend"].tolist()
    tier = a["tier"].tolist()
    project = a["project"].tolist()
    out = []
    for i in range(n):
        p = project[i]
        out.append(
            {
                "idempotency_key": f"{KEY_PREFIX[kind[i]]}:{key}:{i}",
                "kind": KINDS[kind[i]],
                "occurred_at": now - timedelta(microseconds=ago[i]),
                "tokens_input": int(a["tokens_in"][i]),
                "tokens_output": int(a["tokens_out"][i]),
                "gpu_ms": int(a["gpu_ms"][i]),
                "skill_tier": tier[i] or None,
                "region_id": int(a["region"][i]),
                "client_id": int(layout.client_id[layout.project_client[p]]),
                "workforce_id": int(layout.centre_id[layout.project_centre[p]]),
                "project_id": int(layout.project_id[p]),
                "worker_id": int(layout.worker_id[worker[i]]) if worker[i] >= 0 else None,
                "backend_id": int(layout.backend_id[backend[i]]) if backend[i] >= 0 else None,
                "revenue": Decimal(int(a["revenue"][i])).scaleb(-6),
                "cost": Decimal(int(a["cost"][i])).scaleb(-6),
            }
        )
    return out


def poster(layout, args, run: str, proc: int, batch: int, seconds: float, barrier, queue):
    """One posting process: batches of new entries through ledger_post_many until the
    deadline; reports batch latencies, rows and CPU."""
    _common.django_setup()
    from config.celery_app import _forget_inherited_connections

    _forget_inherited_connections()
    from django.db import connection, transaction

    from valuechain.services import ledger_post_many

    connection.ensure_connection()
    rng = np.random.default_rng([args.seed, 7, proc, batch])
    profiler = None
    if args.profile and proc == 0:
        import cProfile

        profiler = cProfile.Profile()
    latencies, rows, generate_s, n = [], 0, 0.0, 0
    barrier.wait()
    started = time.perf_counter()
    cpu = time.process_time()
    deadline = started + seconds
    while time.perf_counter() < deadline:
        t = time.perf_counter()
        todo = entries(layout, rng, batch, f"{run}-{proc}-{n}")
        generate_s += time.perf_counter() - t
        t = time.perf_counter()
        if profiler:
            profiler.enable()
        with transaction.atomic():
            posted = ledger_post_many(todo)
        if profiler:
            profiler.disable()
        latencies.append(time.perf_counter() - t)
        rows += posted
        n += 1
    elapsed = time.perf_counter() - started
    profile_text = ""
    if profiler:
        import io
        import pstats

        buffer = io.StringIO()
        pstats.Stats(profiler, stream=buffer).sort_stats("tottime").print_stats(25)
        profile_text = buffer.getvalue()
    queue.put(
        {
            "latencies": latencies,
            "rows": rows,
            "elapsed": elapsed,
            "cpu": time.process_time() - cpu,
            "generate_s": generate_s,
            "profile": profile_text,
        }
    )


def posting_run(layout, args, batch: int, procs: int) -> dict:
    from django.db import connections

    ctx = multiprocessing.get_context("fork")
    queue, barrier = ctx.Queue(), ctx.Barrier(procs + 1)
    run = f"post{int(time.time())}b{batch}p{procs}"
    connections.close_all()
    pg_cpu_before = postgres_cpu()
    processes = [
        ctx.Process(
            target=poster,
            args=(layout, args, run, proc, batch, args.post_seconds, barrier, queue),
        )
        for proc in range(procs)
    ]
    stop, lag_queue = ctx.Event(), ctx.Queue()
    batcher_process = ctx.Process(target=batcher, args=(args.batcher_interval, stop, lag_queue))
    batcher_process.start()
    for process in processes:
        process.start()
    barrier.wait()
    started = time.perf_counter()
    results = [queue.get() for _ in processes]
    wall = time.perf_counter() - started
    stop.set()
    lag = lag_queue.get()
    batcher_process.join()
    for process in processes:
        process.join()
        if process.exitcode:
            sys.exit(f"a posting process failed (exit code {process.exitcode})")
    pg_cpu = postgres_cpu() - pg_cpu_before
    latencies = np.array([x for r in results for x in r["latencies"]]) * 1000
    rows = sum(r["rows"] for r in results)
    return {
        "batch": batch,
        "procs": procs,
        "rows": rows,
        "batches": len(latencies),
        "wall_s": wall,
        "rows_per_s": rows / wall,
        "p50_ms": float(np.percentile(latencies, 50)),
        "p99_ms": float(np.percentile(latencies, 99)),
        "max_ms": float(latencies.max()),
        "python_cpu_s": sum(r["cpu"] for r in results),
        "generate_s": sum(r["generate_s"] for r in results),
        "postgres_cpu_s": pg_cpu,
        "profile": "".join(r["profile"] for r in results),
        "lag_p50_s": float(np.nanpercentile(lag["lags"], 50)),
        "lag_p95_s": float(np.nanpercentile(lag["lags"], 95)),
        "lag_max_s": float(np.nanmax(lag["lags"])),
        "catch_up_runs": len(lag["runs"]),
        "catch_up_p50_s": float(np.percentile(lag["runs"], 50)) if lag["runs"] else 0.0,
        "catch_up_max_s": float(max(lag["runs"], default=0.0)),
        "drain_s": lag["drain_s"],
    }


def postgres_cpu() -> float:
    """CPU seconds used so far by all postgres processes (utime + stime, from /proc)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if (entry / "comm").read_text().strip() != "postgres":
                continue
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12]) + int(fields[13]) + int(fields[14])
        except (OSError, IndexError, ValueError):
            continue
    return total / tick


def touched_check(since_day: date) -> dict:
    """Every rollup key from since_day (its month for monthly rollups) recomputed from the
    ledger and compared: the rollups the posting run wrote, and their neighbours."""
    from valuechain.services import ROLLUPS

    started = time.perf_counter()
    keys, differences = 0, []
    for spec in ROLLUPS:
        ledger_q, rollup_q = since_filter(spec, since_day)
        truth = {
            tuple(row[f"k_{f}"] for f in spec.key_fields): row
            for row in truth_queryset(spec, ledger_q).iterator(chunk_size=20_000)
        }
        stored = {
            tuple(row[f] for f in spec.key_fields): row
            for row in spec.model.objects.filter(rollup_q).values().iterator(chunk_size=20_000)
        }
        for key in truth.keys() | stored.keys():
            keys += 1
            expected, actual = truth.get(key, {}), stored.get(key, {})
            if any(
                Decimal(expected.get(f"s_{f}") or 0) != Decimal(actual.get(f) or 0)
                for f in spec.sums
            ):
                differences.append({"table": spec.model._meta.db_table, "key": str(key)})
    return {"keys": keys, "differences": differences, "seconds": time.perf_counter() - started}


def posted_remove(layout: Layout, args) -> float:
    """Drop the posting runs' rows (all after the loaded window) and rebuild the rollup keys
    from the window's end on, so the load's cache stays valid."""
    from django.db import connection, transaction

    from valuechain.services import ROLLUPS

    started = time.perf_counter()
    _begin, end = window(args.start)
    with transaction.atomic(), connection.cursor() as c:
        c.execute("SET LOCAL session_replication_role = replica")  # bench-only
        c.execute(
            f"DELETE FROM {LEDGER} WHERE client_id = ANY(%s) AND occurred_at >= %s",
            [layout.client_id.tolist(), end],
        )
        c.execute(f"DELETE FROM {KEYS} WHERE occurred_at >= %s", [end])
    rollups_build(since=end.date())
    _common.vacuum_analyze(LEDGER, *(spec.model._meta.db_table for spec in ROLLUPS))
    return time.perf_counter() - started


# --- main ------------------------------------------------------------------------------


def first_of_month(text: str) -> date:
    value = date.fromisoformat(text)
    if value.day != 1:
        raise argparse.ArgumentTypeError("--start must be the first day of a month")
    return value


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--start", type=first_of_month, default=date(2025, 11, 1), help="first day of 12 months"
    )
    parser.add_argument("--reload", action="store_true", help="load even when cached")
    parser.add_argument("--gen-procs", type=int, default=1, help="COPY text generator processes")
    parser.add_argument("--post-seconds", type=float, default=60)
    parser.add_argument("--batches", default="500,2000", help="posting batch sizes")
    parser.add_argument("--procs", default="1,2", help="concurrent posting processes")
    parser.add_argument("--skip-posting", action="store_true")
    parser.add_argument(
        "--batcher-interval", type=float, default=5.0, help="seconds between catch-ups (beat: 5)"
    )
    parser.add_argument("--keep-posted", action="store_true", help="leave posted rows in place")
    parser.add_argument(
        "--explain", action="store_true", help="EXPLAIN ANALYZE reconcile's queries"
    )
    parser.add_argument(
        "--sql-reconcile",
        default="",
        help="also time the proposed SQL-side reconcile with these work_mem values "
        "(comma-separated, 'default' for the server's)",
    )
    parser.add_argument("--profile", action="store_true", help="cProfile posting process 0")
    parser.add_argument(
        "--skip-reconcile", action="store_true", help="no full reconcile (for profiling posting)"
    )
    args = parser.parse_args()

    migrate_s = ensure_database()
    _common.django_setup()
    from django.conf import settings

    if settings.TIME_ZONE != TIME_ZONE:
        sys.exit(f"expected TIME_ZONE {TIME_ZONE}, found {settings.TIME_ZONE}")
    _common.print_header("Token ledger at scale: load, reconcile, posting")
    print(f"migrate (when needed) and checks: {migrate_s:.1f} s", flush=True)

    layout = ensure_fixture()
    _begin, end = window(args.start)
    figures = None if args.reload else cached(layout, args)
    load_figures, build_figures, was_cached = figures, None, figures is not None
    if figures is None:
        free = os.statvfs("/work")
        free_gib = free.f_bavail * free.f_frsize / 2**30
        print(f"loading {args.rows:,} rows (seed {args.seed}); {free_gib:.0f} GiB free", flush=True)
        marker_clear()
        load_figures = load(layout, args, args.gen_procs)
        print(f"  load: {json.dumps(load_figures, default=str)}", flush=True)
        t = time.perf_counter()
        build_figures = rollups_build()
        build_s = time.perf_counter() - t
        load_figures["rollups_build_s"] = build_s
        load_figures["rollups"] = build_figures
        watermarks_at_end()
        marker_write(args, load_figures)
    else:
        print("ledger already holds this load (marker matches): not reloading", flush=True)
    stats = ledger_stats(layout)
    print(f"ledger: {json.dumps(stats)}", flush=True)

    rec = None
    if not args.skip_reconcile:
        print("reconcile over the full ledger ...", flush=True)
        rec = reconcile_timed()
        print(
            f"  {rec['keys']:,} keys, {rec['differences']} differences, {rec['seconds']:.1f} s",
            flush=True,
        )
        for difference in rec["sample"]:
            print("  difference:", json.dumps(difference, default=str, ensure_ascii=False))
    plans = explain(rec["queries"]) if rec and args.explain else []
    sql_runs = []
    for work_mem in filter(None, args.sql_reconcile.split(",")):
        sql_runs.append((work_mem, sql_reconcile(None if work_mem == "default" else work_mem)))

    posting, check, removed_s = [], None, None
    if not args.skip_posting:
        if datetime.now(ZoneInfo(TIME_ZONE)) < end:
            sys.exit("posting writes 'now', which must be after the loaded window: use --start")
        since_day = datetime.now(ZoneInfo(TIME_ZONE)).date()
        for batch in (int(b) for b in args.batches.split(",")):
            for procs in (int(p) for p in args.procs.split(",")):
                print(f"posting: batch {batch}, {procs} process(es), {args.post_seconds:.0f} s")
                result = posting_run(layout, args, batch, procs)
                print(
                    f"  {result['rows_per_s']:,.0f} rows/s, p50 {result['p50_ms']:.0f} ms, "
                    f"p99 {result['p99_ms']:.0f} ms; rollup lag p50 {result['lag_p50_s']:.1f} s, "
                    f"p95 {result['lag_p95_s']:.1f} s, max {result['lag_max_s']:.1f} s; "
                    f"{result['catch_up_runs']} catch-ups (p50 {result['catch_up_p50_s']:.2f} s, "
                    f"max {result['catch_up_max_s']:.2f} s); all applied "
                    f"{result['drain_s']:.1f} s after posting stopped",
                    flush=True,
                )
                posting.append(result)
        from django.db import connections

        connections.close_all()
        check = touched_check(since_day)
        print(
            f"  touched-day check: {check['keys']:,} keys, {len(check['differences'])} differences",
            flush=True,
        )
        from valuechain.services import rollups_reconcile

        t = time.perf_counter()
        routine = rollups_reconcile()  # what `manage.py reconcile` runs: new months only
        check["routine_reconcile_s"] = time.perf_counter() - t
        check["routine_reconcile_keys"] = routine["keys"]
        check["routine_reconcile_differences"] = len(routine["differences"])
        print(
            f"  routine reconcile (months posted to since the full one): {routine['keys']:,} "
            f"keys, {len(routine['differences'])} differences, "
            f"{check['routine_reconcile_s']:.1f} s",
            flush=True,
        )
        if not args.keep_posted:
            removed_s = posted_remove(layout, args)
            watermarks_at_end()

    # --- summary ---
    m = _common.machine()
    print()
    print("## Summary: token ledger at scale")
    print(f"command: {_common.command_line()}")
    print(
        f"machine: {m['nproc']} cores, {m['cpu']}, {m['ram_gib']} GiB RAM, "
        f"PostgreSQL {m['postgresql']}, Python {m['python']}; load average now "
        f"{_common.load_average()}"
    )
    print(
        f"ledger: {stats['rows']:,} rows ({stats['reversals']:,} reversals), "
        f"{stats['first'][:10]} .. {stats['last'][:10]}, {stats['regions']} regions; "
        f"mix {stats['mix']}; table {stats['table_gib']:.2f} GiB "
        f"(heap {stats['heap_gib']:.2f}), database {stats['database_gib']:.2f} GiB"
    )
    lf = load_figures
    origin = "cached from an earlier run" if was_cached else "this run"
    print(
        f"load ({origin}): {lf['load_s']:.1f} s in one transaction "
        f"= {args.rows / lf['load_s']:,.0f} rows/s; COPY {lf['copy_s']:.1f} s "
        f"({args.rows / lf['copy_s']:,.0f} rows/s; generator CPU {lf['generate_cpu_s']:.1f} s), "
        f"indexes {lf['indexes_s']:.1f} s, constraints {lf['constraints_s']:.1f} s, "
        f"commit {lf['commit_s']:.1f} s; VACUUM ANALYZE {lf['vacuum_analyze_s']:.1f} s"
    )
    rb = lf["rollups"]
    print(
        f"rollups built in SQL: {lf['rollups_build_s']:.1f} s ("
        + ", ".join(f"{t} {v['rows']:,} rows {v['s']:.1f} s" for t, v in rb.items())
        + ")"
    )
    if rec:
        print(
            f"reconcile (rollups_reconcile): {rec['seconds']:.1f} s, {rec['keys']:,} keys, "
            f"{rec['differences']} differences; Python CPU {rec['python_cpu_s']:.1f} s; "
            f"peak RSS {rec['peak_rss_mib']:.0f} MiB (before {rec['rss_before_mib']:.0f}); "
            f"target < 60 s: {'met' if rec['seconds'] < 60 else 'NOT met'}"
        )
    for work_mem, run in sql_runs:
        print(
            f"proposed SQL-side reconcile (work_mem {work_mem}): {run['seconds']:.1f} s, "
            f"{run['keys']:,} keys, {run['differences']} differences; "
            + ", ".join(f"{t} {s:.1f} s" for t, s in run["tables"].items())
        )
    if posting:
        _common.print_table(
            [
                "batch",
                "procs",
                "rows",
                "batches",
                "rows/s",
                "p50 ms",
                "p99 ms",
                "max ms",
                "py CPU s",
                "pg CPU s",
                "gen s",
            ],
            [
                [
                    r["batch"],
                    r["procs"],
                    f"{r['rows']:,}",
                    r["batches"],
                    f"{r['rows_per_s']:,.0f}",
                    f"{r['p50_ms']:.0f}",
                    f"{r['p99_ms']:.0f}",
                    f"{r['max_ms']:.0f}",
                    f"{r['python_cpu_s']:.1f}",
                    f"{r['postgres_cpu_s']:.1f}",
                    f"{r['generate_s']:.1f}",
                ]
                for r in posting
            ],
        )
        print(
            f"posting target 5,000 rows/s: best {max(r['rows_per_s'] for r in posting):,.0f} "
            f"rows/s; rollups after posting ({check['keys']:,} keys of the touched day/month): "
            f"{len(check['differences'])} differences ({check['seconds']:.1f} s)"
            + (f"; posted rows removed in {removed_s:.1f} s" if removed_s is not None else "")
        )
    for plan in plans:
        print("\nEXPLAIN (ANALYZE, BUFFERS), parallel workers off:", plan)
    for r in posting:
        if r["profile"]:
            print(f"\ncProfile, batch {r['batch']}, process 0 of {r['procs']}:\n{r['profile']}")
    print(f"peak RSS of this process: {_common.peak_rss_mib():.0f} MiB")
    bad = (rec and rec["differences"]) or (check and check["differences"])
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
