"""Attempts, the retry schedule, lost messages, duplicate messages, pinning."""

import json
import threading
from datetime import timedelta

import httpx
import pytest
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from eventhooks import schedule, services
from eventhooks.models import WebhookAttempt, WebhookDelivery
from tests.eventhooks.conftest import subscribe
from tests.factories import UserFactory, annotation_project

pytestmark = pytest.mark.django_db


def a_delivery(url, **fields):
    project = annotation_project()
    endpoint, _ = subscribe(project, url)
    delivery = WebhookDelivery.objects.create(
        endpoint=endpoint, event="export.ready", payload={"data": {}}, **fields
    )
    return delivery, project.created_by


# --- the schedule ------------------------------------------------------------------------


def test_the_schedule_is_eight_attempts_over_three_hours_as_documented():
    assert schedule.MAX_ATTEMPTS == 8
    assert timedelta(hours=3) == schedule.RETRY_SPAN
    assert "Eight attempts over three hours" in schedule.__doc__
    offsets, total = [], timedelta()
    for n in range(1, schedule.MAX_ATTEMPTS):
        total += schedule.retry_delay(n)
        offsets.append(total)
    minutes = [int(o.total_seconds() // 60) for o in offsets]
    assert minutes == [1, 5, 15, 30, 60, 120, 180]  # as the docstring lists them


def test_each_failed_attempt_waits_as_the_schedule_says(receiver):
    receiver.status = 503
    delivery, _ = a_delivery(receiver.url)
    waits = []
    for n in range(1, schedule.MAX_ATTEMPTS + 1):
        before = timezone.now()
        delivery = services.webhook_deliver(delivery_id=delivery.pk, attempt=n)
        if n < schedule.MAX_ATTEMPTS:
            waits.append(delivery.next_attempt_at - before)
    assert delivery.status == "failed" and delivery.next_attempt_at is None
    for wait, delay in zip(waits, schedule.RETRY_DELAYS, strict=True):
        assert delay <= wait < delay + timedelta(seconds=5)


# --- one row per attempt ---------------------------------------------------------------


def test_an_attempt_keeps_at_most_a_kilobyte_of_the_answer(receiver):
    receiver.status = 400
    receiver.answer = ("错" * 3000).encode()
    delivery, _ = a_delivery(receiver.url)
    delivery = services.webhook_deliver(delivery_id=delivery.pk)
    (attempt,) = delivery.attempt_log.all()
    assert attempt.status_code == 400 and attempt.error == "HTTP 400"
    assert 0 < len(attempt.response_excerpt.encode()) <= 1024 + 3  # a cut character is replaced
    assert attempt.response_excerpt.startswith("错错错")


def test_delivery_detail_lists_its_attempts_and_a_failed_one_can_be_redelivered(
    receiver, django_capture_on_commit_callbacks
):
    receiver.status = 500
    delivery, owner = a_delivery(receiver.url)
    for n in range(1, schedule.MAX_ATTEMPTS + 1):
        services.webhook_deliver(delivery_id=delivery.pk, attempt=n)
    api = APIClient()
    api.force_login(owner)
    listed = api.get("/api/v1/webhook-deliveries/").json()["results"]
    assert listed[0]["status"] == "failed" and "attempt_log" not in listed[0]
    detail = api.get(f"/api/v1/webhook-deliveries/{delivery.pk}/").json()
    assert [a["number"] for a in detail["attempt_log"]] == list(range(1, 9))
    assert detail["attempt_log"][0]["status_code"] == 500
    assert "latency_ms" in detail["attempt_log"][0]

    receiver.status = 200
    with django_capture_on_commit_callbacks(execute=True):
        answer = api.post(f"/api/v1/webhook-deliveries/{delivery.pk}/redeliver/")
    assert answer.status_code == 202, answer.content
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == ("succeeded", 9)
    assert delivery.attempt_log.last().status_code == 200


def test_the_admin_shows_attempts_read_only(client, receiver):
    delivery, _ = a_delivery(receiver.url)
    services.webhook_deliver(delivery_id=delivery.pk)
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    page = client.get(reverse("admin:eventhooks_webhookdelivery_change", args=[delivery.pk]))
    assert page.status_code == 200
    html = page.content.decode()
    assert "attempt_log-0-number" not in html  # no editable inputs
    assert "127.0.0.1" in html and "Webhook attempt" in html


# --- duplicates and lost messages ------------------------------------------------------


def test_two_messages_for_the_same_attempt_send_it_once(receiver):
    delivery, _ = a_delivery(receiver.url)
    services.webhook_deliver(delivery_id=delivery.pk, attempt=1)
    services.webhook_deliver(delivery_id=delivery.pk, attempt=1)
    # A message for an attempt that is not next is ignored too.
    assert services.webhook_attempt_make(delivery_id=delivery.pk, attempt=5) is None
    assert len(receiver.requests) == 1
    assert WebhookAttempt.objects.filter(delivery=delivery).count() == 1


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_workers_with_the_same_message_send_once(receiver):
    delivery, _ = a_delivery(receiver.url)
    barrier = threading.Barrier(4)
    results = []

    def work():
        from django.db import connection

        try:
            barrier.wait()
            results.append(services.webhook_attempt_make(delivery_id=delivery.pk, attempt=1))
        finally:
            connection.close()

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(r is not None for r in results) == 1
    assert len(receiver.requests) == 1


def test_the_sweeper_resends_a_delivery_whose_message_was_lost_once(
    receiver, django_capture_on_commit_callbacks
):
    project = annotation_project()
    subscribe(project, receiver.url)
    # The event is recorded but its message never reaches the broker.
    with django_capture_on_commit_callbacks(execute=False):
        services.webhook_event_emit(
            organization_id=project.organization_id, event="export.ready", payload={}
        )
    delivery = WebhookDelivery.objects.get()
    assert receiver.requests == [] and delivery.next_attempt_at is not None

    with django_capture_on_commit_callbacks(execute=True):
        assert services.webhook_deliveries_sweep() == 0  # not overdue yet
    later = timezone.now() + services.SWEEP_GRACE + timedelta(seconds=1)
    with django_capture_on_commit_callbacks(execute=True):
        assert services.webhook_deliveries_sweep(now=later) == 1
    delivery.refresh_from_db()
    assert delivery.status == "succeeded" and len(receiver.requests) == 1
    with django_capture_on_commit_callbacks(execute=True):
        assert services.webhook_deliveries_sweep(now=later + timedelta(hours=1)) == 0
    assert len(receiver.requests) == 1


def test_the_sweeper_leaves_an_attempt_in_flight_alone(
    receiver, django_capture_on_commit_callbacks
):
    delivery, _ = a_delivery(receiver.url)
    # Claimed by a worker that is still sending.
    claimed = services._attempt_claim(delivery.pk, 1)
    assert claimed is not None
    soon = timezone.now() + timedelta(seconds=services.CLAIM_SECONDS)
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        assert services.webhook_deliveries_sweep(now=soon) == 0
    assert callbacks == []
    # Its worker died: once the claim and the grace have passed, the next attempt goes.
    lapsed = soon + services.SWEEP_GRACE + timedelta(seconds=1)
    with django_capture_on_commit_callbacks(execute=True):
        assert services.webhook_deliveries_sweep(now=lapsed) == 1
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, len(receiver.requests)) == ("succeeded", 2, 1)
    assert [a.finished_at is None for a in delivery.attempt_log.all()] == [True, False]


# --- pinning the resolved address -------------------------------------------------------


class Rebinding:
    """A resolver that answers a public address once, then loopback."""

    def __init__(self, first="93.184.215.14"):
        self.answers = [[first], ["127.0.0.1"]]
        self.calls = 0

    def __call__(self, host, port):
        self.calls += 1
        return self.answers[min(self.calls, 2) - 1]


def test_a_rebinding_name_cannot_reach_loopback(settings, receiver):
    settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES = False
    resolver = Rebinding()
    port = receiver.server.server_port
    delivery, _ = a_delivery(f"https://hooks.example.test:{port}/hook")
    sent = []

    def transport(request):
        sent.append(request)
        return httpx.Response(200)

    client = httpx.Client(transport=httpx.MockTransport(transport))
    delivery = services.webhook_deliver(delivery_id=delivery.pk, client=client, resolver=resolver)
    assert resolver.calls == 1
    (request,) = sent
    # The connection goes to the checked address, named as the receiver expects.
    assert request.url.host == "93.184.215.14" and request.url.port == port
    assert request.headers["Host"] == f"hooks.example.test:{port}"
    assert request.extensions["sni_hostname"] == "hooks.example.test"
    assert receiver.requests == [] and delivery.status == "succeeded"
    assert delivery.attempt_log.get().address == "93.184.215.14"


def test_the_check_refuses_loopback_from_the_first_answer(settings, receiver):
    settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES = False
    resolver = Rebinding(first="127.0.0.1")
    delivery, _ = a_delivery(f"http://hooks.example.test:{receiver.server.server_port}/hook")
    delivery = services.webhook_deliver(delivery_id=delivery.pk, resolver=resolver)
    assert "non-public address (127.0.0.1)" in delivery.last_error
    assert receiver.requests == []


def test_the_pinned_address_is_used_for_the_real_connection(receiver):
    """The name does not exist in DNS: only the pinned address can reach the receiver."""
    resolver = Rebinding(first="127.0.0.1")
    port = receiver.server.server_port
    delivery, _ = a_delivery(f"http://hooks.example.test:{port}/hook")
    delivery = services.webhook_deliver(delivery_id=delivery.pk, resolver=resolver)
    assert delivery.status == "succeeded", delivery.last_error
    assert resolver.calls == 1
    (request,) = receiver.requests
    assert request["headers"]["Host"] == f"hooks.example.test:{port}"
    assert json.loads(request["body"]) == {"data": {}}


def test_a_url_with_an_ipv6_address_is_pinned_as_it_is():
    pinned = services.destination_pin("https://[2606:4700::1111]:8443/h")
    assert pinned.address == "2606:4700::1111"
    assert str(pinned.url) == "https://[2606:4700::1111]:8443/h"
    assert pinned.extensions == {}  # no SNI for an address


def _self_signed(name: str):
    """A certificate for name and its key, PEM."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = timezone.now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return (
        cert.public_bytes(serialization.Encoding.PEM),
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    )


@pytest.mark.parametrize("certified", ["hooks.example.test", "other.example.test"])
def test_tls_to_the_pinned_address_verifies_the_certificate_for_the_name(
    receiver, tmp_path, certified
):
    import ssl

    cert_pem, key_pem = _self_signed(certified)
    (tmp_path / "cert.pem").write_bytes(cert_pem)
    (tmp_path / "key.pem").write_bytes(key_pem)
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    names = []
    server_context.sni_callback = lambda sock, name, context: names.append(name)
    receiver.server.socket = server_context.wrap_socket(receiver.server.socket, server_side=True)
    port = receiver.server.server_port
    delivery, _ = a_delivery(f"https://hooks.example.test:{port}/hook")
    trusting = httpx.Client(verify=ssl.create_default_context(cadata=cert_pem.decode()))
    delivery = services.webhook_deliver(
        delivery_id=delivery.pk, client=trusting, resolver=Rebinding(first="127.0.0.1")
    )
    assert names and set(names) == {"hooks.example.test"}  # SNI carries the name
    if certified == "hooks.example.test":
        assert delivery.status == "succeeded", delivery.last_error
        assert receiver.requests[0]["headers"]["Host"] == f"hooks.example.test:{port}"
    else:
        # A certificate for another name is refused although the address was pinned.
        assert delivery.status == "pending" and "CERTIFICATE_VERIFY_FAILED" in delivery.last_error
        assert receiver.requests == []
