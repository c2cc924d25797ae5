from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.exceptions import PermissionDenied
from django.utils import timezone

from compute import services
from compute.api_key_cipher import api_key_decrypt
from compute.models import Backend, PrelabelRun
from compute.routing import backends_ranked
from tenants.models import Membership, Region
from tests.factories import annotation_project, member

pytestmark = pytest.mark.django_db


def backend(project, **fields):
    defaults = {
        "name": fields.pop("name", "b"),
        "base_url": "http://127.0.0.1:9/v1",
        "organization": project.workforce,
    }
    return Backend.objects.create(**{**defaults, **fields})


def plan(**fields):
    base = dict(
        id=1,
        name="b",
        base_url="",
        api_key="",
        model="m",
        max_concurrency=8,
        rpm=None,
        tpm=None,
        price_in=Decimal(0),
        price_out=Decimal(0),
        electricity=None,
        power_kw=None,
    )
    return services._BackendPlan(**{**base, **fields})


def test_api_keys_are_encrypted_at_rest_and_never_serialized():
    project = annotation_project()
    admin = member(organization=project.workforce, role=Membership.Role.ADMIN)
    saved = services.backend_save(
        user=admin,
        organization=project.workforce,
        name="vLLM",
        base_url="http://10.0.0.5:8000/v1",
        api_key="sk-secret",
    )
    assert "sk-secret" not in saved.api_key_encrypted
    assert api_key_decrypt(saved.api_key_encrypted) == "sk-secret"
    from compute.serializers import BackendSerializer

    data = BackendSerializer(saved).data
    assert "sk-secret" not in str(data) and data["has_api_key"] is True


def test_only_admins_and_managers_manage_a_centres_backends():
    project = annotation_project()
    annotator = member(organization=project.workforce, role=Membership.Role.ANNOTATOR)
    with pytest.raises(PermissionDenied):
        services.backend_save(
            user=annotator, organization=project.workforce, name="x", base_url="http://x/v1"
        )
    with pytest.raises(PermissionDenied, match="platform"):
        services.backend_save(user=annotator, organization=None, name="x", base_url="http://x/v1")


def test_token_prices_and_energy_give_the_cost():
    priced = plan(price_in=Decimal("2.00"), price_out=Decimal("8.00"))
    assert services.call_cost(priced, 1000, 500, 120) == Decimal("0.006000")
    # 8 kW cluster, 64 requests at a time, 0.6 CNY/kWh, a 3.6 s call:
    # 8 * 0.001 h * 0.6 / 64 = 0.000075 CNY.
    energy = plan(electricity=Decimal("0.6"), power_kw=Decimal("8"), max_concurrency=64)
    assert services.call_cost(energy, 1000, 500, 3600) == Decimal("0.000075")
    assert services.call_cost(plan(), 1000, 500, 100) == Decimal(0)


def _run(project, **fields):
    from compute.services import prompt_template_create

    prompt = prompt_template_create(project=project, created_by=project.created_by)
    return PrelabelRun(project=project, created_by=project.created_by, prompt=prompt, **fields)


def test_routing_cheapest_lowest_latency_and_pinned():
    project = annotation_project()
    cheap = backend(
        project, name="cheap", price_input_per_million=Decimal("0.1"), last_latency_ms=300
    )
    fast = backend(project, name="fast", price_input_per_million=Decimal("5"), last_latency_ms=20)
    assert backends_ranked(_run(project, policy="cheapest")) == [cheap, fast]
    assert backends_ranked(_run(project, policy="lowest_latency")) == [fast, cheap]
    assert backends_ranked(_run(project, policy="cheapest", backend=fast))[0] == fast


def test_region_policy_keeps_data_in_the_province():
    project = annotation_project()
    guiyang = backend(project, name="gy", region=Region.objects.get(code="520100"))
    backend(
        project,
        name="sh",
        region=Region.objects.get(code="310100"),
        price_input_per_million=Decimal(0),
    )
    run = _run(project, policy="region", region=Region.objects.get(code="520000"))
    assert backends_ranked(run) == [guiyang]


