import csv
import io
import json
from datetime import datetime
from decimal import Decimal

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db.models import Sum
from django.utils import timezone
from rest_framework.test import APIClient

from annotation import services
from annotation.models import Item, Project, Review, ReviewLease
from tenants.models import Membership, Organization
from tests.factories import OrganizationFactory, annotation_project, api_token, items, worker

pytestmark = pytest.mark.django_db


@pytest.fixture
def client_api():
    organization = OrganizationFactory(kind=Organization.Kind.CLIENT)
    _, secret = api_token(organization=organization)
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    api.organization = organization
    return api


def test_a_client_runs_a_job_end_to_end_over_rest(client_api, django_capture_on_commit_callbacks):
    centre = OrganizationFactory(kind=Organization.Kind.WORKFORCE)
    created = client_api.post(
        "/api/v1/projects/",
        {
            "name": "外卖评论",
            "task_type": "classification",
            "label_schema": {"labels": ["positive", "negative"]},
            "workforce": centre.pk,
            "status": "active",
            "price_per_1k_tokens": "1.50",
        },
        format="json",
    )
    assert created.status_code == 201, created.content
    project_id = created.json()["id"]
    assert created.json()["organization"] == client_api.organization.pk

    upload = SimpleUploadedFile(
        "reviews.jsonl",
        "".join(
            json.dumps({"external_id": f"r{n}", "text": f"评论{n}"}, ensure_ascii=False) + "\n"
            for n in range(5)
        ).encode(),
    )
    with django_capture_on_commit_callbacks(execute=True):
        accepted = client_api.post(
            f"/api/v1/projects/{project_id}/import/", {"file": upload}, format="multipart"
        )
    assert accepted.status_code == 202, accepted.content
    job = client_api.get(accepted["Location"]).json()
    assert (job["status"], job["created_count"], job["progress"]) == ("succeeded", 5, 1.0)

    project = Project.objects.get(pk=project_id)
    annotator = worker(project)
    workspace = APIClient()
    workspace.force_login(annotator)
    for _ in range(5):
        lease = workspace.post(f"/api/v1/workspace/projects/{project_id}/next/").json()
        submitted = workspace.post(
            f"/api/v1/workspace/assignments/{lease['id']}/submit/",
            {"answer": {"label": "positive"}, "time_spent_ms": 1500},
            format="json",
        )
        assert submitted.status_code == 201, submitted.content
    assert workspace.post(f"/api/v1/workspace/projects/{project_id}/next/").status_code == 204

    stats = client_api.get(f"/api/v1/projects/{project_id}/stats/").json()
    assert stats["progress"] == 1.0 and stats["annotations"]["total"] == 5
    results = client_api.get("/api/v1/results/", {"project": project_id}).json()
    assert results["count"] == 5 and results["results"][0]["answer"] == {"label": "positive"}
    download = client_api.get(f"/api/v1/projects/{project_id}/export/", {"format": "openai_chat"})
    assert download.status_code == 200
    assert download["Content-Disposition"].startswith("attachment;")
    body = b"".join(download.streaming_content).decode().splitlines()
    assert len(body) == 5 and json.loads(body[0])["messages"][-1]["content"] == "positive"

    dataset = client_api.post(
        "/api/v1/dataset-versions/", {"project": project_id, "validation_ratio": "0"}, format="json"
    )
    assert dataset.status_code == 201, dataset.content
    train = client_api.get(f"/api/v1/dataset-versions/{dataset.json()['id']}/download/")
    assert len(b"".join(train.streaming_content).splitlines()) == 5


def test_project_validation_errors_name_the_field(client_api):
    response = client_api.post(
        "/api/v1/projects/",
        {
            "name": "x",
            "task_type": "classification",
            "label_schema": {"labels": ["only"]},
        },
        format="json",
    )
    assert response.status_code == 400
    assert response.json()["errors"][0]["attr"] == "label_schema.labels"
    assert not Project.objects.exists()


def test_items_filter_by_status_and_external_id(client_api):
    project = annotation_project(organization=client_api.organization)
    items(project, 3)
    Item.objects.filter(external_id="item-1").update(status="done")
    done = client_api.get("/api/v1/items/", {"project": project.pk, "status": "done"}).json()
    assert [i["external_id"] for i in done["results"]] == ["item-1"]
    one = client_api.get("/api/v1/items/", {"external_id": "item-2"}).json()
    assert one["count"] == 1


