"""annotation.project_views: the pages where clients and centre managers run projects."""

import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse

from annotation.models import DatasetVersion, ExportJob, ImportJob, Item, ItemResult, Project
from tenants.models import AuditEvent, Membership, Organization
from tests.factories import OrganizationFactory, annotation_project, items, member, worker

pytestmark = pytest.mark.django_db

Role = Membership.Role
SCHEMA = {"labels": [{"value": "1", "title": "正面"}, {"value": "0", "title": "负面"}]}
WAIMAI_CSV = "label,review\n1,很快，好吃，味道足，量大\n0,送餐太慢了\n1,还不错\n".encode()


def signed_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def form_data(**overrides):
    data = {
        "name": "外卖评论情感",
        "description": "",
        "task_type": "classification",
        "label_schema": json.dumps(SCHEMA, ensure_ascii=False),
        "instructions": "# 规则\n\n判断评论的**情感**。",
        "decision": "fixed",
        "overlap": "2",
        "target_confidence": "98",
        "max_annotations": "5",
        "gold_ratio": "3",
        "review_rate": "5",
        "required_tier": "1",
        "price_per_1k_tokens": "",
        "status": "active",
    }
    data.update(overrides)
    return data


@pytest.fixture
def served():
    """A client whose work the centre already does, and the centre's manager."""
    existing = annotation_project()
    manager = worker(existing, role=Role.PROJECT_MANAGER)
    return existing, manager


# --- who sees what ---------------------------------------------------------------------


def test_a_centre_manager_lists_the_centres_projects_and_a_client_its_own(served):
    existing, manager = served
    elsewhere = annotation_project()
    page = signed_in(manager).get(reverse("project-list"))
    assert page.status_code == 200
    assert existing.name in page.content.decode()
    assert f'data-project="{elsewhere.pk}"' not in page.content.decode()
    client = member(organization=existing.organization, role=Role.CLIENT_DEVELOPER)
    page = signed_in(client).get(reverse("project-list"))
    assert f'data-project="{existing.pk}"' in page.content.decode()
    assert f'data-project="{elsewhere.pk}"' not in page.content.decode()


def test_another_organizations_project_is_a_404_on_every_page(served):
    existing, _manager = served
    outsider = member(role=Role.CLIENT_DEVELOPER)
    client = signed_in(outsider)
    for name in ("project-detail", "project-settings", "project-runs"):
        assert client.get(reverse(name, args=[existing.pk])).status_code == 404
    response = client.post(
        reverse("project-import", args=[existing.pk]),
        {"file": SimpleUploadedFile("x.csv", WAIMAI_CSV)},
    )
    assert response.status_code == 404
    assert not ImportJob.objects.exists()


def test_annotators_get_no_project_pages(served):
    existing, _manager = served
    annotator = worker(existing)
    assert signed_in(annotator).get(reverse("project-list")).status_code == 403
    assert signed_in(annotator).get(reverse("project-create")).status_code == 403
    assert (
        signed_in(annotator).get(reverse("project-detail", args=[existing.pk])).status_code == 404
    )


def test_the_navigation_offers_projects_to_those_who_run_them(served):
    existing, manager = served
    assert 'id="nav-projects"' in signed_in(manager).get("/").content.decode()
    assert 'id="nav-projects"' not in signed_in(worker(existing)).get("/").content.decode()


# --- creating and configuring ------------------------------------------------------------


def test_a_centre_manager_creates_an_active_priced_staffed_project(served):
    existing, manager = served
    response = signed_in(manager).post(
        reverse("project-create"),
        form_data(organization=existing.organization.pk, workforce=existing.workforce.pk),
    )
    assert response.status_code == 302, response.content.decode()
    project = Project.objects.exclude(pk=existing.pk).get()
    # What a user expects without a second step: open for work, staffed, priced.
    assert project.status == Project.Status.ACTIVE
    assert project.workforce == existing.workforce
    assert project.price_per_1k_tokens > 0  # the tier's list price
    assert str(project.gold_ratio) == "0.030"
    assert project.created_by == manager
    assert AuditEvent.objects.filter(
        event_type=AuditEvent.EventType.PROJECT_CREATED, target_id=str(project.pk)
    ).exists()
    assert response["Location"] == reverse("project-detail", args=[project.pk])


