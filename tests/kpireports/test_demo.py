"""`make run`'s twelve months of history: true to the ledger, and telling a story."""

from decimal import Decimal

import pytest
from django.db import transaction
from django.utils import timezone

from kpireports import demo
from kpireports.selectors import Period, region_report
from tenants.demo import demo_seed as tenants_seed
from tenants.models import Region
from valuechain.models import LedgerEntry
from valuechain.selectors import month_add
from valuechain.services import rollups_reconcile

pytestmark = pytest.mark.django_db


@pytest.fixture
def history():
    tenants_seed()
    created = demo.demo_seed()
    last = month_add(timezone.localdate().replace(day=1), -1)
    return created, Period(month_add(last, -11), last)


def _report(code, period):
    return region_report(region=Region.objects.get(code=code), period=period)


def test_the_history_reconciles_and_is_posted_once(history):
    created, _ = history
    assert created > 10_000
    assert rollups_reconcile()["differences"] == []
    count = LedgerEntry.objects.count()
    assert demo.demo_seed() == 0 and LedgerEntry.objects.count() == count


def test_zhengzhou_is_stuck_in_the_low_end_trap_and_guiyang_climbs(history):
    _, period = history
    henan = _report("410000", period)
    assert henan["trap"]["warning"] is True and henan["trap"]["streak"] == 12
    guiyang = _report("520100", period)
    first, last = guiyang["monthly"][0], guiyang["monthly"][-1]
    assert last["value_chain_index"] > first["value_chain_index"] + Decimal("0.20")
    assert guiyang["trap"]["warning"] is False
    assert guiyang["employment"]["promotions"] > 0
    coastal = _report("330100", period)
    assert coastal["summary"]["value_chain_index"] > guiyang["summary"]["value_chain_index"]


def test_every_chart_has_data_in_every_month(history):
    _, period = history
    report = _report("520000", period)
    assert report["has_data"]
    for month in report["monthly"]:
        assert month["tokens_human"] > 0 and month["tokens_machine"] > 0
    assert {row["code"] for row in report["league"] if row["tokens_total"]} == {"520100", "520300"}
    assert report["compute"] and report["employment"]["active_annotators"] > 0


class _Undo(Exception):
    pass


def _digest():
    return list(
        LedgerEntry.objects.filter(idempotency_key__startswith=demo.KEY_PREFIX)
        .order_by("idempotency_key")
        .values_list("idempotency_key", "skill_tier", "tokens_input", "revenue", "cost")
    )


def test_the_history_is_deterministic():
    tenants_seed()
    with pytest.raises(_Undo), transaction.atomic():
        demo.demo_seed()
        first = _digest()
        raise _Undo  # a rollback, not a delete: the ledger refuses deletes
    assert not _digest()
    demo.demo_seed()
    assert _digest() == first


def test_the_demo_annotators_log_in_to_a_year_of_earnings_at_their_own_tier(history):
    from tenants.models import User
    from valuechain.selectors import annotator_standing

    annotator = User.objects.get(username="annotator")
    standing = annotator_standing(user=annotator)
    assert standing["earnings"]["last_month"]["earnings"] > 0
    assert standing["earnings"]["total_12_months"] > 0
    assert annotator.skill_tier == 1 and not annotator.tier_changes.exists()