def test_a_bad_answer_is_a_400_naming_the_field():
    project = annotation_project()
    items(project, 1)
    api = APIClient()
    api.force_login(worker(project))
    lease = api.post(f"/api/v1/workspace/projects/{project.pk}/next/").json()
    response = api.post(
        f"/api/v1/workspace/assignments/{lease['id']}/submit/",
        {"answer": {"label": "meh"}},
        format="json",
    )
    assert response.status_code == 400
    assert response.json()["errors"][0]["attr"] == "answer.label"


def test_lease_payload_hides_gold_answers_and_client_metadata():
    project = annotation_project(gold_ratio="1")
    items(project, 1, gold_every=1)
    api = APIClient()
    api.force_login(worker(project))
    lease = api.post(f"/api/v1/workspace/projects/{project.pk}/next/").json()
    assert set(lease["item"]) == {"id", "data", "suggestion"}
    assert "positive" not in json.dumps(lease)


def test_reviewers_review_over_rest():
    project = annotation_project(review_rate="1")
    items(project, 1)
    annotator = worker(project)
    api = APIClient()
    api.force_login(annotator)
    lease = api.post(f"/api/v1/workspace/projects/{project.pk}/next/").json()
    api.post(
        f"/api/v1/workspace/assignments/{lease['id']}/submit/",
        {"answer": {"label": "negative"}},
        format="json",
    )

    reviewer = APIClient()
    reviewer.force_login(worker(project, role=Membership.Role.REVIEWER))
    queue = reviewer.get(f"/api/v1/workspace/projects/{project.pk}/review-queue/").json()
    assert queue["count"] == 1
    item_id = queue["results"][0]["id"]
    # Reviewing needs the item's lease, taken with review-next.
    response = reviewer.post(
        f"/api/v1/workspace/items/{item_id}/review/", {"verdict": "accept"}, format="json"
    )
    assert response.status_code == 409
    assert response.json()["errors"] == [
        {
            "code": "review_lease_not_held",
            "detail": "You hold no review lease on this item; take it with review-next first.",
            "attr": "lease",
        }
    ]
    lease = reviewer.post(f"/api/v1/workspace/projects/{project.pk}/review-next/").json()
    item = lease["item"]
    assert item["id"] == item_id and lease["waiting"] == 1
    assert 0 < lease["seconds_left"] <= project.lease_seconds
    assert item["annotations"][0]["answer"] == {"label": "negative"}
    response = reviewer.post(
        f"/api/v1/workspace/items/{item['id']}/review/", {"verdict": "reject"}, format="json"
    )
    assert response.status_code == 400 and response.json()["errors"][0]["attr"] == "reason"
    response = reviewer.post(
        f"/api/v1/workspace/items/{item['id']}/review/",
        {"verdict": "correct", "corrected_answer": {"label": "positive"}},
        format="json",
    )
    assert response.status_code == 201
    assert Item.objects.get().result.answer == {"label": "positive"}

    assert reviewer.post(f"/api/v1/workspace/projects/{project.pk}/review-next/").status_code == 204

    # The annotator, even as a reviewer, finds nothing of their own to review.
    Membership.objects.create(user=annotator, organization=project.workforce, role="reviewer")
    own = api.get(f"/api/v1/workspace/projects/{project.pk}/review-queue/").json()
    assert own["count"] == 0


