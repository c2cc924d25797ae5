"""Pre-labeling runs against a fault-injecting OpenAI-compatible server, over real HTTP.

Every item ends with exactly one prediction or a recorded failure, and every
token is metered once.
"""

import time
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from annotation.job_sweep import job_claim
from annotation.models import Item
from compute import services
from compute.models import Backend, InferenceCall, Prediction, PrelabelChunk, PrelabelRun
from tests.compute.fake_openai import FakeOpenAI, Fault
from tests.factories import UserFactory, annotation_project, items

pytestmark = pytest.mark.django_db


@pytest.fixture
def fake():
    with FakeOpenAI() as server:
        yield server


def make_backend(project, url, **fields):
    defaults = {
        "organization": project.workforce,
        "name": "fake",
        "kind": "vllm",
        "base_url": url,
        "models_served": ["fake-model"],
        "price_input_per_million": Decimal("1.00"),
        "price_output_per_million": Decimal("2.00"),
    }
    return Backend.objects.create(**{**defaults, **fields})


def start(project, capture, **kwargs):
    with capture(execute=True):
        run = services.prelabel_run_start(project=project, created_by=project.created_by, **kwargs)
    run.refresh_from_db()
    return run


def assert_metered_once(run):
    """Totals equal the sum of the metered calls, and no call is recorded twice."""
    calls = list(InferenceCall.objects.filter(run=run))
    keys = [(c.item_id, c.attempt) for c in calls]
    assert len(keys) == len(set(keys))
    run.refresh_from_db()
    assert run.prompt_tokens == sum(c.prompt_tokens for c in calls)
    assert run.completion_tokens == sum(c.completion_tokens for c in calls)
    assert run.cost == sum((c.cost for c in calls), Decimal(0))


def test_a_run_predicts_every_item_and_meters_every_token(fake, django_capture_on_commit_callbacks):
    project = annotation_project()
    items(project, 7)
    make_backend(project, fake.url)
    run = start(project, django_capture_on_commit_callbacks)

    assert run.status == PrelabelRun.Status.SUCCEEDED
    assert (run.total_items, run.done_items, run.failed_items) == (7, 7, 0)
    predictions = Prediction.objects.filter(run=run)
    assert {p.answer["label"] for p in predictions} == {"positive"}
    assert all(abs(p.confidence - 0.9) < 1e-6 for p in predictions)
    item = Item.objects.filter(project=project).first()
    assert item.metadata["suggestion"]["answer"] == {"label": "positive"}
    assert item.priority == pytest.approx(0.1)
    # The structured-output contract went out as json_schema, the form vLLM honours.
    request = next(r for r in fake.requests if r.path.endswith("/chat/completions"))
    assert request.json["response_format"]["type"] == "json_schema"
    assert request.json["response_format"]["json_schema"]["schema"]["properties"]["label"][
        "enum"
    ] == ["positive", "negative"]
    assert_metered_once(run)
    call = InferenceCall.objects.filter(run=run).first()
    expected = (
        Decimal(call.prompt_tokens) * Decimal("1.00")
        + Decimal(call.completion_tokens) * Decimal("2.00")
    ) / Decimal(1_000_000)
    assert call.cost == expected.quantize(Decimal("0.000001"))


@pytest.mark.parametrize(
    ("fault", "outcome"),
    [
        (Fault.status(500), "server_error"),
        (Fault.status(503), "server_error"),
        (Fault.malformed_json(), "malformed"),
        (Fault.drop(), "connection"),
        (Fault.status(429, retry_after=0.3), "rate_limited"),
    ],
    ids=["500", "503", "malformed-json", "dropped-connection", "429-retry-after"],
)
def test_transient_faults_are_retried_and_every_attempt_metered_once(
    fake, fault, outcome, django_capture_on_commit_callbacks
):
    project = annotation_project()
    items(project, 1)
    make_backend(project, fake.url)
    fake.enqueue(fault, path="/v1/chat/completions")
    started = time.monotonic()
    run = start(project, django_capture_on_commit_callbacks)

    assert run.done_items == 1 and run.failed_items == 0
    chats = [r for r in fake.requests if r.path.endswith("/chat/completions")]
    assert len(chats) == 2  # the fault, then the retry
    # Both attempts are metered: the fault with no tokens, then the answer.
    failed, answered = InferenceCall.objects.filter(run=run).order_by("attempt")
    assert failed.outcome == outcome and (failed.prompt_tokens, failed.completion_tokens) == (0, 0)
    assert answered.outcome == "ok" and answered.prompt_tokens > 0
    assert not failed.final and not answered.final
    if fault.retry_after:
        assert time.monotonic() - started >= fault.retry_after  # Retry-After was honoured
    assert_metered_once(run)


