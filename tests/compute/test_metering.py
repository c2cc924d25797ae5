"""Metering every attempt, honestly timed, over real HTTP against the fake server.

What Tokenworks records is compared with what the server answered: every
HTTP attempt (429, 5xx, timeouts and dropped connections included) is one
call row and one ledger entry, its latency is the backend's time, and the
error share the metrics show is the share the server failed.
"""

import itertools
import threading
from datetime import timedelta
from decimal import Decimal

import pytest
import yaml
from django.core.exceptions import ValidationError
from django.utils import timezone

from compute import selectors, services
from compute.models import Backend, InferenceCall, Prediction, PrelabelRun
from tests.compute.fake_openai import FakeOpenAI, Fault
from tests.compute.test_prelabel import assert_metered_once, make_backend, start
from tests.factories import annotation_project, items
from valuechain.models import LedgerEntry

pytestmark = pytest.mark.django_db

CHAT = "/v1/chat/completions"


@pytest.fixture
def fake():
    with FakeOpenAI() as server:
        yield server


def every_nth_fails(n: int, faults: list[Fault]):
    """A rule failing every n-th chat request, taking the faults in turn: an exact share."""
    lock = threading.Lock()
    counter = itertools.count(1)
    cycle = itertools.cycle(faults)

    def rule(request):
        if not request.path.startswith(CHAT):
            return None
        with lock:
            if next(counter) % n == 0:
                return next(cycle)
        return None

    return rule


def test_every_attempt_is_metered_and_the_error_share_is_what_the_server_failed(
    django_capture_on_commit_callbacks, settings
):
    settings.COMPUTE_MAX_RETRIES = 6
    rule = every_nth_fails(5, [Fault.status(429, retry_after=0), Fault.status(500)])  # 20 %
    with FakeOpenAI(rule=rule) as fake:
        project = annotation_project()
        items(project, 120)
        backend = make_backend(project, fake.url, max_concurrency=8)
        run = start(project, django_capture_on_commit_callbacks)
        answered = fake.counts(CHAT)

    assert run.status == "succeeded" and run.done_items == 120
    calls = InferenceCall.objects.filter(run=run)
    # Calls recorded = calls the server answered, attempts included.
    assert calls.count() == sum(answered.values()) > 120
    assert calls.filter(outcome="rate_limited").count() == answered[429] > 0
    assert calls.filter(outcome="server_error").count() == answered[500] > 0
    assert calls.filter(outcome="ok").count() == answered[200] == 120
    assert not calls.filter(outcome="ok", prompt_tokens=0).exists()
    assert not calls.exclude(outcome="ok").exclude(prompt_tokens=0, completion_tokens=0).exists()
    # Each call went to the ledger once, under its own key.
    assert LedgerEntry.objects.filter(kind="inference").count() == calls.count()
    assert_metered_once(run)

    [row] = selectors.backend_metrics(backends=[backend])
    server_share = (answered[429] + answered[500]) / sum(answered.values())
    assert abs(server_share - 0.2) <= 0.01
    assert abs(row["error_share"] - server_share) <= 0.01
    assert row["outcomes"]["rate_limited"] == answered[429]
    assert row["requests"] == sum(answered.values())
    # 80 % answered: the only backend stays in service.
    backend.refresh_from_db()
    assert backend.circuit == "closed" and backend.health == "healthy"