def test_reviewers_release_items_and_lapsed_leases_answer_409():
    project = annotation_project(review_rate="1", lease_seconds=60)
    items(project, 2)
    annotator = worker(project)
    for _ in range(2):
        lease = services.assignment_lease(project=project, annotator=annotator)
        services.annotation_submit(
            assignment_id=lease.pk, annotator=annotator, answer={"label": "positive"}
        )
    first, second = APIClient(), APIClient()
    first.force_login(worker(project, role=Membership.Role.REVIEWER))
    second.force_login(worker(project, role=Membership.Role.REVIEWER))
    next_url = f"/api/v1/workspace/projects/{project.pk}/review-next/"
    held = first.post(next_url).json()
    assert first.post(next_url).json()["id"] == held["id"]  # a reload: the same lease
    other = second.post(next_url).json()
    assert other["item"]["id"] != held["item"]["id"] and other["waiting"] == 1

    # Reviewing the item another reviewer holds is a conflict, named.
    response = second.post(
        f"/api/v1/workspace/items/{held['item']['id']}/review/",
        {"verdict": "accept"},
        format="json",
    )
    assert response.status_code == 409
    assert response.json()["errors"][0]["code"] == "review_lease_held_by_another"

    response = first.post(f"/api/v1/workspace/items/{held['item']['id']}/release/")
    assert response.status_code == 200 and response.json()["status"] == "released"
    response = first.post(f"/api/v1/workspace/items/{held['item']['id']}/release/")
    assert response.status_code == 409

    # A lapsed lease cannot be reviewed: 409, saying when it ended.
    ReviewLease.objects.filter(pk=other["id"]).update(expires_at=timezone.now())
    response = second.post(
        f"/api/v1/workspace/items/{other['item']['id']}/review/",
        {"verdict": "accept"},
        format="json",
    )
    assert response.status_code == 409
    assert "expired" in response.json()["errors"][0]["detail"]
    assert not Review.objects.exists()


def test_the_schema_documents_the_annotation_api(client):
    schema = client.get("/api/schema/").content.decode()
    for path in (
        "/api/v1/projects/{id}/import/",
        "/api/v1/workspace/projects/{id}/next/",
        "/api/v1/workspace/projects/{id}/review-next/",
        "/api/v1/workspace/items/{id}/release/",
        "/api/v1/dataset-versions/",
        "/api/v1/projects/{id}/export/",
        "/api/v1/projects/{id}/statement/",
    ):
        assert path in schema
    assert "外卖评论情感" in schema  # the project example


# --- monthly statements ---------------------------------------------------------------------


def ledger_entry(project, *, occurred_at, revenue, worker=None, **fields):
    from valuechain.services import ledger_post

    return ledger_post(
        idempotency_key=f"test:{project.pk}:{occurred_at.isoformat()}:{revenue}",
        kind=fields.pop("kind", "annotation"),
        occurred_at=occurred_at,
        region_id=project.workforce.region_id,
        client_id=project.organization_id,
        workforce_id=project.workforce_id,
        project_id=project.pk,
        worker_id=worker.pk if worker else None,
        skill_tier=fields.pop("skill_tier", 1),
        tokens_input=fields.pop("tokens_input", 100),
        tokens_output=fields.pop("tokens_output", 10),
        revenue=Decimal(revenue),
        cost=Decimal(fields.pop("cost", "0.5")),
    ).entry


def shanghai(*parts):
    return timezone.make_aware(datetime(*parts))


