"""Webhooks: record an event for each subscribed endpoint, deliver it signed.

Signature: `X-Tokenworks-Signature: sha256=<hex>` where hex is
HMAC-SHA256(secret, f"{timestamp}.{body}") and timestamp is the
`X-Tokenworks-Timestamp` header (Unix seconds); receivers should reject
timestamps older than five minutes and compare signatures in constant time.
`X-Tokenworks-Delivery` is the delivery id: the same id on every retry, so
receivers can drop duplicates.
"""

import hashlib
import hmac
import ipaddress
import json
import logging
import secrets
import socket
import time
from datetime import timedelta
from urllib.parse import urlsplit

import httpx
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from tenants.models import AuditEvent, Organization, User
from tenants.services import audit_changes, audit_event_record, audit_snapshot

from .models import Event, WebhookDelivery, WebhookEndpoint
from .permissions import require_can_manage_webhooks

logger = logging.getLogger(__name__)

MAX_ATTEMPTS = 8
TIMEOUT_SECONDS = 10.0


def backoff_seconds(attempt: int) -> int:
    """30 s, 1 min, 2 min … capped at 1 h: about 3 h of retries in all."""
    return min(30 * 2 ** (attempt - 1), 3600)


def signature(secret: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def _check_url(url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ValidationError({"url": ["Expected an http(s) URL."]})
    if parts.scheme == "http" and not settings.WEBHOOK_ALLOW_HTTP:
        raise ValidationError({"url": ["Webhooks must use https."]})


def _check_destination(url: str) -> None:
    """Refuse private, loopback and link-local targets (SSRF), unless allowed."""
    if settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES:
        return
    host = urlsplit(url).hostname or ""
    for info in socket.getaddrinfo(host, None):
        address = ipaddress.ip_address(info[4][0])
        if not address.is_global:
            raise ValueError(f"{host} resolves to a non-public address ({address})")


def _events_checked(events) -> list[str]:
    events = list(events or [])
    unknown = sorted(set(events) - set(Event.values))
    if unknown:
        raise ValidationError(
            {"events": [f"Unknown events {unknown}; expected {', '.join(Event.values)}."]}
        )
    return events


# What a caller may change; the secret is not among them and never audited.
ENDPOINT_FIELDS = ("url", "events", "is_active")


@transaction.atomic
def webhook_endpoint_create(
    *, organization: Organization, created_by: User, url: str, events: list[str] | None = None
) -> tuple[WebhookEndpoint, str]:
    require_can_manage_webhooks(created_by, organization)
    _check_url(url)
    events = _events_checked(events)
    secret = "whsec_" + secrets.token_urlsafe(32)
    endpoint = WebhookEndpoint.objects.create(
        organization=organization, url=url, secret=secret, events=events
    )
    audit_event_record(
        event_type=AuditEvent.EventType.WEBHOOK_ENDPOINT_CREATED,
        organization=organization,
        target=endpoint,
        actor=created_by,
        changes=audit_changes({}, audit_snapshot(endpoint, ENDPOINT_FIELDS)),
    )
    logger.info(
        "webhook endpoint created",
        extra={"endpoint_id": endpoint.pk, "organization_id": organization.pk},
    )
    return endpoint, secret


@transaction.atomic
def webhook_endpoint_update(
    *, endpoint: WebhookEndpoint, updated_by: User, **fields
) -> WebhookEndpoint:
    endpoint = WebhookEndpoint.objects.select_for_update().get(pk=endpoint.pk)
    require_can_manage_webhooks(updated_by, endpoint.organization)
    unknown = set(fields) - set(ENDPOINT_FIELDS)
    if unknown:
        raise ValidationError({name: ["Not editable."] for name in sorted(unknown)})
    if "url" in fields:
        _check_url(fields["url"])
    if "events" in fields:
        fields["events"] = _events_checked(fields["events"])
    before = audit_snapshot(endpoint, fields)
    for name, value in fields.items():
        setattr(endpoint, name, value)
    endpoint.save(update_fields=list(fields) or None)
    changes = audit_changes(before, audit_snapshot(endpoint, fields))
    if changes:
        audit_event_record(
            event_type=AuditEvent.EventType.WEBHOOK_ENDPOINT_UPDATED,
            organization=endpoint.organization,
            target=endpoint,
            actor=updated_by,
            changes=changes,
        )
        logger.info(
            "webhook endpoint updated",
            extra={"endpoint_id": endpoint.pk, "fields": sorted(changes)},
        )
    return endpoint


@transaction.atomic
def webhook_endpoint_delete(*, endpoint: WebhookEndpoint, deleted_by: User) -> None:
    require_can_manage_webhooks(deleted_by, endpoint.organization)
    audit_event_record(
        event_type=AuditEvent.EventType.WEBHOOK_ENDPOINT_DELETED,
        organization=endpoint.organization,
        target=endpoint,
        actor=deleted_by,
        changes=audit_changes(audit_snapshot(endpoint, ENDPOINT_FIELDS), {}),
    )
    logger.info("webhook endpoint deleted", extra={"endpoint_id": endpoint.pk})
    endpoint.delete()


def webhook_event_emit(*, organization_id: int, event: str, payload: dict) -> int:
    """Queue event for the organization's endpoints once the caller's transaction commits."""
    endpoints = [
        e
        for e in WebhookEndpoint.objects.filter(organization_id=organization_id, is_active=True)
        if e.wants(event)
    ]
    if not endpoints:
        return 0
    from .tasks import webhook_deliver_task

    body = {"event": event, "created_at": timezone.now().isoformat(), "data": payload}
    for endpoint in endpoints:
        delivery = WebhookDelivery.objects.create(endpoint=endpoint, event=event, payload=body)
        webhook_deliver_task.delay_on_commit(str(delivery.pk))
    return len(endpoints)


def webhook_deliver(*, delivery_id, client: httpx.Client | None = None) -> WebhookDelivery:
    """One delivery attempt. Returns the delivery; its status says what happened.

    The caller (a Celery task) retries while the status is pending and
    next_attempt_at is set. Safe to call twice: a finished delivery is left alone.
    """
    with transaction.atomic():
        delivery = (
            WebhookDelivery.objects.select_for_update(of=("self",))
            .select_related("endpoint")
            .get(pk=delivery_id)
        )
        if delivery.status != WebhookDelivery.Status.PENDING:
            return delivery
        delivery.attempts += 1
        delivery.save(update_fields=["attempts"])
    endpoint = delivery.endpoint
    body = json.dumps(delivery.payload, ensure_ascii=False, separators=(",", ":")).encode()
    timestamp = int(time.time())
    headers = {
        "Content-Type": "application/json; charset=utf-8",
        "User-Agent": "Tokenworks-Webhooks/1.0",
        "X-Tokenworks-Event": delivery.event,
        "X-Tokenworks-Delivery": str(delivery.pk),
        "X-Tokenworks-Timestamp": str(timestamp),
        "X-Tokenworks-Signature": signature(endpoint.secret, timestamp, body),
    }
    status_code, error = None, ""
    try:
        if not endpoint.is_active:
            raise ValueError("the endpoint was deactivated")
        _check_destination(endpoint.url)
        owned = client is None
        client = client or httpx.Client(timeout=TIMEOUT_SECONDS, follow_redirects=False)
        try:
            response = client.post(endpoint.url, content=body, headers=headers)
        finally:
            if owned:
                client.close()
        status_code = response.status_code
        if not 200 <= status_code < 300:
            error = f"HTTP {status_code}: {response.text[:200]}"
    except (httpx.HTTPError, OSError, ValueError) as exc:
        error = f"{type(exc).__name__}: {exc}"[:500]
    now = timezone.now()
    delivery.last_status_code = status_code
    delivery.last_error = error
    if not error:
        delivery.status = WebhookDelivery.Status.SUCCEEDED
        delivery.delivered_at = now
        delivery.next_attempt_at = None
    elif delivery.attempts >= MAX_ATTEMPTS or not endpoint.is_active:
        delivery.status = WebhookDelivery.Status.FAILED
        delivery.next_attempt_at = None
    else:
        delivery.next_attempt_at = now + timedelta(seconds=backoff_seconds(delivery.attempts))
    log_fields = {
        "delivery_id": str(delivery.pk),
        "endpoint_id": endpoint.pk,
        "event": delivery.event,
        "attempt": delivery.attempts,
        "status_code": status_code,
    }
    if not error:
        logger.info("webhook delivered", extra=log_fields)
    elif delivery.status == WebhookDelivery.Status.FAILED:
        logger.warning("webhook delivery gave up", extra={**log_fields, "error": error})
    else:
        logger.info("webhook delivery attempt failed", extra={**log_fields, "error": error})
    delivery.save(
        update_fields=[
            "status",
            "last_status_code",
            "last_error",
            "delivered_at",
            "next_attempt_at",
        ]
    )
    return delivery


@transaction.atomic
def webhook_delivery_retry(*, delivery: WebhookDelivery) -> WebhookDelivery:
    """Send a failed delivery again (same id, so receivers can deduplicate)."""
    delivery = WebhookDelivery.objects.select_for_update().get(pk=delivery.pk)
    if delivery.status == WebhookDelivery.Status.SUCCEEDED:
        return delivery
    delivery.status = WebhookDelivery.Status.PENDING
    delivery.attempts = 0
    delivery.next_attempt_at = None
    delivery.save(update_fields=["status", "attempts", "next_attempt_at"])
    from .tasks import webhook_deliver_task

    webhook_deliver_task.delay_on_commit(str(delivery.pk))
    return delivery
