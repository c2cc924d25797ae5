"""The people page of a centre's managers (annotation.people_views)."""

import pytest
from django.urls import reverse

from tenants.models import Membership, Organization
from tests.factories import OrganizationFactory, member

pytestmark = pytest.mark.django_db


@pytest.fixture
def centre():
    return OrganizationFactory(kind=Organization.Kind.WORKFORCE, name="Guiyang centre")


def test_a_manager_sees_members_roles_and_tiers(client, centre):
    manager = member(organization=centre, role=Membership.Role.PROJECT_MANAGER)
    member(organization=centre, role=Membership.Role.ANNOTATOR, username="ann1", skill_tier=2)
    client.force_login(manager)
    response = client.get(reverse("people"))
    assert response.status_code == 200
    body = response.content.decode()
    assert "ann1" in body and "T2" in body and "Project manager" in body
    assert reverse("people") in client.get(reverse("home")).content.decode()


def test_a_manager_changes_a_tier_with_a_reason_and_sees_it_in_the_history(client, centre):
    manager = member(organization=centre, role=Membership.Role.PROJECT_MANAGER)
    annotator = member(organization=centre, role=Membership.Role.ANNOTATOR, skill_tier=1)
    client.force_login(manager)
    url = reverse("person", args=[centre.pk, annotator.pk])
    refused = client.post(url, {"to_level": "3", "reason": ""})
    assert refused.status_code == 400 and "required" in refused.content.decode()
    response = client.post(url, {"to_level": "3", "reason": "Passed the legal test"}, follow=True)
    annotator.refresh_from_db()
    assert annotator.skill_tier == 3
    body = response.content.decode()
    assert "Passed the legal test" in body and "T1 → T3" in body


def test_other_roles_and_other_centres_cannot(client, centre):
    annotator = member(organization=centre, role=Membership.Role.ANNOTATOR)
    other = OrganizationFactory(kind=Organization.Kind.WORKFORCE)
    outsider = member(organization=other, role=Membership.Role.PROJECT_MANAGER)
    client.force_login(outsider)
    assert client.get(reverse("people-centre", args=[centre.pk])).status_code == 404
    assert client.get(reverse("person", args=[centre.pk, annotator.pk])).status_code == 404
    client.force_login(annotator)
    assert client.get(reverse("people")).status_code == 403
    client.force_login(member(organization=centre, role=Membership.Role.REVIEWER))
    assert client.get(reverse("people")).status_code == 403
