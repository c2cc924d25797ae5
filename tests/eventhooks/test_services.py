"""Webhook deliveries to a real HTTP receiver on 127.0.0.1."""

import base64
import hashlib
import hmac
import json
import time
from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.utils import timezone
from rest_framework.test import APIClient
from standardwebhooks import Webhook

from annotation import services as annotation_services
from annotation.imports import import_job_create
from eventhooks import services
from eventhooks.models import WebhookDelivery
from tests.eventhooks.conftest import subscribe
from tests.factories import annotation_project, items, worker

pytestmark = pytest.mark.django_db


def standard_webhooks_verify(secret: str, headers: dict, body: bytes) -> None:
    """A receiver's check written from the Standard Webhooks spec, not from our code.

    Raises AssertionError unless one v1 signature matches and the timestamp is
    within five minutes.
    """
    headers = {k.lower(): v for k, v in headers.items()}
    msg_id, timestamp = headers["webhook-id"], headers["webhook-timestamp"]
    assert abs(time.time() - int(timestamp)) < 300
    assert "." not in msg_id
    key = base64.b64decode(secret.removeprefix("whsec_"))
    expected = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    offered = [
        base64.b64decode(sig)
        for version, sig in (s.split(",", 1) for s in headers["webhook-signature"].split(" "))
        if version == "v1"
    ]
    assert any(hmac.compare_digest(expected, o) for o in offered), "no matching signature"


def test_an_import_is_announced_signed(receiver, django_capture_on_commit_callbacks):
    project = annotation_project()
    endpoint, secret = subscribe(project, receiver.url, ["import.finished"])
    with django_capture_on_commit_callbacks(execute=True):
        job = import_job_create(
            project=project,
            created_by=project.created_by,
            upload=ContentFile(b'{"text": "a"}\n', name="a.jsonl"),
        )
    (request,) = receiver.requests
    headers, body = request["headers"], request["body"]
    assert headers["X-Tokenworks-Event"] == "import.finished"
    # The secret is a Standard Webhooks one: whsec_ + base64 of 32 bytes.
    assert len(base64.b64decode(secret.removeprefix("whsec_"), validate=True)) == 32
    standard_webhooks_verify(secret, headers, body)
    # And as a receiver would, with the Standard Webhooks reference library.
    assert Webhook(secret).verify(body, headers) == json.loads(body)
    # The deprecated header still verifies as before, for one release.
    expected = hmac.new(
        secret.encode(), f"{headers['X-Tokenworks-Timestamp']}.".encode() + body, hashlib.sha256
    ).hexdigest()
    assert headers["X-Tokenworks-Signature"] == f"sha256={expected}"
    payload = json.loads(body)
    assert payload["data"]["import_job"] == str(job.pk)
    assert payload["data"]["status"] == "succeeded" and payload["data"]["created"] == 1
    delivery = WebhookDelivery.objects.get()
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == ("succeeded", 1, 200)
    assert headers["X-Tokenworks-Delivery"] == headers["webhook-id"] == str(delivery.pk)
    # At rest the secret is a Fernet token, decrypted only to sign.
    endpoint.refresh_from_db()
    assert secret not in endpoint.secret_encrypted
    assert endpoint.signing_secret() == secret
    (attempt,) = delivery.attempt_log.all()
    assert (attempt.number, attempt.status_code, attempt.error) == (1, 200, "")
    assert attempt.address == "127.0.0.1" and attempt.latency_ms is not None
    assert attempt.finished_at >= attempt.started_at


def test_failing_receivers_are_retried_then_given_up_on(
    receiver, django_capture_on_commit_callbacks
):
    receiver.status = 500
    project = annotation_project()
    subscribe(project, receiver.url)
    with django_capture_on_commit_callbacks(execute=True):
        import_job_create(
            project=project,
            created_by=project.created_by,
            upload=ContentFile(b'{"text": "a"}\n', name="a.jsonl"),
        )
    delivery = WebhookDelivery.objects.get()
    assert delivery.status == "failed" and delivery.attempts == services.MAX_ATTEMPTS
    assert delivery.last_status_code == 500
    assert len(receiver.requests) == services.MAX_ATTEMPTS
    # Every retry carries the same delivery id, so receivers can drop duplicates.
    assert {r["headers"]["webhook-id"] for r in receiver.requests} == {str(delivery.pk)}
    # One row per attempt: none overwrote another.
    attempts = list(delivery.attempt_log.all())
    assert [a.number for a in attempts] == list(range(1, services.MAX_ATTEMPTS + 1))
    assert {(a.status_code, a.error) for a in attempts} == {(500, "HTTP 500")}


def test_an_unreachable_receiver_is_logged():
    project = annotation_project()
    endpoint, _ = subscribe(project, "http://127.0.0.1:9/hook")
    delivery = WebhookDelivery.objects.create(endpoint=endpoint, event="export.ready", payload={})
    before = timezone.now()
    delivery = services.webhook_deliver(delivery_id=delivery.pk)
    assert delivery.status == "pending"
    assert before + timedelta(minutes=1) <= delivery.next_attempt_at
    assert delivery.next_attempt_at <= timezone.now() + timedelta(minutes=1)
    assert "ConnectError" in delivery.last_error
    (attempt,) = delivery.attempt_log.all()
    assert attempt.status_code is None and "ConnectError" in attempt.error