def test_a_timeout_is_retried(fake, django_capture_on_commit_callbacks, settings):
    settings.COMPUTE_REQUEST_TIMEOUT = 0.5
    project = annotation_project()
    items(project, 1)
    make_backend(project, fake.url)
    fake.enqueue(Fault.timeout(5), path="/v1/chat/completions")
    run = start(project, django_capture_on_commit_callbacks)
    assert run.done_items == 1
    assert Prediction.objects.filter(run=run).count() == 1
    timed_out, answered = InferenceCall.objects.filter(run=run).order_by("attempt")
    assert (timed_out.outcome, answered.outcome) == ("timeout", "ok")
    assert 450 <= timed_out.latency_ms < 1500  # the time the backend had it: the timeout


def test_a_client_error_is_not_retried_and_is_recorded(fake, django_capture_on_commit_callbacks):
    project = annotation_project()
    items(project, 1)
    make_backend(project, fake.url)
    fake.enqueue(Fault.status(400, message="context too long"), path="/v1/chat/completions")
    run = start(project, django_capture_on_commit_callbacks)

    # Not a plain "succeeded": the run says it failed, and why.
    assert (run.done_items, run.failed_items, run.status) == (0, 1, "failed")
    assert run.failures == {"rejected": 1}
    assert (
        run.error.startswith("1 of 1 items failed: 1 rejected") and "context too long" in run.error
    )
    assert len([r for r in fake.requests if r.path.endswith("/chat/completions")]) == 1
    call = InferenceCall.objects.get(run=run)
    assert (call.outcome, call.http_status, call.final) == ("rejected", 400, True)
    assert "context too long" in call.error
    assert "suggestion" not in Item.objects.get(project=project).metadata


def test_an_invalid_answer_gets_one_retry_with_the_error(fake, django_capture_on_commit_callbacks):
    project = annotation_project()
    items(project, 1)
    make_backend(project, fake.url)
    fake.enqueue(Fault.schema_violation(), path="/v1/chat/completions")
    run = start(project, django_capture_on_commit_callbacks)

    assert run.done_items == 1
    first, second = InferenceCall.objects.filter(run=run).order_by("attempt")
    assert (first.outcome, second.outcome) == ("invalid", "ok")
    # The retry told the model what was wrong with its first answer.
    retry = [r for r in fake.requests if r.path.endswith("/chat/completions")][1]
    assert "That answer is invalid" in retry.json["messages"][-1]["content"]
    assert_metered_once(run)  # the invalid answer's tokens were paid for, once


@pytest.mark.parametrize("fault", [Fault.schema_violation, Fault.not_json_content])
def test_two_invalid_answers_are_a_recorded_failure_never_a_suggestion(
    fake, fault, django_capture_on_commit_callbacks
):
    project = annotation_project()
    items(project, 1)
    make_backend(project, fake.url)
    fake.enqueue(fault(), fault(), path="/v1/chat/completions")
    run = start(project, django_capture_on_commit_callbacks)

    assert (run.done_items, run.failed_items, run.status) == (0, 1, "failed")
    assert not Prediction.objects.exists()
    assert list(InferenceCall.objects.filter(run=run).values_list("outcome", flat=True)) == [
        "invalid",
        "invalid",
    ]
    assert "suggestion" not in Item.objects.get(project=project).metadata
    assert_metered_once(run)


def test_failover_to_the_next_backend(django_capture_on_commit_callbacks):
    with FakeOpenAI() as broken, FakeOpenAI() as healthy:
        broken.set_rule(lambda request: Fault.status(503))
        project = annotation_project()
        items(project, 3)
        bad = make_backend(
            project, broken.url, name="cheap-but-down", price_input_per_million=Decimal("0.1")
        )
        good = make_backend(project, healthy.url, name="dearer")
        run = start(project, django_capture_on_commit_callbacks)

    assert run.done_items == 3
    assert set(Prediction.objects.filter(run=run).values_list("backend_id", flat=True)) == {good.pk}
    # Each item's first attempt went to the cheap backend; its 503 moved the item
    # to the next backend at once, without a backoff sleep.
    assert InferenceCall.objects.filter(run=run, backend=bad, outcome="server_error").count() == 3
    assert InferenceCall.objects.filter(run=run, backend=bad).count() == len(broken.requests)
    assert_metered_once(run)


