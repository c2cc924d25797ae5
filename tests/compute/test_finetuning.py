"""Fine-tuning runs against an OpenAI-compatible server over real HTTP."""

from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError

from annotation import exports
from annotation import services as annotation_services
from annotation.models import Item
from compute import finetuning
from compute.models import Backend, FineTuneRun, Prediction
from tests.compute.fake_openai import FakeOpenAI
from tests.factories import annotation_project, items, worker

pytestmark = pytest.mark.django_db


def labelled_project(n=30):
    project = annotation_project()
    made = items(project, n)
    annotator = worker(project)
    for index, _ in enumerate(made):
        lease = annotation_services.assignment_lease(project=project, annotator=annotator)
        label = "positive" if index % 3 else "negative"
        annotation_services.annotation_submit(
            assignment_id=lease.pk, annotator=annotator, answer={"label": label}
        )
    return project


def test_fine_tune_register_and_evaluate(django_capture_on_commit_callbacks):
    project = labelled_project()
    dataset = exports.dataset_version_create(
        project=project, created_by=project.created_by, seed=3, validation_ratio="0.3"
    )
    with FakeOpenAI(polls_until_running=1, polls_until_done=2) as fake:
        backend = Backend.objects.create(
            organization=project.workforce,
            name="fake",
            base_url=fake.url,
            models_served=["fake-model"],
            price_training_per_million=Decimal("25"),
        )
        with django_capture_on_commit_callbacks(execute=True):
            run = finetuning.finetune_run_start(
                dataset=dataset, backend=backend, created_by=project.created_by
            )
        run.refresh_from_db()
        assert run.status == FineTuneRun.Status.QUEUED and run.remote_job.startswith("ftjob-")
        upload = next(r for r in fake.requests if r.path == "/v1/files")
        assert b"fine-tune" in upload.body
        job_request = next(r for r in fake.requests if r.path == "/v1/fine_tuning/jobs")
        assert job_request.json["method"] == {"type": "supervised"}
        assert job_request.json["validation_file"]

        assert finetuning.finetune_run_poll(run_id=run.pk).status == FineTuneRun.Status.RUNNING
        with django_capture_on_commit_callbacks(execute=True):
            finetuning.finetune_run_poll(run_id=run.pk)
        run.refresh_from_db()

    assert run.status == FineTuneRun.Status.SUCCEEDED, run.error
    assert run.fine_tuned_model.startswith("ft:fake-model:")
    assert run.trained_tokens > 0
    assert run.cost == (Decimal(run.trained_tokens) * 25 / Decimal(1_000_000)).quantize(
        Decimal("0.000001")
    )
    backend.refresh_from_db()
    assert run.fine_tuned_model in backend.models_served  # ready for pre-labeling
    assert run.events and run.events[0]["object"] == "fine_tuning.job.event"

    evaluation = run.evaluation
    held_out = dataset.validation_count
    assert evaluation["items"] == held_out > 0
    # The fake answers "positive" for everything: accuracy is the share of positives.
    truth_positive = Prediction.objects.filter(
        run_id=evaluation["evaluation_run"], item__result__answer__label="positive"
    ).count()
    assert evaluation["accuracy"] == round(truth_positive / held_out, 4)
    assert evaluation["disagreements"] == held_out - truth_positive
    # Disagreements went to human review; the evaluation left suggestions alone.
    assert (
        Item.objects.filter(project=project, status="in_review").count()
        == evaluation["disagreements"]
    )
    assert not any("suggestion" in i.metadata for i in Item.objects.filter(project=project))


def test_a_failed_remote_job_fails_the_run(django_capture_on_commit_callbacks):
    project = labelled_project(6)
    dataset = exports.dataset_version_create(
        project=project, created_by=project.created_by, validation_ratio="0"
    )
    with FakeOpenAI(polls_until_done=1, job_outcome="failed") as fake:
        backend = Backend.objects.create(
            organization=project.workforce,
            name="fake",
            base_url=fake.url,
            models_served=["fake-model"],
        )
        with django_capture_on_commit_callbacks(execute=True):
            run = finetuning.finetune_run_start(
                dataset=dataset, backend=backend, created_by=project.created_by
            )
        run = finetuning.finetune_run_poll(run_id=run.pk)
    assert run.status == FineTuneRun.Status.FAILED and run.error


def test_dpo_needs_a_preference_dataset():
    project = labelled_project(3)
    dataset = exports.dataset_version_create(
        project=project, created_by=project.created_by, validation_ratio="0"
    )
    backend = Backend.objects.create(
        organization=project.workforce,
        name="b",
        base_url="http://127.0.0.1:9/v1",
        models_served=["m"],
    )
    with pytest.raises(ValidationError, match="dpo run needs a dataset"):
        finetuning.finetune_run_start(
            dataset=dataset, backend=backend, created_by=project.created_by, method="dpo"
        )


def test_the_sweep_resubmits_a_run_whose_worker_died_and_fails_a_spent_step(
    django_capture_on_commit_callbacks,
):
    from datetime import timedelta

    from django.utils import timezone

    project = labelled_project(6)
    dataset = exports.dataset_version_create(
        project=project, created_by=project.created_by, validation_ratio="0"
    )
    with FakeOpenAI() as fake:
        backend = Backend.objects.create(
            organization=project.workforce,
            name="fake",
            base_url=fake.url,
            models_served=["fake-model"],
        )
        lapsed = timezone.now() - timedelta(seconds=1)
        uploading, spent = (
            FineTuneRun.objects.create(
                project=project,
                dataset=dataset,
                backend=backend,
                base_model="fake-model",
                created_by=project.created_by,
                status=status,
                claimed_by="w:1",
                lease_expires_at=lapsed,
                attempts=attempts,
            )
            for status, attempts in (("uploading", 1), ("evaluating", 3))
        )
        with django_capture_on_commit_callbacks(execute=True):
            assert finetuning.finetune_runs_recover() == 2
    uploading.refresh_from_db()
    spent.refresh_from_db()
    assert uploading.status == FineTuneRun.Status.QUEUED and uploading.remote_job
    assert spent.status == FineTuneRun.Status.FAILED
    assert spent.error.startswith("The worker running this fine-tuning step stopped 3 times")
    assert finetuning.finetune_runs_recover() == 0
