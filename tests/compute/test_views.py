from decimal import Decimal

import pytest

from compute.models import Backend, InferenceCall, PrelabelRun
from compute.services import prompt_template_create
from tenants.models import Membership
from tests.factories import annotation_project, items, member

pytestmark = pytest.mark.django_db


@pytest.fixture
def metered():
    project = annotation_project()
    (item,) = items(project, 1)
    backend = Backend.objects.create(
        organization=project.workforce,
        name="gy-vllm",
        kind="vllm",
        base_url="http://127.0.0.1:9/v1",
    )
    run = PrelabelRun.objects.create(
        project=project,
        created_by=project.created_by,
        prompt=prompt_template_create(project=project, created_by=project.created_by),
    )
    for attempt, (outcome, latency) in enumerate([("ok", 100.0), ("ok", 300.0), ("error", 0.0)], 1):
        InferenceCall.objects.create(
            run=run,
            project=project,
            item=item,
            attempt=attempt,
            backend=backend,
            model="m",
            outcome=outcome,
            latency_ms=latency,
            prompt_tokens=10,
            completion_tokens=2,
            cost=Decimal("0.001"),
        )
    return project, backend


def test_prometheus_metrics_report_each_backend(client, metered, settings):
    settings.METRICS_TOKEN = ""
    body = client.get("/metrics").content.decode()
    assert 'tokenworks_backend_requests_24h{backend="gy-vllm",kind="vllm"} 3.0' in body
    assert 'tokenworks_backend_errors_24h{backend="gy-vllm",kind="vllm"} 1.0' in body
    assert (
        'tokenworks_backend_tokens_24h{backend="gy-vllm",direction="input",kind="vllm"} 30.0'
        in body
    )
    assert 'quantile="p99"' in body


def test_prometheus_metrics_can_require_a_token(client, metered, settings):
    settings.METRICS_TOKEN = "scrape-me"
    assert client.get("/metrics").status_code == 401
    ok = client.get("/metrics", HTTP_AUTHORIZATION="Bearer scrape-me")
    assert ok.status_code == 200 and b"tokenworks_backend_requests_24h" in ok.content


def test_managers_see_the_backend_page(client, metered):
    project, backend = metered
    client.force_login(member(organization=project.workforce, role=Membership.Role.PROJECT_MANAGER))
    page = client.get("/compute/backends/").content.decode()
    assert "gy-vllm" in page and f'data-backend="{backend.pk}"' in page
    client.force_login(member(organization=project.workforce, role=Membership.Role.ANNOTATOR))
    assert client.get("/compute/backends/").status_code == 403