def test_the_monthly_statement_matches_the_ledger_exactly(client_api):
    from valuechain.models import LedgerEntry
    from valuechain.services import ledger_reverse

    project = annotation_project(organization=client_api.organization)
    annotator = worker(project, username="zhang-annotator")
    ledger_entry(project, worker=annotator, occurred_at=shanghai(2026, 5, 1), revenue="0.000123")
    ledger_entry(project, worker=annotator, occurred_at=shanghai(2026, 5, 2), revenue="2.5")
    rejected = ledger_entry(
        project, worker=annotator, occurred_at=shanghai(2026, 5, 3), revenue="0.010001"
    )
    ledger_reverse(entry=rejected, reason_key="review:1")
    ledger_entry(
        project,
        kind="inference",
        skill_tier=None,
        occurred_at=shanghai(2026, 5, 31, 23, 59),
        revenue="0.000456",
    )
    ledger_entry(project, worker=annotator, occurred_at=shanghai(2026, 6, 1), revenue="7")

    response = client_api.get(f"/api/v1/projects/{project.pk}/statement/", {"month": "2026-05"})

    assert response.status_code == 200, response.content
    body = response.json()
    ledger_total = LedgerEntry.objects.filter(
        project=project, occurred_at__lt=shanghai(2026, 6, 1)
    ).aggregate(total=Sum("revenue"))["total"]
    assert body["totals"]["revenue"] == str(ledger_total) == "2.500579"
    assert body["totals"]["entries"] == 3  # 4 units, one of them reversed
    assert (body["month"], body["currency"]) == ("2026-05", "CNY")
    assert [
        (ln["kind"], ln["skill_tier"], ln["entries"], ln["revenue"]) for ln in body["lines"]
    ] == [
        ("annotation", 1, 2, "2.500123"),
        ("inference", None, 1, "0.000456"),
    ]
    # No pay and no people: the client sees its charges only.
    text = response.content.decode()
    assert "cost" not in text and "zhang-annotator" not in text and "worker" not in text

    csv_response = client_api.get(
        f"/api/v1/projects/{project.pk}/statement/", {"month": "2026-05", "format": "csv"}
    )
    assert csv_response.status_code == 200
    assert csv_response["Content-Type"].startswith("text/csv")
    assert f"statement-{project.pk}-2026-05.csv" in csv_response["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(csv_response.content.decode())))
    assert rows == [
        ["kind", "skill_tier", "entries", "tokens_input", "tokens_output", "revenue"],
        ["annotation", "1", "2", "200", "20", "2.500123"],
        ["inference", "", "1", "100", "10", "0.000456"],
        ["total", "", "3", "300", "30", "2.500579"],
    ]


@pytest.mark.parametrize(
    "params", [{}, {"month": ""}, {"month": "2026-5"}, {"month": "2026-13"}, {"month": "May"}]
)
def test_a_statement_needs_a_month_as_yyyy_mm(client_api, params):
    project = annotation_project(organization=client_api.organization)
    response = client_api.get(f"/api/v1/projects/{project.pk}/statement/", params)
    assert response.status_code == 400
    (error,) = response.json()["errors"]
    assert error["attr"] == "month"
    assert error["detail"] == "Expected a month as YYYY-MM, e.g. 2026-05."


def test_a_statement_in_an_unknown_format_is_refused(client_api):
    project = annotation_project(organization=client_api.organization)
    response = client_api.get(
        f"/api/v1/projects/{project.pk}/statement/", {"month": "2026-05", "format": "xml"}
    )
    assert response.status_code == 400
    assert response.json()["errors"][0]["attr"] == "format"


def test_a_month_without_activity_is_an_empty_statement(client_api):
    project = annotation_project(organization=client_api.organization)
    ledger_entry(project, occurred_at=shanghai(2026, 4, 30, 23, 59), revenue="1")
    response = client_api.get(f"/api/v1/projects/{project.pk}/statement/", {"month": "2026-05"})
    assert response.status_code == 200
    body = response.json()
    assert body["lines"] == []
    assert body["totals"] == {
        "entries": 0,
        "tokens_input": 0,
        "tokens_output": 0,
        "revenue": "0.000000",
    }


def test_another_organizations_statement_is_not_found(client_api):
    foreign = annotation_project()
    ledger_entry(foreign, occurred_at=shanghai(2026, 5, 2), revenue="1")
    for params in ({"month": "2026-05"}, {}):
        response = client_api.get(f"/api/v1/projects/{foreign.pk}/statement/", params)
        assert response.status_code == 404


# --- the annotator's own record ---------------------------------------------------------------


def test_workspace_me_includes_tier_progress_earnings_and_history():
    from valuechain.models import TierChange

    project = annotation_project()
    annotator = worker(project, tier=2)
    other = worker(project, tier=2)
    today = timezone.localdate()
    now = timezone.now()
    ledger_entry(project, worker=annotator, occurred_at=now, revenue="1", cost="0.000123")
    ledger_entry(project, worker=other, occurred_at=now, revenue="2", cost="9")
    TierChange.objects.create(
        user=annotator, day=today, from_level=1, to_level=2, reason="cleared every T2 bar"
    )
    api = APIClient()
    api.force_login(annotator)
    from valuechain.services import rollups_catch_up

    rollups_catch_up()  # earnings are the batcher's rollups: beat runs it every few seconds
    body = api.get("/api/v1/workspace/me/").json()

    assert body["skill_tier"] == 2 and "gold_accuracy" in body  # the record is still there
    standing = body["standing"]
    assert standing["tier"] == {
        "level": 2,
        "name_en": "Structured annotation",
        "name_zh": "结构化标注",
        "pay_per_1k_tokens": "0.900000",
    }
    assert standing["next_tier"]["level"] == 3 and standing["next_tier"]["eligible"] is False
    assert [r["bar"] for r in standing["next_tier"]["requirements"]] == [
        "gold_accuracy",
        "review_acceptance",
        "volume_tokens",
    ]
    assert standing["next_tier"]["requirements"][2]["required"] == "1000000"
    earnings = standing["earnings"]
    assert earnings["this_month"] == {
        "month": f"{today:%Y-%m}",
        "entries": 1,
        "tokens": 110,
        "earnings": "0.000123",
    }
    assert earnings["total"] == "0.000123" and len(earnings["months"]) == 12
    assert standing["history"] == [
        {
            "day": today.isoformat(),
            "from_level": 1,
            "to_level": 2,
            "promoted": True,
            "reason": "cleared every T2 bar",
        }
    ]


# --- the hot path: cached roles are forgotten when they change ----------------------


def _leasing(project, annotator=None):
    annotator = annotator or worker(project)
    api = APIClient()
    api.force_login(annotator)
    first = api.post(f"/api/v1/workspace/projects/{project.pk}/next/")
    assert first.status_code == 200, first.content  # the roles are cached now
    return api, annotator, first.json()


def test_the_lease_payload_is_what_the_serializer_gave():
    project = annotation_project()
    items(project, 2, data={"text": "好吃"})
    api, _, lease = _leasing(project)
    assignment = services.Assignment.objects.get(pk=lease["id"])
    from annotation.serializers import LeaseSerializer

    assert lease == json.loads(json.dumps(LeaseSerializer(assignment).data))
    # A reload gives the same lease back, whatever the page holds.
    again = api.post(f"/api/v1/workspace/projects/{project.pk}/next/").json()
    assert again == lease
    second = api.post(
        f"/api/v1/workspace/projects/{project.pk}/next/", {"holding": [lease["id"]]}, format="json"
    ).json()
    assert second["id"] != lease["id"]


@pytest.mark.parametrize(
    ("body", "holding"),
    [
        ({}, []),
        ({"holding": [3, 4]}, [3, 4]),
        ({"holding": ["3"]}, [3]),  # the serializer's way: a numeric string is an id
        ({"holding": [1] * 10}, [1] * 10),
    ],
)
def test_holding_is_read_as_the_serializer_reads_it(body, holding):
    from annotation.api import _holding
    from annotation.serializers import NextTaskSerializer

    form = NextTaskSerializer(data=body)
    assert form.is_valid() and form.validated_data["holding"] == holding == _holding(body)


@pytest.mark.parametrize(
    "body", [{"holding": [1] * 11}, {"holding": "1"}, {"holding": [True]}, {"holding": [None]}]
)
def test_a_holding_the_serializer_refuses_is_a_400_naming_it(body):
    project = annotation_project()
    items(project, 1)
    api, _, _ = _leasing(project)
    response = api.post(f"/api/v1/workspace/projects/{project.pk}/next/", body, format="json")
    assert response.status_code == 400, response.content
    assert "holding" in response.content.decode()


def test_a_lease_on_a_held_project_asks_no_role_query(django_assert_max_num_queries):
    project = annotation_project()
    items(project, 3)
    api, _, lease = _leasing(project)
    # The session's user, then one statement: gate, lease and item.
    with django_assert_max_num_queries(2):
        api.post(
            f"/api/v1/workspace/projects/{project.pk}/next/",
            {"holding": [lease["id"]]},
            format="json",
        )


@pytest.mark.postgres
def test_a_submit_is_the_statements_it_needs_and_stores_what_the_orm_would(
    django_assert_max_num_queries,
):
    project = annotation_project(overlap=2)
    items(project, 3, data={"text": "好吃"})
    api, annotator, lease = _leasing(project)
    # The session's user, BEGIN, the locked read, one write (annotation, lease,
    # item count), the pay rate, the ledger entry, COMMIT.
    with django_assert_max_num_queries(7):
        response = api.post(
            f"/api/v1/workspace/assignments/{lease['id']}/submit/",
            {"answer": {"label": "positive"}, "time_spent_ms": 1500},
            format="json",
        )
    assert response.status_code == 201, response.content
    from annotation.models import Annotation, Assignment
    from valuechain.models import LedgerEntry

    annotation = Annotation.objects.get(pk=response.json()["id"])
    assignment = Assignment.objects.get(pk=lease["id"])
    item = Item.objects.get(pk=lease["item"]["id"])
    assert (annotation.answer, annotation.status, annotation.time_spent_ms) == (
        {"label": "positive"},
        "submitted",
        1500,
    )
    assert annotation.annotator == annotator and annotation.assignment == assignment
    assert annotation.item_tokens > 0 and annotation.created_at is not None
    assert datetime.fromisoformat(response.json()["created_at"]) == annotation.created_at
    assert (assignment.status, assignment.finished_at is not None) == ("submitted", True)
    assert (item.annotation_count, item.reserved_count, item.status) == (1, 1, "open")
    assert LedgerEntry.objects.filter(idempotency_key=f"annotation:{annotation.pk}").count() == 1
    # A retry answers the first annotation and writes nothing.
    again = api.post(
        f"/api/v1/workspace/assignments/{lease['id']}/submit/",
        {"answer": {"label": "negative"}},
        format="json",
    )
    assert (again.status_code, again.json()["id"]) == (200, annotation.pk)
    assert Item.objects.get(pk=item.pk).annotation_count == 1


def test_a_removed_annotator_is_refused_on_the_very_next_request():
    project = annotation_project()
    items(project, 3)
    api, annotator, lease = _leasing(project)
    membership = Membership.objects.get(user=annotator, organization=project.workforce)
    from tenants.services import membership_delete

    membership_delete(membership=membership, actor=None)
    assert api.post(f"/api/v1/workspace/projects/{project.pk}/next/").status_code == 404
    submitted = api.post(
        f"/api/v1/workspace/assignments/{lease['id']}/submit/",
        {"answer": {"label": "positive"}},
        format="json",
    )
    assert submitted.status_code == 404
    assert api.post(f"/api/v1/workspace/assignments/{lease['id']}/skip/").status_code == 404


def test_an_annotator_made_reviewer_may_no_longer_lease():
    project = annotation_project()
    items(project, 3)
    api, annotator, _ = _leasing(project)
    membership = Membership.objects.get(user=annotator, organization=project.workforce)
    from tenants.services import membership_role_change

    membership_role_change(membership=membership, role=Membership.Role.REVIEWER, actor=None)
    refused = api.post(f"/api/v1/workspace/projects/{project.pk}/next/")
    assert refused.status_code == 403
    assert "not an annotator" in refused.json()["errors"][0]["detail"]


def test_a_deactivated_centre_refuses_its_annotators_at_once():
    project = annotation_project()
    items(project, 3)
    api, _, _ = _leasing(project)
    project.workforce.is_active = False
    project.workforce.save()
    assert api.post(f"/api/v1/workspace/projects/{project.pk}/next/").status_code == 404


def test_a_tier_below_the_project_is_refused_with_the_reason():
    project = annotation_project()
    items(project, 3)
    api, _, _ = _leasing(project)
    Project.objects.filter(pk=project.pk).update(required_tier=3)
    refused = api.post(f"/api/v1/workspace/projects/{project.pk}/next/")
    assert refused.status_code == 403
    assert "skill tier T3" in refused.json()["errors"][0]["detail"]


def test_a_revoked_token_is_refused_on_the_very_next_request():
    project = annotation_project()
    items(project, 3)
    admin = worker(project, role=Membership.Role.ADMIN)
    token, secret = api_token(
        organization=project.workforce, user=admin, roles=[Membership.Role.ANNOTATOR]
    )
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    assert api.post(f"/api/v1/workspace/projects/{project.pk}/next/").status_code == 200
    from tenants.services import api_token_revoke

    api_token_revoke(token=token, revoked_by=admin)
    assert api.post(f"/api/v1/workspace/projects/{project.pk}/next/").status_code == 401


def test_a_token_whose_creator_lost_the_role_is_refused_at_once():
    project = annotation_project()
    items(project, 3)
    admin = worker(project, role=Membership.Role.ADMIN)
    _, secret = api_token(
        organization=project.workforce, user=admin, roles=[Membership.Role.ANNOTATOR]
    )
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    assert api.post(f"/api/v1/workspace/projects/{project.pk}/next/").status_code == 200
    Membership.objects.filter(user=admin).delete()
    assert api.post(f"/api/v1/workspace/projects/{project.pk}/next/").status_code == 401


def test_a_submit_with_a_bad_body_on_someone_elses_lease_is_not_found():
    project = annotation_project()
    items(project, 3)
    _, _, lease = _leasing(project)
    other = APIClient()
    other.force_login(worker(project))
    assert other.post(f"/api/v1/workspace/assignments/{lease['id']}/submit/", {}).status_code == 404
    assert (
        other.post(
            f"/api/v1/workspace/assignments/{lease['id']}/submit/",
            {"answer": {"label": "positive"}},
            format="json",
        ).status_code
        == 404
    )
