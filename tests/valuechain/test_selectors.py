"""An annotator's standing and a client's statement, read back from posted ledger entries."""

from datetime import date, datetime
from decimal import Decimal
from itertools import count

import pytest
from django.db.models import Sum
from django.utils import timezone

from tenants.models import Region
from tests.factories import UserFactory, annotation_project
from valuechain.models import LedgerEntry, SkillTier, TierChange
from valuechain.quality import MIN_EVIDENCE, tier_meets
from valuechain.selectors import annotator_standing, month_bounds, project_statement
from valuechain.services import ledger_post, ledger_reverse, rollups_catch_up

pytestmark = pytest.mark.django_db

KEYS = count()
TODAY = date(2026, 5, 20)
NO_RECORD = {
    "gold_accuracy": None,
    "gold_checked": 0,
    "review_acceptance": None,
    "reviewed": 0,
    "tokens": 0,
}


def at(*parts):
    """A moment in the platform's time zone."""
    return timezone.make_aware(datetime(*parts))


def post(project, *, occurred_at, revenue="0", cost="0", worker=None, **fields):
    defaults = {
        "kind": "annotation",
        "skill_tier": 1,
        "tokens_input": 100,
        "tokens_output": 10,
    }
    return ledger_post(
        idempotency_key=f"test:{next(KEYS)}",
        occurred_at=occurred_at,
        region_id=Region.objects.get(code="520100").pk,
        client_id=project.organization_id,
        workforce_id=project.workforce_id,
        project_id=project.pk,
        worker_id=worker.pk if worker else None,
        revenue=Decimal(revenue),
        cost=Decimal(cost),
        **{**defaults, **fields},
    ).entry


# --- standing: progress to the next tier ---------------------------------------------------


def test_progress_shows_each_bar_of_the_next_tier_measured_and_judged_as_the_review_does():
    user = UserFactory(skill_tier=1)  # next: T2, bars 0.85 / 0.85 / 200,000 tokens
    record = {
        "gold_accuracy": 0.9,
        "gold_checked": 25,
        "review_acceptance": 0.95,
        "reviewed": 5,  # a good share, but too little evidence to judge
        "tokens": 50_000,
    }
    standing = annotator_standing(user=user, record=record, today=TODAY)

    assert standing["tier"]["level"] == 1 and standing["tier"]["name_zh"] == "基础标注"
    assert standing["tier"]["pay_per_1k_tokens"] == Decimal("0.400000")
    upper = standing["next_tier"]
    assert (upper["level"], upper["name_en"], upper["eligible"]) == (
        2,
        "Structured annotation",
        False,
    )
    gold, review, volume = upper["requirements"]
    assert gold == {
        "bar": "gold_accuracy",
        "required": Decimal("0.850"),
        "measured": 0.9,
        "evidence": 25,
        "evidence_required": MIN_EVIDENCE,
        "cleared": True,
        "progress": 1.0,
    }
    assert (review["cleared"], review["progress"]) == (False, 5 / MIN_EVIDENCE)
    assert (volume["bar"], volume["required"], volume["measured"]) == (
        "volume_tokens",
        200_000,
        50_000,
    )
    assert (volume["cleared"], volume["progress"], volume["evidence"]) == (False, 0.25, None)


def test_a_share_below_the_bar_shows_how_close_it_is_and_never_shows_full():
    user = UserFactory(skill_tier=1)
    record = {**NO_RECORD, "gold_accuracy": 0.8499, "gold_checked": 40, "tokens": 10**6}
    gold, review, volume = annotator_standing(user=user, record=record)["next_tier"]["requirements"]
    assert not gold["cleared"] and gold["progress"] == 0.9998  # 0.8499 / 0.85, rounded down
    assert (review["measured"], review["progress"]) == (None, 0.0)
    assert (volume["cleared"], volume["progress"]) == (True, 1.0)


def test_eligible_exactly_when_the_tier_review_would_promote():
    user = UserFactory(skill_tier=2)
    t3 = SkillTier.objects.get(level=3)
    cleared = {
        "gold_accuracy": 0.9,
        "gold_checked": MIN_EVIDENCE,
        "review_acceptance": 0.9,
        "reviewed": MIN_EVIDENCE,
        "tokens": t3.min_volume_tokens,
    }
    for record, expected in [
        (cleared, True),
        ({**cleared, "reviewed": MIN_EVIDENCE - 1}, False),
        ({**cleared, "tokens": t3.min_volume_tokens - 1}, False),
        ({**cleared, "gold_accuracy": 0.8999}, False),
    ]:
        upper = annotator_standing(user=user, record=record)["next_tier"]
        assert upper["eligible"] is expected is tier_meets(t3, record)[0]
        assert all(r["cleared"] for r in upper["requirements"]) is expected
        assert all(r["progress"] == 1.0 for r in upper["requirements"]) is expected


