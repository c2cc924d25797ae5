"""A real Celery worker process on Redis, running the project's Celery app."""

import uuid

import pytest

from config.celery_app import app
from sitehealth.models import Heartbeat
from tests.celery_worker import start_worker, stop_worker

pytestmark = [pytest.mark.postgres, pytest.mark.redis]


@pytest.fixture
def worker(tmp_path, transactional_db):
    queue = f"test-{uuid.uuid4().hex[:8]}"
    log = tmp_path / "worker.log"
    process = start_worker(var_dir=tmp_path, queue=queue, log_path=log)
    try:
        yield queue
    finally:
        stop_worker(process)
        print(log.read_text())  # shown by pytest when the test fails


def test_a_task_round_trips_through_a_real_worker(worker):
    eager = app.conf.task_always_eager
    app.conf.task_always_eager = False  # the test settings run tasks inline
    try:
        result = app.send_task(
            "sitehealth.tasks.heartbeat_record", kwargs={"source": "worker-test"}, queue=worker
        )
        seen_at = result.get(timeout=60)
    finally:
        app.conf.task_always_eager = eager

    heartbeat = Heartbeat.objects.get(source="worker-test")
    assert heartbeat.seen_at.isoformat() == seen_at
    assert heartbeat.hostname  # set by the worker process, not by us
