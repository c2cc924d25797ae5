import itertools
import threading
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.db import DatabaseError, connections, transaction
from django.utils import timezone

from tenants.models import Organization, Region
from tests.factories import OrganizationFactory
from valuechain.models import LedgerEntry, LedgerRollup, SkillTier
from valuechain.services import ledger_post, ledger_reverse, rollups_catch_up, rollups_reconcile

pytestmark = pytest.mark.django_db


@pytest.fixture
def parties():
    client = OrganizationFactory(kind=Organization.Kind.CLIENT)
    centre = OrganizationFactory(kind=Organization.Kind.WORKFORCE)
    return client, centre, Region.objects.get(code="520100")


def post(parties, key, **fields):
    client, centre, region = parties
    defaults = {
        "kind": "annotation",
        "occurred_at": timezone.now(),
        "region_id": region.pk,
        "client_id": client.pk,
        "workforce_id": centre.pk,
        "skill_tier": 1,
        "tokens_input": 120,
        "tokens_output": 4,
        "revenue": Decimal("0.096"),
        "cost": Decimal("0.048"),
    }
    return ledger_post(idempotency_key=key, **{**defaults, **fields})


def test_the_five_tiers_are_seeded_with_rising_bars():
    tiers = list(SkillTier.objects.order_by("level"))
    assert [t.level for t in tiers] == [1, 2, 3, 4, 5]
    assert all(a.price_per_1k_tokens < b.price_per_1k_tokens for a, b in itertools.pairwise(tiers))
    assert all(t.pay_per_1k_tokens <= t.price_per_1k_tokens for t in tiers)


def test_posting_the_same_key_twice_makes_one_entry(parties):
    first = post(parties, "annotation:1")
    again = post(parties, "annotation:1", revenue=Decimal("99"))
    assert first.created and not again.created
    assert again.entry.pk == first.entry.pk and LedgerEntry.objects.count() == 1
    rollups_catch_up()  # the batcher, which beat runs every few seconds
    rollup = LedgerRollup.objects.get()
    assert (rollup.entries, rollup.tokens_input, rollup.revenue) == (1, 120, Decimal("0.096"))


def test_money_is_exact_and_never_negative(parties):
    with pytest.raises(TypeError, match="float"):
        post(parties, "k1", revenue=0.1)
    with pytest.raises(ValidationError) as excinfo:
        post(parties, "k2", cost=Decimal("-1"))
    assert "cost" in excinfo.value.message_dict
    assert not LedgerEntry.objects.exists()


def test_a_correction_is_a_reversing_entry(parties):
    original = post(parties, "annotation:7").entry
    mirror = ledger_reverse(entry=original, reason_key="rejected").entry
    assert (mirror.revenue, mirror.tokens_input, mirror.reverses_id) == (
        Decimal("-0.096000"),
        -120,
        original.pk,
    )
    assert ledger_reverse(entry=original, reason_key="rejected").entry.pk == mirror.pk
    rollups_catch_up()  # the batcher, which beat runs every few seconds
    rollup = LedgerRollup.objects.get()
    assert (rollup.entries, rollup.tokens_input, rollup.revenue) == (0, 0, Decimal(0))
    assert rollups_reconcile()["differences"] == []


@pytest.mark.postgres
def test_the_database_refuses_to_rewrite_the_ledger(parties):
    entry = post(parties, "annotation:9").entry
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        LedgerEntry.objects.filter(pk=entry.pk).update(revenue=Decimal("1000"))
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        LedgerEntry.objects.filter(pk=entry.pk).delete()


def test_reconcile_proves_rollups_equal_the_ledger_and_repairs_a_gap(parties):
    for n in range(20):
        post(parties, f"a:{n}", skill_tier=1 + n % 3, kind="annotation" if n % 4 else "review")
    rollups_catch_up()
    assert rollups_reconcile()["differences"] == []
    LedgerRollup.objects.filter(pk=LedgerRollup.objects.first().pk).update(revenue=Decimal("12.34"))
    # A routine check looks only at months with new entries: an audit finds the change.
    assert rollups_reconcile()["differences"] == []
    found = rollups_reconcile(full=True)
    assert len(found["differences"]) == 1
    repaired = rollups_reconcile(full=True, repair=True)
    assert repaired["repaired"] is True
    assert rollups_reconcile()["differences"] == []


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_posts_of_one_key_make_one_entry(parties):
    barrier = threading.Barrier(6)
    results = []

    def racer():
        try:
            barrier.wait()
            results.append(post(parties, "race:1").created)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=racer) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [False] * 5 + [True]
    assert LedgerEntry.objects.count() == 1
    rollups_catch_up()
    assert LedgerRollup.objects.get().entries == 1


