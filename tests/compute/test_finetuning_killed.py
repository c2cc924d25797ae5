"""A worker killed in the middle of a fine-tuning run's evaluation: the sweep
re-dispatches the step once its lease lapses, and a second worker finishes it
with the same evaluation run, each held-out item predicted once."""

import pytest

from annotation import exports
from compute import finetuning
from compute.models import Backend, FineTuneRun, Prediction, PrelabelRun
from tests.celery_worker import BOUND_SECONDS, stop_worker, sweep_until_ended, wait_for
from tests.compute.fake_openai import FakeOpenAI
from tests.compute.test_finetuning import labelled_project

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.django_db(transaction=True)]


def beat():
    """What beat does for fine-tuning: follow remote jobs, recover stopped steps."""
    finetuning.finetune_runs_poll_all()
    finetuning.finetune_runs_recover()


def test_a_fine_tuning_run_whose_worker_was_killed_mid_evaluation_finishes(celery_workers):
    project = labelled_project(24)
    dataset = exports.dataset_version_create(
        project=project, created_by=project.created_by, seed=3, validation_ratio="0.5"
    )
    with FakeOpenAI(polls_until_running=1, polls_until_done=2) as fake:
        backend = Backend.objects.create(
            organization=project.workforce,
            name="fake",
            base_url=fake.url,
            models_served=["fake-model"],
            max_concurrency=1,
        )
        first = celery_workers()
        run = finetuning.finetune_run_start(
            dataset=dataset, backend=backend, created_by=project.created_by
        )
        wait_for(
            lambda: (
                FineTuneRun.objects.get(pk=run.pk).status != FineTuneRun.Status.PENDING
                and FineTuneRun.objects.get(pk=run.pk).status != FineTuneRun.Status.UPLOADING
            ),
            60,
            f"the run submitted (see {celery_workers.log})",
        )
        fake.set_latency(0.4)  # each evaluation call: time to kill the worker mid-way

        def evaluating():
            finetuning.finetune_runs_poll_all()  # queues the evaluation once trained
            return Prediction.objects.filter(run__purpose="evaluation", run__project=project)

        wait_for(
            lambda: evaluating().count() >= 2,
            60,
            f"the first worker's evaluation under way (see {celery_workers.log})",
        )
        stop_worker(first, kill=True)
        killed = FineTuneRun.objects.get(pk=run.pk)
        assert killed.status == FineTuneRun.Status.EVALUATING  # really mid-evaluation
        assert evaluating().count() < dataset.validation_count
        assert not killed.evaluation

        celery_workers()
        took = sweep_until_ended(
            FineTuneRun, run.pk, beat, celery_workers.log, ended=("succeeded", "failed")
        )

    run.refresh_from_db()
    assert run.status == FineTuneRun.Status.SUCCEEDED, run.error
    assert took < BOUND_SECONDS
    held_out = dataset.validation_count
    assert run.evaluation["items"] == run.evaluation["predicted"] == held_out
    evaluation_runs = PrelabelRun.objects.filter(project=project, purpose="evaluation")
    assert [r.pk for r in evaluation_runs] == [run.evaluation["evaluation_run"]]
    predicted = list(
        Prediction.objects.filter(run_id=run.evaluation["evaluation_run"]).values_list(
            "item_id", flat=True
        )
    )
    assert len(predicted) == len(set(predicted)) == held_out
    assert run.attempts == 1 and run.claimed_by == ""