def test_other_organizations_backends_are_not_used():
    project = annotation_project()
    other = annotation_project()
    backend(other, name="theirs")
    mine = backend(project, name="mine")
    shared = Backend.objects.create(name="platform", base_url="http://x/v1")
    assert set(backends_ranked(_run(project))) == {mine, shared}


def test_health_checks_open_an_idle_backend_after_five_failures_and_probe_after_the_cooldown():
    project = annotation_project()
    b = backend(project)
    now = timezone.now()
    for _ in range(4):
        services.backend_record_outcome(backend_id=b.pk, ok=False, error="boom", now=now)
    b.refresh_from_db()
    assert b.circuit == Backend.Circuit.CLOSED
    services.backend_record_outcome(backend_id=b.pk, ok=False, error="boom", now=now)
    b.refresh_from_db()
    assert (b.circuit, b.health) == (Backend.Circuit.OPEN, Backend.Health.UNHEALTHY)
    run = _run(project)
    assert backends_ranked(run, now=now) == []
    # A success within the cool-down does not close it (GET /models may answer
    # while chat completions fail); after the cool-down the probe closes it.
    services.backend_record_outcome(backend_id=b.pk, ok=True, latency_ms=40, now=now)
    b.refresh_from_db()
    assert b.circuit == Backend.Circuit.OPEN
    later = now + timedelta(seconds=61)
    assert backends_ranked(run, now=later) == [b]
    services.backend_record_outcome(backend_id=b.pk, ok=True, latency_ms=40, now=later)
    b.refresh_from_db()
    assert (b.circuit, b.consecutive_failures, b.last_latency_ms) == ("closed", 0, 40)


def _calls(b, project, outcomes):
    from compute.models import InferenceCall
    from tests.factories import items

    project = annotation_project()  # fresh items each time
    made = items(project, len(outcomes))
    InferenceCall.objects.bulk_create(
        InferenceCall(project=project, item=item, backend=b, model="m", outcome=outcome)
        for item, outcome in zip(made, outcomes, strict=True)
    )


def test_the_circuit_stays_closed_for_a_backend_answering_most_calls():
    # 91.6 % answered: the case that used to take the only backend out of service.
    project = annotation_project()
    b = backend(project)
    _calls(b, project, ["ok"] * 84 + ["rate_limited"] * 4 + ["server_error"] * 4 + ["ok"] * 8)
    assert services.backend_circuit_evaluate(backend_id=b.pk) == Backend.Circuit.CLOSED
    b.refresh_from_db()
    assert b.health == Backend.Health.HEALTHY


def test_rate_limits_do_not_open_the_circuit_errors_do():
    # A 429 says the backend is alive and busy: even 60 % of them leave it in
    # service (the retries honour Retry-After); the same share of 500s opens it.
    project = annotation_project()
    busy = backend(project)
    _calls(busy, project, ["rate_limited", "ok", "rate_limited", "ok", "rate_limited"] * 8)
    assert services.backend_circuit_evaluate(backend_id=busy.pk) == Backend.Circuit.CLOSED
    broken = backend(project, name="broken")
    _calls(broken, project, ["server_error", "ok", "server_error", "ok", "server_error"] * 8)
    assert services.backend_circuit_evaluate(backend_id=broken.pk) == Backend.Circuit.OPEN


def test_the_circuit_needs_a_minimum_volume_then_opens_above_half_errors():
    project = annotation_project()
    b = backend(project)
    _calls(b, project, ["server_error"] * (services.CIRCUIT_MIN_CALLS - 1))
    assert services.backend_circuit_evaluate(backend_id=b.pk) == Backend.Circuit.CLOSED
    _calls(b, project, ["timeout"] * 5 + ["ok"] * 10)  # 24 of 34 failed
    assert services.backend_circuit_evaluate(backend_id=b.pk) == Backend.Circuit.OPEN
    b.refresh_from_db()
    assert b.health == Backend.Health.UNHEALTHY and backends_ranked(_run(project)) == []