def test_a_retried_chunk_creates_no_second_prediction_or_charge(
    fake, django_capture_on_commit_callbacks
):
    project = annotation_project()
    made = items(project, 4)
    make_backend(project, fake.url)
    run = start(project, django_capture_on_commit_callbacks)
    before = (Prediction.objects.count(), InferenceCall.objects.count(), run.cost)
    chats_before = len(fake.requests)

    # The worker died after writing and before acking: the chunk runs again.
    services.prelabel_chunk_process(run_id=run.pk, item_ids=[i.pk for i in made])
    run.refresh_from_db()
    assert (Prediction.objects.count(), InferenceCall.objects.count(), run.cost) == before
    assert len(fake.requests) == chats_before  # nothing was even sent again


def test_a_chunk_written_twice_is_metered_once(fake, django_capture_on_commit_callbacks):
    project = annotation_project()
    made = items(project, 2)
    make_backend(project, fake.url)
    run = start(project, django_capture_on_commit_callbacks)
    calls = list(
        InferenceCall.objects.filter(run=run).values("item_id", "attempt", "prompt_tokens")
    )
    # A redelivered message processed concurrently completes the same row again: a
    # row is completed once, while it is in flight.
    plan = services._plan(Backend.objects.get(), "")
    record = services._CallRecord(
        item_id=made[0].pk,
        attempt=1,
        backend=plan,
        outcome="ok",
        prompt_tokens=999,
        call_id=InferenceCall.objects.get(run=run, item=made[0], attempt=1).pk,
    )
    services._record_calls(run, [record], [], {plan.id: plan})
    assert (
        list(InferenceCall.objects.filter(run=run).values("item_id", "attempt", "prompt_tokens"))
        == calls
    )
    services.prelabel_run_refresh(run_id=run.pk)
    assert_metered_once(run)


def test_cancel_halfway_then_resume(fake, django_capture_on_commit_callbacks):
    project = annotation_project()
    made = items(project, 6)
    make_backend(project, fake.url)
    with django_capture_on_commit_callbacks(execute=False):
        run = services.prelabel_run_start(project=project, created_by=project.created_by)
    first_half = [i.pk for i in made[:3]]
    services.prelabel_chunk_process(run_id=run.pk, item_ids=first_half)
    services.prelabel_run_cancel(run=run, user=project.created_by)
    skipped = services.prelabel_chunk_process(run_id=run.pk, item_ids=[i.pk for i in made[3:]])
    assert skipped == {"skipped": 3, "reason": "cancelled"}
    assert Prediction.objects.filter(run=run).count() == 3

    with django_capture_on_commit_callbacks(execute=True):
        services.prelabel_run_resume(run=run, user=project.created_by)
    run.refresh_from_db()
    assert run.status == "succeeded" and run.done_items == 6
    per_item = list(Prediction.objects.filter(run=run).values_list("item_id", flat=True))
    assert sorted(per_item) == sorted(i.pk for i in made)
    assert_metered_once(run)


def test_a_backend_deleted_mid_run_is_replaced_and_its_calls_kept(
    django_capture_on_commit_callbacks,
):
    with FakeOpenAI() as first, FakeOpenAI() as second:
        project = annotation_project()
        made = items(project, 4)
        doomed = make_backend(
            project, first.url, name="doomed", price_input_per_million=Decimal("0.1")
        )
        make_backend(project, second.url, name="survivor")
        with django_capture_on_commit_callbacks(execute=False):
            run = services.prelabel_run_start(project=project, created_by=project.created_by)
        services.prelabel_chunk_process(run_id=run.pk, item_ids=[made[0].pk, made[1].pk])
        services.backend_delete(backend=doomed, user=UserFactory(is_superuser=True))
        services.prelabel_chunk_process(run_id=run.pk, item_ids=[made[2].pk, made[3].pk])
        run.refresh_from_db()

    assert run.done_items == 4
    names = list(
        InferenceCall.objects.filter(run=run)
        .order_by("item_id")
        .values_list("backend_name", flat=True)
    )
    assert names == ["doomed", "doomed", "survivor", "survivor"]
    assert InferenceCall.objects.filter(run=run, backend__isnull=True).count() == 2
    assert_metered_once(run)


