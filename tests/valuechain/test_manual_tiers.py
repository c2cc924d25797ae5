"""A centre's manager changes an annotator's tier by hand: valuechain.services.tier_change_manual
and valuechain.permissions.can_change_tier."""

from datetime import date

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.utils import timezone

from tenants.models import AuditEvent, Membership, Organization
from tests.factories import OrganizationFactory, member
from valuechain.models import TierChange
from valuechain.permissions import can_change_tier, can_manage_people
from valuechain.services import tier_change_manual, tiers_review

pytestmark = pytest.mark.django_db


@pytest.fixture
def centre():
    return OrganizationFactory(kind=Organization.Kind.WORKFORCE)


def test_a_manager_moves_an_annotator_with_a_reason_recorded_and_audited(centre):
    manager = member(organization=centre, role=Membership.Role.PROJECT_MANAGER)
    annotator = member(organization=centre, role=Membership.Role.ANNOTATOR, skill_tier=1)
    change = tier_change_manual(
        organization=centre,
        annotator=annotator,
        to_level=3,
        reason="Passed the medical-terms test",
        actor=manager,
    )
    annotator.refresh_from_db()
    assert annotator.skill_tier == 3
    assert (change.from_level, change.to_level, change.changed_by) == (1, 3, manager)
    event = AuditEvent.objects.get(event_type="tier.changed", target_id=str(annotator.pk))
    assert event.actor_user == manager and event.organization == centre
    assert event.changes == {"skill_tier": [1, 3]}
    assert event.extra["reason"] == "Passed the medical-terms test" and event.extra["manual"]
    # A second correction the same day is its own row; the daily review leaves them alone.
    tier_change_manual(
        organization=centre, annotator=annotator, to_level=2, reason="Too fast", actor=manager
    )
    assert TierChange.objects.filter(user=annotator).count() == 2
    assert tiers_review(today=timezone.localdate())["unchanged"] == 0


@pytest.mark.parametrize(
    ("level", "reason", "field"),
    [(2, "   ", "reason"), (9, "why", "to_level"), (1, "why", "to_level")],
)
def test_bad_input_names_the_field_and_writes_nothing(centre, level, reason, field):
    manager = member(organization=centre, role=Membership.Role.PROJECT_MANAGER)
    annotator = member(organization=centre, role=Membership.Role.ANNOTATOR, skill_tier=1)
    with pytest.raises(ValidationError) as raised:
        tier_change_manual(
            organization=centre, annotator=annotator, to_level=level, reason=reason, actor=manager
        )
    assert field in raised.value.message_dict
    assert (
        not TierChange.objects.exists()
        and not AuditEvent.objects.filter(event_type="tier.changed").exists()
    )


def test_only_the_centres_managers_and_never_for_themselves(centre):
    annotator = member(organization=centre, role=Membership.Role.ANNOTATOR)
    reviewer = member(organization=centre, role=Membership.Role.REVIEWER)
    elsewhere = member(
        organization=OrganizationFactory(kind=Organization.Kind.WORKFORCE),
        role=Membership.Role.PROJECT_MANAGER,
    )
    manager = member(organization=centre, role=Membership.Role.PROJECT_MANAGER)
    Membership.objects.create(user=manager, organization=centre, role=Membership.Role.ANNOTATOR)
    assert not can_change_tier(reviewer, centre, annotator)
    assert not can_change_tier(elsewhere, centre, annotator)
    assert not can_change_tier(manager, centre, manager)
    assert can_change_tier(manager, centre, annotator)
    assert not can_manage_people(elsewhere, centre)
    with pytest.raises(PermissionDenied):
        tier_change_manual(
            organization=centre, annotator=annotator, to_level=2, reason="x", actor=reviewer
        )


def test_the_daily_review_still_changes_a_person_once_a_day(centre):
    annotator = member(organization=centre, role=Membership.Role.ANNOTATOR, skill_tier=2)
    TierChange.objects.create(
        user=annotator, day=date(2026, 11, 1), from_level=1, to_level=2, reason="review"
    )
    from django.db import IntegrityError, transaction

    with pytest.raises(IntegrityError), transaction.atomic():
        TierChange.objects.create(
            user=annotator, day=date(2026, 11, 1), from_level=2, to_level=3, reason="again"
        )