def test_a_centre_manager_cannot_create_for_a_client_the_centre_does_not_serve(served):
    _existing, manager = served
    stranger = OrganizationFactory(kind=Organization.Kind.CLIENT)
    response = signed_in(manager).post(
        reverse("project-create"), form_data(organization=stranger.pk)
    )
    assert response.status_code == 400
    assert "organization" in response.context["form"].errors
    assert Project.objects.count() == 1


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("label_schema", "{not json"),
        ("label_schema", json.dumps({"labels": []})),
        ("overlap", "0"),
        ("gold_ratio", "120"),
        ("target_confidence", "20"),
        ("price_per_1k_tokens", "-1"),
        ("name", ""),
        ("required_tier", "9"),
    ],
)
def test_bad_input_is_a_form_error_naming_the_field(served, field, value):
    existing, manager = served
    response = signed_in(manager).post(
        reverse("project-create"),
        form_data(
            organization=existing.organization.pk,
            workforce=existing.workforce.pk,
            **{field: value},
        ),
    )
    assert response.status_code == 400
    assert field in response.context["form"].errors
    assert f'data-error-for="{field}"' in response.content.decode()
    assert Project.objects.count() == 1


def test_adaptive_decisions_for_free_text_are_refused_on_the_decision_field(served):
    existing, manager = served
    response = signed_in(manager).post(
        reverse("project-create"),
        form_data(
            organization=existing.organization.pk,
            workforce=existing.workforce.pk,
            task_type="text",
            label_schema="{}",
            decision="adaptive",
        ),
    )
    assert response.status_code == 400
    assert "decision" in response.context["form"].errors


def test_settings_change_only_what_changed_and_keep_the_centre(served):
    existing, manager = served
    items(existing, 2)
    page = signed_in(manager).get(reverse("project-settings", args=[existing.pk]))
    data = {k: v for k, v in page.context["form"].initial.items()}
    data.update(status="paused", workforce=existing.workforce.pk, price_per_1k_tokens="2.5")
    response = signed_in(manager).post(reverse("project-settings", args=[existing.pk]), data)
    assert response.status_code == 302, response.context["form"].errors
    existing.refresh_from_db()
    assert existing.status == Project.Status.PAUSED
    assert str(existing.price_per_1k_tokens) == "2.5000"


def test_markdown_preview_is_cleaned(served):
    _existing, manager = served
    response = signed_in(manager).post(
        reverse("project-markdown-preview"),
        {"text": "**粗体** <script>alert(1)</script> [x](javascript:alert(1))"},
    )
    html = response.content.decode()
    assert "<strong>粗体</strong>" in html
    assert "<script>" not in html
    assert 'href="javascript' not in html


# --- imports, exports, datasets -----------------------------------------------------------


def waimai_project(served) -> Project:
    existing, _manager = served
    existing.label_schema = SCHEMA
    existing.save(update_fields=["label_schema"])
    return existing


def test_a_waimai_csv_imports_with_its_review_column_as_the_text(
    served, django_capture_on_commit_callbacks
):
    project = waimai_project(served)
    _existing, manager = served
    with django_capture_on_commit_callbacks(execute=True):
        response = signed_in(manager).post(
            reverse("project-import", args=[project.pk]),
            {
                "file": SimpleUploadedFile("waimai.csv", WAIMAI_CSV, content_type="text/csv"),
                "text_column": "review",
                "on_error": "reject",
                "on_conflict": "update",
            },
        )
    assert response.status_code == 302
    job = ImportJob.objects.get()
    assert response["Location"] == reverse("project-import-detail", args=[project.pk, job.pk])
    job.refresh_from_db()
    assert job.status == ImportJob.Status.SUCCEEDED, job.errors
    assert Item.objects.filter(project=project).count() == 3
    assert Item.objects.filter(project=project).first().data["text"] == "很快，好吃，味道足，量大"
    status = (
        signed_in(manager).get(reverse("project-import-status", args=[project.pk, job.pk])).json()
    )
    assert status["done"] and status["progress"] == 1.0


def test_a_bad_file_shows_the_row_error_report(served, django_capture_on_commit_callbacks):
    project = waimai_project(served)
    _existing, manager = served
    with django_capture_on_commit_callbacks(execute=True):
        signed_in(manager).post(
            reverse("project-import", args=[project.pk]),
            {
                "file": SimpleUploadedFile("waimai.csv", WAIMAI_CSV),
                "on_error": "reject",
                "on_conflict": "update",
            },
        )
    job = ImportJob.objects.get()
    assert job.status == ImportJob.Status.FAILED
    page = signed_in(manager).get(reverse("project-import-detail", args=[project.pk, job.pk]))
    assert 'id="row-error-table"' in page.content.decode()
    assert "data.text" in page.content.decode()


