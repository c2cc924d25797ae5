import pytest

from compute import services
from compute.models import Backend
from compute.routing import CIRCUIT_COOLDOWN
from compute.tasks import backends_health_check_task
from tests.compute.fake_openai import FakeOpenAI, Fault
from tests.factories import annotation_project

pytestmark = pytest.mark.django_db


def test_health_checks_time_the_models_endpoint_and_feed_the_circuit():
    project = annotation_project()
    with FakeOpenAI() as fake:
        backend = Backend.objects.create(
            organization=project.workforce, name="b", base_url=fake.url
        )
        assert backends_health_check_task() == 1
        backend.refresh_from_db()
        assert backend.health == Backend.Health.HEALTHY
        assert backend.last_latency_ms is not None and backend.last_checked_at is not None
        assert any(r.path == "/v1/models" for r in fake.requests)

        fake.set_rule(lambda request: Fault.status(500))
        for _ in range(services.CIRCUIT_FAILURE_THRESHOLD):
            services.backend_health_check(backend=backend)
        backend.refresh_from_db()
        assert (backend.health, backend.circuit) == ("unhealthy", "open")

        fake.set_rule(None)
        services.backend_health_check(backend=backend)  # within the cool-down: still out
        backend.refresh_from_db()
        assert backend.circuit == "open"
        Backend.objects.filter(pk=backend.pk).update(
            circuit_opened_at=backend.circuit_opened_at - CIRCUIT_COOLDOWN
        )
        services.backend_health_check(backend=backend)  # the half-open probe brings it back
        backend.refresh_from_db()
        assert (backend.health, backend.circuit) == ("healthy", "closed")


def test_a_backend_that_does_not_answer_is_unhealthy():
    project = annotation_project()
    backend = Backend.objects.create(
        organization=project.workforce, name="down", base_url="http://127.0.0.1:9/v1"
    )
    services.backend_health_check(backend=backend)
    backend.refresh_from_db()
    assert backend.consecutive_failures == 1 and "ConnectError" in backend.last_error
