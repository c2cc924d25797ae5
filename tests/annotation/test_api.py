import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.test import APIClient

from annotation.models import Item, Project
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
    item = queue["results"][0]
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

    # The annotator, even as a reviewer, finds nothing of their own to review.
    Membership.objects.create(user=annotator, organization=project.workforce, role="reviewer")
    own = api.get(f"/api/v1/workspace/projects/{project.pk}/review-queue/").json()
    assert own["count"] == 0


def test_the_schema_documents_the_annotation_api(client):
    schema = client.get("/api/schema/").content.decode()
    for path in (
        "/api/v1/projects/{id}/import/",
        "/api/v1/workspace/projects/{id}/next/",
        "/api/v1/dataset-versions/",
        "/api/v1/projects/{id}/export/",
    ):
        assert path in schema
    assert "外卖评论情感" in schema  # the project example
