from datetime import date

import pytest

from annotation import services as annotation_services
from annotation.models import Annotation
from tests.factories import annotation_project, items, worker
from valuechain.models import TierChange
from valuechain.services import tiers_review

pytestmark = pytest.mark.django_db


def gold_record(project, annotator, *, right, wrong):
    """Answer `right` gold items correctly and `wrong` of them wrongly."""
    for label in ["positive"] * right + ["negative"] * wrong:
        lease = annotation_services.assignment_lease(project=project, annotator=annotator)
        annotation_services.annotation_submit(
            assignment_id=lease.pk, annotator=annotator, answer={"label": label}
        )


def test_an_accurate_annotator_is_promoted_one_step_once_a_day(settings):
    project = annotation_project(gold_ratio="1")
    items(project, 30, gold_every=1)
    annotator = worker(project, tier=1)
    gold_record(project, annotator, right=28, wrong=2)
    # T2 asks for 85 % gold accuracy and 85 % review acceptance with evidence;
    # give the reviews by accepting the work directly.
    Annotation.objects.filter(annotator=annotator).update(status="accepted")
    from valuechain.models import SkillTier

    SkillTier.objects.filter(level=2).update(min_volume_tokens=0)
    result = tiers_review(today=date(2026, 11, 23))
    annotator.refresh_from_db()
    assert (result["promoted"], annotator.skill_tier) == (1, 2)
    change = TierChange.objects.get(user=annotator)
    assert (change.from_level, change.to_level) == (1, 2)
    assert change.reason == "cleared every T2 bar" and change.measured["gold_checked"] == 30
    assert tiers_review(today=date(2026, 11, 23))["promoted"] == 0  # same day: no second step


def test_an_annotator_below_their_tier_is_demoted_with_the_reason():
    project = annotation_project(gold_ratio="1", required_tier=1)
    items(project, 25, gold_every=1)
    annotator = worker(project, tier=3)
    gold_record(project, annotator, right=10, wrong=15)
    tiers_review(today=date(2026, 11, 23))
    annotator.refresh_from_db()
    change = TierChange.objects.get(user=annotator)
    assert (annotator.skill_tier, change.to_level) == (2, 2)
    assert change.reason.startswith("below T3: gold accuracy 0.400 < 0.900")


def test_without_evidence_nobody_moves_up():
    project = annotation_project()
    worker(project, tier=1)
    assert tiers_review(today=date(2026, 11, 23)) == {"promoted": 0, "demoted": 0, "unchanged": 1}
