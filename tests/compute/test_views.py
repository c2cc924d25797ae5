from decimal import Decimal

import pytest
from prometheus_client import REGISTRY

from compute import metrics
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


def _sample(name, **labels):
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_metered_calls_are_counted_per_backend_by_id(client, metered, settings):
    settings.METRICS_TOKEN = ""
    _, backend = metered
    key = {"backend_id": str(backend.pk), "kind": "vllm", "scope": "organization"}
    ok = _sample("tokenworks_backend_calls_total", **key, outcome="ok")
    tokens = _sample("tokenworks_backend_tokens_total", **key, direction="input")
    answered = _sample("tokenworks_backend_call_duration_seconds_count", **key)
    metrics.calls_observed(InferenceCall.objects.filter(backend=backend), {backend.pk: backend})
    assert _sample("tokenworks_backend_calls_total", **key, outcome="ok") == ok + 2
    assert _sample("tokenworks_backend_tokens_total", **key, direction="input") == tokens + 30
    assert _sample("tokenworks_backend_call_duration_seconds_count", **key) == answered + 2
    body = client.get("/metrics").content.decode()
    assert f'tokenworks_backend_calls_total{{backend_id="{backend.pk}",kind="vllm",' in body


def test_metrics_name_no_organization_or_backend(client, metered, settings):
    # One scraper reads every centre's backends: names and URLs stay out.
    settings.METRICS_TOKEN = ""
    project, backend = metered
    platform_wide = Backend.objects.create(
        name="shared-qwen", kind="openai", base_url="https://llm.example.cn/v1"
    )
    metrics.calls_observed(InferenceCall.objects.filter(backend=backend), {backend.pk: backend})
    metrics.circuit_observed(platform_wide)
    body = client.get("/metrics").content.decode()
    for secret in ("gy-vllm", "shared-qwen", "127.0.0.1", "llm.example.cn"):
        assert secret not in body
    for organization in (project.organization, project.workforce):
        assert organization.name not in body and organization.slug not in body
    assert f'backend_id="{platform_wide.pk}",kind="openai",scope="platform"' in body


def test_the_backend_page_shows_the_address_to_its_managers_only(client, metered):
    project, backend = metered
    Backend.objects.create(name="shared-qwen", kind="openai", base_url="https://llm.example.cn/v1")
    client.force_login(member(organization=project.workforce, role=Membership.Role.ADMIN))
    page = client.get("/compute/backends/").content.decode()
    assert backend.base_url in page and "shared-qwen" in page
    assert "llm.example.cn" not in page

    client.force_login(member(organization=project.organization, role=Membership.Role.ADMIN))
    page = client.get("/compute/backends/").content.decode()
    assert "shared-qwen" in page and "llm.example.cn" not in page
    assert "gy-vllm" not in page  # another organization's backend is not listed at all


def test_managers_see_the_backend_page(client, metered):
    project, backend = metered
    client.force_login(member(organization=project.workforce, role=Membership.Role.PROJECT_MANAGER))
    page = client.get("/compute/backends/").content.decode()
    assert "gy-vllm" in page and f'data-backend="{backend.pk}"' in page
    client.force_login(member(organization=project.workforce, role=Membership.Role.ANNOTATOR))
    assert client.get("/compute/backends/").status_code == 403


def test_figures_read_per_locale_and_retired_backends_wait_to_be_asked_for(client, metered):
    project, backend = metered
    InferenceCall.objects.filter(backend=backend).update(
        prompt_tokens=1234567, cost=Decimal("0.000163666666666667")
    )
    Backend.objects.create(name="old-pool", kind="vllm", base_url="http://x/v1", is_active=False)
    client.force_login(member(organization=project.workforce, role=Membership.Role.PROJECT_MANAGER))
    page = client.get("/compute/backends/").content.decode()
    assert "3,703,701" in page and "¥0.000492" in page and "0.000492000" not in page
    assert "old-pool" not in page and 'id="show-retired"' in page
    every = client.get("/compute/backends/?show=all").content.decode()
    assert "old-pool" in every and "Out of service: not checked" in every
    chinese = client.get("/compute/backends/", HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode()
    assert "3,703,701" in chinese and "推理后端" in chinese


def test_a_manager_takes_a_backend_out_of_service_and_back_audited(client, metered):
    project, backend = metered
    manager = member(organization=project.workforce, role=Membership.Role.PROJECT_MANAGER)
    client.force_login(manager)
    response = client.post(f"/compute/backends/{backend.pk}/disable/")
    assert response.status_code == 302
    backend.refresh_from_db()
    assert not backend.is_active
    from tenants.models import AuditEvent

    assert AuditEvent.objects.filter(event_type="backend.updated", actor_user=manager).exists()
    client.post(f"/compute/backends/{backend.pk}/enable/")
    backend.refresh_from_db()
    assert backend.is_active
    # An observer sees the page but may not act; another centre's backend is a 404.
    client.force_login(
        member(organization=project.organization, role=Membership.Role.CLIENT_DEVELOPER)
    )
    assert client.post(f"/compute/backends/{backend.pk}/disable/").status_code == 404
    observer = member(organization=project.workforce, role=Membership.Role.ADMIN)
    Membership.objects.filter(user=observer).update(role=Membership.Role.CLIENT_DEVELOPER)
    client.force_login(observer)
    assert client.post(f"/compute/backends/{backend.pk}/disable/").status_code == 403
    assert client.post(f"/compute/backends/{backend.pk}/explode/").status_code == 404
