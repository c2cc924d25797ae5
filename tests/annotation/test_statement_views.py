"""A client's projects and statements in the browser (annotation.statement_views)."""

from datetime import datetime
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone

from tenants.models import Membership
from tests.factories import annotation_project, items, member
from valuechain.services import ledger_post

pytestmark = pytest.mark.django_db


def test_a_client_sees_progress_and_the_months_charges(client):
    project = annotation_project()
    items(project, 4)
    owner = member(organization=project.organization, role=Membership.Role.CLIENT_DEVELOPER)
    ledger_post(
        idempotency_key="t-1",
        kind="annotation",
        occurred_at=timezone.make_aware(datetime(2026, 10, 5, 12)),
        tokens_input=1200,
        tokens_output=34,
        skill_tier=2,
        region_id=project.workforce.region_id,
        client_id=project.organization_id,
        workforce_id=project.workforce_id,
        project_id=project.pk,
        revenue=Decimal("1234.5"),
        cost=Decimal("1"),
    )
    client.force_login(owner)
    listing = client.get(reverse("statements")).content.decode()
    assert project.name in listing and "0 / 4" in listing and "¥1,234.50" in listing
    page = client.get(reverse("statement", args=[project.pk]), {"month": "2026-10"})
    body = page.content.decode()
    assert page.status_code == 200 and "1,234" in body and "T2" in body
    assert "format=csv" in body
    assert (
        client.get(reverse("statement", args=[project.pk]), {"month": "10/2026"}).status_code == 400
    )
    with_chinese = client.get(
        reverse("statement", args=[project.pk]),
        {"month": "2026-10"},
        HTTP_ACCEPT_LANGUAGE="zh-hans",
    )
    assert "1,234" in with_chinese.content.decode()


def test_another_organizations_project_is_a_404_and_workers_have_no_statements(client):
    project = annotation_project()
    stranger = member(role=Membership.Role.CLIENT_DEVELOPER)
    client.force_login(stranger)
    assert client.get(reverse("statement", args=[project.pk])).status_code == 404
    annotator = member(organization=project.workforce, role=Membership.Role.ANNOTATOR)
    client.force_login(annotator)
    assert client.get(reverse("statements")).status_code == 403


@pytest.mark.parametrize(
    ("role", "links"),
    [
        ("annotator", {"workspace", "me"}),
        ("project_manager", {"people", "workspace", "backends", "api-tokens"}),
        ("client_developer", {"statements", "backends", "api-tokens", "api-docs"}),
    ],
)
def test_each_roles_home_leads_to_its_pages(client, role, links):
    project = annotation_project()
    organization = project.organization if role == "client_developer" else project.workforce
    client.force_login(member(organization=organization, role=role))
    html = client.get(reverse("home")).content.decode()
    for key in links:
        assert f'data-link="{key}"' in html, key


def test_the_workspace_does_not_talk_tiers_to_a_client(client):
    project = annotation_project()
    client.force_login(member(organization=project.organization, role="client_developer"))
    html = client.get(reverse("annotation:projects")).content.decode()
    assert "skill tier" not in html.lower() and 'id="not-a-worker"' in html