def test_a_backend_failing_most_requests_with_429_and_500_still_ends_the_run(
    django_capture_on_commit_callbacks,
):
    """60 % of requests answered 429 or 500 in turn, the README's retry policy
    (COMPUTE_MAX_RETRIES 4: five attempts an item): the run ends on its own,
    partial when some item's five attempts all failed, saying how many and why;
    the meter and the metrics show exactly what the server did. The 429s say
    the backend is alive and busy, so only the 500s (30 %) count for the
    circuit, and the only backend stays in service."""

    counter, lock = itertools.count(1), threading.Lock()

    def rule(request):
        if not request.path.startswith(CHAT):
            return None
        with lock:
            n = next(counter)
        if n % 5 in (1, 2, 3):
            return Fault.status(429, retry_after=0) if n % 2 else Fault.status(500)
        return None

    with FakeOpenAI(rule=rule) as fake:
        project = annotation_project()
        items(project, 60)
        backend = make_backend(project, fake.url, max_concurrency=8)
        run = start(project, django_capture_on_commit_callbacks)
        answered = fake.counts(CHAT)

    assert run.status in ("succeeded", "partial"), run.error
    calls = InferenceCall.objects.filter(run=run)
    failed_items = calls.filter(final=True).exclude(outcome="ok").values("item").distinct()
    assert run.done_items + run.failed_items == 60
    assert run.failed_items == failed_items.count()
    assert run.done_items == Prediction.objects.filter(run=run).count()
    if run.failed_items:
        assert run.status == "partial"
        assert f"{run.failed_items} of 60 items failed" in run.error
    # Calls recorded = calls the server answered, attempts included.
    assert calls.count() == sum(answered.values())
    assert calls.filter(outcome="rate_limited").count() == answered[429]
    assert calls.filter(outcome="server_error").count() == answered[500]
    assert LedgerEntry.objects.filter(kind="inference").count() == calls.count()
    assert_metered_once(run)
    [row] = selectors.backend_metrics(backends=[backend])
    server_share = (answered[429] + answered[500]) / sum(answered.values())
    assert abs(server_share - 0.6) <= 0.02
    assert abs(row["error_share"] - server_share) <= 0.01
    backend.refresh_from_db()
    assert backend.circuit == "closed"


def test_the_metrics_endpoint_shows_outcomes_and_the_error_share(
    api_client, django_capture_on_commit_callbacks, settings
):
    from tenants.models import Membership
    from tests.factories import member

    settings.COMPUTE_MAX_RETRIES = 6
    rule = every_nth_fails(5, [Fault.status(500)])
    with FakeOpenAI(rule=rule) as fake:
        project = annotation_project()
        items(project, 20)
        make_backend(project, fake.url)
        start(project, django_capture_on_commit_callbacks)
        answered = fake.counts(CHAT)
    manager = member(organization=project.workforce, role=Membership.Role.PROJECT_MANAGER)
    api_client.force_authenticate(manager)
    response = api_client.get("/api/v1/backends/metrics/?window=3600")
    assert response.status_code == 200, response.content
    [row] = [r for r in response.json() if r["name"] == "fake"]
    assert row["outcomes"]["server_error"] == answered[500]
    assert row["errors"] == answered[500] and row["requests"] == sum(answered.values())
    assert abs(row["error_share"] - answered[500] / sum(answered.values())) < 1e-3
    assert api_client.get("/api/v1/backends/metrics/?window=5").status_code == 400


def test_latency_is_the_backends_time_not_queueing_or_backoff(
    django_capture_on_commit_callbacks, settings
):
    # The server takes 0.1 s or 0.4 s per request, in turn; one request at a time,
    # so five items queue behind the one in flight, and two 429s make their items
    # sleep a second (Retry-After) before trying again.
    handling = itertools.cycle([0.1, 0.4])
    lock = threading.Lock()

    def rule(request):
        with lock:
            return Fault.delay(next(handling))

    with FakeOpenAI(rule=rule) as fake:
        project = annotation_project()
        items(project, 6)
        make_backend(project, fake.url, max_concurrency=1)
        fake.enqueue(
            Fault.status(429, retry_after=1.0), Fault.status(429, retry_after=1.0), path=CHAT
        )
        run = start(project, django_capture_on_commit_callbacks)
        received = fake.received()

    assert run.done_items == 6
    latency = {
        f"inference:{run.pk}:{item}:{attempt}": ms
        for item, attempt, ms in InferenceCall.objects.filter(run=run).values_list(
            "item_id", "attempt", "latency_ms"
        )
    }
    assert len(latency) == len(received) == 8
    # Call by call (matched by the request's metering key): never less than the
    # server held that very request, and never by as much as the second of backoff
    # or the queue the call waited through (the last
    # items queued behind a second and more of others). The margin is the
    # client's own handling on a loaded machine, not luck of the clock.
    for request in received:
        held_ms = request.fault.seconds * 1000 if request.fault.kind == "delay" else 0.0
        stored = latency[request.headers["x-client-request-id"]]
        assert held_ms <= stored < held_ms + MARGIN_MS, (request.fault, stored)