def test_the_top_tier_has_no_next_tier():
    standing = annotator_standing(user=UserFactory(skill_tier=5), record=NO_RECORD)
    assert standing["tier"]["level"] == 5 and standing["tier"]["name_en"] == "Model operations"
    assert standing["next_tier"] is None


def test_the_measured_record_is_read_when_not_given():
    standing = annotator_standing(user=UserFactory(skill_tier=1))
    gold, _, volume = standing["next_tier"]["requirements"]
    assert (gold["measured"], gold["evidence"], volume["measured"]) == (None, 0, 0)


def test_tier_history_is_newest_first_with_reasons():
    user = UserFactory(skill_tier=2)
    TierChange.objects.create(
        user=user, day=date(2026, 3, 1), from_level=1, to_level=2, reason="cleared every T2 bar"
    )
    TierChange.objects.create(
        user=user,
        day=date(2026, 4, 1),
        from_level=2,
        to_level=1,
        reason="below T2: gold accuracy 0.700 < 0.850",
    )
    TierChange.objects.create(
        user=UserFactory(), day=date(2026, 4, 2), from_level=1, to_level=2, reason="someone else"
    )
    history = annotator_standing(user=user, record=NO_RECORD)["history"]
    assert [(h["day"], h["promoted"], h["reason"]) for h in history] == [
        (date(2026, 4, 1), False, "below T2: gold accuracy 0.700 < 0.850"),
        (date(2026, 3, 1), True, "cleared every T2 bar"),
    ]


# --- standing: earnings -----------------------------------------------------------------------


def test_earnings_come_from_the_ledger_net_of_reversals_and_only_the_workers_own():
    project = annotation_project()
    annotator, other = UserFactory(), UserFactory()
    post(project, worker=annotator, occurred_at=at(2026, 5, 3, 9), cost="0.123456")
    rejected = post(project, worker=annotator, occurred_at=at(2026, 5, 4, 9), cost="5.000001")
    ledger_reverse(entry=rejected, reason_key="review:1")
    # Five past midnight on 1 May in Shanghai is still 30 April in UTC: it counts for May.
    post(project, worker=annotator, occurred_at=at(2026, 5, 1, 0, 5), cost="0.000004")
    post(project, worker=annotator, occurred_at=at(2026, 4, 30, 23, 55), cost="1.5")
    post(project, worker=annotator, occurred_at=at(2025, 6, 30, 12), cost="2.25")  # 11 months back
    post(project, worker=annotator, occurred_at=at(2025, 5, 31, 12), cost="7")  # 12 months back
    post(project, worker=other, occurred_at=at(2026, 5, 3, 9), cost="100")
    post(
        project,
        worker=None,
        kind="inference",
        skill_tier=None,
        occurred_at=at(2026, 5, 3),
        cost="3",
    )

    rollups_catch_up()
    earnings = annotator_standing(user=annotator, record=NO_RECORD, today=TODAY)["earnings"]

    this_month = earnings["this_month"]
    assert this_month["month"] == date(2026, 5, 1)
    assert this_month["earnings"] == Decimal("0.123460")  # the reversal took 5.000001 back out
    assert (this_month["entries"], this_month["tokens"]) == (2, 220)
    assert earnings["last_month"]["month"] == date(2026, 4, 1)
    assert earnings["last_month"]["earnings"] == Decimal("1.500000")
    months = earnings["months"]
    assert [m["month"] for m in months] == [
        date(2026, 5, 1),
        date(2026, 4, 1),
        date(2026, 3, 1),
        date(2026, 2, 1),
        date(2026, 1, 1),
        date(2025, 12, 1),
        date(2025, 11, 1),
        date(2025, 10, 1),
        date(2025, 9, 1),
        date(2025, 8, 1),
        date(2025, 7, 1),
        date(2025, 6, 1),
    ]
    assert months[2] == {"month": date(2026, 3, 1), "entries": 0, "tokens": 0, "earnings": 0}
    assert months[-1]["earnings"] == Decimal("2.250000")
    assert earnings["total_12_months"] == Decimal("3.873460")
    assert earnings["total"] == Decimal("10.873460")  # every month, the one a year back too
    # The same figure straight from the ledger rows.
    assert (
        earnings["total"]
        == LedgerEntry.objects.filter(worker=annotator).aggregate(total=Sum("cost"))["total"]
    )
    assert all(isinstance(m["earnings"], Decimal) for m in months)


