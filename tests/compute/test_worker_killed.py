"""A worker killed (SIGKILL) in the middle of a pre-labeling run, with the broker's
visibility timeout at an hour (the README's default): the chunk it held is claimed
in the database under a lease, so beat's sweep re-dispatches it once the lease
lapses and a second worker finishes the run on its own. Every item ends with
exactly one prediction, every call the dead worker made was metered as it
returned and none twice, and the ledger reconciles."""

import pytest

from compute.models import Backend, InferenceCall, Prediction, PrelabelChunk, PrelabelRun
from compute.services import prelabel_run_start
from compute.tasks import prelabel_chunk_run_task, prelabel_runs_sweep_task
from tests.celery_worker import BOUND_SECONDS, stop_worker, sweep_until_ended, wait_for
from tests.compute.fake_openai import FakeOpenAI
from tests.factories import annotation_project, items
from valuechain.models import LedgerEntry
from valuechain.services import rollups_reconcile

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.django_db(transaction=True)]

ITEMS = 60
CONCURRENCY = 4


def backend(project, url, concurrency):
    return Backend.objects.create(
        organization=project.workforce,
        name="fake",
        base_url=url,
        models_served=["fake-model"],
        max_concurrency=concurrency,
    )


def test_a_run_whose_worker_was_killed_finishes_on_its_own(celery_workers, settings):
    settings.COMPUTE_METER_FLUSH_SECONDS = 1.0  # the README's default, as in the worker
    project = annotation_project()
    items(project, ITEMS)
    with FakeOpenAI(latency=0.3) as fake:
        backend(project, fake.url, CONCURRENCY)
        first = celery_workers()
        run = prelabel_run_start(project=project, created_by=project.created_by)
        # Four calls at a time, 0.3 s each: kill the worker a few waves in, once
        # its first calls are metered (they are written as they return).
        wait_for(
            lambda: InferenceCall.objects.filter(run=run).count() >= 12,
            60,
            f"the first worker's calls metered (see {celery_workers.log})",
        )
        stop_worker(first, kill=True)
        killed = PrelabelRun.objects.get(pk=run.pk)
        assert killed.status == "running"
        assert Prediction.objects.filter(run=run).count() < ITEMS  # really mid-run
        held = PrelabelChunk.objects.get(run=run)
        assert held.claimed_by and held.status == "pending"

        # A second worker is up: the message the dead one held is not re-delivered
        # for an hour, so only the sweep (beat's, run here) brings the chunk back.
        celery_workers()
        took = sweep_until_ended(
            PrelabelRun,
            run.pk,
            prelabel_runs_sweep_task,
            celery_workers.log,
            ended=("succeeded", "partial", "failed"),
        )
        answered = sum(n for status, n in fake.counts().items() if status != "dropped")

    run.refresh_from_db()
    assert run.status == "succeeded", run.error
    assert took < BOUND_SECONDS
    assert run.done_items == ITEMS
    assert Prediction.objects.filter(run=run).values("item").distinct().count() == ITEMS
    assert Prediction.objects.filter(run=run).count() == ITEMS
    calls = list(InferenceCall.objects.filter(run=run).values_list("item_id", "attempt"))
    assert len(calls) == len(set(calls))
    # Calls recorded = calls the server answered, but for those that returned to the
    # dead worker after its last write: at most what CONCURRENCY slots answer in one
    # flush interval (1 s of 0.3 s calls: four waves). Calls in flight at the kill
    # were never answered (the fake counts them dropped).
    lost = answered - len(calls)
    assert 0 <= lost <= CONCURRENCY * 4, (answered, len(calls))
    assert LedgerEntry.objects.filter(kind="inference", project_id=project.pk).count() == len(calls)
    assert run.prompt_tokens == sum(
        InferenceCall.objects.filter(run=run).values_list("prompt_tokens", flat=True)
    )
    assert rollups_reconcile()["differences"] == []
    chunk = PrelabelChunk.objects.get(run=run)
    assert chunk.status == "done" and chunk.claimed_by == ""
    assert chunk.attempts == 1  # the one run that died


def test_a_message_for_a_chunk_a_live_worker_holds_does_nothing(celery_workers):
    """A duplicate or re-delivered message finds the lease held: no second call."""
    project = annotation_project()
    items(project, 8)
    with FakeOpenAI(latency=0.3) as fake:
        backend(project, fake.url, 1)
        celery_workers()
        celery_workers()
        run = prelabel_run_start(project=project, created_by=project.created_by)
        wait_for(
            lambda: PrelabelChunk.objects.filter(run=run).exclude(claimed_by="").exists(),
            60,
            f"a worker to claim the chunk (see {celery_workers.log})",
        )
        chunk = PrelabelChunk.objects.get(run=run)
        prelabel_chunk_run_task.delay(chunk.pk)  # the second worker takes this one
        wait_for(
            lambda: PrelabelRun.objects.get(pk=run.pk).status != "running",
            60,
            f"the run to finish (see {celery_workers.log})",
        )
        chats = len(fake.requests)

    run.refresh_from_db()
    assert run.status == "succeeded"
    assert chats == 8  # each item sent once
    assert InferenceCall.objects.filter(run=run).count() == 8
    assert "pre-label chunk not claimed: held or ended" in celery_workers.log.read_text()