# What the client adds to the server's time on a loaded 2-core machine (event loop,
# the meter's thread, other processes), well under the waits a latency must exclude.
MARGIN_MS = 250


def test_retries_are_bounded_by_attempts_and_recorded_on_the_run(
    django_capture_on_commit_callbacks, settings
):
    settings.COMPUTE_MAX_RETRIES = 2
    with FakeOpenAI(rule=lambda r: Fault.status(503)) as fake:
        project = annotation_project()
        items(project, 3)
        make_backend(project, fake.url)
        run = start(project, django_capture_on_commit_callbacks)
        answered = fake.counts(CHAT)

    assert run.retry_policy["max_attempts"] == 3
    assert answered == {503: 9}  # three attempts per item, no more
    assert InferenceCall.objects.filter(run=run).count() == 9
    assert InferenceCall.objects.filter(run=run, final=True).count() == 3
    assert (run.status, run.done_items, run.failed_items) == ("failed", 0, 3)
    assert run.failures == {"server_error": 3}
    assert run.error.startswith("3 of 3 items failed: 3 server_error (HTTP 503")


def test_retries_are_bounded_in_time(django_capture_on_commit_callbacks, settings):
    settings.COMPUTE_MAX_RETRIES = 10
    settings.COMPUTE_MAX_CALL_SECONDS = 1.0
    with FakeOpenAI(rule=lambda r: Fault.status(429, retry_after=5)) as fake:
        project = annotation_project()
        items(project, 2)
        make_backend(project, fake.url)
        run = start(project, django_capture_on_commit_callbacks)
        answered = fake.counts(CHAT)
    # The next wait (Retry-After: 5 s) would pass the 1 s budget: no second attempt.
    assert answered == {429: 2}
    assert run.retry_policy["max_seconds"] == 1.0 and run.failures == {"rate_limited": 2}


def test_a_run_with_some_failed_items_is_partial_and_says_why(
    fake, django_capture_on_commit_callbacks
):
    project = annotation_project()
    items(project, 4)
    make_backend(project, fake.url)
    fake.enqueue(Fault.status(400, message="context too long"), path=CHAT)
    run = start(project, django_capture_on_commit_callbacks)
    assert (run.status, run.done_items, run.failed_items) == ("partial", 3, 1)
    assert run.failures == {"rejected": 1}
    assert "1 of 4 items failed: 1 rejected" in run.error and "context too long" in run.error


def test_failed_items_are_settled_and_not_sent_again(fake, django_capture_on_commit_callbacks):
    project = annotation_project()
    made = items(project, 2)
    make_backend(project, fake.url)
    fake.enqueue(Fault.status(400), path=CHAT)
    run = start(project, django_capture_on_commit_callbacks)
    sent = len(fake.requests)
    # A redelivered chunk: the predicted item and the item with a final failure are skipped.
    services.prelabel_chunk_process(run_id=run.pk, item_ids=[i.pk for i in made])
    assert len(fake.requests) == sent


