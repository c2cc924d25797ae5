"""The batcher (rollups_catch_up), reconcile above the watermark, and the ledger's
monthly partitions (PostgreSQL)."""

import itertools
import threading
from datetime import date, datetime
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.db import DatabaseError, connection, connections, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from tenants.models import Organization, Region
from tests.factories import OrganizationFactory, UserFactory
from valuechain import partitions
from valuechain.models import LedgerEntry, LedgerKey, RollupWatermark
from valuechain.selectors import project_statement, rollups_fresh_as_of
from valuechain.services import (
    ROLLUPS,
    ledger_partition_detach,
    ledger_partitions_ensure,
    ledger_post,
    ledger_post_many,
    ledger_reverse,
    rollups_catch_up,
    rollups_reconcile,
)

pytestmark = pytest.mark.django_db
KEYS = itertools.count()
ROLLUP_TABLES = {spec.model._meta.db_table for spec in ROLLUPS}


class BatcherCrash(Exception):
    pass


@pytest.fixture
def parties():
    client = OrganizationFactory(kind=Organization.Kind.CLIENT)
    centre = OrganizationFactory(kind=Organization.Kind.WORKFORCE)
    return client, centre, Region.objects.get(code="520100"), UserFactory()


def fields(parties, n: int, *, at=None) -> dict:
    client, centre, region, worker = parties
    machine = n % 3 == 0
    return {
        "idempotency_key": f"burst:{next(KEYS)}",
        "kind": "inference" if machine else ("annotation" if n % 3 == 1 else "review"),
        "occurred_at": at or timezone.now() - timezone.timedelta(days=n % 40),
        "region_id": region.pk,
        "client_id": client.pk,
        "workforce_id": None if machine else centre.pk,
        "worker_id": None if machine else worker.pk,
        "backend_id": 7 if machine else None,
        "skill_tier": None if machine else 1 + n % 5,
        "tokens_input": 100 + n,
        "tokens_output": n % 7,
        "gpu_ms": 250 if machine else 0,
        "revenue": Decimal("0.000137") * (n + 1),
        "cost": Decimal("0.000071") * (n + 1),
    }