def test_reconcile_command_fails_on_a_gap_and_repairs_it(parties, capsys):
    from django.core.management import CommandError, call_command

    post(parties, "cmd:1")
    rollups_catch_up()
    call_command("reconcile")
    assert "0 differences" in capsys.readouterr().out
    LedgerRollup.objects.update(tokens_input=1)
    with pytest.raises(CommandError, match="1 differences"):
        call_command("reconcile", full=True)
    call_command("reconcile", full=True, repair=True)
    assert "repaired" in capsys.readouterr().out
    call_command("reconcile", full=True)


def test_every_rollup_table_agrees_with_the_ledger_and_is_repaired(parties):
    from tests.factories import UserFactory
    from valuechain.models import BackendRollup, WorkerMonthRollup
    from valuechain.services import ledger_post_many

    worker = UserFactory()
    client, _, region = parties
    base = {"occurred_at": timezone.now(), "region_id": region.pk, "client_id": client.pk}
    posted = ledger_post_many(
        [
            {
                **base,
                "idempotency_key": f"m:{n}",
                "kind": "inference",
                "backend_id": 7,
                "tokens_input": 100,
                "tokens_output": 10,
                "gpu_ms": 250,
                "revenue": Decimal("0.01"),
                "cost": Decimal("0.01"),
            }
            for n in range(5)
        ]
        + [{**base, "idempotency_key": "m:0", "kind": "inference", "revenue": 0, "cost": 0}]
    )
    assert posted == 5  # the key repeated inside the batch is one entry
    human = post(parties, "h:1", worker_id=worker.pk).entry
    post(parties, "h:2", worker_id=worker.pk)
    ledger_reverse(entry=human, reason_key="rejected")

    rollups_catch_up()
    backend = BackendRollup.objects.get()
    assert (backend.entries, backend.tokens_input, backend.gpu_ms) == (5, 500, 1250)
    month = WorkerMonthRollup.objects.get()
    assert (month.entries, month.cost) == (1, Decimal("0.048"))
    assert rollups_reconcile()["differences"] == []

    BackendRollup.objects.update(gpu_ms=1)
    WorkerMonthRollup.objects.update(cost=Decimal("9"))
    tables = {d["table"] for d in rollups_reconcile(full=True)["differences"]}
    assert tables == {BackendRollup._meta.db_table, WorkerMonthRollup._meta.db_table}
    rollups_reconcile(full=True, repair=True)
    assert rollups_reconcile(full=True)["differences"] == []
    assert BackendRollup.objects.get().gpu_ms == 1250


def test_a_bad_entry_in_a_batch_names_its_field_and_writes_nothing(parties):
    from valuechain.services import ledger_post_many

    client, _, region = parties
    base = {
        "occurred_at": timezone.now(),
        "region_id": region.pk,
        "client_id": client.pk,
        "kind": "inference",
        "revenue": 0,
        "cost": 0,
    }
    with pytest.raises(ValidationError) as excinfo:
        ledger_post_many(
            [{**base, "idempotency_key": "ok"}, {**base, "idempotency_key": "bad", "gpu_ms": -5}]
        )
    assert "gpu_ms" in excinfo.value.message_dict
    assert not LedgerEntry.objects.exists() and not LedgerRollup.objects.exists()


def test_a_tier_change_that_keeps_the_ladder_rising_is_saved():
    from valuechain.services import skill_tier_update

    tier = skill_tier_update(level=3, price_per_1k_tokens=Decimal("4.00"))
    assert (
        SkillTier.objects.get(level=3).price_per_1k_tokens
        == Decimal("4.00")
        == (tier.price_per_1k_tokens)
    )