def test_items_in_flight_are_not_failed_until_their_retries_end():
    """An item whose chunk died mid-retry has calls but no final failure: it is
    neither done nor failed, so the run is not finished and resume sends it again."""
    project = annotation_project()
    made = items(project, 2)
    run = PrelabelRun.objects.create(
        project=project,
        created_by=project.created_by,
        prompt=services.prompt_template_create(project=project, created_by=project.created_by),
        status="running",
        total_items=2,
    )
    backend = Backend.objects.create(name="b", base_url="http://127.0.0.1:9/v1")
    InferenceCall.objects.create(
        run=run, project=project, item=made[0], backend=backend, outcome="server_error"
    )
    run = services.prelabel_run_refresh(run_id=run.pk)
    assert (run.status, run.done_items, run.failed_items) == ("running", 0, 0)


def test_resume_re_dispatches_a_stalled_running_run_once(fake, django_capture_on_commit_callbacks):
    project = annotation_project()
    made = items(project, 4)
    make_backend(project, fake.url)
    with django_capture_on_commit_callbacks(execute=False):
        run = services.prelabel_run_start(project=project, created_by=project.created_by)
    # A chunk labelled one item, then its worker died; the run still says running.
    services.prelabel_chunk_process(run_id=run.pk, item_ids=[made[0].pk])
    with pytest.raises(ValidationError, match="still making progress"):
        services.prelabel_run_resume(run=run, user=project.created_by)

    later = timezone.now() + services.RUN_STALLED_AFTER + timedelta(seconds=1)
    with django_capture_on_commit_callbacks(execute=True):
        services.prelabel_run_resume(run=run, user=project.created_by, now=later)
    run.refresh_from_db()
    assert (run.status, run.done_items) == ("succeeded", 4)
    assert Prediction.objects.filter(run=run).count() == 4
    chats = [r for r in fake.requests if r.path.startswith(CHAT)]
    assert len(chats) == 4  # the first item was not sent again
    assert_metered_once(run)


def test_the_metrics_schema_says_what_the_endpoint_returns(api_client):
    """A list of per-backend rows, every field documented (generated clients rely on it)."""
    from tenants.models import Membership
    from tests.factories import member

    project = annotation_project()
    manager = member(organization=project.workforce, role=Membership.Role.PROJECT_MANAGER)
    api_client.force_authenticate(manager)
    make_backend(project, "http://127.0.0.1:9/v1")
    schema = yaml.safe_load(api_client.get("/api/schema/").content)
    ok = schema["paths"]["/api/v1/backends/metrics/"]["get"]["responses"]["200"]
    body = ok["content"]["application/json"]["schema"]
    assert body["type"] == "array"
    documented = schema["components"]["schemas"][body["items"]["$ref"].rsplit("/", 1)[1]]
    rows = api_client.get("/api/v1/backends/metrics/").json()
    assert isinstance(rows, list) and rows
    for row in rows:
        assert set(row) == set(documented["properties"])


def _left_in_flight(run, item, *, attempt=1, prompt_tokens=37):
    """The row a worker writes ahead of a request, as a killed one leaves it."""
    backend = Backend.objects.get(name="fake")
    plan = services._plan(backend, run.model)
    return InferenceCall.objects.create(
        run=run,
        project_id=run.project_id,
        item=item,
        attempt=attempt,
        backend=backend,
        backend_name=backend.name,
        model=plan.model,
        outcome=InferenceCall.Outcome.IN_FLIGHT,
        prompt_tokens=prompt_tokens,
        cost=services.call_cost(plan, prompt_tokens, 0, 0),
    )