def test_project_completion_is_announced_once(receiver, django_capture_on_commit_callbacks):
    project = annotation_project()
    items(project, 2)
    subscribe(project, receiver.url, ["project.completed"])
    annotator = worker(project)
    with django_capture_on_commit_callbacks(execute=True):
        for _ in range(2):
            lease = annotation_services.assignment_lease(project=project, annotator=annotator)
            annotation_services.annotation_submit(
                assignment_id=lease.pk, annotator=annotator, answer={"label": "positive"}
            )
        annotation_services.project_completion_check(project=project)
    events = [json.loads(r["body"])["event"] for r in receiver.requests]
    assert events == ["project.completed"]
    project.refresh_from_db()
    assert project.completed_at is not None


def test_private_addresses_are_refused_unless_allowed(settings, receiver):
    settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES = False
    project = annotation_project()
    endpoint, _ = subscribe(project, receiver.url)
    delivery = WebhookDelivery.objects.create(endpoint=endpoint, event="export.ready", payload={})
    delivery = services.webhook_deliver(delivery_id=delivery.pk)
    assert "non-public address" in delivery.last_error
    assert receiver.requests == []


def test_plain_http_and_unknown_events_are_refused(settings):
    settings.WEBHOOK_ALLOW_HTTP = False
    project = annotation_project()
    with pytest.raises(ValidationError, match="https"):
        subscribe(project, "http://example.com/hook")
    with pytest.raises(ValidationError) as excinfo:
        subscribe(project, "https://example.com/hook", ["item.deleted"])
    assert "events" in excinfo.value.message_dict


def test_the_secret_is_shown_once_over_the_api():
    project = annotation_project()
    api = APIClient()
    api.force_login(project.created_by)
    created = api.post(
        "/api/v1/webhooks/",
        {
            "organization": project.organization.pk,
            "url": "https://example.com/hook",
            "events": ["export.ready"],
        },
        format="json",
    )
    assert created.status_code == 201, created.content
    secret = created.json()["secret"]
    assert secret.startswith("whsec_")
    listed = api.get("/api/v1/webhooks/").json()
    assert secret not in json.dumps(listed) and "secret" not in listed["results"][0]


# --- audit trail -----------------------------------------------------------------------


def test_webhook_endpoint_changes_are_audited_without_the_secret_over_the_api():
    from tenants.models import AuditEvent

    project = annotation_project()
    api = APIClient()
    api.force_login(project.created_by)
    created = api.post(
        "/api/v1/webhooks/",
        {"organization": project.organization.pk, "url": "https://example.com/hook"},
        format="json",
    )
    endpoint_id = created.json()["id"]
    changed = api.patch(
        f"/api/v1/webhooks/{endpoint_id}/",
        {"events": ["export.ready"], "is_active": False},
        format="json",
    )
    assert changed.status_code == 200, changed.content
    assert changed.json()["events"] == ["export.ready"]
    assert api.delete(f"/api/v1/webhooks/{endpoint_id}/").status_code == 204
    events = list(AuditEvent.objects.filter(event_type__startswith="webhook").order_by("pk"))
    assert [e.event_type for e in events] == [
        "webhook_endpoint.created",
        "webhook_endpoint.updated",
        "webhook_endpoint.deleted",
    ]
    assert {(e.organization, e.actor_user, e.target_id) for e in events} == {
        (project.organization, project.created_by, str(endpoint_id))
    }
    assert events[1].changes == {"events": [[], ["export.ready"]], "is_active": [True, False]}
    stored = json.dumps(list(AuditEvent.objects.values("changes", "extra", "target_repr")))
    assert created.json()["secret"] not in stored and "secret" not in stored


def test_only_managers_change_webhook_endpoints_and_a_refusal_is_not_audited():
    from django.core.exceptions import PermissionDenied

    from tenants.models import AuditEvent, Membership
    from tests.factories import member

    project = annotation_project()
    endpoint, _ = services.webhook_endpoint_create(
        organization=project.organization, created_by=project.created_by, url="https://e.com/h"
    )
    annotator = member(organization=project.organization, role=Membership.Role.ANNOTATOR)
    with pytest.raises(PermissionDenied):
        services.webhook_endpoint_update(endpoint=endpoint, updated_by=annotator, is_active=False)
    with pytest.raises(PermissionDenied):
        services.webhook_endpoint_delete(endpoint=endpoint, deleted_by=annotator)
    with pytest.raises(ValidationError):
        services.webhook_endpoint_update(
            endpoint=endpoint, updated_by=project.created_by, events=["item.deleted"]
        )
    assert not AuditEvent.objects.filter(
        event_type__in=["webhook_endpoint.updated", "webhook_endpoint.deleted"]
    ).exists()
    endpoint.refresh_from_db()
    assert endpoint.is_active


def test_a_secret_of_the_old_form_signs_standard_headers_with_its_own_bytes(receiver):
    import secrets as random

    from eventhooks.models import WebhookEndpoint
    from tenants.secrets_cipher import secret_encrypt

    project = annotation_project()
    endpoint, _ = subscribe(project, receiver.url)
    old_secret = "whsec_" + random.token_urlsafe(32)
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(
        secret_encrypted=secret_encrypt(old_secret)
    )
    delivery = WebhookDelivery.objects.create(endpoint=endpoint, event="export.ready", payload={})
    services.webhook_deliver(delivery_id=delivery.pk)
    (request,) = receiver.requests
    headers, body = request["headers"], request["body"]
    signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + body
    mac = hmac.new(old_secret.encode(), signed, hashlib.sha256).digest()
    assert headers["webhook-signature"] == "v1," + base64.b64encode(mac).decode()
    # What the docs tell such receivers to do with the library.
    Webhook(old_secret.encode()).verify(body, headers)
