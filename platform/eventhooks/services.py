"""Webhooks: record an event for each subscribed endpoint, deliver it signed.

Signatures follow Standard Webhooks (https://www.standardwebhooks.com/), so
receivers can verify with a ready library:

- `webhook-id`: the delivery id, the same on every retry (drop duplicates by it);
- `webhook-timestamp`: Unix seconds of this attempt;
- `webhook-signature`: `v1,<base64 HMAC-SHA256(key, f"{id}.{timestamp}.{body}")>`
  where key is what the endpoint's `whsec_<base64>` secret encodes. Secrets
  made before this scheme (`whsec_` + URL-safe text) sign with their own UTF-8
  bytes: give the library those bytes (`Webhook(secret.encode())`).

Deprecated, kept for one release for receivers that verify them:
`X-Tokenworks-Signature: sha256=<hex HMAC-SHA256(secret, f"{timestamp}.{body}")>`
(the whole secret string as key), `X-Tokenworks-Timestamp`,
`X-Tokenworks-Delivery` (= webhook-id) and `X-Tokenworks-Event` (the latter stays).
Receivers should reject timestamps more than five minutes off and compare
signatures in constant time.

Delivery: every attempt is a WebhookAttempt row; the delivery keeps the
overall state. An attempt claims the delivery by number (attempt n runs only
while attempts == n - 1), so a duplicate message sends nothing; the retry
schedule is in eventhooks.schedule; a beat sweeper re-sends what is overdue
because its message was lost. The receiver's address is resolved once,
checked, and the connection pinned to it (see destination_pin).
"""

import base64
import binascii
import hashlib
import hmac
import ipaddress
import json
import logging
import secrets
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from urllib.parse import urlsplit

import httpx
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from tenants.models import AuditEvent, Organization, User
from tenants.secrets_cipher import secret_encrypt
from tenants.services import audit_changes, audit_event_record, audit_snapshot

from .models import Event, WebhookAttempt, WebhookDelivery, WebhookEndpoint
from .permissions import require_can_manage_webhooks
from .schedule import MAX_ATTEMPTS, retry_delay

logger = logging.getLogger(__name__)

TIMEOUT_SECONDS = 10.0
# How much of a receiver's answer an attempt keeps.
RESPONSE_EXCERPT_BYTES = 1024
# An attempt being made holds its delivery this long (next_attempt_at moves
# this far ahead when it is claimed); longer than the task's 60 s hard limit,
# so a live attempt is never swept.
CLAIM_SECONDS = 120
# The sweeper re-sends a delivery overdue by more than this: its message was
# lost (broker restart, enqueue after commit failed, worker killed).
SWEEP_GRACE = timedelta(minutes=5)
SWEEP_BATCH = 500


def secret_generate() -> str:
    """A Standard Webhooks symmetric secret: whsec_ + base64 of 32 random bytes."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """The deprecated X-Tokenworks-Signature (kept for one release)."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def standard_signing_key(secret: str) -> bytes:
    """The HMAC key webhook-signature uses for an endpoint's secret.

    whsec_<standard base64> encodes the key (the spec's serialization). Older
    secrets are whsec_ + URL-safe text, which is never valid padded standard
    base64 (43 characters): they sign with their own UTF-8 bytes.
    """
    if secret.startswith("whsec_"):
        try:
            key = base64.b64decode(secret.removeprefix("whsec_"), validate=True)
        except binascii.Error:
            key = b""
        if len(key) >= 24:
            return key
    return secret.encode()


