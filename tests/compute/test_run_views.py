"""compute.run_views: starting and watching pre-labeling and fine-tuning from the web."""

from decimal import Decimal

import pytest
from django.test import Client
from django.urls import reverse

from compute.models import Backend, FineTuneRun, PrelabelRun
from tenants.models import Membership
from tests.compute.fake_openai import FakeOpenAI
from tests.factories import annotation_project, items, member, worker

pytestmark = pytest.mark.django_db

Role = Membership.Role


@pytest.fixture
def fake():
    with FakeOpenAI() as server:
        yield server


def signed_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def project_with_backend(url):
    project = annotation_project()
    items(project, 4)
    Backend.objects.create(
        organization=project.workforce,
        name="fake",
        kind="vllm",
        base_url=url,
        models_served=["fake-model"],
        price_input_per_million=Decimal("1.00"),
        price_output_per_million=Decimal("2.00"),
    )
    return project


def test_a_centre_manager_starts_a_run_and_watches_it_finish(
    fake, django_capture_on_commit_callbacks
):
    project = project_with_backend(fake.url)
    client = signed_in(worker(project, role=Role.PROJECT_MANAGER))
    page = client.get(reverse("project-runs", args=[project.pk]))
    assert page.status_code == 200
    assert "fake-model" in page.content.decode()
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            reverse("project-prelabel-start", args=[project.pk]),
            {"model": "fake-model", "policy": "cheapest"},
        )
    run = PrelabelRun.objects.get()
    assert response["Location"] == reverse("project-prelabel-run", args=[project.pk, run.pk])
    state = client.get(reverse("project-prelabel-run-status", args=[project.pk, run.pk])).json()
    assert state["done"] and state["status"] == "succeeded"
    assert state["progress"] == 1.0
    assert state["cost_text"].startswith("¥")
    page = client.get(reverse("project-prelabel-run", args=[project.pk, run.pk]))
    assert 'id="run-status" data-status="succeeded"' in page.content.decode()


def test_cancel_and_resume_go_through_the_services(fake, django_capture_on_commit_callbacks):
    project = project_with_backend(fake.url)
    client = signed_in(project.created_by)
    with django_capture_on_commit_callbacks(execute=False):
        client.post(reverse("project-prelabel-start", args=[project.pk]), {"policy": "cheapest"})
    run = PrelabelRun.objects.get()
    client.post(reverse("project-prelabel-run-action", args=[project.pk, run.pk, "cancel"]))
    run.refresh_from_db()
    assert run.status == PrelabelRun.Status.CANCELLED
    with django_capture_on_commit_callbacks(execute=True):
        client.post(reverse("project-prelabel-run-action", args=[project.pk, run.pk, "resume"]))
    run.refresh_from_db()
    assert run.status == PrelabelRun.Status.SUCCEEDED
    assert (
        client.post(
            reverse("project-prelabel-run-action", args=[project.pk, run.pk, "explode"])
        ).status_code
        == 404
    )


def test_no_backend_is_a_form_error_not_a_500():
    project = annotation_project()
    items(project, 2)
    response = signed_in(project.created_by).post(
        reverse("project-prelabel-start", args=[project.pk]), {"policy": "cheapest"}
    )
    assert response.status_code == 400
    assert "No active backend" in response.content.decode()
    assert not PrelabelRun.objects.exists()


def test_an_unknown_model_or_policy_is_a_form_error(fake):
    project = project_with_backend(fake.url)
    response = signed_in(project.created_by).post(
        reverse("project-prelabel-start", args=[project.pk]),
        {"model": "gpt-9", "policy": "teleport"},
    )
    assert response.status_code == 400
    assert set(response.context["prelabel_form"].errors) == {"model", "policy"}


def test_outsiders_and_annotators_see_no_runs(fake):
    project = project_with_backend(fake.url)
    for user in (member(role=Role.PROJECT_MANAGER), worker(project)):
        assert signed_in(user).get(reverse("project-runs", args=[project.pk])).status_code == 404


def test_fine_tuning_needs_a_dataset_of_the_project():
    project = annotation_project()
    other = annotation_project()
    response = signed_in(project.created_by).post(
        reverse("project-finetune-start", args=[project.pk]), {"dataset": "1", "backend": "1"}
    )
    assert response.status_code == 400
    assert "dataset" in response.context["finetune_form"].errors
    assert not FineTuneRun.objects.exists()
    assert other  # another project's datasets are never offered