def test_an_open_circuit_closes_when_the_half_open_probes_are_answered():
    project = annotation_project()
    b = backend(project)
    opened = timezone.now() - timedelta(seconds=61)
    Backend.objects.filter(pk=b.pk).update(circuit="open", circuit_opened_at=opened)
    # Rejected requests and no calls decide nothing.
    _calls(b, project, ["rejected"])
    assert services.backend_circuit_evaluate(backend_id=b.pk) == Backend.Circuit.OPEN
    _calls(b, project, ["server_error", "ok", "ok"])
    assert services.backend_circuit_evaluate(backend_id=b.pk) == Backend.Circuit.CLOSED


def test_a_failed_probe_opens_the_circuit_for_another_cool_down():
    project = annotation_project()
    b = backend(project)
    opened = timezone.now() - timedelta(seconds=61)
    Backend.objects.filter(pk=b.pk).update(circuit="open", circuit_opened_at=opened)
    _calls(b, project, ["connection"])
    assert services.backend_circuit_evaluate(backend_id=b.pk) == Backend.Circuit.OPEN
    b.refresh_from_db()
    assert b.circuit_opened_at > opened


def test_prompt_versions_count_up_and_need_an_item_field():
    from django.core.exceptions import ValidationError

    project = annotation_project()
    first = services.prompt_template_create(project=project, created_by=project.created_by)
    second = services.prompt_template_create(
        project=project, created_by=project.created_by, system="分类", user="评论：{text}"
    )
    assert (first.version, second.version) == (1, 2)
    with pytest.raises(ValidationError, match="item field"):
        services.prompt_template_create(
            project=project, created_by=project.created_by, user="no fields"
        )


# --- audit trail -----------------------------------------------------------------------


def test_backend_changes_are_audited_and_a_rotated_key_never_appears():
    import json

    from tenants.models import AuditEvent

    project = annotation_project()
    admin = member(organization=project.workforce, role=Membership.Role.ADMIN)
    saved = services.backend_save(
        user=admin,
        organization=project.workforce,
        name="vLLM",
        base_url="http://10.0.0.5:8000/v1",
        api_key="sk-first",
    )
    services.backend_save(user=admin, organization=project.workforce, backend=saved, gpu_count=4)
    services.backend_save(
        user=admin, organization=project.workforce, backend=saved, api_key="sk-second"
    )
    backend_id = saved.pk
    services.backend_delete(backend=saved, user=admin)
    events = list(AuditEvent.objects.filter(event_type__startswith="backend.").order_by("pk"))
    assert [e.event_type for e in events] == [
        "backend.created",
        "backend.updated",
        "backend.key_rotated",
        "backend.deleted",
    ]
    assert {(e.organization, e.actor_user, e.target_id) for e in events} == {
        (project.workforce, admin, str(backend_id))
    }
    assert events[1].changes["gpu_count"][1] == 4 and list(events[1].changes) == ["gpu_count"]
    assert events[2].changes == {"api_key": ["<redacted>", "<redacted>"]}
    stored = json.dumps(list(AuditEvent.objects.values("changes", "extra", "target_repr")))
    assert "sk-first" not in stored and "sk-second" not in stored
    assert "api_key_encrypted" not in stored


def test_a_platform_backend_is_audited_without_an_organization_and_a_refusal_not_at_all():
    from tenants.models import AuditEvent
    from tests.factories import UserFactory

    project = annotation_project()
    annotator = member(organization=project.workforce, role=Membership.Role.ANNOTATOR)
    with pytest.raises(PermissionDenied):
        services.backend_save(
            user=annotator, organization=project.workforce, name="x", base_url="http://x/v1"
        )
    assert not AuditEvent.objects.filter(event_type__startswith="backend.").exists()
    root = UserFactory(is_superuser=True)
    services.backend_save(
        user=root, organization=None, name="shared", base_url="http://10.0.0.9:8000/v1"
    )
    event = AuditEvent.objects.get(event_type="backend.created")
    assert event.organization is None and event.actor_user == root
