"""A worker killed (SIGKILL) in the middle of a pre-labeling run, with the broker's
visibility timeout at an hour (the README's default): the chunk it held is claimed
in the database under a lease, so beat's sweep re-dispatches it once the lease
lapses and a second worker finishes the run on its own. Every item ends with
exactly one prediction, every request the backend received has exactly one call
row (written ahead of the request, so none is lost with the worker) and one
ledger entry, and the ledger reconciles."""

import pytest

from annotation.token_estimate import estimate_tokens
from compute.models import Backend, InferenceCall, Prediction, PrelabelChunk, PrelabelRun
from compute.selectors import backend_metrics
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


def answered_rows(run):
    return InferenceCall.objects.filter(run=run).exclude(outcome__in=["in_flight", "interrupted"])


def assert_every_request_metered_once(run, received) -> dict:
    """Call by call (each request carries its metering key): every request the backend
    received has exactly one row and one ledger entry, and no row is without a
    request. A row has the outcome the backend gave, or is interrupted (its worker
    died before recording it: never answered, or answered into a dead process),
    billed at the prompt counted locally and no completion. Returns the rows."""
    rows = {
        f"inference:{run.pk}:{item}:{attempt}": (outcome, status, prompt, completion)
        for item, attempt, outcome, status, prompt, completion in InferenceCall.objects.filter(
            run=run
        ).values_list(
            "item_id", "attempt", "outcome", "http_status", "prompt_tokens", "completion_tokens"
        )
    }
    keys = [r.headers["x-client-request-id"] for r in received]
    assert len(keys) == len(set(keys)) == len(rows)
    assert set(keys) == set(rows)
    for request in received:
        outcome, status, prompt, completion = rows[request.headers["x-client-request-id"]]
        if outcome == "interrupted":
            local = sum(estimate_tokens(m["content"]) for m in request.json["messages"])
            assert (status, prompt, completion) == (None, local, 0)
        else:
            assert request.status is not None  # a dropped request has no real outcome
            assert (outcome, status) == ("ok", request.status)
    assert not InferenceCall.objects.filter(run=run, outcome="in_flight").exists()
    run.refresh_from_db()
    entries = LedgerEntry.objects.filter(kind="inference", project_id=run.project_id)
    assert sorted(entries.values_list("idempotency_key", flat=True)) == sorted(rows)
    assert sum(entries.values_list("tokens_input", flat=True)) == run.prompt_tokens
    assert run.prompt_tokens == sum(r[2] for r in rows.values())
    assert rollups_reconcile()["differences"] == []
    return rows


def test_a_worker_killed_at_any_moment_leaves_no_request_unmetered(celery_workers, settings):
    """Killed while answers flow: an answer that reached the worker after its last
    write is lost with it, so that row is interrupted too; still one row a request."""
    settings.COMPUTE_METER_FLUSH_SECONDS = 1.0
    project = annotation_project()
    items(project, ITEMS)
    with FakeOpenAI(latency=0.3) as fake:
        backend(project, fake.url, CONCURRENCY)
        first = celery_workers()
        run = prelabel_run_start(project=project, created_by=project.created_by)
        wait_for(
            lambda: answered_rows(run).count() >= 12,
            60,
            f"the first worker's calls metered (see {celery_workers.log})",
        )
        stop_worker(first, kill=True)
        assert InferenceCall.objects.filter(run=run, outcome="in_flight").exists()
        celery_workers()
        sweep_until_ended(
            PrelabelRun,
            run.pk,
            prelabel_runs_sweep_task,
            celery_workers.log,
            ended=("succeeded", "partial", "failed"),
        )
        received = fake.received()

    run.refresh_from_db()
    assert run.status == "succeeded", run.error
    assert Prediction.objects.filter(run=run).count() == ITEMS
    rows = assert_every_request_metered_once(run, received)
    interrupted = sum(outcome == "interrupted" for outcome, *_ in rows.values())
    # The slots in flight at the kill, and the answers that came back after the last
    # write (within a flush interval, a second, or two on a loaded machine: four
    # slots answering every 0.3 s).
    assert 1 <= interrupted <= CONCURRENCY * (1 + 2 / 0.3)


def test_a_run_whose_worker_was_killed_finishes_on_its_own_and_meters_every_request(
    celery_workers, settings
):
    settings.COMPUTE_METER_FLUSH_SECONDS = 1.0  # the README's default, as in the worker
    project = annotation_project()
    items(project, ITEMS)
    with FakeOpenAI(latency=0.3) as fake:
        backend(project, fake.url, CONCURRENCY)
        first = celery_workers()
        run = prelabel_run_start(project=project, created_by=project.created_by)
        # Four calls at a time, 0.3 s each: a few waves in, the backend stops
        # answering, so that at the kill every slot has a request the backend
        # received and never answered, and every answer it gave has reached the
        # worker (and been metered: completions are written within a second).
        wait_for(
            lambda: answered_rows(run).count() >= 12,
            60,
            f"the first worker's calls metered (see {celery_workers.log})",
        )
        fake.hold()
        wait_for(lambda: fake.held == CONCURRENCY, 10, "every slot waiting on the backend")
        wait_for(
            lambda: answered_rows(run).count() == sum(fake.counts().values()),
            10,
            f"every answer metered (see {celery_workers.log})",
        )
        stop_worker(first, kill=True)
        wait_for(lambda: fake.held == 0, 10, "the backend to see the connections close")
        killed = PrelabelRun.objects.get(pk=run.pk)
        assert killed.status == "running"
        assert Prediction.objects.filter(run=run).count() < ITEMS  # really mid-run
        # What the dead worker sent and never heard back about is on record.
        assert InferenceCall.objects.filter(run=run, outcome="in_flight").count() == CONCURRENCY
        held = PrelabelChunk.objects.get(run=run)
        assert held.claimed_by and held.status == "pending"
        fake.release()

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
        received = fake.received()

    run.refresh_from_db()
    assert run.status == "succeeded", run.error
    assert took < BOUND_SECONDS
    assert run.done_items == ITEMS
    assert Prediction.objects.filter(run=run).values("item").distinct().count() == ITEMS
    assert Prediction.objects.filter(run=run).count() == ITEMS

    rows = assert_every_request_metered_once(run, received)
    # Nothing was in transit at the kill: the answers have rows with their real
    # outcome, exactly, and the requests never answered (dropped at the kill) are
    # the interrupted rows.
    assert sum(r.status is None for r in received) == CONCURRENCY
    assert answered_rows(run).count() == sum(r.status is not None for r in received)
    assert sum(outcome == "interrupted" for outcome, *_ in rows.values()) == CONCURRENCY
    (metrics,) = backend_metrics(backends=Backend.objects.filter(name="fake"))
    assert metrics["requests"] == len(received)
    assert metrics["outcomes"]["interrupted"] == CONCURRENCY
    assert metrics["errors"] == 0  # our worker's death is not the backend's fault
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