@pytest.mark.parametrize(
    ("level", "changes", "field"),
    [
        (3, {"min_gold_accuracy": Decimal("0.80")}, "min_gold_accuracy"),  # under T2's 0.85
        (2, {"min_volume_tokens": 2_000_000}, "min_volume_tokens"),  # over T3's 1,000,000
        (4, {"pay_per_1k_tokens": Decimal("9.00")}, "pay_per_1k_tokens"),  # over its price
        (1, {"min_review_acceptance": Decimal("1.5")}, "min_review_acceptance"),
        (5, {"price_per_1k_tokens": 20.0}, "price_per_1k_tokens"),  # a float
        (6, {"name_en": "Wizard"}, "level"),
        (2, {"pk": 9}, "pk"),  # not editable
    ],
)
def test_a_contradictory_tier_configuration_is_refused_and_nothing_written(level, changes, field):
    from valuechain.services import skill_tier_update

    before = list(SkillTier.objects.order_by("level").values())
    with pytest.raises(ValidationError) as excinfo:
        skill_tier_update(level=level, **changes)
    assert field in excinfo.value.message_dict
    assert list(SkillTier.objects.order_by("level").values()) == before


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_batches_with_overlapping_keys_post_each_key_once(parties):
    from valuechain.services import ledger_post_many

    client, _, region = parties
    barrier = threading.Barrier(4)
    posted = []

    def batch(offset):
        return [
            {
                "idempotency_key": f"call:{n}",
                "kind": "inference",
                "occurred_at": timezone.now(),
                "region_id": region.pk,
                "client_id": client.pk,
                "backend_id": 3,
                "tokens_input": 10,
                "revenue": Decimal("0.000123"),
                "cost": Decimal("0.000100"),
            }
            for n in range(offset, offset + 300)
        ]

    def racer(offset):
        try:
            barrier.wait()
            with transaction.atomic():
                posted.append(ledger_post_many(batch(offset)))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=racer, args=(o,)) for o in (0, 100, 200, 0)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(posted) == 500 == LedgerEntry.objects.count()  # keys 0..499, each once
    rollups_catch_up()  # the batcher, which beat runs every few seconds
    rollup = LedgerRollup.objects.get()
    assert (rollup.entries, rollup.tokens_input, rollup.revenue) == (500, 5000, Decimal("0.0615"))
    assert rollups_reconcile()["differences"] == []


# --- audit trail -----------------------------------------------------------------------


def test_a_repair_is_audited_as_the_system_with_its_tables_and_a_check_is_not(parties):
    from tenants.models import AuditEvent

    post(parties, "audit:1")
    rollups_catch_up()
    LedgerRollup.objects.update(tokens_input=1)
    rollups_reconcile()
    assert not AuditEvent.objects.filter(event_type="ledger.repaired").exists()
    rollups_reconcile(repair=True)
    event = AuditEvent.objects.get(event_type="ledger.repaired")
    assert (event.organization, event.actor_user, event.actor_label) == (
        None,
        None,
        "system:reconcile",
    )
    assert event.extra["rows_repaired"] == {LedgerRollup._meta.db_table: 1}


def test_a_ladder_change_is_audited_with_its_actor_and_a_refused_one_is_not():
    from tenants.models import AuditEvent
    from tests.factories import UserFactory
    from valuechain.services import skill_tier_update

    root = UserFactory(is_superuser=True)
    with pytest.raises(ValidationError):
        skill_tier_update(level=4, actor=root, pay_per_1k_tokens=Decimal("9.00"))
    assert not AuditEvent.objects.exists()
    skill_tier_update(level=3, actor=root, price_per_1k_tokens=Decimal("4.00"))
    event = AuditEvent.objects.get(event_type="skill_tier.updated")
    assert event.actor_user == root and event.organization is None
    before, after = event.changes["price_per_1k_tokens"]
    assert list(event.changes) == ["price_per_1k_tokens"]
    assert (Decimal(before), Decimal(after)) == (Decimal("3.60"), Decimal("4.00"))


def test_the_daily_tier_review_audits_each_change_as_the_system():
    from datetime import date

    from tenants.models import AuditEvent
    from tests.factories import annotation_project, items, worker
    from tests.valuechain.test_tiers import gold_record
    from valuechain.services import tiers_review

    project = annotation_project(gold_ratio="1", required_tier=1)
    items(project, 25, gold_every=1)
    annotator = worker(project, tier=3)
    gold_record(project, annotator, right=10, wrong=15)
    tiers_review(today=date(2026, 11, 23))
    event = AuditEvent.objects.get(event_type="tier.changed")
    assert (event.actor_user, event.actor_label) == (None, "system:tier-review")
    assert event.organization == project.workforce
    assert (event.target_type, event.target_id) == ("tenants.user", str(annotator.pk))
    assert event.changes == {"skill_tier": [3, 2]}
    assert event.extra["reason"].startswith("below T3")