def test_concurrency_stays_within_the_backend_limit(fake, django_capture_on_commit_callbacks):
    fake.set_latency(0.15)
    project = annotation_project()
    items(project, 24)
    make_backend(project, fake.url, max_concurrency=4)
    run = start(project, django_capture_on_commit_callbacks)

    assert run.done_items == 24
    # Many in flight at once (not one at a time), never more than the limit.
    assert 2 <= fake.max_in_flight <= 4


def test_region_pinned_runs_never_leave_the_region(django_capture_on_commit_callbacks):
    from tenants.models import Region

    with FakeOpenAI() as guiyang, FakeOpenAI() as shanghai:
        project = annotation_project()
        items(project, 2)
        make_backend(
            project,
            guiyang.url,
            name="gy",
            region=Region.objects.get(code="520100"),
            price_input_per_million=Decimal("9"),
        )
        make_backend(
            project,
            shanghai.url,
            name="sh",
            region=Region.objects.get(code="310100"),
            price_input_per_million=Decimal("0"),
        )
        run = start(
            project,
            django_capture_on_commit_callbacks,
            policy="region",
            region=Region.objects.get(code="520000"),
        )
        assert run.done_items == 2
        assert not [r for r in shanghai.requests if r.path.endswith("/chat/completions")]


def test_a_prompt_template_fills_the_item_fields(fake, django_capture_on_commit_callbacks):
    project = annotation_project()
    items(project, 1, data={"text": "送餐很快"})
    make_backend(project, fake.url)
    prompt = services.prompt_template_create(
        project=project,
        created_by=project.created_by,
        system="你是标注员",
        user="评论：{text}\n情感？",
    )
    start(project, django_capture_on_commit_callbacks, prompt=prompt)
    request = next(r for r in fake.requests if r.path.endswith("/chat/completions"))
    assert request.json["messages"] == [
        {"role": "system", "content": "你是标注员"},
        {"role": "user", "content": "评论：送餐很快\n情感？"},
    ]
    assert Prediction.objects.get().prompt_version == prompt.version == 1


def test_acceptance_of_suggestions_is_tracked_per_model_and_prompt_version(
    fake, django_capture_on_commit_callbacks
):
    from annotation import services as annotation_services
    from compute.selectors import suggestion_acceptance
    from tests.factories import worker

    project = annotation_project()
    items(project, 4)
    make_backend(project, fake.url)
    start(project, django_capture_on_commit_callbacks)  # suggests "positive" for all
    annotator = worker(project)
    for label in ("positive", "positive", "positive", "negative"):
        lease = annotation_services.assignment_lease(project=project, annotator=annotator)
        annotation_services.annotation_submit(
            assignment_id=lease.pk, annotator=annotator, answer={"label": label}
        )
    assert suggestion_acceptance(project=project) == [
        {
            "model": "fake-model",
            "prompt_version": 1,
            "compared": 4,
            "accepted": 3,
            "acceptance_rate": 0.75,
        }
    ]


# --- chunks claimed in the database ------------------------------------------------------


def dispatched(project, capture, **kwargs):
    """A started run whose chunks are rows, none of them run yet."""
    with capture(execute=False):
        run = services.prelabel_run_start(project=project, created_by=project.created_by)
    with capture(execute=False):
        services.prelabel_run_dispatch(run_id=run.pk, **kwargs)
    return run


def test_dispatch_puts_each_item_in_one_open_chunk_however_often_it_runs(
    fake, django_capture_on_commit_callbacks
):
    project = annotation_project()
    made = items(project, 5)
    make_backend(project, fake.url)
    run = dispatched(project, django_capture_on_commit_callbacks, chunk_size=2)
    with django_capture_on_commit_callbacks(execute=False) as queued:
        assert services.prelabel_run_dispatch(run_id=run.pk, chunk_size=2) == 0
    assert len(queued) == 1  # queues nothing new
    chunks = list(PrelabelChunk.objects.filter(run=run).values_list("item_ids", flat=True))
    assert sorted(i for ids in chunks for i in ids) == sorted(i.pk for i in made)
    assert [len(ids) for ids in chunks] == [2, 2, 1]


