"""A real Celery worker process on Redis, running the project's Celery app."""

import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

from config.celery_app import app
from sitehealth.models import Heartbeat

REPO = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.postgres, pytest.mark.redis]


def _database_url() -> str:
    db = connection.settings_dict
    user = f"{db['USER']}@" if db["USER"] else ""
    return f"postgres://{user}{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


@pytest.fixture
def worker(tmp_path, transactional_db):
    queue = f"test-{uuid.uuid4().hex[:8]}"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.development",
        "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "platform")]),
        "VAR_DIR": str(tmp_path),
        "SECRET_KEY": "worker-test-" + "k" * 50,
        "DEBUG": "false",
        "DATABASE_URL": _database_url(),  # the throw-away test database
        "CELERY_BROKER_URL": settings.TEST_REDIS_URL,
        "CELERY_RESULT_BACKEND": settings.TEST_REDIS_URL,
    }
    log = open(tmp_path / "worker.log", "w+")  # noqa: SIM115 - closed below
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "config",
            "worker",
            "--pool",
            "solo",
            "--queues",
            queue,
            "--without-mingle",
            "--without-gossip",
            "--loglevel",
            "INFO",
        ],
        cwd=REPO,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        yield queue
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
        log.seek(0)
        print(log.read())  # shown by pytest when the test fails
        log.close()


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
