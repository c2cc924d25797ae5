"""Test-wide fixtures and the rule for real services.

Tests that need PostgreSQL, Redis or Chromium carry a marker. When the
service is missing they skip with the reason, unless REQUIRE_SERVICES=1
(as in CI), which turns the skip into a failure.
"""

import os
import shutil

import pytest
from django.conf import settings
from django.db import connection, connections

CHROMIUM_CANDIDATES = ("chromium", "chromium-browser")


def chromium_path() -> str | None:
    explicit = os.environ.get("CHROMIUM_PATH")
    if explicit:
        return explicit if os.path.exists(explicit) else None
    for name in CHROMIUM_CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    return None


def _missing_reason(marker_name: str) -> str | None:
    if marker_name in ("postgres", "redis"):
        reason = settings.SERVICES_MISSING[marker_name]
        if reason is None and marker_name == "postgres" and connection.vendor != "postgresql":
            reason = "the test database is not PostgreSQL"
        return f"{marker_name}: {reason}" if reason else None
    if marker_name == "browser":
        return (
            None
            if chromium_path()
            else ("browser: no Chromium (apt-get install chromium, or set CHROMIUM_PATH)")
        )
    return None


def pytest_runtest_setup(item):
    for marker_name in ("postgres", "redis", "browser"):
        if item.get_closest_marker(marker_name) is None:
            continue
        reason = _missing_reason(marker_name)
        if reason is None:
            continue
        if settings.REQUIRE_SERVICES:
            pytest.fail(f"REQUIRE_SERVICES=1 but {reason}", pytrace=False)
        pytest.skip(reason)


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup, django_db_blocker):
    """Refuse to run against anything but a throw-away test database."""
    with django_db_blocker.unblock():
        name = str(connection.settings_dict["NAME"])
        throwaway = name.startswith("test_") or (
            connection.vendor == "sqlite" and ("memory" in name or name == "")
        )
        assert throwaway, f"refusing to run tests against non-test database {name!r}"
    yield
    # Pooled connections, idle or still checked out by this thread, would keep
    # the test database from being dropped: return them, then close the pool.
    with django_db_blocker.unblock():
        connections.close_all()
        if hasattr(connection, "close_pool"):
            connection.close_pool()


@pytest.fixture
def api_client():
    from rest_framework.test import APIClient

    return APIClient()


@pytest.fixture(autouse=True)
def _fresh_cache():
    """Throttle counters live in the cache: each test starts with none."""
    from django.core.cache import cache

    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def celery_workers(tmp_path, settings):
    """start() a real Celery worker (tests/celery_worker.py) on a queue of this test's
    own, with short job leases; tasks sent from the test go there too. The broker's
    visibility timeout is an hour, so no recovery relies on it re-delivering."""
    import uuid

    from config.celery_app import app
    from tests.celery_worker import start_worker, stop_worker

    short = {"JOB_LEASE_SECONDS": 3, "JOB_HEARTBEAT_SECONDS": 1}
    for name, value in short.items():
        setattr(settings, name, value)  # for the sweep run in the test, as beat would
    settings.MEDIA_ROOT = str(tmp_path / "media")  # where the workers keep files too
    queue = f"test-{uuid.uuid4().hex[:8]}"
    log = tmp_path / "workers.log"
    started = []
    eager, default_queue = app.conf.task_always_eager, app.conf.task_default_queue
    app.conf.task_always_eager, app.conf.task_default_queue = False, queue

    def start():
        process = start_worker(
            var_dir=tmp_path,
            queue=queue,
            log_path=log,
            CELERY_VISIBILITY_TIMEOUT="3600",
            # Tasks the worker itself enqueues (a run's chunks) stay on this queue too.
            CELERY_TASK_DEFAULT_QUEUE=queue,
            **{name: str(value) for name, value in short.items()},
        )
        started.append(process)
        return process

    start.log = log
    yield start
    app.conf.task_always_eager, app.conf.task_default_queue = eager, default_queue
    for process in started:
        stop_worker(process, kill=True)