def test_a_chunk_whose_worker_died_is_taken_over_by_the_sweep(
    fake, django_capture_on_commit_callbacks, settings
):
    project = annotation_project()
    items(project, 4)
    make_backend(project, fake.url)
    run = dispatched(project, django_capture_on_commit_callbacks)
    chunk = PrelabelChunk.objects.get(run=run)
    # A worker claimed it and died: its lease is held, then lapses.
    lease = job_claim(
        model=PrelabelChunk,
        job_id=chunk.pk,
        statuses=["pending"],
        fail=services._chunk_fail,
        stopped_message=services.CHUNK_STOPPED_MESSAGE,
    )
    assert services.prelabel_chunk_run(chunk_id=chunk.pk)["reason"] == "held or ended"
    assert services.prelabel_runs_recover() == 0  # the lease is live: nothing to do
    assert not fake.requests

    later = timezone.now() + timedelta(seconds=settings.JOB_LEASE_SECONDS + 1)
    with django_capture_on_commit_callbacks(execute=True):
        assert services.prelabel_runs_recover(now=later) == 1
    run.refresh_from_db()
    assert (run.status, run.done_items) == ("succeeded", 4)
    chunk.refresh_from_db()
    assert (chunk.status, chunk.claimed_by, chunk.attempts) == ("done", "", 1)
    assert lease.token not in PrelabelChunk.objects.values_list("claimed_by", flat=True)
    assert len(fake.requests) == 4
    assert_metered_once(run)


def test_a_chunk_whose_workers_keep_dying_fails_the_run_saying_why(
    fake, django_capture_on_commit_callbacks, settings
):
    project = annotation_project()
    items(project, 2)
    make_backend(project, fake.url)
    run = dispatched(project, django_capture_on_commit_callbacks)
    chunk = PrelabelChunk.objects.get(run=run)
    PrelabelChunk.objects.filter(pk=chunk.pk).update(
        claimed_by="dead", lease_expires_at=timezone.now(), attempts=settings.JOB_MAX_ATTEMPTS
    )
    later = timezone.now() + timedelta(seconds=1)
    with django_capture_on_commit_callbacks(execute=True):
        services.prelabel_runs_recover(now=later)
    run.refresh_from_db()
    assert run.status == "failed"
    assert run.error.startswith(
        f"A worker labelling part of this run stopped {settings.JOB_MAX_ATTEMPTS} times"
    )
    assert PrelabelChunk.objects.get(pk=chunk.pk).status == "closed"
    assert not fake.requests


def test_a_running_run_whose_dispatch_was_lost_is_dispatched_by_the_sweep(
    fake, django_capture_on_commit_callbacks, settings
):
    project = annotation_project()
    items(project, 3)
    make_backend(project, fake.url)
    with django_capture_on_commit_callbacks(execute=False):  # the message is lost
        run = services.prelabel_run_start(project=project, created_by=project.created_by)
    assert services.prelabel_runs_recover() == 0  # too early to tell
    later = timezone.now() + timedelta(seconds=settings.JOB_PENDING_SECONDS + 1)
    with django_capture_on_commit_callbacks(execute=True):
        assert services.prelabel_runs_recover(now=later) == 1
    run.refresh_from_db()
    assert (run.status, run.done_items) == ("succeeded", 3)


def test_cancel_closes_the_open_chunks_so_a_queued_message_does_nothing(
    fake, django_capture_on_commit_callbacks
):
    project = annotation_project()
    items(project, 3)
    make_backend(project, fake.url)
    run = dispatched(project, django_capture_on_commit_callbacks)
    services.prelabel_run_cancel(run=run, user=project.created_by)
    chunk = PrelabelChunk.objects.get(run=run)
    assert chunk.status == "closed"
    assert services.prelabel_chunk_run(chunk_id=chunk.pk)["reason"] == "held or ended"
    assert not fake.requests


def test_a_run_whose_items_were_deleted_meanwhile_still_ends(
    fake, django_capture_on_commit_callbacks, settings
):
    project = annotation_project()
    made = items(project, 3)
    make_backend(project, fake.url)
    with django_capture_on_commit_callbacks(execute=False):
        run = services.prelabel_run_start(project=project, created_by=project.created_by)
    Item.objects.filter(pk=made[0].pk).delete()
    later = timezone.now() + timedelta(seconds=settings.JOB_PENDING_SECONDS + 1)
    with django_capture_on_commit_callbacks(execute=True):
        services.prelabel_runs_recover(now=later)
    run.refresh_from_db()
    assert (run.status, run.done_items, run.total_items) == ("succeeded", 2, 3)
    assert services.prelabel_runs_recover(now=later) == 0  # nothing left for the sweep