def test_someone_who_never_worked_earned_zero():
    earnings = annotator_standing(user=UserFactory(), record=NO_RECORD, today=TODAY)["earnings"]
    assert earnings["this_month"]["earnings"] == 0 and earnings["total"] == 0
    assert len(earnings["months"]) == 12


# --- client statements ------------------------------------------------------------------------


def test_month_bounds_are_the_platforms_time_zone():
    start, end = month_bounds(date(2026, 5, 17))
    assert (start.isoformat(), end.isoformat()) == (
        "2026-05-01T00:00:00+08:00",
        "2026-06-01T00:00:00+08:00",
    )
    start, end = month_bounds(date(2026, 12, 1))
    assert end.isoformat() == "2027-01-01T00:00:00+08:00"


def test_the_statement_matches_the_ledger_to_the_last_digit():
    project = annotation_project()
    annotator = UserFactory()
    post(project, worker=annotator, occurred_at=at(2026, 5, 1, 0, 0), revenue="0.000123")
    post(project, worker=annotator, occurred_at=at(2026, 5, 2), revenue="1.234567", cost="0.6")
    post(project, worker=annotator, occurred_at=at(2026, 5, 2), skill_tier=2, revenue="0.000001")
    rejected = post(project, worker=annotator, occurred_at=at(2026, 5, 9), revenue="0.333333")
    ledger_reverse(entry=rejected, reason_key="review:9")
    post(project, worker=annotator, kind="review", skill_tier=3, occurred_at=at(2026, 5, 9))
    post(
        project,
        kind="inference",
        skill_tier=None,
        occurred_at=at(2026, 5, 31, 23, 59, 59),
        tokens_input=1000,
        tokens_output=20,
        revenue="0.000777",
        cost="0.000777",
    )
    # Outside the month, or another project: not on the statement.
    post(project, worker=annotator, occurred_at=at(2026, 4, 30, 23, 59, 59), revenue="9")
    post(project, worker=annotator, occurred_at=at(2026, 6, 1), revenue="9")
    post(annotation_project(), worker=annotator, occurred_at=at(2026, 5, 2), revenue="9")

    statement = project_statement(project=project, month=date(2026, 5, 1))

    start, end = month_bounds(date(2026, 5, 1))
    ledger = LedgerEntry.objects.filter(
        project=project, occurred_at__gte=start, occurred_at__lt=end
    ).aggregate(revenue=Sum("revenue"), tokens_input=Sum("tokens_input"))
    assert statement["totals"]["revenue"] == ledger["revenue"] == Decimal("1.235468")
    assert str(statement["totals"]["revenue"]) == "1.235468"  # six places, nothing rounded
    assert statement["totals"]["tokens_input"] == ledger["tokens_input"] == 1400
    assert statement["totals"]["entries"] == 5  # 7 rows: 6 units and a reversal counting -1
    assert [
        (line["kind"], line["skill_tier"], line["entries"], line["tokens_input"], line["revenue"])
        for line in statement["lines"]
    ] == [
        ("annotation", 1, 2, 200, Decimal("1.234690")),  # 0.000123 + 1.234567, reversed 0.333333
        ("annotation", 2, 1, 100, Decimal("0.000001")),
        ("review", 3, 1, 100, Decimal("0.000000")),
        ("inference", None, 1, 1000, Decimal("0.000777")),
    ]
    assert sum(line["revenue"] for line in statement["lines"]) == ledger["revenue"]
    # Clients see what they are charged, not what anyone is paid, nor who did the work.
    keys = set(statement) | set(statement["totals"]) | {k for ln in statement["lines"] for k in ln}
    assert not keys & {"cost", "worker", "worker_id", "pay"}


def test_a_month_without_activity_has_no_lines_and_zero_totals():
    project = annotation_project()
    post(project, occurred_at=at(2026, 4, 2), revenue="1")
    statement = project_statement(project=project, month=date(2026, 5, 1))
    assert statement["lines"] == []
    assert statement["totals"] == {
        "entries": 0,
        "tokens_input": 0,
        "tokens_output": 0,
        "revenue": Decimal("0.000000"),
    }
