"""/metrics: prometheus-client counters and histograms, no database per scrape."""

import os
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from prometheus_client import REGISTRY

from annotation.services import annotation_submit, assignment_lease
from tests.factories import annotation_project, items, worker

REPO = Path(__file__).resolve().parents[2]


def sample(name: str, **labels) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


@pytest.mark.django_db
def test_a_scrape_runs_no_database_query(client, settings):
    settings.METRICS_TOKEN = ""
    project = annotation_project()
    items(project, 3)
    client.get("/metrics")  # the first request of a process may set things up
    with CaptureQueriesContext(connection) as queries:
        response = client.get("/metrics")
    assert response.status_code == 200
    assert len(queries) == 0, [q["sql"] for q in queries]


@pytest.mark.django_db
def test_requests_are_counted_and_timed_by_route_name(client, settings):
    settings.METRICS_TOKEN = ""
    labels = {"view": "metrics", "method": "GET", "status": "200"}
    before = sample("tokenworks_http_requests_total", **labels)
    timed = sample("tokenworks_http_request_duration_seconds_count", view="metrics")
    client.get("/metrics")
    client.get("/metrics")
    assert sample("tokenworks_http_requests_total", **labels) == before + 2
    assert sample("tokenworks_http_request_duration_seconds_count", view="metrics") == timed + 2
    # A path that resolves to nothing is one series, whatever the path.
    unresolved = {"view": "unresolved", "method": "GET", "status": "404"}
    missed = sample("tokenworks_http_requests_total", **unresolved)
    client.get("/no/such/page-1")
    client.get("/no/such/page-2")
    assert sample("tokenworks_http_requests_total", **unresolved) == missed + 2
    body = client.get("/metrics").content.decode()
    assert 'tokenworks_http_request_duration_seconds_bucket{le="0.005",view="metrics"}' in body
    assert "page-1" not in body


@pytest.mark.django_db
def test_the_scrape_can_require_a_token(client, settings):
    settings.METRICS_TOKEN = "scrape-me"
    assert client.get("/metrics").status_code == 401
    ok = client.get("/metrics", HTTP_AUTHORIZATION="Bearer scrape-me")
    assert ok.status_code == 200 and b"tokenworks_http_requests_total" in ok.content


@pytest.mark.django_db
def test_leases_submits_and_tokens_are_counted():
    project = annotation_project()
    items(project, 2)
    annotator = worker(project)
    kind = project.task_type
    leased = sample("tokenworks_task_leases_total", task_type=kind, result="new")
    accepted = sample("tokenworks_submits_total", task_type=kind, result="accepted")
    repeated = sample("tokenworks_submits_total", task_type=kind, result="repeated")
    tokens = sample("tokenworks_annotated_tokens_total", task_type=kind, direction="input")
    assignment = assignment_lease(project=project, annotator=annotator)
    answer = {"label": "positive"}
    annotation, _ = annotation_submit(
        assignment_id=assignment.pk, annotator=annotator, answer=answer
    )
    annotation_submit(assignment_id=assignment.pk, annotator=annotator, answer=answer)
    assert sample("tokenworks_task_leases_total", task_type=kind, result="new") == leased + 1
    assert sample("tokenworks_submits_total", task_type=kind, result="accepted") == accepted + 1
    assert sample("tokenworks_submits_total", task_type=kind, result="repeated") == repeated + 1
    assert (
        sample("tokenworks_annotated_tokens_total", task_type=kind, direction="input")
        == tokens + annotation.item_tokens
    )


def test_celery_tasks_are_counted_with_outcome_and_duration():
    from config.celery_app import app

    @app.task(name="tests.metrics.ok")
    def ok():
        return 1

    @app.task(name="tests.metrics.broken")
    def broken():
        raise ValueError("broken on purpose")

    ok.apply()
    broken.apply(throw=False)  # as a worker runs it: the error is the task's outcome
    assert (
        sample("tokenworks_celery_tasks_total", task="tests.metrics.ok", outcome="succeeded") >= 1
    )
    assert (
        sample("tokenworks_celery_tasks_total", task="tests.metrics.broken", outcome="failed") >= 1
    )
    assert sample("tokenworks_celery_task_duration_seconds_count", task="tests.metrics.ok") >= 1


# --- under gunicorn ---------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_until_up(url: str, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert process.poll() is None, "gunicorn exited early"
        try:
            httpx.get(url, timeout=2)
            return
        except httpx.HTTPError:
            time.sleep(0.2)
    raise AssertionError("gunicorn did not answer within 60 s")


def _counter(body: str, name: str, labels: str) -> float:
    prefix = f"{name}{{{labels}}} "
    lines = [line for line in body.splitlines() if line.startswith(prefix)]
    return float(lines[0].removeprefix(prefix)) if lines else 0.0


def test_the_scrape_adds_up_both_gunicorn_workers(tmp_path):
    """The Procfile's gunicorn (its config file, METRICS_DIR) with two workers."""
    port = _free_port()
    metrics_dir = tmp_path / "metrics"
    env = {
        **{k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"},
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "METRICS_DIR": str(metrics_dir),
        "METRICS_TOKEN": "",
        "PYTHONPATH": f"{REPO}:{REPO / 'platform'}",
    }
    process = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "gunicorn"),
            "config.wsgi",
            "--config",
            "platform/config/gunicorn_conf.py",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            "2",
        ],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_until_up(f"{base}/metrics", process)
        labels = 'method="GET",status="404",view="unresolved"'
        start = _counter(
            httpx.get(f"{base}/metrics").text, "tokenworks_http_requests_total", labels
        )
        sent = 0
        # Concurrent requests, each on its own connection, until both workers
        # have answered some (bounded: at most 20 rounds).
        for _ in range(20):
            with ThreadPoolExecutor(8) as pool:
                statuses = list(
                    pool.map(lambda i: httpx.get(f"{base}/nowhere/{i}").status_code, range(16))
                )
            assert statuses == [404] * 16
            sent += 16
            pids = {p.name.split("_")[1] for p in (metrics_dir / "web").glob("counter_*.db")}
            if len(pids) >= 2:
                break
        assert len(pids) >= 2, f"only one worker answered: {pids}"
        body = httpx.get(f"{base}/metrics").text
        assert _counter(body, "tokenworks_http_requests_total", labels) == start + sent
        assert "tokenworks_http_request_duration_seconds_bucket" in body
    finally:
        process.terminate()
        _, stderr = process.communicate(timeout=30)
    assert process.returncode == 0, stderr.decode()[-2000:]


def test_the_grafana_dashboard_charts_metrics_the_platform_exposes():
    import json
    import re

    dashboard = json.loads((REPO / "docker" / "grafana-dashboard.json").read_text())
    exposed = {
        name.removesuffix("_total").removesuffix("_bucket")
        for name in re.findall(
            r"\b(tokenworks_[a-z_]+)",
            (REPO / "platform/config/metrics.py").read_text()
            + (REPO / "compute/metrics.py").read_text()
            + (REPO / "annotation/metrics.py").read_text(),
        )
    }
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            for name in re.findall(r"\b(tokenworks_[a-z_]+)", target["expr"]):
                base = name.removesuffix("_total").removesuffix("_bucket")
                assert base in exposed, f"{panel['title']}: {name} is not a metric we expose"