def test_a_text_column_for_a_type_without_text_is_a_form_error_on_it():
    project = annotation_project(task_type="preference")
    manager = worker(project, role=Role.PROJECT_MANAGER)
    response = signed_in(manager).post(
        reverse("project-import", args=[project.pk]),
        {
            "file": SimpleUploadedFile("pairs.csv", b"q,a,b\n1,2,3\n"),
            "text_column": "q",
            "on_error": "reject",
            "on_conflict": "update",
        },
    )
    assert response.status_code == 400
    assert "text_column" in response.context["import_form"].errors
    assert not ImportJob.objects.exists()


def test_an_empty_file_is_a_form_error(served):
    project = waimai_project(served)
    _existing, manager = served
    response = signed_in(manager).post(
        reverse("project-import", args=[project.pk]),
        {
            "file": SimpleUploadedFile("empty.csv", b""),
            "on_error": "reject",
            "on_conflict": "update",
        },
    )
    assert response.status_code == 400
    assert "file" in response.context["import_form"].errors
    assert not ImportJob.objects.exists()


def test_export_and_dataset_download(served, django_capture_on_commit_callbacks):
    project = waimai_project(served)
    _existing, manager = served
    for item in items(project, 3):
        ItemResult.objects.create(
            item=item,
            project=project,
            answer={"label": "1"},
            confidence=1.0,
            method="single",
            approved=True,
        )
        Item.objects.filter(pk=item.pk).update(status=Item.Status.DONE)
    client = signed_in(manager)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            reverse("project-export", args=[project.pk]),
            {"format": "results_jsonl", "approved_only": "on"},
        )
    assert response.status_code == 302
    job = ExportJob.objects.get()
    assert job.status == ExportJob.Status.SUCCEEDED
    download = client.get(reverse("project-export-download", args=[project.pk, job.pk]))
    assert download.status_code == 200
    assert len(b"".join(download.streaming_content).splitlines()) == 3

    response = client.post(
        reverse("project-dataset-create", args=[project.pk]), {"validation_ratio": "0"}
    )
    assert response.status_code == 302
    dataset = DatasetVersion.objects.get()
    train = client.get(reverse("project-dataset-download", args=[project.pk, dataset.pk, "train"]))
    assert train.status_code == 200
    missing = client.get(
        reverse("project-dataset-download", args=[project.pk, dataset.pk, "validation"])
    )
    assert missing.status_code == 404


def test_a_format_that_does_not_fit_the_task_type_is_refused_without_a_job(served):
    project = waimai_project(served)
    _existing, manager = served
    response = signed_in(manager).post(
        reverse("project-export", args=[project.pk]), {"format": "dpo"}
    )
    assert response.status_code == 302
    assert not ExportJob.objects.exists()


def test_the_project_page_shows_progress_quality_and_gold_confusion(served):
    project = waimai_project(served)
    _existing, manager = served
    items(project, 4)
    page = signed_in(manager).get(reverse("project-detail", args=[project.pk]))
    assert page.status_code == 200
    html = page.content.decode()
    for section in (
        "progress",
        "throughput",
        "cost",
        "quality",
        "review-queue",
        "imports",
        "exports",
        "datasets",
    ):
        assert f'id="{section}"' in html
    assert 'id="confusion-matrix"' in html
    assert 'id="annotator-accuracy"' in html  # the centre's manager sees people
    client = member(organization=project.organization, role=Role.CLIENT_DEVELOPER)
    html = signed_in(client).get(reverse("project-detail", args=[project.pk])).content.decode()
    assert 'id="annotator-accuracy"' not in html  # the client sees counts


def test_the_statement_shows_a_chosen_month_and_names_a_bad_one(served):
    project = waimai_project(served)
    _existing, manager = served
    url = reverse("project-detail", args=[project.pk])
    page = signed_in(manager).get(url, {"month": "2026-10"})
    assert page.status_code == 200
    assert page.context["statement"]["month"].isoformat() == "2026-10-01"
    assert 'id="statement-csv"' not in page.content.decode()  # the API serves the client
    page = signed_in(manager).get(url, {"month": "October"})
    assert page.status_code == 200
    assert 'data-error-for="month"' in page.content.decode()
    client = member(organization=project.organization, role=Role.CLIENT_DEVELOPER)
    html = signed_in(client).get(url).content.decode()
    assert 'id="statement-csv"' in html
