"""Prometheus metrics for the web and worker processes, and the /metrics scrape.

Each process counts in memory (or, with METRICS_DIR set, in memory-mapped
files under METRICS_DIR/<kind>/ that every gunicorn worker and Celery pool
process writes on its own): a scrape reads those counters and never the
database. Apps declare their own figures (annotation.metrics,
compute.metrics); this module has the ones of the platform itself: HTTP
requests, Celery tasks and the database connection pool.

Labels are bounded: a request is named by its resolved route (never its path),
a task by its registered name.
"""

import glob
import hmac
import os
import shutil
import time
from pathlib import Path

from django.conf import settings
from django.http import HttpResponse
from django.views.decorators.http import require_GET
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

# Latency buckets for requests and tasks, in seconds: the annotator's pages
# answer in milliseconds, an export task may run for minutes.
HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
TASK_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0)

HTTP_REQUESTS = Counter(
    "tokenworks_http_requests",
    "HTTP requests answered, by route, method and status",
    ["view", "method", "status"],
)
HTTP_LATENCY = Histogram(
    "tokenworks_http_request_duration_seconds",
    "Time from the first middleware to the response, by route",
    ["view"],
    buckets=HTTP_BUCKETS,
)
CELERY_TASKS = Counter(
    "tokenworks_celery_tasks",
    "Celery tasks run, by task and outcome (succeeded, failed, retried)",
    ["task", "outcome"],
)
CELERY_TASK_LATENCY = Histogram(
    "tokenworks_celery_task_duration_seconds",
    "Run time of Celery tasks, by task",
    ["task"],
    buckets=TASK_BUCKETS,
)
# Sampled at most every POOL_SAMPLE_SECONDS per process from psycopg_pool's
# own counters; the gauges add up over the live processes.
DB_POOL_SIZE = Gauge(
    "tokenworks_db_pool_connections",
    "Connections the database pools hold (open), over live processes",
    multiprocess_mode="livesum",
)
DB_POOL_IDLE = Gauge(
    "tokenworks_db_pool_connections_idle",
    "Connections idle in the database pools, over live processes",
    multiprocess_mode="livesum",
)
DB_POOL_WAITING = Gauge(
    "tokenworks_db_pool_requests_waiting",
    "Requests queued for a pooled connection, over live processes",
    multiprocess_mode="livesum",
)
DB_POOL_REQUESTS = Counter("tokenworks_db_pool_requests", "Connections asked of the database pools")
DB_POOL_QUEUED = Counter(
    "tokenworks_db_pool_requests_queued",
    "Connections asked for that had to wait because the pool was busy",
)
DB_POOL_WAIT = Counter(
    "tokenworks_db_pool_wait_seconds", "Time spent waiting for a pooled connection"
)
DB_POOL_ERRORS = Counter(
    "tokenworks_db_pool_errors",
    "Pool failures: timeouts waiting for a connection and failed connection attempts",
)

POOL_SAMPLE_SECONDS = 5.0
_pool_sampled_at = 0.0


def pool_sample(*, force: bool = False) -> None:
    """Copy the database pool's counters into the metrics, at most every few seconds."""
    global _pool_sampled_at
    now = time.monotonic()
    if not force and now - _pool_sampled_at < POOL_SAMPLE_SECONDS:
        return
    _pool_sampled_at = now
    from django.db import connections

    size = idle = waiting = 0
    for conn in connections.all(initialized_only=True):
        # Only a pool already made: reading conn.pool would open one.
        pool = getattr(conn, "_connection_pools", {}).get(conn.alias)
        if pool is None:
            continue
        stats = pool.pop_stats()  # the cumulative ones reset, so each is counted once
        size += stats.get("pool_size", 0)
        idle += stats.get("pool_available", 0)
        waiting += stats.get("requests_waiting", 0)
        DB_POOL_REQUESTS.inc(stats.get("requests_num", 0))
        DB_POOL_QUEUED.inc(stats.get("requests_queued", 0))
        DB_POOL_WAIT.inc(stats.get("requests_wait_ms", 0) / 1000)
        DB_POOL_ERRORS.inc(stats.get("requests_errors", 0) + stats.get("connections_errors", 0))
    DB_POOL_SIZE.set(size)
    DB_POOL_IDLE.set(idle)
    DB_POOL_WAITING.set(waiting)


