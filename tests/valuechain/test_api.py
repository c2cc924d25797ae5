"""The value chain's read API: tier ladder, tier history, ledger entries by cursor."""

from datetime import date

import pytest
from rest_framework.test import APIClient

from annotation import services
from tenants.models import Membership
from tests.factories import annotation_project, api_token, items, member, worker
from valuechain.models import LedgerEntry, TierChange

pytestmark = pytest.mark.django_db


def as_user(user) -> APIClient:
    client = APIClient()
    client.force_login(user)
    return client


def change(user, day, from_level, to_level):
    return TierChange.objects.create(
        user=user,
        day=day,
        from_level=from_level,
        to_level=to_level,
        reason="gold accuracy 0.95 over 400 items",
    )


def test_the_tier_ladder_is_read_by_anyone_signed_in():
    body = as_user(member()).get("/api/v1/skill-tiers/").json()
    assert [tier["level"] for tier in body] == [1, 2, 3, 4, 5]
    assert {"pay_per_1k_tokens", "price_per_1k_tokens", "min_gold_accuracy"} <= set(body[0])
    assert as_user(member()).get("/api/v1/skill-tiers/3/").json()["level"] == 3
    assert APIClient().get("/api/v1/skill-tiers/").status_code == 401


@pytest.fixture
def centre():
    project = annotation_project()
    annotator = worker(project)
    colleague = worker(project)
    manager = member(organization=project.workforce, role=Membership.Role.PROJECT_MANAGER)
    change(annotator, date(2026, 1, 1), 1, 2)
    change(colleague, date(2026, 2, 1), 1, 2)
    change(colleague, date(2026, 3, 1), 2, 1)
    return project, annotator, colleague, manager


def test_an_annotator_reads_their_own_tier_history_only(centre):
    _, annotator, _, _ = centre
    body = as_user(annotator).get("/api/v1/tier-changes/").json()
    assert [(r["annotator"], r["to_level"], r["promoted"]) for r in body["results"]] == [
        (annotator.pk, 2, True)
    ]


def test_a_centre_manager_reads_the_history_of_its_people(centre):
    _, annotator, colleague, manager = centre
    outsider = member()
    change(outsider, date(2026, 4, 1), 1, 2)
    body = as_user(manager).get("/api/v1/tier-changes/").json()
    assert [(r["annotator"], r["day"]) for r in body["results"]] == [
        (colleague.pk, "2026-03-01"),
        (colleague.pk, "2026-02-01"),
        (annotator.pk, "2026-01-01"),
    ]
    one = as_user(manager).get("/api/v1/tier-changes/", {"annotator": annotator.pk}).json()
    assert [r["annotator"] for r in one["results"]] == [annotator.pk]


def test_tier_history_pages_by_cursor(centre):
    _, _, _, manager = centre
    client = as_user(manager)
    first = client.get("/api/v1/tier-changes/", {"page_size": 2}).json()
    assert len(first["results"]) == 2 and "cursor=" in first["next"]
    second = client.get(first["next"]).json()
    assert len(second["results"]) == 1 and second["next"] is None


def test_a_client_developer_does_not_read_a_centres_tier_history(centre):
    project, _, _, _ = centre
    body = as_user(project.created_by).get("/api/v1/tier-changes/").json()
    assert body["results"] == []


@pytest.fixture
def booked():
    """A project whose two answers are on the ledger: charged to the client, paid by
    the centre."""
    project = annotation_project()
    items(project, 2)
    annotator = worker(project)
    for label in ("positive", "negative"):
        lease = services.assignment_lease(project=project, annotator=annotator)
        services.annotation_submit(
            assignment_id=lease.pk, annotator=annotator, answer={"label": label}
        )
    assert LedgerEntry.objects.filter(project=project).count() == 2
    return project


def test_a_client_reads_its_charges_without_the_centres_cost(booked):
    body = as_user(booked.created_by).get("/api/v1/ledger-entries/").json()
    assert len(body["results"]) == 2
    entry = body["results"][0]
    assert entry["client"] == booked.organization_id and entry["kind"] == "annotation"
    assert entry["revenue"] and entry["cost"] is None


def test_a_centre_reads_its_work_with_what_it_cost(booked):
    manager = member(organization=booked.workforce, role=Membership.Role.PROJECT_MANAGER)
    body = as_user(manager).get("/api/v1/ledger-entries/").json()
    assert len(body["results"]) == 2 and body["results"][0]["cost"] is not None


def test_ledger_entries_are_scoped_paged_by_cursor_and_filtered(booked):
    client = as_user(booked.created_by)
    first = client.get("/api/v1/ledger-entries/", {"page_size": 1}).json()
    second = client.get(first["next"]).json()
    assert first["results"][0]["id"] > second["results"][0]["id"]  # newest first
    assert client.get("/api/v1/ledger-entries/", {"kind": "inference"}).json()["results"] == []
    assert as_user(member()).get("/api/v1/ledger-entries/").json()["results"] == []
    annotator = Membership.objects.filter(
        organization=booked.workforce, role=Membership.Role.ANNOTATOR
    ).first()
    # An annotator follows their pay on their own page, not the centre's ledger.
    assert as_user(annotator.user).get("/api/v1/ledger-entries/").json()["results"] == []


def test_a_clients_api_token_reads_its_charges(booked):
    _, secret = api_token(organization=booked.organization, user=booked.created_by)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    assert len(client.get("/api/v1/ledger-entries/").json()["results"]) == 2


def test_a_bad_cursor_is_a_clear_error(booked):
    response = as_user(booked.created_by).get("/api/v1/ledger-entries/", {"cursor": "nonsense"})
    assert response.status_code == 404
    assert "cursor" in response.content.decode().lower()