def burst(parties, count: int) -> None:
    """Singles, batches (with a repeated key) and reversals, over two months."""
    posted = [ledger_post(**fields(parties, n)).entry for n in range(count // 2)]
    batch = [fields(parties, n) for n in range(count // 2, count)]
    ledger_post_many([*batch, batch[0]])
    for entry in posted[::5]:
        ledger_reverse(entry=entry, reason_key="rejected")


def assert_rollups_equal_a_recomputation() -> None:
    result = rollups_reconcile(full=True)
    assert result["differences"] == [] and result["keys"] > 0
    last = LedgerEntry.objects.order_by("-pk").values_list("pk", flat=True).first()
    marks = RollupWatermark.objects.filter(rollup__in=ROLLUP_TABLES)
    assert {m.applied_id for m in marks} == {last}


def test_posting_writes_no_rollup_row_the_batcher_does(parties):
    with CaptureQueriesContext(connection) as posting:
        ledger_post(**fields(parties, 1))
        ledger_post_many([fields(parties, n) for n in range(2, 6)])
    assert not any(table in q["sql"] for q in posting for table in ROLLUP_TABLES)
    assert all(spec.model.objects.count() == 0 for spec in ROLLUPS)
    rollups_catch_up()
    assert_rollups_equal_a_recomputation()


def test_rollups_catch_up_exactly_after_a_burst_in_small_steps(parties):
    burst(parties, 120)
    steps = []
    applied = rollups_catch_up(span=7, step=lambda spec, hi: steps.append(hi))
    assert len(steps) > 4 * 10  # many transactions per table
    assert set(applied) == ROLLUP_TABLES
    assert_rollups_equal_a_recomputation()
    # Running again adds nothing (applied once, never twice).
    assert set(rollups_catch_up().values()) == {0}
    assert_rollups_equal_a_recomputation()


def test_rollups_catch_up_exactly_after_the_batcher_crashes_mid_batch(parties):
    burst(parties, 60)
    done = []

    def crash_on_the_third_step(spec, hi):
        done.append(hi)
        if len(done) == 3:
            raise BatcherCrash

    with pytest.raises(BatcherCrash):
        rollups_catch_up(span=5, step=crash_on_the_third_step)
    # Each table stands exactly at its watermark: what it holds equals the ledger up to there.
    marks = dict(RollupWatermark.objects.values_list("rollup", "applied_id"))
    ids = list(LedgerEntry.objects.order_by("pk").values_list("pk", flat=True))
    assert ids[0] <= marks[ROLLUPS[0].model._meta.db_table] < ids[-1]  # stopped mid-burst
    assert rollups_reconcile(full=True)["differences"] == []
    # A crash inside a step (the upsert done, the watermark not) rolls the step back.
    with pytest.raises(BatcherCrash), transaction.atomic():
        rollups_catch_up(span=5)
        raise BatcherCrash
    rollups_catch_up()
    assert_rollups_equal_a_recomputation()


def test_reports_say_how_fresh_the_rollups_are(parties):
    before = timezone.now()
    ledger_post(**fields(parties, 1))
    rollups_catch_up()
    assert rollups_fresh_as_of() >= before


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_an_entry_committed_after_a_higher_id_is_not_skipped(parties):
    """A poster draws a lower id and commits after one with a higher id: the
    batcher must not move its watermark past the open one."""
    drawn, release, done = threading.Event(), threading.Event(), threading.Event()
    slow = {}

    def slow_poster():
        try:
            with transaction.atomic():
                slow["id"] = ledger_post(**fields(parties, 1)).entry.pk
                drawn.set()
                release.wait(30)
        finally:
            connections.close_all()
            done.set()

    thread = threading.Thread(target=slow_poster)
    thread.start()
    assert drawn.wait(30)
    fast = ledger_post(**fields(parties, 2)).entry.pk
    assert fast > slow["id"]
    rollups_catch_up()
    marks = RollupWatermark.objects.filter(rollup__in=ROLLUP_TABLES)
    assert all(m.applied_id < slow["id"] for m in marks)  # the open entry holds them back
    release.set()
    thread.join()
    rollups_catch_up()  # the horizon taken while the slow one was open has settled
    rollups_catch_up()
    assert_rollups_equal_a_recomputation()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_posters_take_no_lock_on_any_rollup(parties):
    """Posters hold their transactions open; none of them holds or waits for a
    lock on a rollup table, and none waits for another."""
    holding, release = threading.Barrier(5), threading.Event()
    pids = []

    def poster(n):
        try:
            with transaction.atomic():
                ledger_post(**fields(parties, n, at=timezone.now()))  # one day, one rollup key
                ledger_post_many([fields(parties, n + 100, at=timezone.now())])
                with connection.cursor() as cursor:
                    cursor.execute("SELECT pg_backend_pid()")
                    pids.append(cursor.fetchone()[0])
                holding.wait(30)
                release.wait(30)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=poster, args=(n,)) for n in range(1, 5)]
    for thread in threads:
        thread.start()
    holding.wait(30)  # every poster has posted and holds its transaction open
    try:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT c.relname FROM pg_locks l JOIN pg_class c ON c.oid = l.relation "
                "WHERE l.pid = ANY(%s)",
                [pids],
            )
            locked = {row[0] for row in cursor.fetchall()}
            cursor.execute(
                "SELECT count(*) FROM pg_locks WHERE pid = ANY(%s) AND NOT granted", [pids]
            )
            waiting = cursor.fetchone()[0]
    finally:
        release.set()
        for thread in threads:
            thread.join()
    assert LedgerEntry._meta.db_table in locked  # the check sees the posters' locks
    assert not locked & ROLLUP_TABLES
    assert waiting == 0
    rollups_catch_up()
    assert_rollups_equal_a_recomputation()


# --- reconcile above the watermark -------------------------------------------------------


def test_a_routine_reconcile_checks_only_the_months_added_since_the_last(parties):
    october = timezone.make_aware(datetime(2026, 10, 10, 12))
    november = timezone.make_aware(datetime(2026, 11, 10, 12))
    ledger_post(**fields(parties, 1, at=october))
    rollups_catch_up()
    first = rollups_reconcile()
    assert first["differences"] == [] and first["keys"] > 0
    ledger_post(**fields(parties, 2, at=november))
    rollups_catch_up()
    ROLLUPS[1].model.objects.filter(month=date(2026, 10, 1)).update(revenue=Decimal(5))
    routine = rollups_reconcile()
    assert routine["differences"] == []  # October was proven and not touched since
    assert 0 < routine["keys"] < rollups_reconcile(full=True)["keys"]
    audit = rollups_reconcile(full=True)
    assert [d["key"]["month"] for d in audit["differences"]] == ["2026-10-01"]
    # Nothing new: the routine run checks nothing.
    assert rollups_reconcile()["keys"] == 0


# --- idempotency keys and partitions -------------------------------------------------------


def test_a_key_replayed_in_another_month_is_refused(parties):
    october = timezone.make_aware(datetime(2026, 10, 10, 12))
    first = ledger_post(**{**fields(parties, 1, at=october), "idempotency_key": "replay:1"})
    again = ledger_post(
        **{
            **fields(parties, 1, at=october + timezone.timedelta(days=45)),
            "idempotency_key": "replay:1",
        }
    )
    batch = ledger_post_many(
        [
            {
                **fields(parties, 2, at=october + timezone.timedelta(days=90)),
                "idempotency_key": "replay:1",
            }
        ]
    )
    assert first.created and not again.created and batch == 0
    assert again.entry.pk == first.entry.pk
    assert LedgerEntry.objects.count() == 1 == LedgerKey.objects.count()


def _partition_names() -> list[str]:
    with connection.cursor() as cursor:
        return partitions.partitions(cursor)


@pytest.mark.postgres
def test_partitions_are_created_ahead_and_a_month_can_be_detached_append_only(parties):
    created = ledger_partitions_ensure(months_ahead=2, today=date(2031, 5, 17))
    assert created == [partitions.partition_name(date(2031, m, 1)) for m in (5, 6, 7)]
    assert ledger_partitions_ensure(months_ahead=2, today=date(2031, 5, 17)) == []
    may = timezone.make_aware(datetime(2031, 5, 20, 9))
    entry = ledger_post(**fields(parties, 1, at=may)).entry
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT tableoid::regclass::text FROM valuechain_ledgerentry WHERE id = %s", [entry.pk]
        )
        assert cursor.fetchone()[0] == "valuechain_ledgerentry_y2031m05"
    # Every partition refuses to rewrite history, like the ledger.
    with (
        pytest.raises(DatabaseError, match="append-only"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute("UPDATE valuechain_ledgerentry_y2031m05 SET revenue = 0")
    with pytest.raises(ValidationError, match="not in the rollups"):
        ledger_partition_detach(month=date(2031, 5, 1))
    rollups_catch_up()
    name = ledger_partition_detach(month=date(2031, 5, 1))
    assert name not in _partition_names()
    assert not LedgerEntry.objects.filter(pk=entry.pk).exists()  # archived out of the ledger
    with (
        pytest.raises(DatabaseError, match="append-only"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute(f"DELETE FROM {name}")  # noqa: S608 (a partition's name)
    with pytest.raises(ValidationError, match="No partition"):
        ledger_partition_detach(month=date(2031, 5, 1))


@pytest.mark.postgres
def test_a_months_statement_reads_only_that_months_partition(parties):
    from tests.factories import annotation_project

    project = annotation_project()
    ledger_partitions_ensure(months_ahead=1, today=date(2031, 8, 1))
    august = timezone.make_aware(datetime(2031, 8, 3, 9))
    ledger_post(**{**fields(parties, 1, at=august), "project_id": project.pk})
    with CaptureQueriesContext(connection) as queries:
        statement = project_statement(project=project, month=date(2031, 8, 1))
    assert statement["totals"]["entries"] == 1
    (sql,) = [q["sql"] for q in queries if partitions.LEDGER in q["sql"]]
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN " + sql)
        plan = "\n".join(row[0] for row in cursor.fetchall())
    scanned = {name for name in _partition_names() if name in plan}
    assert scanned == {"valuechain_ledgerentry_y2031m08"}, plan


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_the_batcher_running_during_concurrent_posting_misses_nothing(parties):
    """Posters commit in any order while the batcher runs again and again: once
    they stop, the rollups equal a recomputation (no entry skipped or doubled)."""
    stop = threading.Event()

    def poster(offset):
        try:
            for n in range(offset, offset + 40):
                with transaction.atomic():
                    ledger_post(**fields(parties, n))
                    if n % 3 == 0:
                        ledger_post_many([fields(parties, n + 1000), fields(parties, n + 2000)])
        finally:
            connections.close_all()

    threads = [threading.Thread(target=poster, args=(o,)) for o in (0, 100, 200)]
    for thread in threads:
        thread.start()
    runs = 0
    while any(thread.is_alive() for thread in threads):
        rollups_catch_up(span=11)
        runs += 1
    for thread in threads:
        thread.join()
    stop.set()
    rollups_catch_up()
    rollups_catch_up()
    assert runs >= 1  # at least one run overlapped the posting
    assert_rollups_equal_a_recomputation()
