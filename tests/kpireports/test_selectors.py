from datetime import date
from decimal import Decimal

import pytest

from kpireports.selectors import Period, region_report
from valuechain.models import TierChange

pytestmark = pytest.mark.django_db

AUTUMN = Period(date(2026, 9, 1), date(2026, 10, 1))


def test_a_province_report_includes_its_cities_and_only_them(history):
    report = region_report(region=history["regions"]["520000"], period=AUTUMN)
    summary = report["summary"]
    # Guiyang 1,000 + 2,000 human + 10,000 machine; Zunyi 1,000; never Zhengzhou.
    assert (summary["tokens_total"], summary["tokens_human"], summary["tokens_machine"]) == (
        14_000,
        4_000,
        10_000,
    )
    assert summary["revenue"] == Decimal("8.81")  # 0.80 + 7.20 + 0.013 + 0.80
    assert summary["cost"] == Decimal("4.41")
    assert summary["margin"] == Decimal("4.40")
    # T3+ revenue over tiered revenue: 7.20 / 8.80; machine inference left out.
    assert summary["value_chain_index"] == Decimal("0.8182")
    assert summary["human_share"] == Decimal("0.2857")
    league = {row["code"]: row for row in report["league"]}
    assert set(league) >= {"520100", "520300"} and "410100" not in league
    assert league["520100"]["tokens_total"] == 13_000
    assert league["520300"]["tokens_total"] == 1_000
    tiers = {row["tier"]: row for row in report["by_tier"]}
    assert tiers[1]["revenue_per_1k"] == Decimal("0.8000")
    assert tiers[3]["revenue_per_1k"] == Decimal("3.6000")
    assert tiers[0]["revenue_per_1k"] == Decimal("0.0013")


def test_monthly_series_employment_and_compute(history):
    report = region_report(region=history["regions"]["520000"], period=AUTUMN)
    sept, oct_ = report["monthly"]
    assert (sept["tokens_human"], oct_["tokens_human"], oct_["tokens_machine"]) == (
        1_000,
        3_000,
        10_000,
    )
    assert sept["value_chain_index"] == Decimal("0.0000")
    assert oct_["value_chain_index"] == Decimal("0.9000")  # 7.20 / 8.00
    employment = report["employment"]
    months = {row["month"]: row for row in employment["monthly"]}
    assert months[date(2026, 9, 1)]["active_annotators"] == 1
    assert months[date(2026, 10, 1)]["active_annotators"] == 2
    assert months[date(2026, 10, 1)]["median_earnings"] == Decimal("2.00")  # of 3.60 and 0.40
    assert employment["median_earnings"] == Decimal("1.20")  # of the monthly 0.40 and 2.00
    (backend,) = report["compute"]
    assert backend["backend_id"] == 77 and backend["gpu_hours"] == Decimal("1.0000")
    assert backend["tokens_per_gpu_hour"] == 10_000
    assert backend["cost_per_million"] == Decimal("1.0000")


def test_promotions_and_demotions_are_counted_without_names(history):
    guiyang = history["regions"]["520100"]
    TierChange.objects.create(
        user=history["secret_person"],
        day=date(2026, 10, 2),
        from_level=2,
        to_level=3,
        region=guiyang,
        reason="cleared every T3 bar",
    )
    report = region_report(region=history["regions"]["520000"], period=AUTUMN)
    assert (report["employment"]["promotions"], report["employment"]["demotions"]) == (1, 0)
    assert "Secret Person" not in str(report)
    assert history["secret_person"].username not in str(report)


def test_the_low_end_trap_warns_after_n_months_under_the_threshold(history):
    henan = history["regions"]["410000"]
    two = region_report(region=henan, period=AUTUMN, trap_months=2)
    assert two["trap"]["streak"] == 2 and two["trap"]["warning"] is True
    assert two["trap"]["since"] == date(2026, 9, 1)
    three = region_report(region=henan, period=AUTUMN, trap_months=3)
    assert three["trap"]["warning"] is False
    league = {row["code"]: row for row in two["league"]}
    assert league["410100"]["trap_warning"] is True
    climbing = region_report(region=history["regions"]["520100"], period=AUTUMN, trap_months=1)
    assert climbing["trap"]["warning"] is False  # October's index is 1.00
    # From all T1 in September to all T3 in October: +100 points; Henan stays flat.
    assert climbing["summary"]["value_chain_trend"] == Decimal("1.0000")
    assert two["summary"]["value_chain_trend"] == Decimal("0.0000")
    one_month = Period(date(2026, 10, 1), date(2026, 10, 1))
    assert region_report(region=henan, period=one_month)["summary"]["value_chain_trend"] is None


def test_comparison_with_the_previous_period(history):
    october = Period(date(2026, 10, 1), date(2026, 10, 1))
    report = region_report(region=history["regions"]["520100"], period=october, compare="previous")
    assert report["compare_period"] == {"start": date(2026, 9, 1), "end": date(2026, 9, 1)}
    assert report["compare_summary"]["tokens_total"] == 1_000
    assert report["change"]["tokens_total"] == Decimal("11.0000")  # 12,000 vs 1,000: +1,100 %
    assert report["change"]["value_chain_index"] == Decimal("1.0000")  # 0 -> 1: +100 points


def test_a_period_with_no_data_is_all_zeros_not_an_error(history):
    empty = Period(date(2024, 1, 1), date(2024, 3, 1))
    report = region_report(region=history["regions"]["520000"], period=empty)
    assert report["has_data"] is False
    assert report["summary"]["tokens_total"] == 0 and report["summary"]["revenue"] == Decimal(0)
    assert report["summary"]["value_chain_index"] is None
    assert report["trap"]["streak"] == 0
    assert report["compute"] == []


def test_filters_by_kind_and_tier(history):
    machine = region_report(region=history["regions"]["520000"], period=AUTUMN, kind="machine")
    assert machine["summary"]["tokens_total"] == 10_000
    t3 = region_report(region=history["regions"]["520000"], period=AUTUMN, tier=3)
    assert t3["summary"]["tokens_total"] == 2_000