def standard_signature(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    """webhook-signature: v1,<base64 HMAC-SHA256 of "id.timestamp.body">."""
    signed = f"{message_id}.{timestamp}.".encode() + body
    mac = hmac.new(standard_signing_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def signed_headers(*, secret: str, message_id: str, event: str, body: bytes) -> dict[str, str]:
    timestamp = int(time.time())
    return {
        "Content-Type": "application/json; charset=utf-8",
        "User-Agent": "Tokenworks-Webhooks/1.0",
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": standard_signature(secret, message_id, timestamp, body),
        "X-Tokenworks-Event": event,
        # Deprecated: remove in the release after the one that added webhook-*.
        "X-Tokenworks-Delivery": message_id,
        "X-Tokenworks-Timestamp": str(timestamp),
        "X-Tokenworks-Signature": signature(secret, timestamp, body),
    }


def _check_url(url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ValidationError({"url": ["Expected an http(s) URL."]})
    if parts.scheme == "http" and not settings.WEBHOOK_ALLOW_HTTP:
        raise ValidationError({"url": ["Webhooks must use https."]})


# (host, port) -> the addresses it resolves to; tests pass their own.
Resolver = Callable[[str, int], list[str]]


def system_resolve(host: str, port: int) -> list[str]:
    return [info[4][0] for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)]


@dataclass(frozen=True)
class PinnedDestination:
    """Where one attempt connects: the URL with its host replaced by the checked address."""

    url: httpx.URL
    address: str
    host_header: str
    extensions: dict = field(default_factory=dict)


def destination_pin(url: str, *, resolver: Resolver | None = None) -> PinnedDestination:
    """Resolve url's host once, refuse non-public addresses (SSRF), pin the first.

    The request then goes to the address itself, so nothing resolves the name
    again between the check and the connection (DNS rebinding). The Host
    header keeps the name, and for https the `sni_hostname` request extension
    (documented by httpx) makes httpcore send the name as SNI and verify the
    certificate against the name, not the address: verification stays as
    strict as for the unpinned URL. A URL whose host is an address is checked
    as it is.
    """
    parsed = httpx.URL(url)
    host = parsed.raw_host.decode("ascii")
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        addresses = [ipaddress.ip_address(host)]
        named = False
    except ValueError:
        named = True
        resolved = (resolver or system_resolve)(host, port)
        addresses = [ipaddress.ip_address(a) for a in resolved]
    if not addresses:
        raise ValueError(f"{host} resolves to no address")
    if not settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES:
        for address in addresses:
            if not address.is_global:
                raise ValueError(f"{host} resolves to a non-public address ({address})")
    address = str(addresses[0])
    extensions = {"sni_hostname": host} if named and parsed.scheme == "https" else {}
    return PinnedDestination(
        url=parsed.copy_with(host=address),
        address=address,
        host_header=parsed.netloc.decode("ascii"),
        extensions=extensions,
    )


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
    secret = secret_generate()
    endpoint = WebhookEndpoint.objects.create(
        organization=organization,
        url=url,
        secret_encrypted=secret_encrypt(secret),
        events=events,
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

    now = timezone.now()
    body = {"event": event, "created_at": now.isoformat(), "data": payload}
    for endpoint in endpoints:
        # Due now: if the message below is lost, the sweeper sends it.
        delivery = WebhookDelivery.objects.create(
            endpoint=endpoint, event=event, payload=body, next_attempt_at=now
        )
        webhook_deliver_task.delay_on_commit(str(delivery.pk), 1)
    return len(endpoints)


def _attempt_claim(delivery_id, attempt: int | None) -> WebhookAttempt | None:
    """Take attempt number `attempt` of the delivery, or None when it is not ours to make.

    A conditional update (attempts == attempt - 1, still pending) is the
    claim: of two workers holding messages for the same attempt, one updates
    the row and the other finds nothing to do. Without a number (a direct
    call, or a message queued before attempts were numbered) the next attempt
    is taken if it is due.
    """
    now = timezone.now()
    with transaction.atomic():
        if attempt is None:
            delivery = WebhookDelivery.objects.get(pk=delivery_id)
            if delivery.next_attempt_at and delivery.next_attempt_at > now:
                return None
            attempt = delivery.attempts + 1
        claimed = WebhookDelivery.objects.filter(
            pk=delivery_id, status=WebhookDelivery.Status.PENDING, attempts=attempt - 1
        ).update(attempts=attempt, next_attempt_at=now + timedelta(seconds=CLAIM_SECONDS))
        if not claimed:
            return None
        return WebhookAttempt.objects.create(
            delivery_id=delivery_id, number=attempt, started_at=now
        )


def _response_excerpt(response: httpx.Response) -> str:
    """At most RESPONSE_EXCERPT_BYTES of the answer, read no further (a huge body stays unread).

    The status decides the outcome: an answer that cannot be read leaves the
    excerpt short, nothing more.
    """
    kept = b""
    try:
        for chunk in response.iter_bytes():
            kept += chunk
            if len(kept) >= RESPONSE_EXCERPT_BYTES:
                break
    except httpx.HTTPError:
        pass
    return kept[:RESPONSE_EXCERPT_BYTES].decode("utf-8", errors="replace")


def _webhook_client() -> httpx.Client:
    # trust_env off: a proxy from the environment would resolve the name
    # itself and undo the pinning.
    return httpx.Client(timeout=TIMEOUT_SECONDS, follow_redirects=False, trust_env=False)


def webhook_attempt_make(
    *,
    delivery_id,
    attempt: int | None = None,
    client: httpx.Client | None = None,
    resolver: Resolver | None = None,
) -> WebhookAttempt | None:
    """Make one attempt at a delivery; None when it was not ours to make.

    Safe to call twice with the same attempt number: the second call sends
    nothing. The returned attempt's delivery says what follows: pending with
    next_attempt_at (try again then), succeeded, or failed (gave up).
    """
    record = _attempt_claim(delivery_id, attempt)
    if record is None:
        return None
    delivery = WebhookDelivery.objects.select_related("endpoint").get(pk=delivery_id)
    endpoint = delivery.endpoint
    body = json.dumps(delivery.payload, ensure_ascii=False, separators=(",", ":")).encode()
    status_code, error, excerpt, address, latency_ms = None, "", "", None, None
    try:
        if not endpoint.is_active:
            raise ValueError("the endpoint was deactivated")
        headers = signed_headers(
            secret=endpoint.signing_secret(),
            message_id=str(delivery.pk),
            event=delivery.event,
            body=body,
        )
        pinned = destination_pin(endpoint.url, resolver=resolver)
        address = pinned.address
        owned = client is None
        client = client or _webhook_client()
        started = time.monotonic()
        try:
            with client.stream(
                "POST",
                pinned.url,
                content=body,
                headers={**headers, "Host": pinned.host_header},
                extensions=pinned.extensions,
            ) as response:
                status_code = response.status_code
                excerpt = _response_excerpt(response)
        finally:
            latency_ms = round((time.monotonic() - started) * 1000)
            if owned:
                client.close()
        if not 200 <= status_code < 300:
            error = f"HTTP {status_code}"
    except (httpx.HTTPError, httpx.InvalidURL, OSError, ValueError) as exc:
        error = f"{type(exc).__name__}: {exc}"[:500]
    return _attempt_finish(
        record=record,
        delivery=delivery,
        status_code=status_code,
        error=error,
        excerpt=excerpt,
        address=address,
        latency_ms=latency_ms,
    )


def _attempt_finish(
    *,
    record: WebhookAttempt,
    delivery: WebhookDelivery,
    status_code,
    error,
    excerpt,
    address,
    latency_ms,
) -> WebhookAttempt:
    now = timezone.now()
    Status = WebhookDelivery.Status
    with transaction.atomic():
        record.finished_at = now
        record.status_code = status_code
        record.error = error
        record.response_excerpt = excerpt
        record.address = address
        record.latency_ms = latency_ms
        record.save(
            update_fields=[
                "finished_at",
                "status_code",
                "error",
                "response_excerpt",
                "address",
                "latency_ms",
            ]
        )
        state = {"last_status_code": status_code, "last_error": error}
        # Attempts are counted over the delivery's life; the schedule over the round.
        round_attempt = MAX_ATTEMPTS - (delivery.attempt_limit - record.number)
        if not error:
            state.update(status=Status.SUCCEEDED, delivered_at=now, next_attempt_at=None)
            # A success is final even if a later attempt took over meanwhile.
            rows = WebhookDelivery.objects.filter(pk=delivery.pk, status=Status.PENDING)
        else:
            if record.number >= delivery.attempt_limit or not delivery.endpoint.is_active:
                state.update(status=Status.FAILED, next_attempt_at=None)
            else:
                state["next_attempt_at"] = now + retry_delay(round_attempt)
            # Only while this attempt still holds the delivery.
            rows = WebhookDelivery.objects.filter(
                pk=delivery.pk, status=Status.PENDING, attempts=record.number
            )
        rows.update(**state)
    delivery.refresh_from_db()
    record.delivery = delivery
    log_fields = {
        "delivery_id": str(delivery.pk),
        "endpoint_id": delivery.endpoint_id,
        "event": delivery.event,
        "attempt": record.number,
        "status_code": status_code,
        "address": address,
        "latency_ms": latency_ms,
    }
    if not error:
        logger.info("webhook delivered", extra=log_fields)
    elif delivery.status == Status.FAILED:
        logger.warning("webhook delivery gave up", extra={**log_fields, "error": error})
    else:
        logger.info("webhook delivery attempt failed", extra={**log_fields, "error": error})
    return record


def webhook_deliver(
    *,
    delivery_id,
    attempt: int | None = None,
    client: httpx.Client | None = None,
    resolver: Resolver | None = None,
) -> WebhookDelivery:
    """One attempt (webhook_attempt_make); returns the delivery, whose status says what happened."""
    webhook_attempt_make(delivery_id=delivery_id, attempt=attempt, client=client, resolver=resolver)
    return WebhookDelivery.objects.get(pk=delivery_id)


def webhook_deliveries_sweep(*, now=None, limit: int = SWEEP_BATCH) -> int:
    """Re-send pending deliveries overdue by more than SWEEP_GRACE; returns how many.

    Their message was lost. A delivery being attempted is not overdue (its
    claim keeps next_attempt_at ahead), rows another sweeper holds are
    skipped, and each re-sent row's next_attempt_at moves to now, so it is
    sent once per grace period at most; a message that was only late and the
    sweeper's copy carry the same attempt number, and only one claims it.
    """
    from .tasks import webhook_deliver_task

    now = now or timezone.now()
    with transaction.atomic():
        overdue = list(
            WebhookDelivery.objects.select_for_update(skip_locked=True)
            .filter(status=WebhookDelivery.Status.PENDING, next_attempt_at__lt=now - SWEEP_GRACE)
            .order_by("next_attempt_at")
            .only("pk", "attempts")[:limit]
        )
        if not overdue:
            return 0
        WebhookDelivery.objects.filter(pk__in=[d.pk for d in overdue]).update(next_attempt_at=now)
        for delivery in overdue:
            webhook_deliver_task.delay_on_commit(str(delivery.pk), delivery.attempts + 1)
    logger.warning(
        "webhook deliveries re-sent after their message was lost",
        extra={"count": len(overdue), "delivery_ids": [str(d.pk) for d in overdue[:20]]},
    )
    return len(overdue)


@transaction.atomic
def webhook_delivery_retry(*, delivery: WebhookDelivery) -> WebhookDelivery:
    """Send a failed delivery again, a whole schedule (same id, so receivers can deduplicate).

    A pending delivery is left alone: it is already being retried, and
    sending it now could race an attempt in flight.
    """
    delivery = WebhookDelivery.objects.select_for_update().get(pk=delivery.pk)
    if delivery.status != WebhookDelivery.Status.FAILED:
        return delivery
    delivery.status = WebhookDelivery.Status.PENDING
    delivery.attempt_limit = delivery.attempts + MAX_ATTEMPTS
    delivery.next_attempt_at = timezone.now()
    delivery.save(update_fields=["status", "attempt_limit", "next_attempt_at"])
    from .tasks import webhook_deliver_task

    webhook_deliver_task.delay_on_commit(str(delivery.pk), delivery.attempts + 1)
    logger.info("webhook delivery redelivered", extra={"delivery_id": str(delivery.pk)})
    return delivery