class RequestMetricsMiddleware:
    """Counts and times every request by its route name: first in MIDDLEWARE.

    A few microseconds a request: no label is built from the path, and the
    children for a (route, method, status) are cached after the first request.
    """

    def __init__(self, get_response):
        self.get_response = get_response
        self._children: dict[tuple, tuple] = {}

    def __call__(self, request):
        started = time.perf_counter()
        response = self.get_response(request)
        elapsed = time.perf_counter() - started
        match = request.resolver_match
        view = (match.view_name or match.route) if match is not None else "unresolved"
        key = (view, request.method, response.status_code)
        children = self._children.get(key)
        if children is None:
            method = request.method if request.method in _METHODS else "other"
            children = (
                HTTP_REQUESTS.labels(view, method, str(response.status_code)),
                HTTP_LATENCY.labels(view),
            )
            if len(self._children) < 4096:  # a bound, should a client invent methods
                self._children[key] = children
        children[0].inc()
        children[1].observe(elapsed)
        pool_sample()
        return response


_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

# --- Celery ---------------------------------------------------------------------

_task_started: dict[str, float] = {}


def celery_signals_connect() -> None:
    """Count and time tasks in the process that runs them (connected in celery_app)."""
    from celery.signals import (
        task_failure,
        task_postrun,
        task_prerun,
        task_retry,
        worker_init,
        worker_process_shutdown,
    )

    task_prerun.connect(_task_prerun, weak=False)
    task_postrun.connect(_task_postrun, weak=False)
    task_failure.connect(_task_failure, weak=False)
    task_retry.connect(_task_retry, weak=False)
    worker_init.connect(_worker_init, weak=False)
    worker_process_shutdown.connect(_process_shutdown, weak=False)


def _task_prerun(task_id=None, **kwargs):
    _task_started[task_id] = time.perf_counter()


def _task_postrun(task_id=None, task=None, state=None, **kwargs):
    started = _task_started.pop(task_id, None)
    name = getattr(task, "name", "unknown")
    if started is not None:
        CELERY_TASK_LATENCY.labels(name).observe(time.perf_counter() - started)
    if state == "SUCCESS":
        CELERY_TASKS.labels(name, "succeeded").inc()
    pool_sample()


def _task_failure(sender=None, **kwargs):
    CELERY_TASKS.labels(getattr(sender, "name", "unknown"), "failed").inc()


def _task_retry(sender=None, **kwargs):
    CELERY_TASKS.labels(getattr(sender, "name", "unknown"), "retried").inc()


def _worker_init(**kwargs):
    # The worker's main process, before it forks its pool: a fresh start.
    wipe(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))


def _process_shutdown(**kwargs):
    process_dead(os.getpid())


# --- multiprocess files ---------------------------------------------------------


def wipe(directory: str | None) -> None:
    """Empty a process kind's metrics folder at its start (the files of the last run go)."""
    if not directory:
        return
    shutil.rmtree(directory, ignore_errors=True)
    Path(directory).mkdir(parents=True, exist_ok=True)


def process_dead(pid: int) -> None:
    """Drop the live gauges of a process that exited (its counters stay in the sums)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.mark_process_dead(pid)


class _FilesCollector:
    """Every process's figures from the files under METRICS_DIR/<kind>/."""

    def __init__(self, root: str):
        self.root = root

    def collect(self):
        files = glob.glob(os.path.join(self.root, "*", "*.db"))
        return multiprocess.MultiProcessCollector.merge(files, accumulate=True)


def scrape(metrics_dir: str) -> tuple[bytes, str]:
    """The metrics in Prometheus text format, from memory or the files: no database."""
    if metrics_dir:
        registry = CollectorRegistry()
        registry.register(_FilesCollector(metrics_dir))
    else:
        registry = REGISTRY
    return generate_latest(registry), CONTENT_TYPE_LATEST


@require_GET
def metrics_view(request):
    """Prometheus text format, read from the counters: no database query.

    With METRICS_TOKEN set (production requires it), scrapers send it as a
    bearer token.
    """
    token = settings.METRICS_TOKEN
    if token:
        sent = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        if not hmac.compare_digest(sent, token):
            return HttpResponse("unauthorized\n", status=401, content_type="text/plain")
    body, content_type = scrape(settings.METRICS_DIR)
    return HttpResponse(body, content_type=content_type)
