"""A worker killed in the middle of a pre-labeling chunk: the chunk is delivered
again to another worker, and still every item gets exactly one prediction,
every call the dead worker made was metered as it returned, and none twice."""

import uuid

import pytest

from compute.models import Backend, InferenceCall, Prediction, PrelabelRun
from compute.services import prompt_template_create
from compute.tasks import prelabel_chunk_task
from config.celery_app import app
from tests.celery_worker import start_worker, stop_worker, wait_for
from tests.compute.fake_openai import FakeOpenAI
from tests.factories import annotation_project, items
from valuechain.models import LedgerEntry

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.django_db(transaction=True)]

ITEMS = 8
FLUSH_SECONDS = 0.1


def test_a_killed_worker_neither_loses_nor_double_counts(tmp_path):
    project = annotation_project()
    made = items(project, ITEMS)
    queue = f"test-{uuid.uuid4().hex[:8]}"
    log = tmp_path / "workers.log"
    with FakeOpenAI(latency=0.5) as fake:
        Backend.objects.create(
            organization=project.workforce,
            name="slow",
            base_url=fake.url,
            models_served=["fake-model"],
            max_concurrency=1,
        )
        run = PrelabelRun.objects.create(
            project=project,
            created_by=project.created_by,
            status="running",
            prompt=prompt_template_create(project=project, created_by=project.created_by),
            total_items=ITEMS,
        )
        first = start_worker(
            var_dir=tmp_path,
            queue=queue,
            log_path=log,
            CELERY_VISIBILITY_TIMEOUT="3",
            COMPUTE_METER_FLUSH_SECONDS=str(FLUSH_SECONDS),
        )
        eager = app.conf.task_always_eager
        app.conf.task_always_eager = False
        second = None
        try:
            prelabel_chunk_task.apply_async(args=[run.pk, [i.pk for i in made]], queue=queue)
            # One call at a time, 0.5 s each: kill the worker a few calls in, once
            # its first calls are metered (they are written as they return).
            wait_for(
                lambda: InferenceCall.objects.filter(run=run).count() >= 3,
                60,
                f"the first worker's calls metered (see {log})",
            )
            stop_worker(first, kill=True)
            calls_before_kill = len(fake.requests)
            metered_before_kill = InferenceCall.objects.filter(run=run).count()
            second = start_worker(
                var_dir=tmp_path, queue=queue, log_path=log, CELERY_VISIBILITY_TIMEOUT="3"
            )
            wait_for(
                lambda: Prediction.objects.filter(run=run).count() == ITEMS,
                120,
                f"every item predicted (see {log})",
            )
        finally:
            app.conf.task_always_eager = eager
            stop_worker(first, kill=True)
            if second is not None:
                stop_worker(second)

    assert calls_before_kill < ITEMS  # it really died mid-chunk
    assert metered_before_kill >= 3  # and had metered its calls before it died
    assert Prediction.objects.filter(run=run).count() == ITEMS
    calls = list(InferenceCall.objects.filter(run=run).values_list("item_id", "attempt"))
    assert len(calls) == len(set(calls))
    # Calls recorded = calls the server answered, but for what the dead worker could
    # not write: the one call in flight (max_concurrency 1) and one that returned
    # within the last FLUSH_SECONDS (0.1 s of 0.5 s calls).
    answered = sum(fake.counts().values())
    assert answered - 2 <= len(calls) <= answered
    assert LedgerEntry.objects.filter(kind="inference", project_id=project.pk).count() == len(calls)
    run.refresh_from_db()
    assert run.status == "succeeded" and run.done_items == ITEMS
    assert run.prompt_tokens == sum(
        InferenceCall.objects.filter(run=run).values_list("prompt_tokens", flat=True)
    )