def test_the_sweep_bills_calls_a_dead_worker_left_in_flight_on_a_run_that_ended(
    fake, django_capture_on_commit_callbacks
):
    """Cancelled after its worker died: no chunk will be claimed again, so the sweep
    marks the calls interrupted, billed at the prompt counted locally, once."""
    project = annotation_project()
    items(project, 2)
    make_backend(project, fake.url)
    with django_capture_on_commit_callbacks(execute=False):  # the worker never starts
        run = services.prelabel_run_start(project=project, created_by=project.created_by)
    item = project.items.first()
    call = _left_in_flight(run, item)
    services.prelabel_run_cancel(run=run, user=project.created_by)

    assert services.prelabel_runs_recover() == 1
    assert services.prelabel_runs_recover() == 0  # safe to run twice
    call.refresh_from_db()
    assert (call.outcome, call.prompt_tokens, call.completion_tokens) == ("interrupted", 37, 0)
    assert call.cost == Decimal("0.000037")  # 37 tokens at 1.00 a million, no output
    entry = LedgerEntry.objects.get(kind="inference", project_id=project.pk)
    assert entry.idempotency_key == f"inference:{run.pk}:{item.pk}:1"
    assert (entry.tokens_input, entry.tokens_output, entry.cost) == (37, 0, call.cost)
    (metrics,) = selectors.backend_metrics(backends=Backend.objects.filter(name="fake"))
    assert (metrics["requests"], metrics["errors"]) == (1, 0)
    assert metrics["outcomes"]["interrupted"] == 1 and "in_flight" not in metrics["outcomes"]


def test_a_chunk_taken_over_sends_its_interrupted_items_again_without_double_billing(
    fake, django_capture_on_commit_callbacks
):
    """The worker that claims the chunk next marks the dead one's call interrupted and
    sends the item again under the next attempt; a late answer to the old call (its
    worker only stalled) leaves the row interrupted and the ledger unchanged."""
    project = annotation_project()
    items(project, 3)
    make_backend(project, fake.url)
    with django_capture_on_commit_callbacks(execute=False):
        run = services.prelabel_run_start(project=project, created_by=project.created_by)
    item = project.items.first()
    call = _left_in_flight(run, item)
    with django_capture_on_commit_callbacks(execute=True):
        services.prelabel_run_dispatch(run_id=run.pk)

    run.refresh_from_db()
    assert run.status == "succeeded" and run.done_items == 3
    call.refresh_from_db()
    assert call.outcome == "interrupted"
    again = InferenceCall.objects.get(run=run, item=item, attempt=2)
    assert again.outcome == "ok"
    assert [r.headers["x-client-request-id"] for r in fake.received()].count(
        f"inference:{run.pk}:{item.pk}:2"
    ) == 1
    entries = LedgerEntry.objects.filter(kind="inference", project_id=project.pk)
    assert entries.count() == InferenceCall.objects.filter(run=run).count() == 4
    assert_metered_once(run)

    backend = Backend.objects.get(name="fake")
    late = services._CallRecord(
        item_id=item.pk,
        attempt=1,
        backend=services._plan(backend, run.model),
        outcome="ok",
        http_status=200,
        prompt_tokens=50,
        completion_tokens=5,
        call_id=call.pk,
    )
    services._record_calls(run, [late], [], {backend.pk: late.backend})
    call.refresh_from_db()
    assert (call.outcome, call.prompt_tokens) == ("interrupted", 37)
    assert entries.count() == 4


def test_a_row_written_for_an_attempt_that_was_never_sent_is_not_kept():
    """The chunk stopped (its attempts cancelled) while their wave was being written:
    those rows are set aside for removal, never billed as interrupted calls."""
    import asyncio

    unsent: list[int] = []

    async def main():
        write_ahead = services._WriteAhead(submitted.append, unsent)
        waiting = asyncio.ensure_future(write_ahead(services._CallRecord(1, 1, None, "")))
        sent = asyncio.ensure_future(write_ahead(services._CallRecord(2, 1, None, "")))
        await asyncio.sleep(0)
        await asyncio.sleep(0)  # the wave is handed over
        (wave,) = submitted
        waiting.cancel()
        await asyncio.sleep(0)
        for record, call_id in zip(wave.records, (11, 12), strict=True):
            record.call_id = call_id
        wave.settle(None)  # from the writing thread, once the rows are committed
        await sent
        return waiting.cancelled()

    submitted: list = []
    assert asyncio.run(main()) is True
    assert unsent == [11]
