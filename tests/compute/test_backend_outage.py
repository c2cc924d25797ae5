"""The only backend fails for a minute, then recovers (a real worker, the README's
retry policy and circuit breaker): the run ends `succeeded` without anyone stepping
in. The circuit opens, the chunk stops sending instead of spending its items'
attempts on a dead backend, the half-open probe after the cool-down finds the
backend back, and every attempt, failed ones included, is metered once."""

import threading
import time

import pytest

from compute.models import Backend, InferenceCall, Prediction, PrelabelRun
from compute.services import prelabel_run_start
from tests.celery_worker import wait_for
from tests.compute.fake_openai import FakeOpenAI, Fault
from tests.factories import annotation_project, items
from valuechain.models import LedgerEntry
from valuechain.services import rollups_reconcile

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.django_db(transaction=True)]

ITEMS = 20
# About a minute from the first request: the circuit's cool-down (60 s) starts a
# second or two later, so its probe comes just after the backend is back.
OUTAGE_SECONDS = 55
OUTCOMES = {500: "server_error", None: "connection", 200: "ok"}


class Outage:
    """Every request inside the outage is answered 500 or dropped, in turn."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.started: float | None = None
        self.count = 0
        self.lock = threading.Lock()

    def __call__(self, request):
        with self.lock:
            if self.started is None:
                self.started = request.time
            if request.time - self.started >= self.seconds:
                return None
            self.count += 1
            return Fault.status(500) if self.count % 2 else Fault.drop()


def test_a_run_outlives_a_minute_of_its_only_backend_failing(celery_workers, settings):
    # The README's retry policy (the run records the one it starts with).
    settings.COMPUTE_MAX_RETRIES = 4
    settings.COMPUTE_BACKOFF_BASE = 0.5
    settings.COMPUTE_MAX_CALL_SECONDS = 120.0
    project = annotation_project()
    items(project, ITEMS)
    outage = Outage(OUTAGE_SECONDS)
    with FakeOpenAI(latency=0.05, rule=outage) as fake:
        Backend.objects.create(
            organization=project.workforce,
            name="only",
            base_url=fake.url,
            models_served=["fake-model"],
            max_concurrency=4,
        )
        celery_workers()
        run = prelabel_run_start(project=project, created_by=project.created_by)
        wait_for(
            lambda: Backend.objects.get(name="only").circuit == "open",
            30,
            f"the circuit to open (see {celery_workers.log})",
        )
        wait_for(
            lambda: PrelabelRun.objects.get(pk=run.pk).status != "running",
            OUTAGE_SECONDS + 120,
            f"the run to end (see {celery_workers.log})",
        )
        ended = time.monotonic()
        received = fake.received()

    run.refresh_from_db()
    assert run.status == "succeeded", run.error
    assert (run.done_items, run.failed_items, run.error) == (ITEMS, 0, "")
    assert Prediction.objects.filter(run=run).count() == ITEMS
    # Back within one cool-down (and the chunk's next claim) of the backend's return.
    assert ended - outage.started < OUTAGE_SECONDS + 2 * 60
    backend = Backend.objects.get(name="only")
    assert backend.circuit == "closed" and backend.health == "healthy"
    log = celery_workers.log.read_text()
    assert log.index("backend circuit open") < log.rindex("backend circuit closed")

    # The breaker spared the dead backend: far fewer calls than the items' attempt
    # budgets (5 each), and no item ended on the outage.
    failed = [r for r in received if r.status != 200]
    assert 0 < len(failed) < ITEMS * 5 / 2
    assert not InferenceCall.objects.filter(run=run, final=True).exists()
    # Every attempt metered once, with the outcome the backend gave it.
    rows = {
        f"inference:{run.pk}:{item}:{attempt}": outcome
        for item, attempt, outcome in InferenceCall.objects.filter(run=run).values_list(
            "item_id", "attempt", "outcome"
        )
    }
    assert sorted(rows) == sorted(r.headers["x-client-request-id"] for r in received)
    for request in received:
        assert rows[request.headers["x-client-request-id"]] == OUTCOMES[request.status]
    assert LedgerEntry.objects.filter(kind="inference", project_id=project.pk).count() == len(rows)
    assert rollups_reconcile()["differences"] == []
